"""One error body for every failure, as API.md draws it."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from claude_gateway.errors import ApiError, ErrorCode
from claude_gateway.logs import request_id_var
from claude_gateway.services.openai_compat import error_body as oa_error_body
from claude_gateway.services.openai_compat import error_type as oa_error_type
from claude_gateway.services.openai_compat import is_openai_path

logger = logging.getLogger("claude_gateway.api")

_HTTP_CODES = {
    400: ErrorCode.INVALID_REQUEST,
    401: ErrorCode.UNAUTHORIZED,
    403: ErrorCode.FORBIDDEN,
    404: ErrorCode.NOT_FOUND,
    405: ErrorCode.METHOD_NOT_ALLOWED,
    406: ErrorCode.NOT_ACCEPTABLE,
    408: ErrorCode.REQUEST_TIMEOUT,
    409: ErrorCode.CONFLICT,
    413: ErrorCode.PAYLOAD_TOO_LARGE,
    415: ErrorCode.UNSUPPORTED_MEDIA_TYPE,
    416: ErrorCode.RANGE_NOT_SATISFIABLE,
    421: ErrorCode.HOST_NOT_ALLOWED,
    429: ErrorCode.RATE_LIMITED,
    503: ErrorCode.UNAVAILABLE,
}


OPENAI_CODES: dict[str, str] = {ErrorCode.MODEL_NOT_FOUND: "model_not_found"}
"""Codes OpenAI's own API spells its way: its clients and users look for these."""
MCP_PATH = "/mcp"
JSONRPC_UNAUTHORIZED = -32001
JSONRPC_SERVER_ERROR = -32000


def now_rfc3339() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _request_id(request: Request) -> str:
    return str(getattr(request.state, "request_id", None) or request_id_var.get() or "")


def error_body(path: str, request_id: str, status: int, code: str, message: str,
               details: dict[str, Any] | None = None) -> dict[str, Any]:
    """The error body for a request to ``path``: API.md's, OpenAI's on its paths, or a
    JSON-RPC error on the MCP endpoint (so each surface's clients raise their own
    exception types, with the gateway's code and message)."""
    details = details or {}
    if path == MCP_PATH:
        return {"jsonrpc": "2.0", "id": None, "error": {
            "code": JSONRPC_UNAUTHORIZED if status == 401 else JSONRPC_SERVER_ERROR,
            "message": f"{code}: {message}",
            "data": {"code": code, "status": status, "requestId": request_id, **details}}}
    if is_openai_path(path):
        param = details.get("param")
        if param is None and details.get("errors"):
            param = ".".join(details["errors"][0]["loc"][1:]) or None
        return oa_error_body(message, oa_error_type(status), OPENAI_CODES.get(code, code), param)
    return {
        "error": {"code": code, "message": message, "details": details},
        "requestId": request_id,
        "timestamp": now_rfc3339(),
    }


