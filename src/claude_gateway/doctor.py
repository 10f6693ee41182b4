"""``claude-gateway doctor``: what the gateway would run with, and whether it would work."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import httpx
from claude_agent_sdk import __version__ as sdk_version

from claude_gateway.errors import CliNotFoundError
from claude_gateway.runtime.cli_binary import cli_version, find_cli
from claude_gateway.settings import Settings

DEFAULT_UPSTREAM = "https://api.anthropic.com"


@dataclass(frozen=True)
class Check:
    """One line of the report."""

    name: str
    ok: bool
    detail: str


def check_cli(settings: Settings) -> Check:
    try:
        path = find_cli(settings.cli_path)
        return Check("CLI", True, f"{path} ({cli_version(path)})")
    except CliNotFoundError as exc:
        return Check("CLI", False, exc.message)


def credential_source(settings: Settings, environ: dict[str, str]) -> str | None:
    """Where the CLI would take its credentials from, or None."""
    if settings.mock_model:
        return "the scripted mock model (--mock-model): no credentials needed"
    if settings.upstream_api_key is not None:
        return "CLAUDE_GATEWAY_UPSTREAM_API_KEY"
    if settings.upstream_auth_token is not None:
        return "CLAUDE_GATEWAY_UPSTREAM_AUTH_TOKEN"
    if settings.upstream_oauth_token is not None:
        return "CLAUDE_GATEWAY_UPSTREAM_OAUTH_TOKEN"
    for name in ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN"):
        if environ.get(name):
            return f"{name} (environment)"
    for name in ("CLAUDE_CODE_USE_BEDROCK", "CLAUDE_CODE_USE_VERTEX"):
        if environ.get(name):
            return f"{name} (cloud provider credentials)"
    if (settings.cli_config_dir / ".credentials.json").is_file():
        return f"{settings.cli_config_dir / '.credentials.json'} (claude login)"
    return None


def user_login(home: Path) -> Path | None:
    """The Claude Code login of the user running the gateway (``claude login``), if any."""
    credentials = home / ".claude" / ".credentials.json"
    if credentials.is_file():
        return credentials
    config = home / ".claude.json"  # where the token lives in a keychain, the account is here
    try:
        if config.is_file() and "oauthAccount" in json.loads(config.read_text()):
            return config
    except (OSError, ValueError):
        pass
    return None


def check_credentials(settings: Settings, environ: dict[str, str],
                      home: Path | None = None) -> Check:
    source = credential_source(settings, environ)
    if source is not None:
        return Check("Credentials", True, f"from {source}")
    home = home or Path.home()
    login = user_login(home)
    if login is not None:
        return Check(
            "Credentials", False,
            f"none the gateway's CLIs would use. You are logged in to Claude Code as this "
            f"user ({login}), but the gateway gives its CLIs their own config dir "
            f"({settings.cli_config_dir}). To use your login, set "
            f"CLAUDE_GATEWAY_CLAUDE_CONFIG_DIR={home / '.claude'} (the gateway's sessions then "
            "show in your own Claude Code history: for one person), or run `claude "
            "setup-token` and set CLAUDE_GATEWAY_UPSTREAM_OAUTH_TOKEN. For a gateway several "
            "people use, set CLAUDE_GATEWAY_UPSTREAM_API_KEY.")
    return Check(
        "Credentials", False,
        "none found: set CLAUDE_GATEWAY_UPSTREAM_API_KEY (an Anthropic API key), "
        "CLAUDE_GATEWAY_UPSTREAM_OAUTH_TOKEN (from `claude setup-token`), or "
        "CLAUDE_GATEWAY_UPSTREAM_BASE_URL with its own key; or run `claude-gateway serve "
        "--mock-model` to try the gateway without credentials")


def _writable_dir(path: Path) -> tuple[bool, str]:
    probe = path
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        return False, f"{path}: {probe} is not a directory"
    try:
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as exc:
        return False, f"{path}: not writable ({exc.strerror})"
    return True, str(path) if path.exists() else f"{path} (will be created)"


def check_upstream(settings: Settings, environ: dict[str, str], timeout: float = 5.0) -> Check:
    if settings.mock_model:
        return Check("Upstream", True, "the scripted mock model, started on a loopback port "
                                       "by `serve --mock-model`")
    base = settings.upstream_base_url or environ.get("ANTHROPIC_BASE_URL") or DEFAULT_UPSTREAM
    headers = {"anthropic-version": "2023-06-01"}
    key = (settings.upstream_api_key.get_secret_value() if settings.upstream_api_key
           else environ.get("ANTHROPIC_API_KEY"))
    token = (settings.upstream_auth_token.get_secret_value() if settings.upstream_auth_token
             else environ.get("ANTHROPIC_AUTH_TOKEN"))
    if key:
        headers["x-api-key"] = key
    if token:
        headers["authorization"] = f"Bearer {token}"
    try:
        response = httpx.get(f"{base.rstrip('/')}/v1/models", headers=headers, timeout=timeout)
    except httpx.HTTPError as exc:
        return Check("Upstream", False, f"{base} does not answer: {exc.__class__.__name__}: {exc}")
    if response.status_code in (401, 403):
        return Check("Upstream", False,
                     f"{base} answers but refused the credentials (HTTP {response.status_code})")
    return Check("Upstream", True, f"{base} answers (HTTP {response.status_code})")


def stored_webhooks(settings: Settings) -> list[tuple[str, str, str]] | None:
    """(id, owner, url) of every enabled endpoint in the database, read without
    migrating it; None if there is no database (or no webhooks table) yet."""
    from sqlalchemy import create_engine, inspect, select

    from claude_gateway.storage import schema
    from claude_gateway.storage.sql.engine import database_url

    url = database_url(settings.database_url)
    if url.get_backend_name() == "sqlite" and not Path(url.database or "").exists():
        return None
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            if not inspect(conn).has_table("webhooks"):
                return None
            table = schema.webhooks
            rows = conn.execute(select(table.c.id, table.c.owner, table.c.url)
                                .where(table.c.enabled.is_(True))).all()
            return [(r[0], r[1], r[2]) for r in rows]
    finally:
        engine.dispose()


def check_webhooks(settings: Settings) -> Check:
    """Whether each enabled webhook endpoint answers, through the same guard deliveries
    take (a plain GET: any HTTP answer means it is reachable)."""
    import asyncio

    from claude_gateway.services.webhooks.targets import guarded_client

    try:
        hooks = stored_webhooks(settings)
    except Exception as exc:  # the database check is not this one's job
        return Check("Webhooks", True, f"not checked: {exc.__class__.__name__}")
    if not hooks:
        return Check("Webhooks", True, "no endpoints")

    async def probe() -> list[str]:
        problems = []
        async with guarded_client(allow_private=settings.webhook_allow_private,
                                  timeout=min(5.0, settings.webhook_timeout_seconds),
                                  max_connections=8) as client:
            for hook_id, owner, url in hooks:
                try:
                    await client.get(url)
                except httpx.HTTPError as exc:
                    problems.append(f"{hook_id} of {owner or '(no key)'} ({url}): "
                                    f"{str(exc) or exc.__class__.__name__}")
        return problems

    problems = asyncio.run(probe())
    if problems:
        return Check("Webhooks", False, f"{len(problems)} of {len(hooks)} endpoints do not "
                     "answer: " + "; ".join(problems))
    return Check("Webhooks", True, f"{len(hooks)} endpoints answer")


def run_checks(settings: Settings, environ: dict[str, str] | None = None,
               check_network: bool = True) -> list[Check]:
    environ = dict(os.environ if environ is None else environ)
    data_ok, data_detail = _writable_dir(settings.data_dir)
    ws_ok, ws_detail = _writable_dir(settings.workspace_root)
    checks = [
        check_cli(settings),
        Check("SDK", True, f"claude-agent-sdk {sdk_version}"),
        check_credentials(settings, environ),
        Check("Data dir", data_ok, data_detail),
        Check("Workspace root", ws_ok, ws_detail),
        Check("Database", True, settings.database_url),
    ]
    if settings.deprecations():
        checks.append(Check("Settings", True, "; ".join(settings.deprecations())))
    if check_network:
        checks.append(check_upstream(settings, environ))
        checks.append(check_webhooks(settings))
    return checks
