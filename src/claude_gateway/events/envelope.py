"""The event envelope of API.md and its SSE framing (pure)."""

from __future__ import annotations

import json
from typing import Any

from claude_gateway.storage.records import EventRecord

TERMINAL_TURN_EVENTS = frozenset({"turn.completed", "turn.failed", "turn.interrupted"})


def rfc3339(moment: Any) -> str:
    return str(moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"))


def envelope(event: EventRecord) -> dict[str, Any]:
    """``{seq, sessionId, turnId, type, ts, data}``."""
    return {
        "seq": event.seq,
        "sessionId": event.session_id,
        "turnId": event.turn_id,
        "type": event.type,
        "ts": rfc3339(event.ts),
        "data": event.data,
    }


def sse_fields(event: EventRecord) -> dict[str, str]:
    """``id``, ``event`` and ``data`` of one server-sent event."""
    return {
        "id": str(event.seq),
        "event": event.type,
        "data": json.dumps(envelope(event), separators=(",", ":")),
    }
