"""``GET /health/ready``: 503 with the reasons while the database does not answer, its
schema is not this version's, or the node is draining; ``/health`` stays a liveness
check throughout. Both need no key."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import httpx
import psycopg
import pytest

from claude_gateway.mock_model import MockModelServer
from claude_gateway.storage.migrations import head_revision
from tests.helpers.gateway import free_port, wait_healthy, wait_until
from tests.helpers.gateway_process import start_gateway_process
from tests.helpers.inprocess import in_process_gateway
from tests.helpers.postgres import ADMIN_URL, scratch_database

pytestmark = pytest.mark.anyio
KEY = "ready-key-0123456789abcdef"


async def test_ready_follows_the_database_and_its_schema(
    tmp_path: Path, mock_model: MockModelServer
) -> None:
    with scratch_database("ready") as url:
        port = free_port()
        gateway = start_gateway_process(tmp_path, mock_model.url, port, database_url=url,
                                        api_keys=f'[{{"name": "k", "key": "{KEY}"}}]')
        try:
            base = f"http://127.0.0.1:{port}"
            await wait_healthy(base)
            async with httpx.AsyncClient(base_url=base) as client:
                ready = await client.get("/health/ready")  # no key needed
                assert ready.status_code == 200
                assert ready.json() == {"status": "ready", "node": ready.json()["node"],
                                        "reasons": []}
                with psycopg.connect(url, autocommit=True) as db:
                    db.execute("UPDATE alembic_version SET version_num = '0006'")
                    behind = await client.get("/health/ready")
                    assert behind.status_code == 503
                    assert "schema is at 0006" in behind.json()["reasons"][0]
                    db.execute("UPDATE alembic_version SET version_num = %s",
                               [head_revision()])
                assert (await client.get("/health/ready")).status_code == 200
                name = url.rsplit("/", 1)[1]
                with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
                    admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
                gone = await client.get("/health/ready")
                assert gone.status_code == 503
                assert "does not answer" in gone.json()["reasons"][0]
                assert (await client.get("/health")).status_code == 200  # still alive
        finally:
            gateway.send_signal(signal.SIGTERM)
            gateway.wait(timeout=30)


async def test_a_draining_node_is_not_ready_but_alive(tmp_path: Path) -> None:
    async with in_process_gateway(tmp_path, drain_timeout_seconds=60) as gateway:
        session_id = (await gateway.client.post("/v1/sessions", json={})).json()["id"]
        running = await gateway.client.post(f"/v1/sessions/{session_id}/messages",
                                            json={"prompt": "@hold\n@reply done",
                                                  "timeoutMs": 0})
        assert running.status_code == 202
        assert (await gateway.client.get("/health/ready")).status_code == 200
        manager = gateway.app.state.sessions
        closing = asyncio.create_task(manager.close())  # what SIGTERM starts
        await wait_until(lambda: manager.draining)
        ready = await gateway.client.get("/health/ready")
        assert ready.status_code == 503
        assert ready.json()["reasons"] == ["the node is draining (stopping)"]
        assert (await gateway.client.get("/health")).status_code == 200
        for agent in gateway.agents.live():
            agent.release()
        await closing
