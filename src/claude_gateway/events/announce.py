"""Which events webhooks announce, and what a delivery says of each (pure).

A delivery carries the event's envelope with its data kept thin: a ``turn.completed``
has the result, usage and cost, never the transcript (the session's history is a link
away). A string longer than :data:`MAX_STRING` is cut, and the cut is said.
"""

from __future__ import annotations

from typing import Any

from claude_gateway.events.envelope import EventType
from claude_gateway.storage.records import Announcement

WEBHOOK_EVENT_TYPES = (
    "turn.completed", "turn.failed", "turn.interrupted", "permission.requested",
    "permission.resolved", "session.created", "session.ended", "session.expired",
    "webhook.disabled",
)
"""What an endpoint may subscribe to (or ``*``: all of them)."""
PING = "webhook.test"
"""The type of the signed ping ``POST /v1/webhooks/{id}/test`` sends."""
MAX_STRING = 32_000

_TURN_FIELDS = ("result", "structuredOutput", "usage", "totalCostUsd", "durationMs",
                "durationApiMs", "numTurns", "stopReason", "terminalReason", "model",
                "error")
_ANNOUNCED = frozenset({
    EventType.TURN_COMPLETED, EventType.TURN_FAILED, EventType.TURN_INTERRUPTED,
    EventType.PERMISSION_REQUESTED, EventType.PERMISSION_RESOLVED,
    EventType.SESSION_CREATED, EventType.SESSION_ENDED})


def announcement(type_: str, data: dict[str, Any]) -> Announcement | None:
    """The announcement of an event of this type and data, if webhooks announce it."""
    if type_ not in _ANNOUNCED:
        return None
    if type_ == EventType.SESSION_ENDED and data.get("status") == "expired":
        type_ = "session.expired"
    if type_.startswith("turn."):
        data = {k: data[k] for k in _TURN_FIELDS if k in data}
    return Announcement(type_, thin(data))


def thin(value: Any) -> Any:
    """``value`` with every string longer than :data:`MAX_STRING` cut to it."""
    if isinstance(value, str) and len(value) > MAX_STRING:
        return value[:MAX_STRING] + f"… [{len(value) - MAX_STRING} more characters]"
    if isinstance(value, dict):
        return {k: thin(v) for k, v in value.items()}
    if isinstance(value, list):
        return [thin(v) for v in value]
    return value
