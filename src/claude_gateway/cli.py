"""The ``claude-gateway`` command."""

from __future__ import annotations

import asyncio
import ipaddress
import secrets as secrets_module
from pathlib import Path
from typing import Annotated, Any

import typer
import uvicorn
from pydantic import SecretStr

from claude_gateway import __version__
from claude_gateway.errors import CliNotFoundError, SettingsError
from claude_gateway.settings import Settings, load_settings, settings_reference

app = typer.Typer(
    name="claude-gateway",
    help="Run Claude Code as a service.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(code)


def _settings(**overrides: Any) -> Settings:
    try:
        return load_settings(**overrides)
    except SettingsError as exc:
        raise _fail(f"invalid settings:\n{exc.message}") from None


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="TCP port (0: any free port).")] = None,
    workspace_root: Annotated[
        Path | None, typer.Option(help="Directory that holds every workspace.")
    ] = None,
    database_url: Annotated[str | None, typer.Option(help="SQLAlchemy async URL.")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="The gateway's state directory.")] = None,
    mock_model: Annotated[
        bool | None,
        typer.Option("--mock-model/--no-mock-model",
                     help="Answer with the scripted mock model: no credentials needed."),
    ] = None,
    log_level: Annotated[str | None, typer.Option(help="DEBUG, INFO, WARNING or ERROR.")] = None,
    insecure: Annotated[bool, typer.Option(
        "--insecure", help="Serve a non-loopback address with no API keys (anyone who can "
        "reach it can run commands on this machine).")] = False,
) -> None:
    """Start the gateway. Every option overrides its CLAUDE_GATEWAY_* setting."""
    from claude_gateway.api.http_protocol import JsonErrorHttpProtocol
    from claude_gateway.app import create_app
    from claude_gateway.logs import configure_logging
    from claude_gateway.runtime.cli_binary import find_cli
    from claude_gateway.runtime.instance_lock import DataDirInUse, InstanceLock

    settings = _settings(
        host=host, port=port, workspace_root=workspace_root, database_url=database_url,
        data_dir=data_dir, mock_model=mock_model, log_level=log_level,
    )
    try:
        find_cli(settings.cli_path)
    except CliNotFoundError as exc:
        raise _fail(exc.message, 1) from None
    try:  # say so now, before uvicorn starts (the app takes the lock for good at start-up)
        probe = InstanceLock(settings.data_dir)
        probe.acquire()
        probe.release()
    except DataDirInUse as exc:
        raise _fail(exc.message, 1) from None
    exposed = not is_loopback(settings.host)
    if exposed and not asyncio.run(_keys_exist(settings)):
        if not insecure:
            raise _fail(
                f"refusing to serve {settings.host} without API keys: anyone who can reach it "
                "could run commands on this machine. Create one with `claude-gateway keys "
                "create NAME` (or set CLAUDE_GATEWAY_API_KEYS), bind 127.0.0.1, or pass "
                "--insecure if something in front of the gateway authenticates.", 2)
        typer.secho(f"WARNING: serving {settings.host} with NO authentication (--insecure). "
                    "Anyone who can reach this port can run commands on this machine.",
                    fg=typer.colors.RED, err=True, bold=True)
    warn_without_credentials(settings)
    mock_server = None
    if settings.mock_model:
        from claude_gateway.mock_model import MockModel, MockModelServer

        # Only this gateway's CLIs can use it (a key of their own), and nobody can
        # script it or read what it was sent (no /_mock routes).
        mock_key = secrets_module.token_urlsafe(24)
        mock_server = MockModelServer(MockModel(api_key=mock_key), control=False).start()
        settings = settings.model_copy(update={
            "upstream_base_url": mock_server.url,
            "upstream_api_key": SecretStr(mock_key),
            "upstream_auth_token": None,
        })
        typer.echo(f"mock model listening on {mock_server.url}", err=True)
    secrets = [s.get_secret_value() for s in (settings.upstream_api_key,
                                               settings.upstream_auth_token,
                                               settings.upstream_oauth_token) if s]
    secrets += [k.key.get_secret_value() for k in settings.api_keys]
    configure_logging(settings.log_level, settings.log_format, secrets)
    try:
        uvicorn.run(
            create_app(settings), host=settings.host, port=settings.port,
            log_config=None, access_log=False, server_header=False,
            http=JsonErrorHttpProtocol,
        )
    finally:
        if mock_server is not None:
            mock_server.stop()


@app.command("mock-model")
def mock_model_command(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8090,
    strict: Annotated[bool, typer.Option(help="Refuse requests nothing scripted.")] = False,
) -> None:
    """Run the scripted Anthropic Messages API model on its own."""
    from claude_gateway.mock_model import serve_forever

    typer.echo(f"mock model on http://{host}:{port} (ANTHROPIC_BASE_URL)", err=True)
    serve_forever(host, port, strict=strict)


@app.command()
def version() -> None:
    """Print the versions of the gateway, the SDK and the CLI."""
    from claude_agent_sdk import __version__ as sdk_version

    from claude_gateway.runtime.cli_binary import cli_version, find_cli

    typer.echo(f"claude-gateway {__version__}")
    typer.echo(f"claude-agent-sdk {sdk_version}")
    try:
        path = find_cli(_settings().cli_path)
        typer.echo(f"claude CLI {cli_version(path)} at {path}")
    except CliNotFoundError as exc:
        typer.echo(f"claude CLI not found: {exc.message}")


