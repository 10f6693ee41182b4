"""A small SSE reader for tests: parses frames as a browser's EventSource would."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx


async def sse_events(response: httpx.Response) -> AsyncIterator[dict[str, Any]]:
    """Envelopes from an SSE response, each with its frame ``id`` and ``event`` checked."""
    frame: dict[str, str] = {}
    async for line in response.aiter_lines():
        if line == "":
            if "data" in frame:
                envelope = json.loads(frame["data"])
                assert frame.get("id") == str(envelope["seq"])
                assert frame.get("event") == envelope["type"]
                yield envelope
            frame = {}
        elif line.startswith(":"):
            continue
        else:
            name, _, value = line.partition(":")
            frame[name] = value.removeprefix(" ")


async def collect(client: httpx.AsyncClient, method: str, url: str, *,
                  until: Callable[[dict[str, Any]], bool], limit: int = 10_000,
                  **kwargs: Any) -> list[dict[str, Any]]:
    """Read events until ``until(event)`` holds (that event included) or ``limit`` events."""
    events: list[dict[str, Any]] = []
    async with client.stream(method, url, **kwargs) as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        async for event in sse_events(response):
            events.append(event)
            if until(event) or len(events) >= limit:
                break
    return events


def is_turn_end(event: dict[str, Any]) -> bool:
    return event["type"] in ("turn.completed", "turn.failed", "turn.interrupted")
