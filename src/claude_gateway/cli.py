"""The ``claude-gateway`` command."""

from __future__ import annotations

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
) -> None:
    """Start the gateway. Every option overrides its CLAUDE_GATEWAY_* setting."""
    from claude_gateway.app import create_app
    from claude_gateway.logs import configure_logging
    from claude_gateway.runtime.cli_binary import find_cli

    settings = _settings(
        host=host, port=port, workspace_root=workspace_root, database_url=database_url,
        data_dir=data_dir, mock_model=mock_model, log_level=log_level,
    )
    try:
        find_cli(settings.cli_path)
    except CliNotFoundError as exc:
        raise _fail(exc.message, 1) from None
    mock_server = None
    if settings.mock_model:
        from claude_gateway.testing.mock_model import MockModel, MockModelServer

        mock_server = MockModelServer(MockModel()).start()
        settings = settings.model_copy(update={
            "upstream_base_url": mock_server.url,
            "upstream_api_key": SecretStr("mock-model"),
            "upstream_auth_token": None,
        })
        typer.echo(f"mock model listening on {mock_server.url}", err=True)
    secrets = [s.get_secret_value() for s in (settings.upstream_api_key,
                                               settings.upstream_auth_token) if s]
    configure_logging(settings.log_level, settings.log_format, secrets)
    try:
        uvicorn.run(
            create_app(settings), host=settings.host, port=settings.port,
            log_config=None, access_log=False, server_header=False,
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
    from claude_gateway.testing.mock_model import serve_forever

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
) -> None:
    """Check the CLI, credentials, directories and the upstream; exit 1 on a problem."""
    from claude_gateway.doctor import run_checks

    checks = run_checks(_settings(), check_network=not offline)
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


def main() -> None:
    app(prog_name="claude-gateway")


if __name__ == "__main__":  # pragma: no cover
    main()
