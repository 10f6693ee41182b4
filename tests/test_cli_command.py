"""The ``claude-gateway`` command: version, settings, doctor, serve."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from claude_gateway import __version__
from claude_gateway.cli import app
from claude_gateway.mock_model import MockModel, MockModelServer
from claude_gateway.settings import settings_reference
from tests.helpers.gateway import free_port

runner = CliRunner()


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CLAUDE_GATEWAY_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("CLAUDE_GATEWAY_WORKSPACE_ROOT", str(tmp_path / "ws"))
    monkeypatch.setenv("CLAUDE_GATEWAY_SPARE_PROCESSES", "0")


def test_version_names_gateway_sdk_and_cli() -> None:
    result = runner.invoke(app, ["version"])
    assert result.exit_code == 0, result.output
    assert f"claude-gateway {__version__}" in result.output
    assert "claude-agent-sdk" in result.output
    assert "(Claude Code)" in result.output


def test_settings_markdown_is_the_reference() -> None:
    result = runner.invoke(app, ["settings", "--markdown"])
    assert result.exit_code == 0
    assert result.output.strip() == settings_reference().strip()


def test_settings_hides_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLAUDE_GATEWAY_UPSTREAM_API_KEY", "sk-ant-very-secret")
    result = runner.invoke(app, ["settings"])
    assert result.exit_code == 0
    assert "CLAUDE_GATEWAY_UPSTREAM_API_KEY=**********" in result.output
    assert "very-secret" not in result.output


def test_doctor_passes_against_an_answering_upstream(monkeypatch: pytest.MonkeyPatch) -> None:
    with MockModelServer(MockModel(api_key="good-key")) as upstream:
        monkeypatch.setenv("CLAUDE_GATEWAY_UPSTREAM_BASE_URL", upstream.url)
        monkeypatch.setenv("CLAUDE_GATEWAY_UPSTREAM_API_KEY", "good-key")
        result = runner.invoke(app, ["doctor"])
    assert result.exit_code == 0, result.output
    assert "(Claude Code)" in result.output
    assert "from CLAUDE_GATEWAY_UPSTREAM_API_KEY" in result.output
    assert f"{upstream.url} answers (HTTP 200)" in result.output
    assert "good-key" not in result.output


def test_doctor_reports_refused_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    with MockModelServer(MockModel(api_key="good-key")) as upstream:
        monkeypatch.setenv("CLAUDE_GATEWAY_UPSTREAM_BASE_URL", upstream.url)
        monkeypatch.setenv("CLAUDE_GATEWAY_UPSTREAM_API_KEY", "wrong-key")
        result = runner.invoke(app, ["doctor"])
    assert result.exit_code == 1
    assert "refused the credentials (HTTP 401)" in result.output


def test_doctor_reports_missing_credentials_and_dead_upstream(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with socket.socket() as sock:  # a port that nothing listens on
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
    monkeypatch.setenv("CLAUDE_GATEWAY_UPSTREAM_BASE_URL", dead)
    result = runner.invoke(app, ["doctor"])
    assert result.exit_code == 1
    assert "[FAIL] Credentials" in result.output
    assert "--mock-model" in result.output
    assert f"{dead} does not answer" in result.output


def test_doctor_and_serve_say_how_to_fix_a_missing_cli(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLAUDE_GATEWAY_CLI_PATH", str(tmp_path / "missing" / "claude"))
    doctor = runner.invoke(app, ["doctor", "--offline"])
    assert doctor.exit_code == 1
    assert "[FAIL] CLI" in doctor.output and "does not exist" in doctor.output
    serve = runner.invoke(app, ["serve"])
    assert serve.exit_code == 1
    assert "CLAUDE_GATEWAY_CLI_PATH" in serve.output and "does not exist" in serve.output


def test_serve_refuses_bad_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLAUDE_GATEWAY_LOG_FORMAT", "xml")
    result = runner.invoke(app, ["serve"])
    assert result.exit_code == 2
    assert "CLAUDE_GATEWAY_LOG_FORMAT" in result.output


def test_python_m_serve_with_mock_model_answers_health(tmp_path: Path) -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "claude_gateway", "serve", "--mock-model", "--port", str(port)],
        env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    mock_url = ""
    try:
        assert process.stdout is not None
        for line in process.stdout:  # printed before the gateway starts
            if "mock model listening on " in line:
                mock_url = line.split("listening on ", 1)[1].strip()
                break
        # Only the gateway's own CLIs may use the mock model, and nobody can script it.
        assert httpx.get(f"{mock_url}/_mock/state", timeout=5).status_code == 404
        assert httpx.post(f"{mock_url}/v1/messages", json={}, timeout=5).status_code == 401
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        assert response.json() == {"status": "ok", "version": __version__}
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    # uvicorn shuts down gracefully, then re-raises SIGTERM so the exit status says why.
    assert process.returncode in (0, -signal.SIGTERM), output
    assert "gateway stopped" in output
    assert mock_url.startswith("http://127.0.0.1:")
    assert (tmp_path / "data" / "claude").is_dir()


def test_doctor_checks_that_webhook_endpoints_answer(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio
    from datetime import UTC, datetime

    from claude_gateway.storage.records import WebhookRecord
    from claude_gateway.storage.sql import SqlStore
    from tests.helpers.webhooks import Receiver

    with socket.socket() as sock:  # a port that nothing listens on
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}/hook"
    with Receiver() as receiver, MockModelServer(MockModel(api_key="good-key")) as upstream:
        async def add_hooks() -> None:
            store = SqlStore(f"sqlite:///{tmp_path / 'data' / 'gateway.db'}")
            await store.start()
            moment = datetime.now(UTC)
            for hook_id, url in (("wh_up", receiver.url("up")), ("wh_down", dead)):
                await store.create_webhook(WebhookRecord(
                    id=hook_id, owner="alice", url=url, events=["*"], secret="whsec_eA==",
                    created_at=moment, updated_at=moment))
            await store.close()

        asyncio.run(add_hooks())
        monkeypatch.setenv("CLAUDE_GATEWAY_DATA_DIR", str(tmp_path / "data"))
        monkeypatch.setenv("CLAUDE_GATEWAY_WEBHOOK_ALLOW_PRIVATE", "true")
        monkeypatch.setenv("CLAUDE_GATEWAY_UPSTREAM_BASE_URL", upstream.url)
        monkeypatch.setenv("CLAUDE_GATEWAY_UPSTREAM_API_KEY", "good-key")
        result = runner.invoke(app, ["doctor"])
        monkeypatch.setenv("CLAUDE_GATEWAY_WEBHOOK_ALLOW_PRIVATE", "false")
        guarded = runner.invoke(app, ["doctor"])
    assert result.exit_code == 1, result.output
    assert "[FAIL] Webhooks" in result.output
    assert "1 of 2 endpoints do not answer: wh_down of alice" in result.output
    assert receiver.count("up") == 0  # a GET, never a delivery
    assert "not a public address" in guarded.output  # the guard holds here too
