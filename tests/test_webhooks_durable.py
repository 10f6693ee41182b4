"""Webhook deliveries survive a gateway that is killed: real gateway processes, the real
CLI and the scripted model, a real receiver."""

from __future__ import annotations

import signal
import subprocess
import threading
from pathlib import Path

import httpx
import pytest

from claude_gateway.mock_model import MockModelServer
from tests.helpers.api import new_session
from tests.helpers.gateway import free_port, wait_healthy
from tests.helpers.gateway_process import start_gateway_process
from tests.helpers.webhooks import Receiver

pytestmark = [pytest.mark.cli, pytest.mark.anyio]


async def test_no_delivery_is_lost_when_the_gateway_is_killed_before_it_lands(
    tmp_path: Path, mock_model: MockModelServer
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    settings = {"webhook_allow_private": "true", "webhook_timeout_seconds": "2",
                "webhook_retry_schedule": "[0.2, 0.5]"}
    processes: list[subprocess.Popen[bytes]] = []
    with Receiver() as receiver:
        receiver.holds["ci"] = threading.Event()  # the first attempt never gets its answer
        try:
            processes.append(start_gateway_process(tmp_path, mock_model.url, port, **settings))
            await wait_healthy(url)
            async with httpx.AsyncClient(base_url=url, timeout=60) as client:
                hook = (await client.post("/v1/webhooks", json={
                    "url": receiver.url("ci"), "events": ["turn.completed"]})).json()
                session_id = await new_session(client)
                answer = await client.post(f"/v1/sessions/{session_id}/messages",
                                           json={"prompt": "Build it.\n@reply built"})
                assert answer.json()["result"] == "built"
            first = await receiver.next()
            processes[0].send_signal(signal.SIGKILL)
            processes[0].wait(timeout=30)
            receiver.holds.pop("ci").set()
            processes.append(start_gateway_process(tmp_path, mock_model.url, port,
                                                   **settings))
            await wait_healthy(url)
            again = await receiver.next()
        finally:
            for process in processes:
                if process.poll() is None:
                    process.send_signal(signal.SIGTERM)
                    process.wait(timeout=30)
    assert again.headers["webhook-id"] == first.headers["webhook-id"]
    body = again.verified(hook["secret"])
    assert body["type"] == "turn.completed" and body["data"]["result"] == "built"
    assert body["turnId"] == answer.json()["turnId"]
    assert body["attempt"] == 2 and first.json["attempt"] == 1
