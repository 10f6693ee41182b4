"""Finding the ``claude`` binary and asking it for its version."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from pathlib import Path

import claude_agent_sdk

from claude_gateway.errors import CliNotFoundError

FIX_HINT = (
    "Reinstall the gateway so that claude-agent-sdk brings its bundled CLI "
    "(pip install --force-reinstall claude-agent-sdk), or set CLAUDE_GATEWAY_CLI_PATH "
    "to a `claude` binary."
)


def bundled_cli_path() -> Path:
    """Where the claude-agent-sdk wheel keeps its copy of the CLI."""
    return Path(claude_agent_sdk.__file__).parent / "_bundled" / "claude"


def _runnable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def find_cli(configured: Path | None = None) -> Path:
    """The CLI to run: the configured path, else the bundled binary, else ``claude`` on PATH.

    Raises :class:`CliNotFoundError` saying what is missing and how to fix it.
    """
    if configured is not None:
        if _runnable(configured):
            return configured
        state = "is not executable" if configured.exists() else "does not exist"
        raise CliNotFoundError(
            f"CLAUDE_GATEWAY_CLI_PATH={configured} {state}. Point it at the `claude` binary, "
            "or unset it to use the one bundled with claude-agent-sdk.",
            details={"path": str(configured)},
        )
    bundled = bundled_cli_path()
    if _runnable(bundled):
        return bundled
    on_path = shutil.which("claude")
    if on_path:
        return Path(on_path)
    raise CliNotFoundError(
        f"The Claude Code CLI was not found: {bundled} is missing and there is no `claude` "
        f"on PATH. {FIX_HINT}",
        details={"path": str(bundled)},
    )


def cli_version(path: Path, timeout: float = 30.0) -> str:
    """The version the binary reports, e.g. ``2.1.330 (Claude Code)``."""
    try:
        done = subprocess.run(
            [str(path), "--version"], capture_output=True, text=True, timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise CliNotFoundError(f"{path} could not be run: {exc}. {FIX_HINT}") from exc
    if done.returncode != 0:
        raise CliNotFoundError(
            f"{path} --version exited with {done.returncode}: {done.stderr.strip()[:500]}"
        )
    return done.stdout.strip()


SETPRIV = "setpriv"


def die_with_parent_launcher(cli: Path, directory: Path) -> Path:
    """A launcher that runs ``cli`` so that it is killed when the gateway dies.

    A CLI busy with a turn does not notice that its parent is gone (its stdin closes,
    but it only reads stdin between turns), so a gateway that is SIGKILLed would leave it
    running. The launcher asks the kernel for a parent-death signal (``setpriv
    --pdeathsig KILL``, util-linux) and then becomes the CLI, keeping its pid. Without
    setpriv (not Linux) the CLI is run directly, and leftovers are reaped at the next start.
    """
    setpriv = shutil.which(SETPRIV)
    if setpriv is None:
        return cli
    directory.mkdir(parents=True, exist_ok=True)
    launcher = directory / "claude"
    script = ("#!/bin/sh\n"
              "# Written by claude-gateway: the CLI is killed when the gateway dies.\n"
              f"exec {shlex.quote(setpriv)} --pdeathsig KILL -- {shlex.quote(str(cli))} \"$@\"\n")
    if not launcher.exists() or launcher.read_text() != script:
        temporary = directory / f".claude.{os.getpid()}"
        temporary.write_text(script)
        temporary.chmod(0o755)
        os.replace(temporary, launcher)
    return launcher
