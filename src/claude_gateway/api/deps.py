"""FastAPI dependencies: the services a router may use, and who the caller is.

Routers declare what they need (``sessions: Sessions``) instead of reading
``app.state``; the lifespan in ``app.py`` is the one place that puts the services
there. Each works for HTTP requests and WebSockets alike, and is ``async`` (run on the
event loop, not in a thread) unless it touches the disk.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from starlette.requests import HTTPConnection

from claude_gateway.api.principals import principal_of
from claude_gateway.api.security import AuthFailures
from claude_gateway.services.auth import KeyRing, Principal
from claude_gateway.services.files import FileService
from claude_gateway.services.openai_chat import ChatService
from claude_gateway.services.permissions import PermissionBroker
from claude_gateway.services.runs import RunService
from claude_gateway.services.sessions import SessionManager
from claude_gateway.services.webhooks import WebhookService
from claude_gateway.settings import Settings


async def _settings(connection: HTTPConnection) -> Settings:
    settings: Settings = connection.app.state.settings
    return settings


async def _sessions(connection: HTTPConnection) -> SessionManager:
    sessions: SessionManager = connection.app.state.sessions
    return sessions


async def _runs(connection: HTTPConnection) -> RunService:
    runs: RunService = connection.app.state.runs
    return runs


async def _chats(connection: HTTPConnection) -> ChatService:
    chats: ChatService = connection.app.state.chats
    return chats


async def _permissions(connection: HTTPConnection) -> PermissionBroker:
    broker: PermissionBroker = connection.app.state.sessions.permissions
    return broker


async def _webhooks(connection: HTTPConnection) -> WebhookService:
    webhooks: WebhookService = connection.app.state.webhooks
    return webhooks


async def _caller(connection: HTTPConnection) -> Principal:
    return principal_of(connection.state)


async def _owner(connection: HTTPConnection) -> str | None:
    return principal_of(connection.state).owner_filter


async def _keyring(connection: HTTPConnection) -> KeyRing:
    keyring: KeyRing = connection.app.state.keyring
    return keyring


async def _auth_failures(connection: HTTPConnection) -> AuthFailures:
    failures: AuthFailures = connection.app.state.auth_failures
    return failures


def _files(connection: HTTPConnection) -> FileService:
    """The file service confined to the caller's own directory (admins: the whole root);
    synchronous, so FastAPI runs it in a thread (it may create that directory)."""
    service: FileService = connection.app.state.files
    return service.for_owner(principal_of(connection.state).owner_filter)


SettingsDep = Annotated[Settings, Depends(_settings)]
Sessions = Annotated[SessionManager, Depends(_sessions)]
Runs = Annotated[RunService, Depends(_runs)]
Chats = Annotated[ChatService, Depends(_chats)]
Permissions = Annotated[PermissionBroker, Depends(_permissions)]
Files = Annotated[FileService, Depends(_files)]
Webhooks = Annotated[WebhookService, Depends(_webhooks)]
Keys = Annotated[KeyRing, Depends(_keyring)]
Failures = Annotated[AuthFailures, Depends(_auth_failures)]
"""Wrong keys per client address (first-frame WebSocket auth counts them too)."""
Caller = Annotated[Principal, Depends(_caller)]
"""Who the request acts for: it owns what it creates, within its own directory."""
Owner = Annotated[str | None, Depends(_owner)]
"""Whose resources the caller may see (None: all, for an admin or with no keys)."""
