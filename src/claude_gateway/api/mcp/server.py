"""``/mcp``: the gateway's runs, sessions and workspace files as MCP tools.

Built on the official ``mcp`` SDK (``MCPServer``) over streamable HTTP, with the SDK's
DNS-rebinding protection checking ``Host`` and ``Origin``. The tools are thin: each
calls the same service as its REST route, so ownership, workspace locks and path
confinement are the same. A gateway error becomes a tool error (``isError``) whose
text starts with its code, e.g. ``PATH_OUTSIDE_WORKSPACE: ...``.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from mcp.server.mcpserver import MCPServer
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from claude_gateway import __version__
from claude_gateway.api.mcp.common import INSTRUCTIONS, PATH
from claude_gateway.api.mcp.file_tools import register_file_tools
from claude_gateway.api.mcp.session_tools import register_session_tools
from claude_gateway.services.files import FileService
from claude_gateway.services.runs import RunService
from claude_gateway.services.sessions import (
    SessionManager,
)
from claude_gateway.settings import Settings


def build_server(sessions: SessionManager, runs: RunService, files: FileService,
                 settings: Settings) -> MCPServer:
    """An MCP server whose tools drive these services."""
    with _no_root_logging_setup():
        server: MCPServer = MCPServer("claude-gateway", version=__version__,
                                      instructions=INSTRUCTIONS)
    register_session_tools(server, sessions, runs, settings)
    register_file_tools(server, files, settings)
    return server


@contextlib.contextmanager
def _no_root_logging_setup() -> Iterator[None]:
    # MCPServer() calls logging.basicConfig, which would give a root logger without
    # handlers a handler of its own; the gateway configures logging itself.
    root = logging.getLogger()
    placeholder = logging.NullHandler()
    root.addHandler(placeholder)
    try:
        yield
    finally:
        root.removeHandler(placeholder)


def transport_security(settings: Settings) -> TransportSecuritySettings:
    """The SDK's own DNS-rebinding check is off: the gateway's Host/Origin middleware
    guards ``/mcp`` as it guards every other surface, with the same two settings."""
    return TransportSecuritySettings(enable_dns_rebinding_protection=False)


class McpEndpoint:
    """The ASGI app at ``/mcp``: hands each request to the running session manager."""

    def __init__(self) -> None:
        self.manager: StreamableHTTPSessionManager | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        manager = self.manager
        if manager is None:
            await Response("The MCP server is not running", status_code=503)(scope, receive,
                                                                               send)
            return
        await manager.handle_request(scope, receive, send)


def mount(app: FastAPI) -> McpEndpoint:
    """Route ``/mcp`` (exactly: no redirect to a trailing slash) to the MCP endpoint."""
    endpoint = McpEndpoint()
    app.router.routes.append(Route(PATH, endpoint=endpoint, include_in_schema=False))
    app.state.mcp = endpoint
    return endpoint


@asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[None]:
    """Serve ``/mcp`` with tools over the app's services until the block ends.

    Needs the services in ``app.state``; in-flight tool calls are cancelled on the way
    out, before the services close.
    """
    endpoint: McpEndpoint = app.state.mcp
    settings: Settings = app.state.settings
    server = build_server(app.state.sessions, app.state.runs, app.state.files, settings)
    # Stateful: a client's notifications/cancelled reaches the call it cancels (and so
    # stops its run) only within the session that carries the call.
    server.streamable_http_app(streamable_http_path=PATH, stateless_http=False,
                               json_response=False,
                               transport_security=transport_security(settings))
    manager = server.session_manager
    async with manager.run():
        endpoint.manager = manager
        try:
            yield
        finally:
            endpoint.manager = None