def error_response(request: Request, status: int, code: str, message: str,
                   details: dict[str, Any] | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    """The error body as a response, with the request id in the body and the header."""
    request_id = _request_id(request)
    body = error_body(request.url.path, request_id, status, code, message, details)
    return JSONResponse(body, status_code=status,
                        headers={"X-Request-ID": request_id, **(headers or {})})


def _validation_details(exc: RequestValidationError) -> dict[str, Any]:
    # The input and context can echo large or secret values back; location and
    # message are what a client needs.
    return {
        "errors": [
            {"loc": [str(part) for part in err.get("loc", ())], "msg": err.get("msg", ""),
             "type": err.get("type", "")}
            for err in exc.errors()
        ]
    }


def allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at this path (Starlette's own 405 names only the
    first matching route's, and each method is a route of its own here)."""
    allowed = []
    for method in ("DELETE", "GET", "HEAD", "PATCH", "POST", "PUT"):
        scope = {**request.scope, "method": method}
        if any(route.matches(scope)[0] == Match.FULL for route in request.app.router.routes):
            allowed.append(method)
    return allowed


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        headers = {"Retry-After": str(exc.details["retryAfter"])} if (
            exc.status == 429 and "retryAfter" in exc.details) else None
        return error_response(request, exc.status, exc.code, exc.message, exc.details, headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        details = _validation_details(exc)
        first = details["errors"][0] if details["errors"] else {}
        where = ".".join(first.get("loc", [])) or "request"
        message = f"Invalid request: {where}: {first.get('msg', 'invalid')}"
        kind = request.headers.get("content-type", "")
        if kind and "json" not in kind.split(";")[0] and any(
                e["loc"][:1] == ["body"] for e in details["errors"]):
            # FastAPI reads only JSON: say so, rather than that the fields are missing.
            return error_response(
                request, 415, ErrorCode.UNSUPPORTED_MEDIA_TYPE,
                f"Send the body as JSON, with Content-Type: application/json (this request "
                f"said {kind.split(';')[0]!r}; with curl, add -H 'content-type: "
                "application/json')", {"contentType": kind[:100]})
        cursors = {("query", "cursor"), ("header", "Last-Event-ID")}
        only_cursors = details["errors"] and all(
            tuple(e["loc"][:2]) in cursors for e in details["errors"])
        code = ErrorCode.INVALID_CURSOR if only_cursors else ErrorCode.INVALID_REQUEST
        return error_response(request, 400, code, message, details)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, ErrorCode.HTTP_ERROR)
        if exc.status_code == 404:
            message = f"No route for {request.method} {request.url.path}"
        elif exc.status_code == 405:
            message = f"Method {request.method} is not allowed on {request.url.path}"
        else:
            message = str(exc.detail)
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = ", ".join(allowed_methods(request))
        return error_response(request, exc.status_code, code, message, headers=headers)

    @app.exception_handler(Exception)
    async def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
        logger.error("unhandled error on %s %s", request.method, request.url.path,
                     exc_info=exc)
        return error_response(request, 500, ErrorCode.INTERNAL_ERROR,
                              "The gateway failed to handle this request; see its log.")


class JsonErrorsMiddleware:
    """The last word on error bodies: a 4xx or 5xx that something below the routers made
    in plain text (Starlette's Range and CORS refusals, a mounted app) reaches the client
    as the API's JSON error body, with a stable code and the same headers."""

    KEPT_HEADERS = (b"allow", b"retry-after", b"www-authenticate", b"content-range",
                    b"x-request-id", b"access-control-allow-origin", b"vary")

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start: Message | None = None
        body = bytearray()

        async def rewriting_send(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                headers = Headers(raw=message.get("headers", []))
                kind = headers.get("content-type", "")
                if message["status"] >= 400 and not kind.startswith(
                        ("application/json", "text/event-stream")):
                    start = message  # held until its (small) body is complete
                    return
            elif message["type"] == "http.response.body" and start is not None:
                body.extend(message.get("body", b""))
                if message.get("more_body", False):
                    return
                await self._send_json(scope, send, start, bytes(body))
                return
            await send(message)

        await self.app(scope, receive, rewriting_send)

    async def _send_json(self, scope: Scope, send: Send, start: Message, text: bytes) -> None:
        status = int(start["status"])
        code = _HTTP_CODES.get(status, ErrorCode.INTERNAL_ERROR if status >= 500
                               else ErrorCode.HTTP_ERROR)
        message = text.decode("utf-8", "replace").strip()[:500] or HTTPStatus(status).phrase
        kept = {k.decode("latin-1"): v.decode("latin-1") for k, v in start.get("headers", [])
                if k.lower() in self.KEPT_HEADERS}
        await send_error(scope, send, status, code, message, kept)


def error_payload(scope: Scope, status: int, code: str, message: str) -> dict[str, Any]:
    request_id = str(scope.get("state", {}).get("request_id", "") or "")
    return error_body(scope.get("path", ""), request_id, status, code, message)


async def send_error(scope: Scope, send: Send, status: int, code: str, message: str,
                     headers: dict[str, str] | None = None) -> None:
    """The error body as a raw ASGI response (for middleware, below any router)."""
    body = json.dumps(error_payload(scope, status, code, message)).encode()
    all_headers = {**(headers or {}), "content-type": "application/json",
                   "content-length": str(len(body))}
    await send({"type": "http.response.start", "status": status,
                "headers": [(k.encode(), v.encode()) for k, v in all_headers.items()]})
    await send({"type": "http.response.body", "body": body})
