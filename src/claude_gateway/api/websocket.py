"""``GET /v1/sessions/{id}/ws``: one connection to watch a session and act on it.

The server sends event envelopes (replayed from ``?after=SEQ``, then live). The client
sends ``prompt``, ``permission``, ``interrupt`` and ``ping`` frames, each answered by an
``ack`` (or ``pong``) or an ``error`` frame carrying the same codes as the REST API and
the frame's ``clientId``. A prompt whose ``clientId`` was accepted before is acknowledged
with the original turn and not run again, so a client can resend after a reconnect.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, Literal

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from claude_gateway.api.deps import Failures, Keys, Permissions, Sessions
from claude_gateway.api.principals import owner_filter
from claude_gateway.api.security import AuthFailures, client_address
from claude_gateway.errors import ApiError, ErrorCode, InvalidCursor
from claude_gateway.services.auth import KeyRing, Principal
from claude_gateway.services.permissions import PermissionBroker
from claude_gateway.services.prompts import Prompt
from claude_gateway.services.sessions import DuplicateClientId, SessionManager
from claude_gateway.wire import envelope

router = APIRouter(tags=["websocket"])
logger = logging.getLogger("claude_gateway.websocket")

AUTH_TIMEOUT_SECONDS = 10.0
CLOSE_NOT_FOUND = 4404
CLOSE_BAD_CURSOR = 4400
CLOSE_UNAUTHORIZED = 4401
CLOSE_RATE_LIMITED = 4429
CLOSE_TOO_SLOW = 4008
"""The client fell behind: reconnect with ``after`` = the last ``seq`` it received."""


class Frame(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")
    client_id: str | None = Field(None, min_length=1, max_length=128)


class PromptFrame(Frame):
    type: Literal["prompt"]
    prompt: Prompt


class PermissionFrame(Frame):
    type: Literal["permission"]
    request_id: str = Field(min_length=1, max_length=128)
    decision: Literal["allow", "deny"]
    updated_input: dict[str, Any] | None = None
    message: str | None = Field(None, max_length=10_000)
    interrupt: bool = False
    apply_suggestions: bool = False


class InterruptFrame(Frame):
    type: Literal["interrupt"]
    clear_queue: bool = False


class PingFrame(Frame):
    type: Literal["ping"]


FRAMES: dict[str, type[Frame]] = {
    "prompt": PromptFrame, "permission": PermissionFrame, "interrupt": InterruptFrame,
    "ping": PingFrame,
}


class FrameError(Exception):
    def __init__(self, code: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.details = code, message, details or {}


def parse_frame(text: str) -> tuple[Frame, str | None]:
    """A client frame, or FrameError; the clientId is recovered even from a bad frame."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise FrameError(ErrorCode.INVALID_REQUEST, f"Frame is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise FrameError(ErrorCode.INVALID_REQUEST, "A frame is a JSON object")
    client_id = data.get("clientId") if isinstance(data.get("clientId"), str) else None
    kind = data.get("type")
    model = FRAMES.get(kind) if isinstance(kind, str) else None
    if model is None:
        raise FrameError(ErrorCode.INVALID_REQUEST, f"Unknown frame type {kind!r}",
                         {"allowed": sorted(FRAMES), "clientId": client_id})
    try:
        return model.model_validate(data), client_id
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "frame"
        raise FrameError(ErrorCode.INVALID_REQUEST,
                         f"Invalid {kind} frame: {where}: {first['msg']}",
                         {"clientId": client_id,
                          "errors": [{"loc": [str(p) for p in e["loc"]], "msg": e["msg"]}
                                     for e in exc.errors()]}) from None


