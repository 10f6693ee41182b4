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
from collections.abc import Iterator
from pathlib import Path

import pytest

from claude_gateway.runtime.environment import cli_environment
from claude_gateway.settings import Settings
from claude_gateway.testing.mock_model import MockModel, MockModelServer


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


def make_settings(tmp_path: Path, **overrides: object) -> Settings:
    """Settings confined to ``tmp_path`` and blind to any ``.env`` in the working dir."""
    values: dict[str, object] = {
        "data_dir": tmp_path / "data",
        "workspace_root": tmp_path / "workspaces",
        "cli_max_retries": 1,
        "log_format": "text",
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


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
