"""One-shot runs with the real CLI and the scripted model."""

from __future__ import annotations

import gc
import os
import signal
import time
import warnings
from typing import Any

import anyio
import httpx
import pytest

from claude_gateway.mock_model import MockModelServer
from tests.helpers.api import assert_error, events_of, wait_for_status
from tests.helpers.gateway import Gateway, wait_until
from tests.helpers.sse import collect, is_turn_end

pytestmark = [pytest.mark.cli, pytest.mark.anyio]


async def test_a_run_writes_a_file_that_the_files_api_reads_back(
    start_gateway: Any, mock_model: MockModelServer
) -> None:
    gateway: Gateway = start_gateway()
    async with gateway.client() as client:
        response = await client.post("/v1/runs", json={
            "workspace": "site", "permissionMode": "acceptEdits",
            "prompt": 'Make the page.\n@tool Write {"file_path": "index.html", '
                      '"content": "<h1>hi</h1>"}\n@reply Made index.html.'})
        assert response.status_code == 200, response.text
        run = response.json()
        assert run["status"] == "completed" and run["result"] == "Made index.html."
        assert run["runId"].startswith("run_") and run["sessionId"] == run["runId"]
        assert run["claudeSessionId"] and run["usage"]["inputTokens"] > 0
        assert run["durationMs"] >= 0 and run["totalCostUsd"] > 0
        page = await client.get("/v1/files/site/index.html")
        assert page.content == b"<h1>hi</h1>"
        assert page.headers["content-type"].startswith("text/html")
        # A run is a short-lived session: ended, its history and events readable.
        session = await wait_for_status(client, run["runId"], "ended")
        assert session["kind"] == "run"
        assert (await client.get(f"/v1/sessions/{run['runId']}/messages")).json()[
            "pagination"]["total"] == 4
        assert run["runId"] not in [s["id"] for s in
                                    (await client.get("/v1/sessions")).json()["sessions"]]
        fetched = (await client.get(f"/v1/runs/{run['runId']}")).json()
        assert fetched["status"] == "completed" and fetched["result"] == "Made index.html."


async def test_a_streamed_run_and_structured_output(start_gateway: Any) -> None:
    gateway: Gateway = start_gateway()
    async with gateway.client() as client:
        events = await collect(client, "POST", "/v1/runs",
                               json={"prompt": "@reply streamed run", "stream": True},
                               until=is_turn_end)
        assert events[0]["type"] == "turn.queued"
        assert events[-1]["type"] == "turn.completed"
        assert "".join(e["data"]["text"] for e in events
                       if e["type"] == "message.delta") == "streamed run"
        schema = {"type": "object", "properties": {"answer": {"type": "integer"}},
                  "required": ["answer"]}
        structured = (await client.post("/v1/runs", json={
            "prompt": '@tool StructuredOutput {"answer": 42}', "jsonSchema": schema})).json()
    assert structured["status"] == "completed"
    assert structured["structuredOutput"] == {"answer": 42}


async def test_continue_and_resume_carry_the_history(
    start_gateway: Any, mock_model: MockModelServer
) -> None:
    gateway: Gateway = start_gateway()
    async with gateway.client() as client:
        first = (await client.post("/v1/runs", json={
            "workspace": "notes", "prompt": "The answer is 7.\n@reply Noted."})).json()
        continued = (await client.post("/v1/runs", json={
            "workspace": "notes", "continue": True,
            "prompt": "What was it?\n@reply 7."})).json()
        resumed = (await client.post("/v1/runs", json={
            "workspace": "notes", "resume": first["claudeSessionId"],
            "prompt": "Once more?\n@reply 7 again."})).json()
        fresh = (await client.post("/v1/runs", json={
            "workspace": "notes", "prompt": "New topic.\n@reply ok"})).json()
    assert [r["status"] for r in (first, continued, resumed, fresh)] == ["completed"] * 4
    assert continued["claudeSessionId"] == first["claudeSessionId"]
    requests = mock_model.model.requests
    assert requests[1].user_texts() == ["The answer is 7.\n@reply Noted.",
                                        "What was it?\n@reply 7."]
    assert requests[2].user_texts()[0] == "The answer is 7.\n@reply Noted."
    assert requests[3].user_texts() == ["New topic.\n@reply ok"]


