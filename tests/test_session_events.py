"""The event log over SSE: replay from any point, then live; nothing lost or repeated."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from tests.helpers.api import events_of, new_session
from tests.helpers.gateway import Gateway
from tests.helpers.sse import collect, is_turn_end, sse_events

pytestmark = [pytest.mark.cli, pytest.mark.anyio]


async def test_replay_after_a_dropped_connection_has_exactly_the_missing_events(
    start_gateway: Any,
) -> None:
    gateway: Gateway = start_gateway()
    async with gateway.client() as client:
        session_id = await new_session(client)
        url = f"/v1/sessions/{session_id}/events"
        await client.post(f"/v1/sessions/{session_id}/messages",
                          json={"prompt": "@reply one two three four five six"})
        with anyio.fail_after(30):
            # A client reads part of the log, then its connection drops.
            seen = await collect(client, "GET", url, until=lambda e: e["seq"] == 5)
            # Meanwhile the session goes on.
            await client.post(f"/v1/sessions/{session_id}/messages",
                              json={"prompt": "@reply seven eight"})
            # It reconnects the way EventSource does: same URL, Last-Event-ID header.
            rest = await collect(client, "GET", url, headers={"Last-Event-ID": "5"},
                                 until=lambda e: is_turn_end(e)
                                 and e["data"].get("result") == "seven eight")
        full = await events_of(client, session_id)
    assert [e["seq"] for e in seen] == [1, 2, 3, 4, 5]
    combined = seen + rest
    assert [e["seq"] for e in combined] == list(range(1, len(full) + 1))
    assert combined == full
    assert combined[-1]["data"]["result"] == "seven eight"


async def test_last_event_id_wins_over_after(start_gateway: Any) -> None:
    gateway: Gateway = start_gateway()
    async with gateway.client() as client:
        session_id = await new_session(client)
        await client.post(f"/v1/sessions/{session_id}/messages", json={"prompt": "@reply a"})
        url = f"/v1/sessions/{session_id}/events"
        with anyio.fail_after(30):
            by_header = await collect(client, "GET", url, params={"after": 1},
                                      headers={"Last-Event-ID": "3"}, until=lambda e: True)
            by_query = await collect(client, "GET", url, params={"after": 1},
                                     until=lambda e: True)
    assert by_header[0]["seq"] == 4
    assert by_query[0]["seq"] == 2


async def test_live_tail_receives_a_turn_as_it_happens(start_gateway: Any) -> None:
    gateway: Gateway = start_gateway()
    async with gateway.client() as client, gateway.client() as sender:
        session_id = await new_session(client)
        last = (await client.get(f"/v1/sessions/{session_id}")).json()["lastSeq"]
        received: list[dict[str, Any]] = []
        with anyio.fail_after(30):
            async with client.stream("GET", f"/v1/sessions/{session_id}/events",
                                     params={"after": last}) as response:
                assert response.status_code == 200
                async with anyio.create_task_group() as group:
                    group.start_soon(send_prompt, sender, session_id, "@reply live words")
                    async for event in sse_events(response):
                        received.append(event)
                        if is_turn_end(event):
                            break
    assert received[0]["seq"] == last + 1
    assert [e["seq"] for e in received] == list(range(last + 1, last + 1 + len(received)))
    assert received[-1]["type"] == "turn.completed"
    assert received[-1]["data"]["result"] == "live words"


async def send_prompt(client: Any, session_id: str, prompt: str) -> None:
    await client.post(f"/v1/sessions/{session_id}/messages", json={"prompt": prompt})
