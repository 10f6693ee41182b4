"""The gateway's guards, as pure ASGI middleware (streams pass through untouched).

Outermost first: request id, CORS (only if configured), security headers, Host/Origin
check, body limits, authentication and rate limits. Each refusal is the API's error
body (OpenAI's on its paths) with a stable code.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import time
from collections.abc import Callable
from typing import ClassVar

from limits import RateLimitItem, parse_many
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import MovingWindowRateLimiter
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from claude_gateway.api import console, docs
from claude_gateway.api.errors import error_payload, send_error
from claude_gateway.errors import ApiError, ErrorCode, PayloadTooLarge, RequestTimeout
from claude_gateway.services.auth import KeyRing, Principal
from claude_gateway.settings import Settings


def is_public(path: str) -> bool:
    """Pages a browser loads without a key: the API reference and the console."""
    return docs.is_public(path) or console.is_public(path)


PUBLIC_PATHS = {("GET", "/health"), ("HEAD", "/health"), ("GET", "/health/ready"),
                ("HEAD", "/health/ready")}
UPLOAD_PREFIX = "/v1/files/"
WS_AUTH_TIMEOUT = 10.0


async def deny_websocket(scope: Scope, send: Send, status: int, code: str, message: str,
                         close_code: int, headers: dict[str, str] | None = None) -> None:
    """Refuse a WebSocket handshake with a real HTTP status and the error body when the
    server supports it; otherwise close it with ``close_code``."""
    if "websocket.http.response" in scope.get("extensions", {}):
        body = json.dumps(error_payload(scope, status, code, message)).encode()
        all_headers = {"content-type": "application/json",
                       "content-length": str(len(body)), **(headers or {})}
        await send({"type": "websocket.http.response.start", "status": status,
                    "headers": [(k.encode(), v.encode()) for k, v in all_headers.items()]})
        await send({"type": "websocket.http.response.body", "body": body})
        return
    await send({"type": "websocket.close", "code": close_code, "reason": code})


class SecurityHeadersMiddleware:
    """Headers that keep browsers from sniffing, framing or leaking what we send."""

    HEADERS: ClassVar[dict[str, str]] = {
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "no-referrer",
        "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
        "Cross-Origin-Resource-Policy": "same-origin",
    }

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in self.HEADERS.items():
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, with_headers)


def _host_matches(host: str, allowed: list[str]) -> bool:
    if "*" in allowed:
        return True
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    if host.startswith("[") and "]:" in host:
        name = host.split("]:", 1)[0] + "]"
    return name.lower() in {a.lower() for a in allowed}


class HostOriginMiddleware:
    """DNS-rebinding protection: the Host must be ours, and a browser Origin allowed."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.allowed_hosts = list(settings.allowed_hosts)
        self.allowed_origins = [o.rstrip("/") for o in
                                [*settings.allowed_origins, *settings.cors_origins]]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        host = headers.get("host", "")
        origin = headers.get("origin")
        problem: tuple[int, str, str] | None = None
        if not _host_matches(host, self.allowed_hosts):
            # 421 Misdirected Request: this server is not the one the name points at.
            problem = (421, ErrorCode.HOST_NOT_ALLOWED,
                       f"Host {host!r} is not one this gateway serves")
        elif origin is not None and not _origin_matches(origin, self.allowed_origins) and (
                not _same_origin(origin, host)):
            problem = (403, ErrorCode.ORIGIN_NOT_ALLOWED,
                       f"Origin {origin!r} may not call this gateway")
        if problem is None:
            await self.app(scope, receive, send)
        elif scope["type"] == "websocket":
            await deny_websocket(scope, send, *problem, close_code=1008)
        else:
            await send_error(scope, send, *problem)


def _origin_matches(origin: str, allowed: list[str]) -> bool:
    """``origin`` is listed, or matches an entry ending in ``:*`` on any port."""
    origin = origin.rstrip("/").lower()
    for entry in allowed:
        entry = entry.lower()
        if entry == origin:
            return True
        if entry.endswith(":*"):
            base, _, port = origin.rpartition(":")
            if base == entry[:-2] and port.isdigit():
                return True
    return False


def _same_origin(origin: str, host: str) -> bool:
    return origin.split("://", 1)[-1].rstrip("/").lower() == host.lower()


