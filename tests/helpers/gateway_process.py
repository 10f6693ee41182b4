"""Start ``claude-gateway serve`` as a separate process (for crash tests and benchmarks)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import IO


def start_gateway_process(directory: Path, upstream_url: str, port: int, *,
                          stderr: int | IO[bytes] = subprocess.DEVNULL,
                          own_group: bool = False, **settings: str
                          ) -> subprocess.Popen[bytes]:
    """A gateway on 127.0.0.1:``port`` keeping its state under ``directory``, its CLIs
    pointed at ``upstream_url``; ``settings`` are more CLAUDE_GATEWAY_* values, and its
    log goes to ``stderr``. With ``own_group`` it leads a process group of its own
    (its CLIs included), so a test can kill it and its CLIs at once."""
    env = dict(os.environ)
    env.update({
        "CLAUDE_GATEWAY_DATA_DIR": str(directory / "data"),
        "CLAUDE_GATEWAY_WORKSPACE_ROOT": str(directory / "workspaces"),
        "CLAUDE_GATEWAY_UPSTREAM_BASE_URL": upstream_url,
        "CLAUDE_GATEWAY_UPSTREAM_API_KEY": "test-key",
        "CLAUDE_GATEWAY_CLI_MAX_RETRIES": "1",
        "CLAUDE_GATEWAY_LOG_LEVEL": "WARNING",
        "CLAUDE_GATEWAY_SPARE_PROCESSES": "0",
        "CLAUDE_GATEWAY_DRAIN_TIMEOUT_SECONDS": "0",
        **{f"CLAUDE_GATEWAY_{name.upper()}": value for name, value in settings.items()},
    })
    return subprocess.Popen(
        [sys.executable, "-m", "claude_gateway", "serve", "--host", "127.0.0.1",
         "--port", str(port)],
        env=env, cwd=directory, stdout=subprocess.DEVNULL, stderr=stderr,
        start_new_session=own_group)