async def test_a_busy_workspace_refuses_a_second_agent_and_a_slow_run_is_cancelled(
    start_gateway: Any,
) -> None:
    gateway: Gateway = start_gateway()
    async with gateway.client() as client, gateway.client() as other:
        slow_prompt = "@slow 0.5\n@reply " + "w " * 60
        async with anyio.create_task_group() as group:
            results: dict[str, httpx.Response] = {}

            async def slow_run() -> None:
                results["slow"] = await client.post("/v1/runs", json={
                    "workspace": "busy", "prompt": slow_prompt})

            group.start_soon(slow_run)

            async def holder() -> str | None:
                busy = (await other.get("/v1/status")).json()["busyWorkspaces"]
                return busy.get("busy")

            await wait_until(holder)
            run_id = await holder()
            assert_error(await other.post("/v1/runs", json={"workspace": "busy",
                                                            "prompt": "@reply no"}),
                         409, "WORKSPACE_BUSY")
            session = (await other.post("/v1/sessions", json={"workspace": "busy"})).json()
            assert_error(await other.post(f"/v1/sessions/{session['id']}/messages",
                                          json={"prompt": "@reply no"}),
                         409, "WORKSPACE_BUSY")
            shared = (await other.post("/v1/sessions", json={"workspace": "busy",
                                                             "shareWorkspace": True})).json()
            ok = await other.post(f"/v1/sessions/{shared['id']}/messages",
                                  json={"prompt": "@reply sharing is fine"})
            assert ok.json()["result"] == "sharing is fine"
            await collect(other, "GET", f"/v1/sessions/{run_id}/events",
                          until=lambda e: e["type"] == "message.delta")
            started = time.monotonic()
            cancelled = await other.post(f"/v1/runs/{run_id}/cancel")
            assert cancelled.json() == {"runId": run_id, "cancelled": True}
        assert time.monotonic() - started < 20  # the scripted stream needs 30 s
        assert results["slow"].json()["status"] == "interrupted"
        assert_error(await other.post(f"/v1/runs/{run_id}/cancel"), 404, "RUN_NOT_FOUND")
        assert_error(await other.post("/v1/runs/run_unknown/cancel"), 404, "RUN_NOT_FOUND")
        # The workspace is free again.
        again = await other.post("/v1/runs", json={"workspace": "busy", "prompt": "@reply free"})
        assert again.json()["result"] == "free"


async def test_a_client_that_disconnects_cancels_its_run_unless_detached(
    start_gateway: Any,
) -> None:
    gateway: Gateway = start_gateway()
    async with gateway.client() as client:
        detached = await client.post("/v1/runs", json={
            "workspace": "b", "detach": True, "prompt": "@slow 0.05\n@reply " + "d " * 10})
        assert detached.status_code == 202  # at once, with the id
        run_id = detached.json()["runId"]
        assert detached.headers["x-run-id"] == run_id
        assert detached.json()["statusUrl"] == f"/v1/runs/{run_id}"

        async def abandoned() -> None:
            await client.post("/v1/runs", json={"workspace": "a", "prompt": "@delay 60\n"
                                                "@reply never"})

        async with anyio.create_task_group() as group:
            group.start_soon(abandoned)

            async def running() -> bool:
                page = (await client.get("/v1/runs", params={"status": "running"})).json()
                return any(r["workspace"] == "a" for r in page["runs"])

            await wait_until(running)
            group.cancel_scope.cancel()  # the client goes away mid-run

        async def status_in(workspace: str) -> str:
            page = (await client.get("/v1/runs")).json()["runs"]
            return next(r["status"] for r in page if r["workspace"] == workspace)

        async def both_done() -> bool:
            return (await status_in("a"), await status_in("b")) == ("interrupted", "completed")

        await wait_until(both_done)
        done = await client.get(f"/v1/runs/{run_id}")
        assert done.json()["result"] == ("d " * 10).strip()
        # Runs are not sessions a client lists (but each is readable under its id).
        listed = (await client.get("/v1/sessions", params={"limit": 200})).json()["sessions"]
        run_ids = {r["runId"] for r in (await client.get("/v1/runs")).json()["runs"]}
        assert len(run_ids) == 2 and run_id in run_ids
        assert not run_ids & {s["id"] for s in listed}
        assert (await client.get(f"/v1/sessions/{run_id}")).json()["kind"] == "run"


async def test_runs_are_listed_newest_first_with_a_status_filter_and_a_cursor(
    start_gateway: Any,
) -> None:
    gateway: Gateway = start_gateway(api_keys=[{"name": "a", "key": "a-key-0123456789abcdef"},
                                               {"name": "b", "key": "b-key-0123456789abcdef"}])
    async with gateway.client(headers={"Authorization": "Bearer a-key-0123456789abcdef"}
                              ) as alice, \
            gateway.client(headers={"Authorization": "Bearer b-key-0123456789abcdef"}) as bob:
        ids = []
        for i in range(3):
            run = await alice.post("/v1/runs", json={"prompt": f"@reply {i}"})
            assert run.headers["x-run-id"] == run.json()["runId"]
            ids.append(run.json()["runId"])
        failed = await alice.post("/v1/runs", json={"prompt": "@fail 500\n@reply no"})
        assert failed.json()["status"] == "failed"
        first = (await alice.get("/v1/runs", params={"limit": 2})).json()
        assert [r["runId"] for r in first["runs"]] == [failed.json()["runId"], ids[2]]
        rest = (await alice.get("/v1/runs", params={"limit": 2,
                                                    "cursor": first["nextCursor"]})).json()
        assert [r["runId"] for r in rest["runs"]] == [ids[1], ids[0]]
        assert rest["nextCursor"] is None and rest["runs"][0]["result"] == "1"
        completed = (await alice.get("/v1/runs", params={"status": "completed"})).json()
        assert [r["runId"] for r in completed["runs"]] == ids[::-1]
        assert (await bob.get("/v1/runs")).json() == {"runs": [], "nextCursor": None}
        assert_error(await alice.get("/v1/runs", params={"status": "done"}), 400,
                     "INVALID_REQUEST")