class BodyLimitMiddleware:
    """Request bodies: at most ``max_body_bytes`` (uploads have their own limit), with no
    wait longer than ``body_timeout_seconds`` for the next piece while one arrives."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.limit = settings.max_body_bytes
        self.upload_limit = settings.max_upload_bytes
        self.timeout = settings.body_timeout_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        is_upload = scope["method"] == "PUT" and scope["path"].startswith(UPLOAD_PREFIX)
        limit = self.upload_limit if is_upload else self.limit
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await send_error(scope, send, 413, ErrorCode.PAYLOAD_TOO_LARGE,
                             f"Request bodies may be at most {limit} bytes")
            return
        received = 0
        refused: ApiError | None = None
        replaced = False
        body_done = False

        async def guarded_send(message: Message) -> None:
            nonlocal replaced
            # The app may turn our error into one of its own (FastAPI reports a body
            # it could not read as a 400): the client gets the real reason instead.
            if refused is not None:
                if message["type"] == "http.response.start" and not replaced:
                    replaced = True
                    await send_error(scope, send, refused.status, refused.code,
                                     refused.message)
                return
            await send(message)

        async def limited_receive() -> Message:
            nonlocal received, refused, body_done
            if body_done:
                # The body is in: what a streaming response waits for now is the client
                # going away, however long its turn takes. No deadline applies.
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), self.timeout)
            except TimeoutError:
                refused = RequestTimeout("The request body did not arrive in time")
                raise refused from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    refused = PayloadTooLarge(f"Request bodies may be at most {limit} bytes")
                    raise refused
                body_done = not message.get("more_body", False)
            else:
                body_done = True  # http.disconnect
            return message

        try:
            await self.app(scope, limited_receive, guarded_send)
        except (PayloadTooLarge, RequestTimeout) as exc:
            if not replaced:
                await send_error(scope, send, exc.status, exc.code, exc.message)


def client_address(scope: Scope) -> str:
    client = scope.get("client") or ("unknown", 0)
    return str(client[0])


class AuthFailures:
    """Wrong keys presented per client address: past the limit, the address gets 429
    for every authenticated request until the window has passed (so keys cannot be
    guessed, however slowly the guesses come)."""

    def __init__(self, limit: str) -> None:
        self.items = list(parse_many(limit))
        self.limiter = MovingWindowRateLimiter(MemoryStorage())

    async def retry_after(self, address: str) -> int | None:
        """Seconds until ``address`` may try again, or None when it may now."""
        for item in self.items:
            if not await self.limiter.test(item, f"auth-failures:{address}"):
                stats = await self.limiter.get_window_stats(item, f"auth-failures:{address}")
                return max(1, int(stats.reset_time - time.time()) + 1)
        return None

    async def failed(self, address: str) -> None:
        for item in self.items:
            await self.limiter.hit(item, f"auth-failures:{address}")


class AuthMiddleware:
    """Bearer keys once any exist, then per-principal (or per-address) rate limits."""

    def __init__(self, app: ASGIApp, settings: Settings,
                 keyring: Callable[[], KeyRing | None], failures: AuthFailures) -> None:
        self.app = app
        self.settings = settings
        self.keyring = keyring
        self.failures = failures
        self.limiter = MovingWindowRateLimiter(MemoryStorage())
        self._limits: dict[str, list[RateLimitItem]] = {}

    def _limit(self, text: str) -> list[RateLimitItem]:
        if text not in self._limits:
            self._limits[text] = list(parse_many(text))
        return self._limits[text]

    def _token(self, scope: Scope) -> str | None:
        headers = Headers(scope=scope)
        authorization = headers.get("authorization", "")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
        if self.settings.allow_query_token:
            from urllib.parse import parse_qs

            values = parse_qs(scope.get("query_string", b"").decode()).get("access_token")
            if values:
                return str(values[0])
        return None

    def _metrics_token(self, scope: Scope) -> bool:
        """Whether the request carries ``CLAUDE_GATEWAY_METRICS_TOKEN``."""
        expected = self.settings.metrics_token
        token = self._token(scope)
        return (expected is not None and token is not None
                and hmac.compare_digest(token.encode(), expected.get_secret_value().encode()))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        method = scope.get("method", "GET")
        # An OPTIONS request is no exception: a CORS preflight from an allowed origin is
        # answered by the CORS middleware before it gets here, anything else needs a key.
        if (method, scope["path"]) in PUBLIC_PATHS or (
                method in ("GET", "HEAD") and is_public(scope["path"])):
            await self.app(scope, receive, send)
            return
        keyring = self.keyring()
        principal: Principal | None = None
        if scope["path"] == "/metrics" and self._metrics_token(scope):
            scope.setdefault("state", {})["metrics_token"] = True
            await self.app(scope, receive, send)
            return
        if keyring is not None and await keyring.enabled():
            token = self._token(scope)
            address = client_address(scope)
            if token is not None and (retry := await self.failures.retry_after(address)):
                await self._refuse_rate(scope, send, retry, "Too many failed "
                                        f"authentications from this address; retry in {retry} s")
                return
            principal = await keyring.authenticate(token)
            if principal is None:
                if token is not None:
                    await self.failures.failed(address)
                if scope["type"] == "websocket":
                    if token is None:
                        # The socket may still authenticate with its first frame.
                        scope.setdefault("state", {})["auth_pending"] = True
                        await self.app(scope, receive, send)
                        return
                    await deny_websocket(scope, send, 401, ErrorCode.UNAUTHORIZED,
                                         "A valid API key is needed", close_code=4401)
                    return
                challenge = 'Bearer realm="claude-gateway"' + (
                    ', error="invalid_token"' if token is not None else "")
                await send_error(scope, send, 401, ErrorCode.UNAUTHORIZED,
                                 "A valid API key is needed: Authorization: Bearer <key>"
                                 if token is None else "The API key is not valid (or revoked)",
                                 {"WWW-Authenticate": challenge})
                return
            scope.setdefault("state", {})["principal"] = principal
        if not await self._within_rate(scope, principal, send):
            return
        await self.app(scope, receive, send)

    async def _within_rate(self, scope: Scope, principal: Principal | None,
                           send: Send) -> bool:
        if principal is not None:
            key = f"key:{principal.name}"
            text = principal.rate_limit or self.settings.rate_limit
        else:
            key = f"addr:{client_address(scope)}"
            text = self.settings.rate_limit
        for item in self._limit(text):
            if not await self.limiter.hit(item, key):
                stats = await self.limiter.get_window_stats(item, key)
                retry = max(1, int(stats.reset_time - time.time()) + 1)
                await self._refuse_rate(scope, send, retry,
                                        f"Rate limit {item} reached; retry in {retry} s")
                return False
        return True

    @staticmethod
    async def _refuse_rate(scope: Scope, send: Send, retry: int, message: str) -> None:
        if scope["type"] == "websocket":
            await deny_websocket(scope, send, 429, ErrorCode.RATE_LIMITED, message, close_code=4429,
                                 headers={"Retry-After": str(retry)})
        else:
            await send_error(scope, send, 429, ErrorCode.RATE_LIMITED, message,
                             {"Retry-After": str(retry)})
