"""``X-Request-ID`` (and ``X-Gateway-Node``: which node answered) on every response,
one access-log line per request, and the request metrics (by route template, never by
the path: ids stay out of labels)."""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from claude_gateway.logs import request_id_var

HEADER = "x-request-id"
_VALID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
logger = logging.getLogger("claude_gateway.access")


def pick_request_id(incoming: str | None) -> str:
    """Echo a sane client id; otherwise make one."""
    if incoming and _VALID.match(incoming):
        return incoming
    return uuid.uuid4().hex


class RequestIdMiddleware:
    """Pure ASGI middleware, so streaming responses pass through untouched."""

    def __init__(self, app: ASGIApp, node_id: str = "",
                 observe: Callable[[str, str, int, float], None] | None = None) -> None:
        self.app = app
        self.node_id = node_id
        self.observe = observe

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        incoming = None
        for key, value in scope["headers"]:
            if key == b"x-request-id":
                incoming = value.decode("latin-1")
                break
        request_id = pick_request_id(incoming)
        scope.setdefault("state", {})["request_id"] = request_id
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = 0

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = MutableHeaders(scope=message)
                headers["X-Request-ID"] = request_id
                if self.node_id:
                    headers["X-Gateway-Node"] = self.node_id
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            took = time.perf_counter() - started
            if scope["type"] == "http":
                logger.info(
                    "%s %s %s", scope["method"], scope["path"], status,
                    extra={
                        "method": scope["method"], "path": scope["path"], "status": status,
                        "duration_ms": round(took * 1000, 1),
                    },
                )
            if self.observe is not None:
                route = getattr(scope.get("route"), "path", None) or "unmatched"
                if scope["type"] == "http":
                    self.observe(scope["method"], route, status, took)
                else:
                    self.observe("WEBSOCKET", route, status or 101, took)
            request_id_var.reset(token)
