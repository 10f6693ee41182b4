"""Faults: idle eviction, LRU eviction, a killed CLI, a killed gateway."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from claude_gateway.mock_model import MockModelServer
from tests.helpers.api import events_of, new_session, wait_for_status
from tests.helpers.gateway import (
    Gateway,
    free_port,
    pid_alive,
    processes_in,
    wait_healthy,
    wait_until,
)
from tests.helpers.gateway_process import start_gateway_process
from tests.helpers.sse import collect, is_turn_end

pytestmark = [pytest.mark.cli, pytest.mark.anyio]




async def process_pids(client: httpx.AsyncClient, session_id: str) -> list[int]:
    return [e["data"]["pid"] for e in await events_of(client, session_id)
            if e["type"] == "process.started"]


async def test_idle_process_is_stopped_then_resumed_transparently(
    start_gateway: Any, mock_model: MockModelServer
) -> None:
    gateway: Gateway = start_gateway(idle_timeout_seconds=0.5)
    async with gateway.client() as client:
        session_id = await new_session(client)
        first = await client.post(f"/v1/sessions/{session_id}/messages",
                                  json={"prompt": "Remember 42.\n@reply Remembered."})
        assert first.json()["status"] == "completed"
        stopped = await wait_for_status(client, session_id, "stopped")
        assert stopped["claudeSessionId"] == first.json()["claudeSessionId"]
        (old_pid,) = await process_pids(client, session_id)
        assert not pid_alive(old_pid)
        # The CLI's own transcript files go missing (another node, a wiped disk): the
        # conversation comes back from the gateway's store.
        projects = gateway.settings.cli_config_dir / "projects"
        assert any(projects.rglob("*.jsonl"))
        shutil.rmtree(projects)
        second = await client.post(f"/v1/sessions/{session_id}/messages",
                                   json={"prompt": "What was it?\n@reply 42."})
        assert second.json()["result"] == "42."
        assert second.json()["claudeSessionId"] == first.json()["claudeSessionId"]
        events = await events_of(client, session_id)
    reasons = [e["data"].get("reason") for e in events if e["type"] == "process.stopped"]
    assert reasons == ["idle_timeout"]
    started = [e["data"] for e in events if e["type"] == "process.started"]
    assert [s["resumed"] for s in started] == [False, True]
    # The resumed process sent the earlier turn to the model.
    assert mock_model.model.requests[-1].user_texts()[0].startswith("Remember 42.")


async def test_the_least_recently_used_idle_process_makes_room(
    start_gateway: Any, mock_model: MockModelServer
) -> None:
    gateway: Gateway = start_gateway(max_processes=1)
    async with gateway.client() as client:
        a = await new_session(client)
        await client.post(f"/v1/sessions/{a}/messages", json={"prompt": "A1\n@reply a1"})
        b = await new_session(client)
        # No free slot: the new session does not evict a warm one just to pre-start.
        await wait_for_status(client, b, "stopped")
        assert (await client.get(f"/v1/sessions/{a}")).json()["status"] == "idle"
        await client.post(f"/v1/sessions/{b}/messages", json={"prompt": "B1\n@reply b1"})
        assert (await client.get(f"/v1/sessions/{a}")).json()["status"] == "stopped"
        again = await client.post(f"/v1/sessions/{a}/messages", json={"prompt": "A2\n@reply a2"})
        assert again.json()["result"] == "a2"
        a_events = await events_of(client, a)
        status = (await client.get("/v1/status")).json()
    assert [e["data"]["reason"] for e in a_events if e["type"] == "process.stopped"] == [
        "evicted"]
    assert status["processes"]["live"] == 1
    assert mock_model.model.requests[-1].user_texts() == ["A1\n@reply a1", "A2\n@reply a2"]


async def session_with_a_process(client: httpx.AsyncClient, prompt: str) -> tuple[str, int]:
    """A session that has answered ``prompt``, and the pid of its CLI."""
    session_id = await new_session(client)
    await client.post(f"/v1/sessions/{session_id}/messages", json={"prompt": prompt})
    (pid,) = await process_pids(client, session_id)
    return session_id, pid


async def test_a_cli_killed_mid_turn_fails_the_turn_and_the_session_recovers(
    start_gateway: Any, mock_model: MockModelServer
) -> None:
    gateway: Gateway = start_gateway()
    async with gateway.client() as client:
        session_id, pid = await session_with_a_process(client, "First.\n@reply one")
        sent = await client.post(f"/v1/sessions/{session_id}/messages",
                                 json={"prompt": "@slow 0.5\n@reply " + "w " * 40,
                                       "timeoutMs": 0})
        url = f"/v1/sessions/{session_id}/events"
        turn_id = sent.json()["turnId"]
        with anyio.fail_after(30):
            await collect(client, "GET", url, until=lambda e: e["type"] == "message.delta"
                          and e["turnId"] == turn_id)
            os.kill(pid, signal.SIGKILL)
            end = (await collect(client, "GET", url,
                                 until=lambda e: is_turn_end(e) and e["turnId"] == turn_id))[-1]
        assert end["type"] == "turn.failed" and end["turnId"] == sent.json()["turnId"]
        error = end["data"]["error"]
        assert error["code"] == "PROCESS_EXITED"
        assert error["exitCode"] == -9
        assert isinstance(error["stderr"], str)
        await wait_for_status(client, session_id, "idle")
        after = await client.post(f"/v1/sessions/{session_id}/messages",
                                  json={"prompt": "Still there?\n@reply yes"})
        assert after.json()["result"] == "yes"
        started = [e["data"] for e in await events_of(client, session_id)
                   if e["type"] == "process.started"]
    assert [s["resumed"] for s in started] == [False, True]
    assert mock_model.model.requests[-1].user_texts()[0] == "First.\n@reply one"


async def test_a_cli_killed_while_idle_is_replaced(
    start_gateway: Any, mock_model: MockModelServer
) -> None:
    gateway: Gateway = start_gateway()
    async with gateway.client() as client:
        session_id, pid = await session_with_a_process(client, "Before.\n@reply one")
        os.kill(pid, signal.SIGKILL)
        async def replaced() -> bool:
            return len(await process_pids(client, session_id)) >= 2

        await wait_until(replaced)
        events = await events_of(client, session_id)
        exited = [e["data"] for e in events if e["type"] == "process.stopped"]
        assert exited[0]["reason"] == "exited" and exited[0]["exitCode"] == -9
        after = await client.post(f"/v1/sessions/{session_id}/messages",
                                  json={"prompt": "After.\n@reply two"})
        assert after.json()["result"] == "two"
    assert mock_model.model.requests[-1].user_texts() == ["Before.\n@reply one",
                                                         "After.\n@reply two"]


def gateway_process(tmp_path: Path, mock: MockModelServer, port: int
                    ) -> subprocess.Popen[bytes]:
    return start_gateway_process(tmp_path, mock.url, port)




async def test_a_killed_gateway_restarts_with_every_session_and_resumes(
    tmp_path: Path, mock_model: MockModelServer
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    first = gateway_process(tmp_path, mock_model, port)
    second: subprocess.Popen[bytes] | None = None
    try:
        await wait_healthy(url)
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            session_id = await new_session(client)
            await client.post(f"/v1/sessions/{session_id}/messages",
                              json={"prompt": "Earlier turn.\n@reply noted"})
            (cli_pid,) = await process_pids(client, session_id)
            running = await client.post(f"/v1/sessions/{session_id}/messages",
                                        json={"prompt": "@slow 1\n@reply " + "w " * 30,
                                              "timeoutMs": 0})
            with anyio.fail_after(30):
                await collect(client, "GET", f"/v1/sessions/{session_id}/events",
                              until=lambda e: e["type"] == "message.delta")
            before = await events_of(client, session_id)
            # Another session waits for a permission answer when the gateway dies.
            asking = await new_session(client)
            await client.post(f"/v1/sessions/{asking}/messages", json={
                "prompt": '@tool Write {"file_path": "x.txt", "content": "x"}\n@reply x',
                "timeoutMs": 0})
            with anyio.fail_after(30):
                await collect(client, "GET", f"/v1/sessions/{asking}/events",
                              until=lambda e: e["type"] == "permission.requested")

        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
        second = gateway_process(tmp_path, mock_model, port)
        await wait_healthy(url)
        # The old CLI must not outlive its gateway.
        await wait_until(lambda: not pid_alive(cli_pid), within=10)

        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            session = (await client.get(f"/v1/sessions/{session_id}")).json()
            assert session["status"] == "stopped"
            events = await events_of(client, session_id)
            assert events[:len(before)] == before
            assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
            failed = [e for e in events if e["type"] == "turn.failed"]
            assert failed[0]["turnId"] == running.json()["turnId"]
            assert failed[0]["data"]["error"]["code"] == "GATEWAY_RESTARTED"
            # The pending request shows as expired, not silently lost.
            assert (await client.get(f"/v1/sessions/{asking}/permissions")).json() == {
                "permissions": []}
            resolved = [e["data"] for e in await events_of(client, asking)
                        if e["type"] == "permission.resolved"]
            assert [(r["status"], r["by"]) for r in resolved] == [("expired", "gateway")]
            resumed = await client.post(f"/v1/sessions/{session_id}/messages",
                                        json={"prompt": "Where were we?\n@reply here"})
            assert resumed.json()["result"] == "here"
        assert mock_model.model.requests[-1].user_texts()[0] == "Earlier turn.\n@reply noted"
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=30)
    await wait_until(lambda: not processes_in(tmp_path / "workspaces"), within=10)


async def test_a_second_gateway_on_the_same_data_dir_leaves_the_first_alone(
    start_gateway: Any, tmp_path: Path
) -> None:
    gateway: Gateway = start_gateway()
    async with gateway.client() as client:
        session_id = await new_session(client)
        running = await client.post(f"/v1/sessions/{session_id}/messages", json={
            "prompt": "@delay 2\n@reply survived", "timeoutMs": 0})
        await wait_until(lambda: process_pids(client, session_id))
        (cli_pid,) = await process_pids(client, session_id)
        second = await anyio.run_process(
            [sys.executable, "-m", "claude_gateway", "serve", "--port", str(free_port())],
            env={**os.environ, "CLAUDE_GATEWAY_DATA_DIR": str(gateway.settings.data_dir),
                 "CLAUDE_GATEWAY_WORKSPACE_ROOT": str(tmp_path / "other")}, check=False)
        stderr = second.stderr.decode()
        assert second.returncode == 1, stderr
        assert "Another gateway is running on the data dir" in stderr
        assert f"pid {os.getpid()}" in stderr
        # Inside one process too: the lock comes before anything else.
        with pytest.raises(RuntimeError, match="exited during start-up"):
            Gateway(gateway.settings, gateway.mock).start()
        assert pid_alive(cli_pid)
        with anyio.fail_after(30):
            events = await collect(client, "GET", f"/v1/sessions/{session_id}/events",
                                   until=lambda e: is_turn_end(e)
                                   and e["turnId"] == running.json()["turnId"])
        assert events[-1]["type"] == "turn.completed"
        assert events[-1]["data"]["result"] == "survived"
        ends = [e for e in await events_of(client, session_id) if is_turn_end(e)]
        assert len(ends) == 1


def test_only_leftovers_whose_gateway_is_gone_are_reaped(tmp_path: Path) -> None:
    import json

    from claude_gateway.runtime.process_pool import ProcessPool

    sleeper = shutil.which("sleep")
    assert sleeper is not None
    gone = int(Path("/proc/sys/kernel/pid_max").read_text()) + 1  # no process has it
    mine = subprocess.Popen([sleeper, "60"])
    orphan = subprocess.Popen([sleeper, "60"])
    try:
        pids = tmp_path / "pids"
        pids.mkdir()
        (pids / str(mine.pid)).write_text(json.dumps({"binary": sleeper,
                                                      "gateway": os.getpid()}))
        (pids / str(orphan.pid)).write_text(json.dumps({"binary": sleeper,
                                                        "gateway": gone}))
        for process in (mine, orphan):  # until each runs the binary (exec may lag the fork)
            deadline = time.monotonic() + 10
            while not Path(f"/proc/{process.pid}/cmdline").read_bytes().startswith(
                    sleeper.encode()) and time.monotonic() < deadline:
                time.sleep(0.01)
        killed = ProcessPool(4, pids, binary=Path(sleeper)).reap_leftovers()
        assert killed == [orphan.pid]
        assert orphan.wait(timeout=10) == -signal.SIGKILL
        assert mine.poll() is None
    finally:
        for process in (mine, orphan):
            process.kill()
            process.wait()
