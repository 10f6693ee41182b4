"""``create_app(settings)``: the ASGI application and the resources its lifespan owns."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware

from claude_gateway import __version__
from claude_gateway.api import (
    admin,
    console,
    docs,
    files,
    health,
    mcp,
    metrics,
    openai,
    permissions,
    runs,
    sessions,
    status,
    webhooks,
    websocket,
)
from claude_gateway.api.errors import JsonErrorsMiddleware, install_error_handlers
from claude_gateway.api.request_id import RequestIdMiddleware
from claude_gateway.api.security import (
    AuthFailures,
    AuthMiddleware,
    BodyLimitMiddleware,
    HostOriginMiddleware,
    SecurityHeadersMiddleware,
)
from claude_gateway.events.log import EventLog
from claude_gateway.observability.metrics import Metrics
from claude_gateway.observability.tracing import Tracing
from claude_gateway.runtime.agent import AgentFactory
from claude_gateway.runtime.cli_binary import die_with_parent_launcher, find_cli
from claude_gateway.runtime.environment import cli_environment
from claude_gateway.runtime.instance_lock import InstanceLock
from claude_gateway.runtime.sdk_agent import sdk_agent_factory
from claude_gateway.services.auth import KeyRing
from claude_gateway.services.files import FileService
from claude_gateway.services.openai_chat import ChatService
from claude_gateway.services.runs import RunService
from claude_gateway.services.sessions import SessionManager
from claude_gateway.services.webhooks import WebhookService
from claude_gateway.services.webhooks.targets import Resolve, resolve
from claude_gateway.settings import Settings
from claude_gateway.storage.sql import SqlStore

logger = logging.getLogger("claude_gateway")


@dataclass
class Runtime:
    """What the lifespan prepared: resolved once at start, shared by every request."""

    settings: Settings
    cli_path: Path
    cli_env: dict[str, str]


def create_app(settings: Settings, *, agent_factory: AgentFactory = sdk_agent_factory,
               tracing: Tracing | None = None, webhook_resolver: Resolve = resolve
               ) -> FastAPI:
    """Build the gateway application for these settings (``agent_factory``: what runs an
    agent; the real CLI unless a test or a benchmark says otherwise; ``tracing``: from
    the ``OTEL_*`` environment unless given; ``webhook_resolver``: how webhook hosts are
    resolved, the system's unless a test says otherwise)."""
    tracing = tracing or Tracing.from_environment()
    registry = Metrics(per_key=settings.metrics_per_key)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # First of all: nothing of another gateway's (its CLIs, its turns) is touched.
        instance = InstanceLock(settings.data_dir)
        instance.acquire(address=f"{settings.host}:{settings.port}")
        try:
            async with _running(app) as ready:
                yield ready
        finally:
            instance.release()

    @asynccontextmanager
    async def _running(app: FastAPI) -> AsyncIterator[None]:
        cli_binary = find_cli(settings.cli_path)
        for directory in (settings.data_dir, settings.workspace_root, settings.cli_config_dir):
            directory.mkdir(parents=True, exist_ok=True)
        cli_path = die_with_parent_launcher(cli_binary, settings.data_dir / "bin")
        cli_env = cli_environment(settings)
        app.state.runtime = Runtime(settings=settings, cli_path=cli_path, cli_env=cli_env)
        store = SqlStore(settings.database_url, pool_size=settings.database_pool_size,
                     max_overflow=settings.database_max_overflow, node_id=settings.node_id)
        store.observe, store.tracing = registry.store_transaction, tracing
        await store.start()
        events = EventLog(store, subscriber_queue_size=settings.subscriber_queue_size,
                          node_id=settings.node_id, poll_seconds=settings.poll_seconds)
        events.observe, events.on_dropped = registry.observe_event, registry.subscriber_dropped
        await events.start()
        session_manager = SessionManager(settings, store, events, cli_path=cli_path,
                                         cli_env=cli_env, cli_binary=cli_binary,
                                         agent_factory=agent_factory)
        session_manager.supervisor.tracing = session_manager.runner.tracing = tracing
        registry.owner_of = session_manager.owner_of
        webhook_service = WebhookService(settings, store, observe=registry.webhook_attempt,
                                         resolver=webhook_resolver)
        webhook_service.start()
        app.state.webhooks = webhook_service
        await session_manager.start()
        app.state.files = FileService(settings.workspace_root,
                                      max_upload_bytes=settings.max_upload_bytes)
        app.state.store = store
        app.state.events = events
        app.state.sessions = session_manager
        keyring = KeyRing(store, settings)
        await keyring.refresh(force=True)
        app.state.keyring = keyring
        run_service = RunService(session_manager, store)
        app.state.runs = run_service
        app.state.chats = ChatService(settings, session_manager, run_service)
        for deprecation in settings.deprecations():
            logger.warning(deprecation)
        logger.info(
            "gateway started",
            extra={"version": __version__, "cli_path": str(cli_path),
                   "workspace_root": str(settings.workspace_root),
                   "data_dir": str(settings.data_dir)},
        )
        try:
            async with mcp.serving(app):
                yield
        finally:
            await run_service.close()
            await session_manager.close()
            await webhook_service.close()
            await events.close()
            await store.close()
            tracing.shutdown()
            logger.info("gateway stopped")

    app = FastAPI(
        title="claude-gateway",
        version=__version__,
        description="Run Claude Code as a service.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.metrics = registry
    install_error_handlers(app)
    app.state.auth_failures = AuthFailures(settings.auth_failure_rate_limit)
    # Added innermost first: a request meets them from the bottom of this list up.
    app.add_middleware(AuthMiddleware, settings=settings,
                       keyring=lambda: getattr(app.state, "keyring", None),
                       failures=app.state.auth_failures)
    app.add_middleware(BodyLimitMiddleware, settings=settings)
    if settings.cors_origins:
        # Inside the Host/Origin check: only an allowed origin's preflight gets here.
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins,
                           allow_methods=["*"], allow_headers=["*"],
                           expose_headers=["X-Request-ID", "Retry-After"])
    app.add_middleware(HostOriginMiddleware, settings=settings)
    app.add_middleware(SecurityHeadersMiddleware)
    app.add_middleware(JsonErrorsMiddleware)
    app.add_middleware(RequestIdMiddleware, node_id=settings.node_id,
                       observe=registry.http_request)
    tracing.instrument(app)
    app.include_router(health.router)
    app.include_router(metrics.router)
    app.include_router(admin.router)
    app.include_router(status.router)
    app.include_router(sessions.router)
    app.include_router(permissions.router)
    app.include_router(permissions.pending_router)
    app.include_router(websocket.router)
    app.include_router(files.router)
    app.include_router(runs.router)
    app.include_router(openai.router)
    app.include_router(webhooks.router)
    mcp.mount(app)
    docs.mount(app)
    console.mount(app)
    document_security(app)
    return app


def document_security(app: FastAPI) -> None:
    """Say in the OpenAPI schema that every operation but the health check takes a bearer
    key (enforced by the middleware, which routers never see)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            schema.setdefault("components", {})["securitySchemes"] = {"apiKey": {
                "type": "http", "scheme": "bearer",
                "description": "An API key: `Authorization: Bearer <key>` (needed once any "
                               "key exists)."}}
            schema["security"] = [{"apiKey": []}]
            for path in ("/health", "/health/ready"):
                for operation in schema["paths"].get(path, {}).values():
                    operation["security"] = []
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
