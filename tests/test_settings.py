"""Settings: defaults, sources, and errors that name the setting to fix."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from claude_gateway.errors import SettingsError
from claude_gateway.runtime.environment import cli_environment
from claude_gateway.settings import Settings, load_settings, settings_reference

README = Path(__file__).parents[1] / "README.md"


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # load_settings reads ./.env; keep the repository's own out of these tests.
    monkeypatch.chdir(tmp_path)


def test_safe_defaults() -> None:
    settings = load_settings()
    assert settings.host == "127.0.0.1"
    assert settings.port == 8080
    assert settings.log_format == "json"
    assert settings.data_dir.is_absolute()
    assert settings.database_url == f"sqlite:///{settings.data_dir / 'gateway.db'}"
    assert settings.cli_config_dir == settings.data_dir / "claude"
    assert settings.workspace_root.is_absolute()


def test_environment_and_dotenv_and_overrides(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".env").write_text("CLAUDE_GATEWAY_PORT=9001\nCLAUDE_GATEWAY_LOG_LEVEL=debug\n")
    monkeypatch.setenv("CLAUDE_GATEWAY_DATA_DIR", str(tmp_path / "state"))
    settings = load_settings(host="127.0.0.2")
    assert settings.port == 9001
    assert settings.log_level == "DEBUG"
    assert settings.data_dir == tmp_path / "state"
    assert settings.host == "127.0.0.2"
    assert load_settings(port=7000).port == 7000


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        ("CLAUDE_GATEWAY_LOG_FORMAT", "xml", "CLAUDE_GATEWAY_LOG_FORMAT"),
        ("CLAUDE_GATEWAY_PORT", "eighty", "CLAUDE_GATEWAY_PORT"),
        ("CLAUDE_GATEWAY_PORT", "70000", "CLAUDE_GATEWAY_PORT"),
        ("CLAUDE_GATEWAY_UPSTREAM_BASE_URL", "ftp://x", "CLAUDE_GATEWAY_UPSTREAM_BASE_URL"),
        ("CLAUDE_GATEWAY_PROT", "1", "CLAUDE_GATEWAY_PORT"),
    ],
)
def test_bad_values_name_the_setting(monkeypatch: pytest.MonkeyPatch, variable: str,
                                     value: str, named: str) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert named in caught.value.message


def test_unknown_key_in_dotenv_is_named(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("CLAUDE_GATEWAY_WORKSPACES=/x\n")
    with pytest.raises(SettingsError, match="CLAUDE_GATEWAY_WORKSPACES is not a known setting"):
        load_settings()


def test_secret_values_stay_out_of_errors_and_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings(upstream_api_key="sk-ant-secret-value")
    assert "sk-ant-secret-value" not in repr(settings)
    monkeypatch.setenv("CLAUDE_GATEWAY_UPSTREAM_BASE_URL", "sk-ant-not-a-url")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert "sk-ant-not-a-url" not in caught.value.message


def test_cli_environment_carries_upstream_settings(tmp_path: Path) -> None:
    settings = Settings(
        _env_file=None, data_dir=tmp_path, upstream_base_url="http://127.0.0.1:9/",  # type: ignore[call-arg]
        upstream_api_key="key", upstream_auth_token="token", cli_max_retries=2,
    )
    env = cli_environment(settings)
    assert env["ANTHROPIC_BASE_URL"] == "http://127.0.0.1:9"
    assert env["ANTHROPIC_API_KEY"] == "key"
    assert env["ANTHROPIC_AUTH_TOKEN"] == "token"
    assert env["CLAUDE_CODE_MAX_RETRIES"] == "2"
    assert env["CLAUDE_CONFIG_DIR"] == str(tmp_path / "claude")
    assert env["DISABLE_AUTOUPDATER"] == "1"
    bare = cli_environment(Settings(_env_file=None, data_dir=tmp_path))  # type: ignore[call-arg]
    assert "ANTHROPIC_API_KEY" not in bare and "ANTHROPIC_BASE_URL" not in bare


def test_readme_documents_every_setting() -> None:
    readme = README.read_text()
    match = re.search(r"<!-- settings:start -->\n(.*?)\n<!-- settings:end -->", readme, re.S)
    assert match, "README has no generated settings table"
    assert match.group(1).strip() == settings_reference().strip(), (
        "README settings table is stale: regenerate with scripts/update-readme"
    )


def test_a_short_key_is_refused_by_name_and_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLAUDE_GATEWAY_API_KEYS", '[{"name": "ci", "key": "0123456789"}]')
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert caught.value.message == (
        "CLAUDE_GATEWAY_API_KEYS: the key named 'ci' has 10 characters; a key needs at least "
        "16 (`claude-gateway keys create` makes one of 47)")
    assert "0123456789" not in caught.value.message


@pytest.mark.parametrize("variable", ["CLAUDE_GATEWAY_RATE_LIMIT",
                                      "CLAUDE_GATEWAY_AUTH_FAILURE_RATE_LIMIT"])
def test_a_rate_that_is_not_one_is_refused(monkeypatch: pytest.MonkeyPatch,
                                           variable: str) -> None:
    monkeypatch.setenv(variable, "lots")
    with pytest.raises(SettingsError, match=f"{variable}: must be a rate"):
        load_settings()
