"""Session lifecycle through the API: statuses, caps, deletion, expiry, bad input."""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.helpers.api import assert_error, events_of, new_session, wait_for_status
from tests.helpers.gateway import Gateway
from tests.helpers.sse import collect

pytestmark = [pytest.mark.cli, pytest.mark.anyio]


async def test_status_machine_from_create_to_purge(start_gateway: Any) -> None:
    gateway: Gateway = start_gateway()
    async with gateway.client() as client:
        created = await client.post("/v1/sessions", json={"workspace": "project-a"})
        assert created.status_code == 201
        session = created.json()
        session_id = session["id"]
        assert session["status"] == "starting"
        assert session["workspace"] == "project-a"
        assert (gateway.settings.workspace_root / "project-a").is_dir()
        await wait_for_status(client, session_id, "idle")
        sent = await client.post(f"/v1/sessions/{session_id}/messages",
                                 json={"prompt": "@slow 0.3\n@reply a b c", "timeoutMs": 0})
        assert sent.status_code == 202
        await wait_for_status(client, session_id, "running")
        await wait_for_status(client, session_id, "idle")

        assert (await client.delete(f"/v1/sessions/{session_id}")).status_code == 204
        ended = (await client.get(f"/v1/sessions/{session_id}")).json()
        assert ended["status"] == "ended" and ended["endedAt"]
        assert_error(await client.post(f"/v1/sessions/{session_id}/messages",
                                       json={"prompt": "hello?"}), 409, "SESSION_ENDED")
        history = (await client.get(f"/v1/sessions/{session_id}/messages")).json()
        assert history["pagination"]["total"] == 2, "an ended session keeps its history"
        types = [e["type"] for e in await events_of(client, session_id)]
        assert types[-2:] == ["process.stopped", "session.ended"]
        assert types.count("process.started") == 1

        assert (await client.delete(f"/v1/sessions/{session_id}",
                                    params={"purge": "true"})).status_code == 204
        assert_error(await client.get(f"/v1/sessions/{session_id}"), 404, "SESSION_NOT_FOUND")
        assert_error(await client.get(f"/v1/sessions/{session_id}/events",
                                      params={"follow": "false"}), 404, "SESSION_NOT_FOUND")


async def test_bad_input_gets_documented_errors(start_gateway: Any) -> None:
    gateway: Gateway = start_gateway()
    async with gateway.client() as client:
        session_id = await new_session(client)
        base = f"/v1/sessions/{session_id}"
        assert_error(await client.get("/v1/sessions/ses_nope"), 404, "SESSION_NOT_FOUND")
        assert_error(await client.post("/v1/sessions/ses_nope/messages",
                                       json={"prompt": "x"}), 404, "SESSION_NOT_FOUND")
        assert_error(await client.post("/v1/sessions/ses_nope/interrupt"), 404,
                     "SESSION_NOT_FOUND")
        for prompt in ([], [{"type": "text"}], [{"type": "video", "url": "x"}],
                       [{"type": "image", "source": {"type": "base64",
                                                     "media_type": "text/html", "data": "x"}}],
                       "", 42):
            assert_error(await client.post(f"{base}/messages", json={"prompt": prompt}),
                         400, "INVALID_REQUEST")
        assert_error(await client.post(f"{base}/messages", json={}), 400, "INVALID_REQUEST")
        assert_error(await client.post(f"{base}/messages", content=b"{oops",
                                       headers={"content-type": "application/json"}),
                     400, "INVALID_REQUEST")
        assert_error(await client.post("/v1/sessions", json={"permissionMode": "yolo"}),
                     400, "INVALID_REQUEST")
        assert_error(await client.patch(base, json={"permissionMode": "yolo"}),
                     400, "INVALID_REQUEST")
        assert_error(await client.post("/v1/sessions", json={"maxTurns": -1}),
                     400, "INVALID_REQUEST")
        assert_error(await client.post("/v1/sessions", json={"workspace": "../outside"}),
                     400, "PATH_OUTSIDE_WORKSPACE")
        assert_error(await client.post("/v1/sessions", json={"workspace": "/etc"}),
                     400, "PATH_OUTSIDE_WORKSPACE")
        assert_error(await client.post("/v1/sessions", json={"unknownField": 1}),
                     400, "INVALID_REQUEST")
        assert_error(await client.get("/v1/sessions", params={"limit": -1}),
                     400, "INVALID_REQUEST")
        assert_error(await client.get(f"{base}/messages", params={"limit": -5}),
                     400, "INVALID_REQUEST")
        assert_error(await client.get(f"{base}/messages", params={"offset": -1}),
                     400, "INVALID_REQUEST")
        assert_error(await client.get("/v1/sessions", params={"cursor": "garbage!!"}),
                     400, "INVALID_CURSOR")
        last = (await client.get(base)).json()["lastSeq"]
        assert_error(await client.get(f"{base}/events", params={"after": last + 1}),
                     400, "INVALID_CURSOR")
        assert_error(await client.get(f"{base}/events", params={"after": -1}),
                     400, "INVALID_REQUEST")
        assert_error(await client.get(f"{base}/events", headers={"Last-Event-ID": "abc"}),
                     400, "INVALID_CURSOR")
        assert_error(await client.post(f"{base}/messages",
                                       json={"prompt": "x", "timeoutMs": -1}),
                     400, "INVALID_REQUEST")
        # None of it reached the model or changed the session.
        session = (await client.get(base)).json()
        assert session["messageCount"] == 0
        assert gateway.mock.model.requests == []


