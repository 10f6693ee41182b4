"""One error body for every failure, as API.md draws it."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from claude_gateway.errors import ApiError
from claude_gateway.logs import request_id_var
from claude_gateway.services.openai_compat import error_body as oa_error_body
from claude_gateway.services.openai_compat import error_type as oa_error_type
from claude_gateway.services.openai_compat import is_openai_path

logger = logging.getLogger("claude_gateway.api")

_HTTP_CODES = {
    400: "INVALID_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    406: "NOT_ACCEPTABLE",
    408: "REQUEST_TIMEOUT",
    409: "CONFLICT",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    429: "RATE_LIMITED",
}


def now_rfc3339() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _request_id(request: Request) -> str:
    return str(getattr(request.state, "request_id", None) or request_id_var.get() or "")


def error_body(path: str, request_id: str, status: int, code: str, message: str,
               details: dict[str, Any] | None = None) -> dict[str, Any]:
    """The error body for a request to ``path``: API.md's, or OpenAI's on its paths (so
    its clients raise their own exception types)."""
    details = details or {}
    if is_openai_path(path):
        param = details.get("param")
        if param is None and details.get("errors"):
            param = ".".join(details["errors"][0]["loc"][1:]) or None
        return oa_error_body(message, oa_error_type(status), code, param)
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
        return error_response(request, 400, "INVALID_REQUEST", message, details)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "HTTP_ERROR")
        if exc.status_code == 404:
            message = f"No route for {request.method} {request.url.path}"
        elif exc.status_code == 405:
            message = f"Method {request.method} is not allowed on {request.url.path}"
        else:
            message = str(exc.detail)
        return error_response(request, exc.status_code, code, message,
                              headers=dict(exc.headers or {}))

    @app.exception_handler(Exception)
    async def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
        logger.error("unhandled error on %s %s", request.method, request.url.path,
                     exc_info=exc)
        return error_response(request, 500, "INTERNAL_ERROR",
                              "The gateway failed to handle this request; see its log.")
