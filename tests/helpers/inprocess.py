"""A gateway in the test's own event loop, over ``httpx.ASGITransport``, with in-memory
fake agents instead of CLI processes: for HTTP behaviour that needs no real server and
no real CLI (ASGITransport buffers a response, so not for streams)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

from claude_gateway.app import create_app
from claude_gateway.testing.fake_agent import FakeAgents
from tests.helpers.gateway import make_settings


@dataclass
class InProcess:
    client: httpx.AsyncClient
    agents: FakeAgents
    app: FastAPI


@asynccontextmanager
async def in_process_gateway(tmp_path: Path, *, app_options: dict[str, Any] | None = None,
                             **overrides: object) -> AsyncIterator[InProcess]:
    """``app_options``: more keyword arguments of ``create_app``."""
    values: dict[str, object] = {"spare_processes": 0, "reaper_interval_seconds": 3600}
    values.update(overrides)
    agents = FakeAgents()
    app = create_app(make_settings(tmp_path, **values), agent_factory=agents,
                     **(app_options or {}))
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as client:
        yield InProcess(client, agents, app)
    assert agents.live() == [], "a fake process outlived the gateway"
