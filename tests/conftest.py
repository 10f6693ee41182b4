"""Fixtures shared by the whole suite.

Nothing a test starts may use the developer's credentials or ``~/.claude``: the
inherited ``ANTHROPIC_*`` / ``CLAUDE_*`` variables are removed and ``HOME`` points at a
throw-away directory before any test runs (in every xdist worker).
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from claude_gateway.mock_model import MockModel, MockModelServer
from claude_gateway.runtime.environment import cli_environment
from claude_gateway.settings import Settings
from tests.helpers.gateway import Gateway, make_settings, processes_in


def _isolate_environment() -> None:
    for key in list(os.environ):
        if key.startswith(("ANTHROPIC_", "CLAUDE_")):
            del os.environ[key]
    home = tempfile.mkdtemp(prefix="claude-gateway-test-home-")
    atexit.register(shutil.rmtree, home, ignore_errors=True)
    os.environ["HOME"] = home


_isolate_environment()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def mock_model() -> Iterator[MockModelServer]:
    """A strict scripted model on a loopback port; fails the test on unscripted requests."""
    server = MockModelServer(MockModel(strict=True)).start()
    try:
        yield server
    finally:
        server.stop()
    server.model.check()


@pytest.fixture
def settings(tmp_path: Path, mock_model: MockModelServer) -> Settings:
    """Gateway settings whose CLI processes talk to the scripted model."""
    return make_settings(tmp_path, upstream_base_url=mock_model.url,
                         upstream_api_key="test-key")


@pytest.fixture
def cli_env(settings: Settings) -> dict[str, str]:
    """The environment the gateway gives a CLI process, for tests that drive the SDK directly."""
    settings.cli_config_dir.mkdir(parents=True, exist_ok=True)
    return cli_environment(settings)


# -- a running gateway -----------------------------------------------------------------

@pytest.fixture
def start_gateway(tmp_path: Path, mock_model: MockModelServer
                  ) -> Iterator[Callable[..., Gateway]]:
    """Start gateways on ``tmp_path`` (several in a row share the data dir, like restarts).

    At teardown every gateway is stopped and no CLI process may be left in its workspaces.
    """
    started: list[Gateway] = []

    def start(**overrides: object) -> Gateway:
        values: dict[str, object] = {
            "upstream_base_url": mock_model.url,
            "upstream_api_key": "test-key",
            "reaper_interval_seconds": 0.2,
            "sse_ping_seconds": 1,
            "max_processes": 4,
            "spare_processes": 0,  # a test that wants spares asks for them
        }
        values.update(overrides)
        gateway = Gateway(make_settings(tmp_path, **values), mock_model).start()
        started.append(gateway)
        return gateway

    yield start
    for gateway in started:
        gateway.stop()
    deadline = time.monotonic() + 10
    while (leaked := processes_in(tmp_path / "workspaces")) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not leaked, f"CLI processes left running: {leaked}"