async def test_fifty_parallel_creates_never_exceed_the_cap(start_gateway: Any) -> None:
    gateway: Gateway = start_gateway(max_sessions=10, max_processes=2)
    async with gateway.client() as client:
        responses = await asyncio.gather(*(client.post("/v1/sessions") for _ in range(50)))
        codes = sorted(r.status_code for r in responses)
        assert codes == [201] * 10 + [429] * 40
        refused = next(r for r in responses if r.status_code == 429)
        assert refused.json()["error"]["code"] == "MAX_SESSIONS_REACHED"
        listed = (await client.get("/v1/sessions", params={"limit": 200})).json()
        assert len(listed["sessions"]) == 10
        # Ending one frees a place.
        await client.delete(f"/v1/sessions/{listed['sessions'][0]['id']}")
        assert (await client.post("/v1/sessions")).status_code == 201
        assert (await client.post("/v1/sessions")).status_code == 429
        status = (await client.get("/v1/status")).json()
        assert status["processes"]["live"] <= 2


async def test_list_pages_with_a_cursor_and_filters_by_status(start_gateway: Any) -> None:
    gateway: Gateway = start_gateway(max_processes=1)
    async with gateway.client() as client:
        ids = [await new_session(client) for _ in range(3)]
        first = (await client.get("/v1/sessions", params={"limit": 2})).json()
        assert [s["id"] for s in first["sessions"]] == ids[::-1][:2]
        assert first["nextCursor"]
        second = (await client.get("/v1/sessions", params={"limit": 2,
                                                            "cursor": first["nextCursor"]})).json()
        assert [s["id"] for s in second["sessions"]] == [ids[0]]
        assert second["nextCursor"] is None
        await client.delete(f"/v1/sessions/{ids[1]}")
        ended = (await client.get("/v1/sessions", params={"status": "ended"})).json()
        assert [s["id"] for s in ended["sessions"]] == [ids[1]]