async def test_spares_serve_every_keys_runs_and_stateless_chats(
    start_gateway: Any, mock_model: MockModelServer
) -> None:
    alice, admin = "alice-key-0123456789abcdef", "admin-key-0123456789abcdef"
    gateway: Gateway = start_gateway(spare_processes=1, max_spare_processes=6, api_keys=[
        {"name": "alice", "key": alice}, {"name": "root", "key": admin, "admin": True}])

    async def ready(workspace: str) -> int:
        async with gateway.client(headers={"Authorization": f"Bearer {admin}"}) as client:
            return int((await client.get("/v1/status")).json()["spares"].get(workspace, 0))

    async def spare_used(client: Any, session_id: str) -> bool:
        (started,) = [e["data"] for e in await events_of(client, session_id)
                      if e["type"] == "process.started"]
        return bool(started["spare"])

    async def ready_in(workspace: str) -> bool:
        return await ready(workspace) == 1

    await wait_until(lambda: ready_in("default"))  # configured: there from the start
    await wait_until(lambda: ready_in("openai"))
    async with gateway.client(headers={"Authorization": f"Bearer {alice}"}) as client:
        # A key's own default workspace: its first run starts a CLI and teaches the pool.
        runs = []
        for text in ("first", "second"):
            run = (await client.post("/v1/runs", json={
                "model": "claude-picked-live", "prompt": f"@reply {text}"})).json()
            assert run["result"] == text
            runs.append(await spare_used(client, run["runId"]))
            await wait_until(lambda: ready_in("alice/default"))
        assert runs == [False, True]
        # Stateless chats: each distinct system prompt an app sends is a profile too.
        chats = []
        for _ in range(2):
            chat = await client.post("/v1/chat/completions", json={"model": "sonnet",
                "messages": [{"role": "system", "content": "Be terse."},
                             {"role": "user", "content": "@reply ok"}]})
            assert chat.status_code == 200
            chats.append(await spare_used(client, chat.headers["x-gateway-session-id"]))
            await wait_until(lambda: ready_in("alice/openai"))
        assert chats == [False, True]
    assert mock_model.model.requests[0].model == "claude-picked-live"  # set live
    assert mock_model.model.requests[-1].system_text.strip().endswith("Be terse.")
    # A spare that dies is replaced at once, not at the next run.
    spares = gateway.app.state.sessions.supervisor.spares
    (victim,) = [p for profile in spares.profiles if profile.workspace == "default"
                 for p in spares._ready[profile.key]]
    victim_pid = victim.pid
    del victim  # the pool alone holds it now
    os.kill(victim_pid, signal.SIGKILL)

    async def replaced() -> bool:
        ready = [p for profile in spares.profiles if profile.workspace == "default"
                 for p in spares._ready[profile.key]]
        return len(ready) == 1 and ready[0].pid != victim_pid and ready[0].alive

    await wait_until(replaced)
    # The dead spare was stopped too: nothing of its SDK client is left open.
    await wait_until(lambda: not spares._stopping)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gc.collect()
    assert not [w for w in caught if "Unclosed" in str(w.message)]


async def test_a_refused_prompt_leaves_the_workspace_free(start_gateway: Any) -> None:
    gateway: Gateway = start_gateway(max_image_bytes=64)
    png = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAA"
           "AABJRU5ErkJggg==")
    async with gateway.client() as client:
        session_id = (await client.post("/v1/sessions", json={"workspace": "shared"})).json()[
            "id"]
        url = f"/v1/sessions/{session_id}/messages"
        first = await client.post(url, json={"prompt": "@reply once", "clientId": "c1"})
        assert first.json()["status"] == "completed"
        refusals = [
            ({"prompt": [{"type": "image", "source": {"type": "base64",
                                                      "media_type": "image/png",
                                                      "data": png}}]}, 413),
            ({"prompt": "@reply twice", "clientId": "c1"}, 200),  # replays the first turn
        ]
        for body, status in refusals:
            response = await client.post(url, json=body)
            assert response.status_code == status, response.text
            # Nothing runs in the workspace now: another agent may take it at once.
            run = await client.post("/v1/runs", json={"prompt": "@reply mine now",
                                                      "workspace": "shared"})
            assert run.status_code == 200, run.text
            assert run.json()["result"] == "mine now"
