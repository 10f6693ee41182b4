"""A first run as a new user: where the credentials come from, and what is said when
there are none."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from typer.testing import CliRunner

from claude_gateway.cli import app
from claude_gateway.mock_model import MockModel, MockModelServer
from claude_gateway.runtime.environment import cli_environment
from tests.helpers.api import new_session
from tests.helpers.gateway import Gateway, free_port, make_settings

runner = CliRunner()


@pytest.fixture
def new_user(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A user with no credentials anywhere, in an empty home."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CLAUDE_GATEWAY_DATA_DIR", str(tmp_path / "data"))
    return home


def test_doctor_finds_the_users_own_login_and_says_what_to_set(new_user: Path) -> None:
    credentials = new_user / ".claude" / ".credentials.json"
    credentials.parent.mkdir()
    credentials.write_text(json.dumps({"claudeAiOauth": {"accessToken": "sk-ant-oat-x"}}))
    result = runner.invoke(app, ["doctor", "--offline"])
    assert result.exit_code == 1
    assert "[FAIL] Credentials" in result.output
    assert str(credentials) in result.output
    assert f"CLAUDE_GATEWAY_CLAUDE_CONFIG_DIR={new_user / '.claude'}" in result.output
    assert "claude setup-token" in result.output and "sk-ant-oat-x" not in result.output
    # With that one setting the CLIs read the user's login.
    os.environ["CLAUDE_GATEWAY_CLAUDE_CONFIG_DIR"] = str(new_user / ".claude")
    try:
        fixed = runner.invoke(app, ["doctor", "--offline"])
    finally:
        del os.environ["CLAUDE_GATEWAY_CLAUDE_CONFIG_DIR"]
    assert fixed.exit_code == 0, fixed.output
    assert f"from {credentials} (claude login)" in fixed.output


def test_each_kind_of_credential_reaches_the_cli(tmp_path: Path) -> None:
    for setting, variable in [("upstream_api_key", "ANTHROPIC_API_KEY"),
                              ("upstream_auth_token", "ANTHROPIC_AUTH_TOKEN"),
                              ("upstream_oauth_token", "CLAUDE_CODE_OAUTH_TOKEN")]:
        env = cli_environment(make_settings(tmp_path, **{setting: "secret-value"}))
        assert env[variable] == "secret-value"
    config = tmp_path / "login"
    assert cli_environment(make_settings(tmp_path, claude_config_dir=config))[
        "CLAUDE_CONFIG_DIR"] == str(config)


def test_doctor_understands_the_mock_model(new_user: Path) -> None:
    result = runner.invoke(app, ["doctor", "--mock-model"])
    assert result.exit_code == 0, result.output
    assert "mock model" in result.output
    assert "[FAIL]" not in result.output


def test_serve_warns_at_once_without_credentials(new_user: Path, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLAUDE_GATEWAY_")}
    env.update({"HOME": str(new_user), "CLAUDE_GATEWAY_DATA_DIR": str(tmp_path / "data"),
                "CLAUDE_GATEWAY_SPARE_PROCESSES": "0"})
    process = subprocess.Popen(
        [sys.executable, "-m", "claude_gateway", "serve", "--port", str(free_port())],
        env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stderr is not None
        first = process.stderr.readline()  # the warning comes before anything else
    finally:
        process.terminate()
        process.wait(timeout=30)
        if process.stderr is not None:
            process.stderr.close()
    assert "no upstream credentials found" in first
    assert "claude-gateway doctor" in first and "UPSTREAM_AUTH_FAILED" in first


@pytest.fixture
def refusing_upstream() -> Iterator[MockModelServer]:
    with MockModelServer(MockModel(strict=False, api_key="the-right-key")) as server:
        yield server


@pytest.mark.cli
@pytest.mark.anyio
async def test_a_turn_without_working_credentials_says_what_to_do(
    tmp_path: Path, refusing_upstream: MockModelServer
) -> None:
    settings = make_settings(tmp_path, upstream_base_url=refusing_upstream.url,
                             upstream_api_key="a-wrong-key", spare_processes=0)
    gateway = Gateway(settings, refusing_upstream).start()
    try:
        async with gateway.client() as client:
            session_id = await new_session(client)
            failed = (await client.post(f"/v1/sessions/{session_id}/messages",
                                        json={"prompt": "hello"})).json()
            assert failed["status"] == "failed"
            error = failed["error"]
            assert error["code"] == "UPSTREAM_AUTH_FAILED"
            assert "CLAUDE_GATEWAY_UPSTREAM_API_KEY" in error["message"]
            assert "claude-gateway doctor" in error["message"]
            assert "Invalid API key" in error["detail"]  # the CLI's own words, as detail
        chat = openai.AsyncOpenAI(base_url=f"{gateway.url}/v1", api_key="unused",
                                  max_retries=0)
        for stream in (False, True):
            # Streamed or not, the status line says so: the stream waits for the agent.
            with pytest.raises(openai.AuthenticationError) as refused:
                await chat.chat.completions.create(
                    model="sonnet", stream=stream,
                    messages=[{"role": "user", "content": "hello"}])
            assert refused.value.status_code == 401
            assert refused.value.code == "UPSTREAM_AUTH_FAILED"
        await chat.close()
    finally:
        gateway.stop()
