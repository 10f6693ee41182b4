"""A gateway in a thread for tests, and the settings and checks around it."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from pathlib import Path

import httpx

from claude_gateway.mock_model import MockModelServer
from claude_gateway.settings import Settings


def make_settings(tmp_path: Path, **overrides: object) -> Settings:
    """Settings confined to ``tmp_path`` and blind to any ``.env`` in the working dir."""
    values: dict[str, object] = {
        "data_dir": tmp_path / "data",
        "workspace_root": tmp_path / "workspaces",
        "cli_max_retries": 1,
        # A test that leaves a turn running stops at once; a drain test asks for one.
        "drain_timeout_seconds": 0,
        "log_format": "text",
        # Starlette's TestClient calls itself "testserver".
        "allowed_hosts": ["127.0.0.1", "localhost", "testserver"],
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


class Gateway:
    """A gateway serving on a loopback port in a thread, with an HTTP client helper."""

    def __init__(self, settings: Settings, mock: MockModelServer) -> None:
        from claude_gateway.app import create_app
        from claude_gateway.server_thread import ServerThread

        self.settings = settings
        self.mock = mock
        self.app = create_app(settings)
        self.server = ServerThread(self.app, lifespan="on", name="gateway")

    @property
    def url(self) -> str:
        return self.server.url

    def start(self) -> Gateway:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()

    def client(self, **kwargs: object) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, timeout=60, **kwargs)  # type: ignore[arg-type]


def processes_in(directory: Path) -> list[int]:
    """Pids of live processes whose working directory is inside ``directory``."""
    found = []
    root = directory.resolve()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cwd = (entry / "cwd").resolve(strict=True)
            state = (entry / "stat").read_text().split(") ", 1)[1][:1]
        except (OSError, IndexError):
            continue
        if state != "Z" and (cwd == root or root in cwd.parents):
            found.append(int(entry.name))
    return found


async def wait_until(predicate: Callable[[], object], within: float = 30,
                     interval: float = 0.05) -> None:
    """Poll a condition outside our control (a process's life) until it holds, or fail."""
    import anyio

    with anyio.fail_after(within):
        while True:
            result = predicate()
            if hasattr(result, "__await__"):
                result = await result  # type: ignore[misc]
            if result:
                return
            await anyio.sleep(interval)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pid_alive(pid: int) -> bool:
    """Whether a process still runs (a zombie does not count)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][:1]
    except (OSError, IndexError):
        return False
    return state != "Z"


async def wait_healthy(url: str) -> None:
    """Until a gateway started as a process answers its health check."""
    import anyio

    async with httpx.AsyncClient() as client:
        with anyio.fail_after(60):
            while True:
                try:
                    if (await client.get(f"{url}/health")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await anyio.sleep(0.1)