@app.command()
def doctor(
    offline: Annotated[bool, typer.Option(help="Skip the upstream check.")] = False,
    mock_model: Annotated[
        bool | None,
        typer.Option("--mock-model/--no-mock-model",
                     help="Check the gateway as `serve --mock-model` would run it."),
    ] = None,
) -> None:
    """Check the CLI, credentials, directories and the upstream; exit 1 on a problem."""
    from claude_gateway.doctor import run_checks

    checks = run_checks(_settings(mock_model=mock_model), check_network=not offline)
    width = max(len(c.name) for c in checks)
    for check in checks:
        mark = " ok " if check.ok else "FAIL"
        typer.echo(f"[{mark}] {check.name.ljust(width)}  {check.detail}")
    if not all(c.ok for c in checks):
        raise typer.Exit(1)


@app.command("settings")
def settings_command(
    markdown: Annotated[bool, typer.Option(help="Print the reference table.")] = False,
) -> None:
    """Print the effective settings (secrets hidden), or the reference table."""
    if markdown:
        typer.echo(settings_reference())
        return
    for name, value in _settings().model_dump().items():
        shown = "**********" if isinstance(value, SecretStr) else value
        typer.echo(f"CLAUDE_GATEWAY_{name.upper()}={'' if shown is None else shown}")


def warn_without_credentials(settings: Settings) -> None:
    """Say at once when the CLIs will have no credentials: every turn would fail."""
    import os

    from claude_gateway.doctor import credential_source

    if credential_source(settings, dict(os.environ)) is None:
        typer.secho("WARNING: no upstream credentials found: every turn will fail with "
                    "UPSTREAM_AUTH_FAILED. Run `claude-gateway doctor` to see what to set, or "
                    "`claude-gateway serve --mock-model` to try the gateway without them.",
                    fg=typer.colors.YELLOW, err=True)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


async def _keys_exist(settings: Settings) -> bool:
    if settings.api_keys:
        return True
    from claude_gateway.storage.sql import SqlStore

    store = SqlStore(settings.database_url, pool_size=settings.database_pool_size,
                     max_overflow=settings.database_max_overflow)
    await store.start()
    try:
        return bool(await store.list_api_keys())
    finally:
        await store.close()


keys_app = typer.Typer(help="Manage API keys (stored hashed in the gateway's database).",
                       no_args_is_help=True)
app.add_typer(keys_app, name="keys")


async def _with_store(settings: Settings, work: Any) -> Any:
    from claude_gateway.storage.sql import SqlStore

    store = SqlStore(settings.database_url, pool_size=settings.database_pool_size,
                     max_overflow=settings.database_max_overflow)
    await store.start()
    try:
        return await work(store)
    finally:
        await store.close()


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Argument(help="A name for the key's holder; it also names "
                                        "their workspace directory.")],
    admin: Annotated[bool, typer.Option(help="Sees and manages everyone's resources.")] = False,
    rate_limit: Annotated[str | None, typer.Option(
        help="This key's rate limit, e.g. '60/minute;5/second'.")] = None,
) -> None:
    """Create a key and print it (once: only its hash is kept). The last line is the key."""
    from claude_gateway.errors import ApiError
    from claude_gateway.services.auth import create_key

    settings = _settings()
    try:
        key = asyncio.run(_with_store(settings, lambda store: create_key(
            store, name, admin=admin, rate_limit=rate_limit)))
    except ApiError as exc:
        raise _fail(exc.message, 1) from None
    role = "admin key" if admin else "key"
    typer.echo(f"Created {role} {name!r}. It is shown only now; store it safely.", err=True)
    typer.echo(key)


@keys_app.command("list")
def keys_list() -> None:
    """The active keys (names, prefixes, roles; never the keys)."""
    settings = _settings()
    records = asyncio.run(_with_store(settings, lambda store: store.list_api_keys()))
    for record in records:
        role = "admin" if record.admin else "user"
        typer.echo(f"{record.name}\t{record.prefix}...\t{role}\t"
                   f"{record.rate_limit or '-'}\t{record.created_at.isoformat()}")
    for configured in settings.api_keys:
        typer.echo(f"{configured.name}\t(from CLAUDE_GATEWAY_API_KEYS)\t"
                   f"{'admin' if configured.admin else 'user'}\t{configured.rate_limit or '-'}")


@keys_app.command("revoke")
def keys_revoke(name: Annotated[str, typer.Argument(help="The key's name.")]) -> None:
    """Revoke a key: requests with it are refused from now on."""
    from claude_gateway.errors import ApiError
    from claude_gateway.services.auth import revoke_key

    settings = _settings()
    try:
        asyncio.run(_with_store(settings, lambda store: revoke_key(store, name)))
    except ApiError as exc:
        raise _fail(exc.message, 1) from None
    typer.echo(f"Revoked key {name!r}.")


def main() -> None:
    app(prog_name="claude-gateway")


if __name__ == "__main__":  # pragma: no cover
    main()