class Connection:
    """One client's socket: sends are serialized, the event pump runs beside the reader."""

    def __init__(self, websocket: WebSocket, sessions: SessionManager,
                 permissions: PermissionBroker, session_id: str, owner: str | None) -> None:
        self.websocket = websocket
        self.sessions = sessions
        self.permissions = permissions
        self.session_id = session_id
        self.owner = owner
        self._send_lock = asyncio.Lock()
        self.last_seq = 0

    async def send(self, data: dict[str, Any]) -> None:
        async with self._send_lock:
            await self.websocket.send_text(json.dumps(data, separators=(",", ":")))

    async def error(self, code: str, message: str, client_id: str | None,
                    details: dict[str, Any] | None = None) -> None:
        await self.send({"type": "error", "code": code, "message": message,
                         "clientId": client_id, "details": details or {}})

    async def pump_events(self, after: int) -> None:
        self.last_seq = after
        async for event in self.sessions.event_stream(self.session_id, after, "websocket"):
            await self.send(envelope(event))
            self.last_seq = event.seq
        # The stream ended: the client fell behind, or the session was purged. Tell it
        # where to pick up; a client already gone cannot be told.
        try:
            await asyncio.wait_for(self.websocket.close(
                CLOSE_TOO_SLOW, f"reconnect with after={self.last_seq}"), 5)
        except (TimeoutError, RuntimeError, OSError, WebSocketDisconnect):
            logger.debug("could not close a websocket that fell behind", exc_info=True)

    async def handle(self, frame: Frame) -> None:
        client_id = frame.client_id
        if isinstance(frame, PingFrame):
            await self.send({"type": "pong", "clientId": client_id})
        elif isinstance(frame, PromptFrame):
            try:
                pending = await self.sessions.send_message(
                    self.session_id, self.owner, frame.prompt, client_id=client_id)
            except DuplicateClientId as duplicate:
                await self.send({"type": "ack", "clientId": client_id,
                                 "turnId": duplicate.turn_id, "duplicate": True})
                return
            await self.send({"type": "ack", "clientId": client_id, "turnId": pending.id})
        elif isinstance(frame, PermissionFrame):
            record = await self.sessions.answer_permission(
                self.session_id, frame.request_id, decision=frame.decision,
                updated_input=frame.updated_input, message=frame.message,
                interrupt=frame.interrupt, apply_suggestions=frame.apply_suggestions)
            await self.send({"type": "ack", "clientId": client_id, "requestId": record.id,
                             "turnId": record.turn_id, "status": record.status})
        elif isinstance(frame, InterruptFrame):
            interrupted = await self.sessions.interrupt(self.session_id, self.owner,
                                                        clear_queue=frame.clear_queue)
            await self.send({"type": "ack", "clientId": client_id,
                             "interrupted": interrupted})

    async def read_frames(self) -> None:
        while True:
            text = await self.websocket.receive_text()
            client_id = None
            try:
                frame, client_id = parse_frame(text)
                await self.handle(frame)
            except FrameError as exc:
                await self.error(exc.code, exc.message, exc.details.pop("clientId", None),
                                 exc.details)
            except ApiError as exc:
                await self.error(exc.code, exc.message, client_id, exc.details)


async def first_frame_auth(websocket: WebSocket, keyring: KeyRing, failures: AuthFailures
                           ) -> Principal | int:
    """A socket without an Authorization header must send ``{"type": "auth", "token"}``
    first; nothing is sent to it before that. The principal, or the close code."""
    address = client_address(websocket.scope)
    try:
        text = await asyncio.wait_for(websocket.receive_text(), AUTH_TIMEOUT_SECONDS)
        frame = json.loads(text)
    except (TimeoutError, ValueError, WebSocketDisconnect, RuntimeError):
        return CLOSE_UNAUTHORIZED
    if not isinstance(frame, dict) or frame.get("type") != "auth":
        return CLOSE_UNAUTHORIZED
    if await failures.retry_after(address) is not None:
        return CLOSE_RATE_LIMITED
    token = frame.get("token")
    principal = await keyring.authenticate(token if isinstance(token, str) else None)
    if principal is None:
        await failures.failed(address)
        return CLOSE_UNAUTHORIZED
    return principal


@router.websocket("/v1/sessions/{session_id}/ws")
async def session_socket(websocket: WebSocket, session_id: str, sessions: Sessions,
                         permissions: Permissions, keyring: Keys, failures: Failures) -> None:
    owner = owner_filter(websocket.state)  # until a first-frame auth says otherwise
    await websocket.accept()
    if websocket.scope.get("state", {}).get("auth_pending"):
        principal = await first_frame_auth(websocket, keyring, failures)
        if isinstance(principal, int):
            reason = (ErrorCode.RATE_LIMITED if principal == CLOSE_RATE_LIMITED
                      else ErrorCode.UNAUTHORIZED)
            await websocket.close(principal, reason)
            return
        owner = principal.owner_filter
    connection = Connection(websocket, sessions, permissions, session_id, owner)
    try:
        record = await sessions.get(session_id, owner)
        raw_after = websocket.query_params.get("after", "0")
        if not raw_after.isdigit():
            raise InvalidCursor("after must be a non-negative event sequence number",
                                details={"after": raw_after[:100]})
        after = int(raw_after)
        if after > record.last_seq:
            raise InvalidCursor(f"Cursor {after} is beyond the last event ({record.last_seq})",
                                details={"after": after, "lastSeq": record.last_seq})
    except ApiError as exc:
        await connection.error(exc.code, exc.message, None, exc.details)
        await websocket.close(CLOSE_NOT_FOUND if exc.status == 404 else CLOSE_BAD_CURSOR,
                              exc.code)
        return
    pump = asyncio.create_task(connection.pump_events(after), name="ws-events")
    reader = asyncio.create_task(connection.read_frames(), name="ws-frames")
    try:
        done, _ = await asyncio.wait({pump, reader}, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            error = task.exception()
            if error is not None and not isinstance(error, WebSocketDisconnect | RuntimeError):
                logger.warning("websocket task failed", exc_info=error)
    finally:
        for task in (pump, reader):
            task.cancel()
        await asyncio.gather(pump, reader, return_exceptions=True)
