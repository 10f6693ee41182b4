"""Turns on sessions, through the HTTP API, with the real CLI and the scripted model."""

from __future__ import annotations

import time
from typing import Any

import anyio
import pytest

from claude_gateway.mock_model import MockModelServer
from tests.helpers.api import events_of, new_session
from tests.helpers.gateway import Gateway
from tests.helpers.sse import collect, is_turn_end

pytestmark = [pytest.mark.cli, pytest.mark.anyio]

WRITE = '@tool Write {"file_path": "notes.txt", "content": "from the model"}'


async def test_two_turns_share_one_warm_process(
    start_gateway: Any, mock_model: MockModelServer
) -> None:
    gateway: Gateway = start_gateway()
    async with gateway.client() as client:
        session_id = await new_session(client, permissionMode="acceptEdits",
                                       metadata={"team": "a"})
        first = await client.post(f"/v1/sessions/{session_id}/messages", json={
            "prompt": f"Take notes.\n@usage 100 10\n{WRITE}\n@usage 100 10\n@reply Noted."})
        assert first.status_code == 200, first.text
        body = first.json()
        assert body["status"] == "completed"
        assert body["result"] == "Noted."
        assert body["numTurns"] == 2
        assert body["usage"]["inputTokens"] == 200 and body["usage"]["outputTokens"] == 20
        assert body["totalCostUsd"] > 0

        second = await client.post(f"/v1/sessions/{session_id}/messages",
                                   json={"prompt": "And then?\n@usage 50 5\n@reply Done."})
        assert second.json()["result"] == "Done."
        session = (await client.get(f"/v1/sessions/{session_id}")).json()
        history = (await client.get(f"/v1/sessions/{session_id}/messages")).json()
        events = await events_of(client, session_id)

    workspace = gateway.settings.workspace_root / session_id
    assert (workspace / "notes.txt").read_text() == "from the model"
    calls = mock_model.model.requests
    assert len(calls) == 3
    # One process served both turns, and it kept the first turn's history.
    assert calls[2].user_texts()[0].startswith("Take notes.")
    assert calls[2].prompt.startswith("And then?")
    assert [e["type"] for e in events].count("process.started") == 1
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))

    assert session["status"] == "idle"
    assert session["metadata"] == {"team": "a"}
    assert session["usage"]["inputTokens"] == 250
    assert session["usage"]["outputTokens"] == 25
    total = body["totalCostUsd"] + second.json()["totalCostUsd"]
    assert session["usage"]["totalCostUsd"] == pytest.approx(total)
    assert session["claudeSessionId"] == body["claudeSessionId"]

    roles = [m["role"] for m in history["messages"]]
    assert roles == ["user", "assistant", "user", "assistant", "user", "assistant"]
    assert history["messages"][1]["content"][0]["name"] == "Write"
    assert history["messages"][2]["content"][0]["type"] == "tool_result"
    assert history["pagination"] == {"limit": 100, "offset": 0, "total": 6, "hasMore": False}
    assert session["messageCount"] == 6

    types = [e["type"] for e in events if e["turnId"] == body["turnId"]]
    assert types[:2] == ["turn.queued", "turn.started"]
    assert "message.delta" in types and types[-1] == "turn.completed"


async def test_prompts_queue_in_order_and_202_after_timeout(
    start_gateway: Any, mock_model: MockModelServer
) -> None:
    gateway: Gateway = start_gateway()
    async with gateway.client() as client:
        session_id = await new_session(client)
        url = f"/v1/sessions/{session_id}/messages"
        slow = await client.post(url, json={"prompt": "@slow 0.2\n@reply one two three four",
                                            "timeoutMs": 0})
        queued = await client.post(url, json={"prompt": "@reply second", "timeoutMs": 0})
        assert slow.status_code == 202 and queued.status_code == 202
        assert queued.json()["status"] == "queued"
        third = await client.post(url, json={"prompt": "@reply third"})
        assert third.status_code == 200 and third.json()["result"] == "third"
        events = await events_of(client, session_id)

    turn_ids = [slow.json()["turnId"], queued.json()["turnId"], third.json()["turnId"]]
    started = [e["turnId"] for e in events if e["type"] == "turn.started"]
    completed = [e["turnId"] for e in events if e["type"] == "turn.completed"]
    assert started == turn_ids and completed == turn_ids
    positions = [e["data"]["position"] for e in events if e["type"] == "turn.queued"]
    assert positions == [0, 1, 2]
    assert [r.prompt for r in mock_model.model.requests] == [
        "@slow 0.2\n@reply one two three four", "@reply second", "@reply third"]


async def test_interrupt_stops_a_slow_stream(start_gateway: Any) -> None:
    gateway: Gateway = start_gateway()
    words = " ".join(f"word{i}" for i in range(60))
    async with gateway.client() as client:
        session_id = await new_session(client)
        assert (await client.post(f"/v1/sessions/{session_id}/interrupt")).json() == {
            "interrupted": False}
        sent = await client.post(f"/v1/sessions/{session_id}/messages",
                                 json={"prompt": f"@slow 0.5\n@reply {words}", "timeoutMs": 0})
        turn_id = sent.json()["turnId"]
        events_url = f"/v1/sessions/{session_id}/events"
        with anyio.fail_after(30):
            await collect(client, "GET", events_url, until=lambda e: e["type"] == "message.delta")
            started = time.monotonic()
            interrupted = await client.post(f"/v1/sessions/{session_id}/interrupt")
            assert interrupted.json() == {"interrupted": True}
            tail = await collect(client, "GET", events_url, until=is_turn_end)
            elapsed = time.monotonic() - started
        end = tail[-1]
        assert end["type"] == "turn.interrupted" and end["turnId"] == turn_id
        # The scripted stream needs 30 s; the interrupt ended it long before.
        assert elapsed < 10
        after = await client.post(f"/v1/sessions/{session_id}/messages",
                                  json={"prompt": "@reply still here"})
        assert after.json()["result"] == "still here"
        assert (await client.get(f"/v1/sessions/{session_id}")).json()["status"] == "idle"


