"""HTTP behaviour around processes that misbehave, in process with fake agents: what a
client is told when the CLI refuses a live change or an interrupt."""

from __future__ import annotations

import functools
from pathlib import Path

import anyio
import pytest
from anyio.abc import TaskGroup

from tests.helpers.api import assert_error
from tests.helpers.gateway import wait_until
from tests.helpers.inprocess import InProcess, in_process_gateway

pytestmark = pytest.mark.anyio


async def hang_with_a_stubborn_cli(gw: InProcess, group: TaskGroup, session_id: str) -> None:
    """Start a turn that runs until interrupted, on a CLI that refuses control requests
    (until ``refuse_controls`` is cleared)."""
    group.start_soon(functools.partial(gw.client.post, f"/v1/sessions/{session_id}/messages",
                                       json={"prompt": "@hang"}))
    await wait_until(lambda: bool(gw.agents.made and gw.agents.made[0].prompts))
    gw.agents.made[0].refuse_controls = True


async def test_a_refused_live_change_answers_409_and_changes_nothing(tmp_path: Path) -> None:
    async with in_process_gateway(tmp_path) as gw:
        created = await gw.client.post("/v1/sessions", json={"model": "sonnet"})
        session_id = created.json()["id"]
        async with anyio.create_task_group() as group:
            await hang_with_a_stubborn_cli(gw, group, session_id)
            refused = await gw.client.patch(f"/v1/sessions/{session_id}",
                                            json={"model": "opus"})
            assert_error(refused, 409, "LIVE_CHANGE_REFUSED")
            session = (await gw.client.get(f"/v1/sessions/{session_id}")).json()
            assert session["model"] == "sonnet"
            gw.agents.made[0].refuse_controls = False
            interrupted = await gw.client.post(f"/v1/sessions/{session_id}/interrupt")
            assert interrupted.json() == {"interrupted": True}


async def test_a_refused_interrupt_answers_502_and_can_be_tried_again(tmp_path: Path) -> None:
    async with in_process_gateway(tmp_path) as gw:
        session_id = (await gw.client.post("/v1/sessions", json={})).json()["id"]
        async with anyio.create_task_group() as group:
            await hang_with_a_stubborn_cli(gw, group, session_id)
            refused = await gw.client.post(f"/v1/sessions/{session_id}/interrupt")
            error = assert_error(refused, 502, "INTERRUPT_FAILED")
            assert error["details"]["sessionId"] == session_id
            gw.agents.made[0].refuse_controls = False
            again = await gw.client.post(f"/v1/sessions/{session_id}/interrupt")
            assert again.json() == {"interrupted": True}
        turns = [e for e in (await gw.client.get(
            f"/v1/sessions/{session_id}/events", params={"follow": "false"})).json()["events"]
            if e["type"] == "turn.interrupted"]
        assert len(turns) == 1
