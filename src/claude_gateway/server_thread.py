"""Run an ASGI app with uvicorn on a loopback port in a background thread."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any, Literal

import uvicorn

from claude_gateway.api.http_protocol import JsonErrorHttpProtocol


class ServerThread:
    """A uvicorn server in a daemon thread; ``port=0`` picks a free port."""

    def __init__(
        self, app: Any, host: str = "127.0.0.1", port: int = 0, *,
        lifespan: Literal["auto", "on", "off"] = "auto", name: str = "asgi-server",
    ) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.lifespan = lifespan
        self.name = name
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 30.0) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            # No log settings: uvicorn would otherwise reconfigure the process-wide
            # "uvicorn.*" loggers that another server in the same process uses.
            self.app, log_config=None, log_level=None, access_log=False,
            lifespan=self.lifespan, timeout_graceful_shutdown=2, ws_ping_interval=None,
            http=JsonErrorHttpProtocol,
        )
        server = uvicorn.Server(config)
        self._server = server
        self.failure: BaseException | None = None

        def run() -> None:
            try:
                server.run(sockets=[sock])
            except BaseException as exc:  # uvicorn exits with SystemExit when start-up fails
                self.failure = exc

        self._thread = threading.Thread(target=run, name=self.name, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not self._thread.is_alive():
                sock.close()
                raise RuntimeError(f"{self.name} exited during start-up ({self.failure!r})")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not start within {timeout} s")
            time.sleep(0.01)

    def stop(self, timeout: float = 30.0) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=timeout)
        self._server = None
        self._thread = None
