"""Page cursors of the session list: a position (creation time, then id), not a row."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from claude_gateway.errors import InvalidCursor

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
CURSOR_PATTERN = r"^[0-9]{1,17}\.[A-Za-z0-9_-]{1,64}$"
"""A page cursor is a position in the list (creation time in microseconds, then the id),
not a reference to a row: any cursor of this form is valid, even if that row is gone."""


def encode_cursor(created_at: datetime, session_id: str) -> str:
    return f"{(created_at - _EPOCH) // timedelta(microseconds=1)}.{session_id}"


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    micros, _, session_id = cursor.partition(".")
    if not (micros.isdigit() and len(micros) <= 17 and session_id):
        raise InvalidCursor("The cursor is not one this server gave out",
                            details={"cursor": cursor[:100]})
    return _EPOCH + timedelta(microseconds=int(micros)), session_id
