"""Turns that outlast every short timeout: streams are never cut while the agent works.

The gateway runs with a body timeout of half a second, and each turn makes the model
wait longer than that before it answers. Every streaming surface must carry the whole
turn; only a client that stalls while *sending* a body gets 408.
"""

from __future__ import annotations

import json
import socket
from typing import Any

import anyio
import pytest

from tests.helpers.api import new_session
from tests.helpers.gateway import Gateway, wait_until
from tests.helpers.sse import collect, is_turn_end

pytestmark = [pytest.mark.cli, pytest.mark.anyio]

BODY_TIMEOUT = 0.5
SLOW = "@delay 1.5\n@reply made it"


@pytest.fixture
def impatient(start_gateway: Any) -> Gateway:
    gateway: Gateway = start_gateway(body_timeout_seconds=BODY_TIMEOUT, sse_ping_seconds=0.2)
    return gateway


async def test_every_stream_outlasts_the_body_timeout(impatient: Gateway) -> None:
    async with impatient.client() as client:
        session_id = await new_session(client)
        streamed = await collect(client, "POST", f"/v1/sessions/{session_id}/messages",
                                 json={"prompt": SLOW, "stream": True}, until=is_turn_end)
        assert streamed[-1]["type"] == "turn.completed"
        assert streamed[-1]["data"]["result"] == "made it"

        run = await collect(client, "POST", "/v1/runs", json={"prompt": SLOW, "stream": True},
                            until=is_turn_end)
        assert run[-1]["type"] == "turn.completed"

        async with anyio.create_task_group() as group:
            followed: list[dict[str, Any]] = []

            async def follow() -> None:
                followed.extend(await collect(
                    client, "GET", f"/v1/sessions/{session_id}/events",
                    params={"after": streamed[-1]["seq"]}, until=is_turn_end))

            group.start_soon(follow)
            answer = await client.post(f"/v1/sessions/{session_id}/messages",
                                       json={"prompt": SLOW})
            assert answer.json()["status"] == "completed"
        assert followed[-1]["type"] == "turn.completed"

        chunks = []
        async with client.stream("POST", "/v1/chat/completions", json={
                "model": "sonnet", "stream": True,
                "messages": [{"role": "user", "content": SLOW}]}) as response:
            async for line in response.aiter_lines():
                if line.startswith("data: "):
                    chunks.append(line.removeprefix("data: "))
        assert chunks[-1] == "[DONE]"
        text = "".join(json.loads(c)["choices"][0]["delta"].get("content") or ""
                       for c in chunks[:-1] if json.loads(c)["choices"])
        assert text == "made it"


async def test_an_mcp_tool_call_outlasts_the_body_timeout(impatient: Gateway) -> None:
    import httpx2
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    async with httpx2.AsyncClient(timeout=60) as http, \
            streamable_http_client(f"{impatient.url}/mcp", http_client=http) as (r, w), \
            ClientSession(r, w) as session:
        await session.initialize()
        result = await session.call_tool("claude_run", {"prompt": SLOW})
    assert not result.is_error
    assert result.content[0].text == "made it"  # type: ignore[union-attr]


def test_a_client_that_stalls_while_sending_a_body_still_gets_408(impatient: Gateway) -> None:
    with socket.create_connection(("127.0.0.1", impatient.server.port), timeout=30) as raw:
        raw.sendall(b"POST /v1/sessions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                    b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"mo")
        answer = b""
        while chunk := raw.recv(65536):  # the gateway answers, then closes
            answer += chunk
            if b"\r\n\r\n" in answer and answer.rstrip().endswith(b"}"):
                break
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408")
    assert json.loads(body)["error"]["code"] == "REQUEST_TIMEOUT"


async def test_a_disconnecting_streamed_run_is_still_cancelled(impatient: Gateway) -> None:
    async with impatient.client() as client:
        async with client.stream("POST", "/v1/runs", json={
                "prompt": "@delay 30\n@reply never", "stream": True}) as response:
            run_id = response.headers["x-run-id"]
            async for line in response.aiter_lines():
                if line.startswith("event: turn.started"):
                    break
        # The client went away: the run is cancelled, it does not run on for 30 s.
        async def ended() -> bool:
            run = (await client.get(f"/v1/runs/{run_id}")).json()
            return run["status"] not in ("queued", "running")

        await wait_until(ended)
        assert (await client.get(f"/v1/runs/{run_id}")).json()["status"] == "interrupted"
