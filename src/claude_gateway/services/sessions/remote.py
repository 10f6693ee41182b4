"""The cluster side of :class:`SessionManager`: commands other nodes forward here, and
sessions this node takes over from nodes that are gone (see :mod:`.cluster`)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from claude_gateway.errors import Unavailable
from claude_gateway.services.permissions import PermissionBroker
from claude_gateway.services.sessions.cluster import HANDOVER, Routing, TurnWatch
from claude_gateway.services.sessions.inbox import raise_if_error
from claude_gateway.services.sessions.options import SessionOptions
from claude_gateway.services.sessions.runner import TurnRunner
from claude_gateway.services.sessions.state import (
    CLOSED_STATUSES,
    DuplicateClientId,
    LiveSession,
    LiveSessions,
    PendingTurn,
    SessionStatus,
)
from claude_gateway.services.sessions.supervisor import ProcessSupervisor
from claude_gateway.settings import Settings
from claude_gateway.storage.base import Store
from claude_gateway.storage.records import CommandRecord, PermissionRecord, SessionRecord

logger = logging.getLogger("claude_gateway.cluster")


class RemoteCommands:
    """Mixed into :class:`SessionManager` (which sets these attributes and methods)."""

    settings: Settings
    store: Store
    permissions: PermissionBroker
    supervisor: ProcessSupervisor
    runner: TurnRunner
    routing: Routing
    watch: TurnWatch
    _live: LiveSessions
    _draining: bool

    if TYPE_CHECKING:
        async def send_message(self, session_id: str, owner: str | None, prompt: Any, *,
                               client_id: str | None = None, turn_id: str | None = None
                               ) -> PendingTurn: ...
        async def interrupt(self, session_id: str, owner: str | None, *,
                            clear_queue: bool = False) -> bool: ...
        async def patch(self, session_id: str, owner: str | None, *, model: str | None = None,
                        permission_mode: str | None = None,
                        metadata: dict[str, Any] | None = None) -> SessionRecord: ...
        async def delete(self, session_id: str, owner: str | None, *, purge: bool = False
                         ) -> None: ...

    # -- a command from another node -------------------------------------------------
    async def execute(self, command: CommandRecord) -> dict[str, Any]:
        """Act on a command another node forwarded, as if its client had sent it here."""
        p = command.payload
        owner = p.get("owner")
        if command.kind == "prompt":
            if self._draining:
                return HANDOVER
            try:
                pending = await self.send_message(
                    command.session_id, owner, p["prompt"], client_id=p.get("clientId"),
                    turn_id=p.get("turnId"))
            except DuplicateClientId as duplicate:
                return {"duplicate": duplicate.turn_id}
            return {"turnId": pending.id, "queuedSeq": pending.queued_seq}
        if command.kind == "interrupt":
            return {"interrupted": await self.interrupt(
                command.session_id, owner, clear_queue=bool(p.get("clearQueue")))}
        if command.kind == "patch":
            await self.patch(command.session_id, owner, model=p.get("model"),
                             permission_mode=p.get("permissionMode"),
                             metadata=p.get("metadata"))
            return {}
        if command.kind == "delete":
            await self.delete(command.session_id, owner, purge=bool(p.get("purge")))
            return {}
        if command.kind == "permission":
            record = await self.answer_permission(command.session_id, p["requestId"],
                                                  **p["answer"])
            return {"status": record.status}
        raise ValueError(f"unknown command {command.kind!r}")

    # -- answering a permission request, wherever it waits ----------------------------------
    async def answer_permission(self, session_id: str, request_id: str, **answer: Any
                                ) -> PermissionRecord:
        """A client's answer to a permission request: taken here if the request waits
        here, else sent to the node whose agent waits on it."""
        if not self.settings.single_node and not self.permissions.holds(request_id):
            forwarded = await self.routing.forward_if_elsewhere(
                self._live.get(session_id), session_id, "permission",
                {"requestId": request_id, "answer": answer})
            if forwarded is not None:
                raise_if_error(forwarded)
                record = await self.store.get_permission(request_id)
                if record is None:
                    raise Unavailable("The permission request vanished")
                return record
        return await self.permissions.answer(session_id, request_id, **answer)

    # -- sessions a gone node left ----------------------------------------------------------
    async def take_over_left(self, session_id: str) -> None:
        """Take over a session whose node is gone: its running turn fails (NODE_LOST),
        its queued turns run here; with nothing to run it is ``stopped``, lease given
        back."""
        record = await self.store.get_session(session_id)
        if record is None:
            return
        live = self._live.open(session_id)
        async with live.lock:
            fill_in(live, record)
            claimed = await self.supervisor.leases.claim(live)
            if not claimed:
                live.spawn_error = None
                self._live.forget_if_idle(live)
                return
            logger.info("taking over a session left by a node that is gone",
                        extra={"session_id": session_id})
            await self.runner.take_over(live)
            if (live.process is None and not live.queued and live.current is None
                    and not live.users):  # (a request here is about to use it)
                status = (record.status if record.status in CLOSED_STATUSES
                          else SessionStatus.STOPPED)
                await self.store.update_session(session_id, fence=live.fence, status=status)
                await self.supervisor.leases.release(live)
        self._live.forget_if_idle(live)


def fill_in(live: LiveSession, record: Any) -> None:
    """What a live session needs to know of its record."""
    if not live.owner_known:
        live.owner, live.owner_known = record.owner, True
        live.workspace = record.workspace_path
        live.share_workspace = SessionOptions.from_json(record.options).share_workspace
