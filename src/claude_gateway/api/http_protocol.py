"""uvicorn's HTTP protocol with its own refusals in the API's JSON.

A request uvicorn cannot parse (a malformed request line, an invalid header) never
reaches the application: uvicorn answers it with a plain-text 400. This protocol answers
the same 400 with the gateway's error body and code, so every error a client sees has a
code it can act on.
"""

from __future__ import annotations

import json
from typing import Any

from claude_gateway.api.errors import now_rfc3339
from claude_gateway.errors import ErrorCode

try:  # httptools is what uvicorn[standard] uses; h11 is the pure-Python fallback
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as _Base
except ImportError:  # pragma: no cover - httptools is a declared dependency
    from uvicorn.protocols.http.h11_impl import H11Protocol as _Base  # type: ignore[assignment]


def json_400(message: str) -> bytes:
    """A complete HTTP/1.1 400 response with the API's error body."""
    body = json.dumps({
        "error": {"code": ErrorCode.INVALID_REQUEST,
                  "message": f"Malformed HTTP request: {message}", "details": {}},
        "requestId": "", "timestamp": now_rfc3339()}).encode()
    return (b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\n"
            b"content-length: " + str(len(body)).encode() + b"\r\nconnection: close\r\n\r\n"
            + body)


class JsonErrorHttpProtocol(_Base):
    """uvicorn's protocol, answering unparseable requests with a JSON 400."""

    def send_400_response(self, msg: str) -> None:
        transport: Any = self.transport
        transport.write(json_400(msg))
        transport.close()
