"""Server-sent event responses over the event log."""

from __future__ import annotations

from collections.abc import AsyncIterator

from sse_starlette.sse import EventSourceResponse

from claude_gateway.events.envelope import sse_fields
from claude_gateway.storage.records import EventRecord


def event_stream_response(events: AsyncIterator[EventRecord], ping_seconds: float,
                          headers: dict[str, str] | None = None) -> EventSourceResponse:
    """SSE with ``id``/``event``/``data`` per event and keep-alive comments."""

    async def frames() -> AsyncIterator[dict[str, str]]:
        async for event in events:
            yield sse_fields(event)

    return EventSourceResponse(
        frames(), ping=max(1, int(ping_seconds)),
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no", **(headers or {})},
    )
