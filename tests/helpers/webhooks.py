"""A real HTTP webhook receiver for tests: a uvicorn server in a thread that records
every request it gets, verifies nothing itself (tests verify with ``standardwebhooks``),
and answers each path with the statuses a test scripts."""

from __future__ import annotations

import json
import queue
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import anyio
from standardwebhooks.webhooks import Webhook
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from claude_gateway.server_thread import ServerThread


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    @property
    def json(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed

    def verified(self, secret: str) -> dict[str, Any]:
        """The body, if its signature verifies with ``secret`` (raises otherwise)."""
        payload: dict[str, Any] = Webhook(secret).verify(self.body, self.headers)
        return payload


class Receiver:
    def __init__(self) -> None:
        self.received: queue.Queue[Received] = queue.Queue()
        self.log: list[Received] = []
        self.plans: defaultdict[str, list[int]] = defaultdict(list)
        """Per path, the statuses of its next answers (then 200)."""
        self.holds: dict[str, threading.Event] = {}
        """Per path, a request is recorded and then held until this is set."""
        self._lock = threading.Lock()
        app = Starlette(routes=[Route("/{path:path}", self._handle, methods=["POST"])])
        self.server = ServerThread(app, name="webhook-receiver")

    def __enter__(self) -> Receiver:
        self.server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        for event in self.holds.values():
            event.set()
        self.server.stop()

    def url(self, path: str) -> str:
        return f"{self.server.url}/{path}"

    async def _handle(self, request: Request) -> Response:
        path = request.path_params["path"]
        body = await request.body()
        item = Received(path, dict(request.headers), body, time.monotonic())
        with self._lock:
            self.log.append(item)
            plan = self.plans[path]
            status = plan.pop(0) if plan else 200
        self.received.put(item)
        hold = self.holds.get(path)
        if hold is not None:
            await anyio.to_thread.run_sync(hold.wait)
        return Response(status_code=status)

    async def next(self, timeout: float = 20) -> Received:  # noqa: ASYNC109 - a queue wait
        """The next request, in arrival order (waits for it)."""
        def take() -> Received:
            return self.received.get(timeout=timeout)

        return await anyio.to_thread.run_sync(take)

    async def until(self, predicate: Any, timeout: float = 20) -> Received:  # noqa: ASYNC109
        """The next request ``predicate`` accepts (others are skipped)."""
        deadline = time.monotonic() + timeout
        while True:
            item = await self.next(max(0.1, deadline - time.monotonic()))
            if predicate(item):
                return item

    def count(self, path: str | None = None) -> int:
        with self._lock:
            return sum(1 for r in self.log if path is None or r.path == path)
