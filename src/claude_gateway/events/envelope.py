"""The event envelope of API.md and its SSE framing (pure)."""

from __future__ import annotations

import json

from claude_gateway.storage.records import EventRecord
from claude_gateway.wire import envelope

TERMINAL_TURN_EVENTS = frozenset({"turn.completed", "turn.failed", "turn.interrupted"})


def sse_fields(event: EventRecord) -> dict[str, str]:
    """``id``, ``event`` and ``data`` of one server-sent event."""
    return {
        "id": str(event.seq),
        "event": event.type,
        "data": json.dumps(envelope(event), separators=(",", ":")),
    }