async def test_sessions_expire_after_their_ttl(start_gateway: Any) -> None:
    gateway: Gateway = start_gateway(session_ttl_seconds=2)
    async with gateway.client() as client:
        session_id = await new_session(client)
        await client.post(f"/v1/sessions/{session_id}/messages", json={"prompt": "@reply a"})
        with anyio.fail_after(20):
            await collect(client, "GET", f"/v1/sessions/{session_id}/events",
                          until=lambda e: e["type"] == "session.ended")
        expired = (await client.get(f"/v1/sessions/{session_id}")).json()
        assert expired["status"] == "expired"
        assert expired["expiresAt"] <= expired["endedAt"]
        assert_error(await client.post(f"/v1/sessions/{session_id}/messages",
                                       json={"prompt": "@reply b"}), 409, "SESSION_EXPIRED")
        events = await events_of(client, session_id)
        assert events[-1]["type"] == "session.ended"
        assert events[-1]["data"]["reason"] == "expired"
        assert (await client.get(f"/v1/sessions/{session_id}/messages")).json()[
            "pagination"]["total"] == 2


async def test_a_cli_that_cannot_start_fails_the_session_and_its_turn(
    start_gateway: Any, tmp_path: Path
) -> None:
    broken = tmp_path / "broken-claude"
    broken.write_text("#!/bin/sh\necho 'cannot start: no licence' >&2\nexit 3\n")
    broken.chmod(broken.stat().st_mode | stat.S_IEXEC)
    gateway: Gateway = start_gateway(cli_path=broken, spawn_timeout_seconds=20)
    async with gateway.client() as client:
        session_id = await new_session(client)
        await wait_for_status(client, session_id, "failed")
        result = (await client.post(f"/v1/sessions/{session_id}/messages",
                                    json={"prompt": "@reply x"})).json()
        assert result["status"] == "failed"
        assert result["error"]["code"] == "PROCESS_START_FAILED"
        stopped = [e for e in await events_of(client, session_id)
                   if e["type"] == "process.stopped"]
        assert stopped and stopped[0]["data"]["reason"] == "start_failed"
        assert "exit code: 3" in stopped[0]["data"]["detail"]


async def test_delete_during_a_turn_and_clearing_the_queue(start_gateway: Any) -> None:
    gateway: Gateway = start_gateway()
    async with gateway.client() as client:
        session_id = await new_session(client)
        url = f"/v1/sessions/{session_id}/messages"
        slow = (await client.post(url, json={"prompt": "@slow 0.5\n@reply " + "w " * 40,
                                             "timeoutMs": 0})).json()
        queued = [(await client.post(url, json={"prompt": f"@reply q{i}", "timeoutMs": 0}))
                  .json() for i in range(2)]
        await wait_for_status(client, session_id, "running")
        cleared = await client.post(f"/v1/sessions/{session_id}/interrupt",
                                    params={"clearQueue": "true"})
        assert cleared.json() == {"interrupted": True}
        second = await new_session(client)
        running = (await client.post(f"/v1/sessions/{second}/messages",
                                     json={"prompt": "@slow 0.5\n@reply " + "w " * 40,
                                           "timeoutMs": 0})).json()
        await wait_for_status(client, second, "running")
        assert (await client.delete(f"/v1/sessions/{second}")).status_code == 204
        with anyio.fail_after(30):
            await collect(client, "GET", f"/v1/sessions/{session_id}/events",
                          until=lambda e: e["turnId"] == slow["turnId"] and e["type"]
                          in ("turn.completed", "turn.interrupted", "turn.failed"))
        first_events = await events_of(client, session_id)
        second_events = await events_of(client, second)
    ends = {e["turnId"]: e for e in first_events if e["type"].startswith("turn.")
            and e["type"] not in ("turn.queued", "turn.started")}
    assert ends[slow["turnId"]]["type"] == "turn.interrupted"
    assert [ends[q["turnId"]]["type"] for q in queued] == ["turn.interrupted"] * 2
    assert ends[queued[0]["turnId"]]["data"]["reason"] == "queue_cleared"
    assert not any(e["type"] == "turn.started" and e["turnId"] == queued[0]["turnId"]
                   for e in first_events)
    failed = next(e for e in second_events if e["type"] == "turn.failed")
    assert failed["turnId"] == running["turnId"]
    assert failed["data"]["error"]["code"] == "SESSION_ENDED"
    assert second_events[-1]["type"] == "session.ended"
