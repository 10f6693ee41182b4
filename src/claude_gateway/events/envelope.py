"""The event envelope of API.md and its SSE framing (pure)."""

from __future__ import annotations

import json
from enum import StrEnum

from claude_gateway.storage.records import EventRecord
from claude_gateway.wire import envelope


class EventType(StrEnum):
    """Every ``type`` of the event log (API.md, "Events")."""

    SESSION_CREATED = "session.created"
    SESSION_UPDATED = "session.updated"
    SESSION_ENDED = "session.ended"
    PROCESS_STARTED = "process.started"
    PROCESS_STOPPED = "process.stopped"
    TURN_QUEUED = "turn.queued"
    TURN_STARTED = "turn.started"
    TURN_COMPLETED = "turn.completed"
    TURN_FAILED = "turn.failed"
    TURN_INTERRUPTED = "turn.interrupted"
    MESSAGE = "message"
    MESSAGE_DELTA = "message.delta"
    STATUS = "status"
    PERMISSION_REQUESTED = "permission.requested"
    PERMISSION_RESOLVED = "permission.resolved"


TERMINAL_TURN_EVENTS = frozenset({EventType.TURN_COMPLETED, EventType.TURN_FAILED,
                                  EventType.TURN_INTERRUPTED})


def sse_fields(event: EventRecord) -> dict[str, str]:
    """``id``, ``event`` and ``data`` of one server-sent event."""
    return {
        "id": str(event.seq),
        "event": event.type,
        "data": json.dumps(envelope(event), separators=(",", ":")),
    }