async def test_streamed_message_ends_with_the_turn(start_gateway: Any) -> None:
    gateway: Gateway = start_gateway()
    async with gateway.client() as client:
        session_id = await new_session(client)
        events = await collect(client, "POST", f"/v1/sessions/{session_id}/messages",
                               json={"prompt": "@reply streamed words here", "stream": True},
                               until=is_turn_end)
    types = [e["type"] for e in events]
    assert types[0] == "turn.queued" and types[-1] == "turn.completed"
    text = "".join(e["data"]["text"] for e in events if e["type"] == "message.delta")
    assert text == "streamed words here"
    assert events[-1]["data"]["result"] == "streamed words here"
    assert len({e["turnId"] for e in events}) == 1


async def test_patch_applies_model_and_mode_to_the_live_process(
    start_gateway: Any, mock_model: MockModelServer
) -> None:
    gateway: Gateway = start_gateway()
    async with gateway.client() as client:
        session_id = await new_session(client, model="claude-first-model")
        await client.post(f"/v1/sessions/{session_id}/messages", json={"prompt": "@reply a"})
        patched = await client.patch(f"/v1/sessions/{session_id}", json={
            "model": "claude-second-model", "permissionMode": "acceptEdits",
            "metadata": {"x": "1"}})
        assert patched.status_code == 200
        assert patched.json()["model"] == "claude-second-model"
        assert patched.json()["permissionMode"] == "acceptEdits"
        # Write needs acceptEdits: it succeeds only if the live process got the new mode.
        result = await client.post(f"/v1/sessions/{session_id}/messages",
                                   json={"prompt": f"{WRITE}\n@reply ok"})
        assert result.json()["status"] == "completed"
        events = await events_of(client, session_id)
    models = [r.model for r in mock_model.model.requests]
    assert models == ["claude-first-model", "claude-second-model", "claude-second-model"]
    assert mock_model.model.requests[1].prompt.startswith("@tool Write")
    assert [e["type"] for e in events].count("process.started") == 1
    assert (gateway.settings.workspace_root / session_id / "notes.txt").exists()


async def test_fork_and_resume_carry_the_conversation(
    start_gateway: Any, mock_model: MockModelServer
) -> None:
    gateway: Gateway = start_gateway()
    async with gateway.client() as client:
        source = await new_session(client, workspace="shared")
        first = await client.post(f"/v1/sessions/{source}/messages",
                                  json={"prompt": "The code word is apple.\n@reply ok"})
        source_claude_id = first.json()["claudeSessionId"]
        fork = await new_session(client, forkFrom=source)
        forked = (await client.post(f"/v1/sessions/{fork}/messages",
                                    json={"prompt": "Code word?\n@reply apple"})).json()
        assert forked["status"] == "completed"
        assert forked["claudeSessionId"] != source_claude_id
        assert (await client.get(f"/v1/sessions/{fork}")).json()["workspace"] == "shared"
        resumed = await new_session(client, workspace="shared", resume=source_claude_id)
        again = (await client.post(f"/v1/sessions/{resumed}/messages",
                                   json={"prompt": "Still?\n@reply apple"})).json()
        assert again["claudeSessionId"] == source_claude_id
        unknown = await client.post("/v1/sessions", json={"forkFrom": "ses_missing"})
        assert unknown.status_code == 404
    fork_request, resume_request = mock_model.model.requests[1], mock_model.model.requests[2]
    assert fork_request.user_texts()[0] == "The code word is apple.\n@reply ok"
    assert resume_request.user_texts()[0] == "The code word is apple.\n@reply ok"


async def test_event_streams_send_keep_alive_comments(start_gateway: Any) -> None:
    gateway: Gateway = start_gateway(sse_ping_seconds=1)
    async with gateway.client() as client:
        session_id = await new_session(client)
        last = (await client.get(f"/v1/sessions/{session_id}")).json()["lastSeq"]
        comment = None
        with anyio.fail_after(20):
            async with client.stream("GET", f"/v1/sessions/{session_id}/events",
                                     params={"after": last}) as response:
                async for line in response.aiter_lines():
                    if line.startswith(":"):
                        comment = line
                        break
        assert comment is not None, "the idle stream ended without a keep-alive"


async def test_api_retries_surface_as_status_events(start_gateway: Any) -> None:
    gateway: Gateway = start_gateway()
    async with gateway.client() as client:
        session_id = await new_session(client)
        result = (await client.post(f"/v1/sessions/{session_id}/messages",
                                    json={"prompt": "@fail 529 1\n@reply recovered"})).json()
        events = await events_of(client, session_id)
    assert result["result"] == "recovered"
    (retry,) = [e for e in events if e["type"] == "status" and e["data"]["kind"] == "api_retry"]
    assert retry["turnId"] == result["turnId"]
    assert retry["data"]["errorStatus"] == 529 and retry["data"]["attempt"] == 1
