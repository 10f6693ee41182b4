"""A server that runs for weeks: what a finished run or an ended session leaves in memory
goes away again."""

from __future__ import annotations

from typing import Any

import pytest

from tests.helpers.api import new_session
from tests.helpers.gateway import Gateway, wait_until

pytestmark = [pytest.mark.cli, pytest.mark.anyio]


def in_memory(gateway: Gateway) -> dict[str, int]:
    """The size of every per-session map the gateway keeps."""
    state = gateway.app.state
    return {**state.sessions.footprint(), **state.events.footprint(),
            **state.runs.footprint()}


async def test_runs_and_ended_sessions_leave_nothing_behind(start_gateway: Any) -> None:
    gateway: Gateway = start_gateway(spare_processes=1, max_processes=3)
    baseline = dict.fromkeys(in_memory(gateway), 0)
    async with gateway.client() as client:
        for i in range(6):
            run = await client.post("/v1/runs", json={"prompt": f"@reply run {i}"})
            assert run.json()["status"] == "completed"
        for i in range(3):
            chat = await client.post("/v1/chat/completions", json={
                "model": "sonnet", "messages": [{"role": "user", "content": f"@reply {i}"}]})
            assert chat.status_code == 200
        for i in range(2):
            named = await client.post(
                "/v1/chat/completions", headers={"X-Session-Id": f"chat-{i}"},
                json={"model": "sonnet", "messages": [{"role": "user", "content": "@reply hi"}]})
            await client.delete(f"/v1/sessions/{named.headers['x-gateway-session-id']}")
        for _ in range(2):
            session_id = await new_session(client)
            done = await client.post(f"/v1/sessions/{session_id}/messages",
                                     json={"prompt": "@reply bye"})
            assert done.json()["status"] == "completed"
            assert (await client.delete(f"/v1/sessions/{session_id}")).status_code == 204
        # Every run, chat and session above is over; only the spare process may remain.
        await wait_until(lambda: in_memory(gateway) == baseline, within=30)
    assert gateway.app.state.sessions.supervisor.spares.ready("default") <= 1
