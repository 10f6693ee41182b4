"""``PermissionBroker``: the CLI's ``can_use_tool`` questions, answered over the network.

Each question becomes a persisted request and a ``permission.requested`` event; the
tool call waits until a client answers (REST or WebSocket), the timeout passes, or the
turn is interrupted. Every request is resolved exactly once, with a
``permission.resolved`` event.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from claude_agent_sdk import PermissionResultAllow, PermissionResultDeny, ToolPermissionContext
from claude_agent_sdk.types import CanUseTool, PermissionResult, PermissionUpdate

from claude_gateway.errors import (
    InvalidRequest,
    PermissionAlreadyResolved,
    PermissionNotFound,
    SessionOnAnotherNode,
)
from claude_gateway.events.envelope import EventType
from claude_gateway.events.log import EventLog
from claude_gateway.runtime.agent import ProcessBinding
from claude_gateway.storage.base import Store
from claude_gateway.storage.records import PermissionRecord, StateChange
from claude_gateway.wire import decision_to_api, permission_to_api, waiting_to_api

logger = logging.getLogger("claude_gateway.permissions")

DEFAULT_DENY_MESSAGE = "The user denied this tool call."


def now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Decision:
    """How a request was resolved."""

    status: str
    """``allowed``, ``denied``, ``expired`` or ``cancelled``."""
    by: str
    """``client``, ``timeout``, ``interrupt``, ``session_ended`` or ``gateway``."""
    updated_input: dict[str, Any] | None = None
    message: str | None = None
    interrupt: bool = False
    apply_suggestions: bool = False


@dataclass
class Waiting:
    record: PermissionRecord
    suggestions: list[PermissionUpdate]
    future: asyncio.Future[Decision]
    resolved: bool = False
    recorded: asyncio.Event = field(default_factory=asyncio.Event)


def session_only(suggestions: list[PermissionUpdate]) -> list[PermissionUpdate]:
    """The suggested updates a key may apply: for its own session only.

    The CLI also suggests writing rules into settings files, and the user settings live
    in the CLI config dir every key shares: one key's "always allow" must not become
    everyone's. Extra directories are left out too (they would reach past the key's own).
    """
    return [replace(s, destination="session") for s in suggestions
            if s.type not in ("addDirectories", "removeDirectories")]


class PermissionBroker:
    """Pending permission requests of every session, with their timeouts."""

    def __init__(self, store: Store, events: EventLog, *, timeout_seconds: float) -> None:
        self.store = store
        self.events = events
        self.timeout_seconds = timeout_seconds
        self._waiting: dict[str, Waiting] = {}

    async def recover(self, orphaned: Callable[[str], Awaitable[bool]]) -> None:
        """Requests left pending by a node that is gone can never be answered: expire
        them (``orphaned(session_id)``: no live node runs that session)."""
        for record in await self.store.list_permissions(statuses=["pending"]):
            if not await orphaned(record.session_id):
                continue
            decision = Decision("expired", "gateway", message="The gateway restarted while "
                                "this request was waiting.")
            await self._record(record, decision)

    def callback(self, binding: ProcessBinding) -> CanUseTool:
        """The ``can_use_tool`` given to a CLI process; it asks for the session it serves."""

        async def can_use_tool(tool_name: str, tool_input: dict[str, Any],
                               context: ToolPermissionContext) -> PermissionResult:
            if binding.session_id is None:
                return PermissionResultDeny(message="This process serves no session yet.")
            refusal = binding.fence.refusal(tool_input) if binding.fence else None
            return await self.ask(binding.session_id, binding.current_turn(), tool_name,
                                  tool_input, context, non_interactive=binding.non_interactive,
                                  refusal=refusal)

        return can_use_tool

    async def ask(self, session_id: str, turn_id: str | None, tool_name: str,
                  tool_input: dict[str, Any], context: ToolPermissionContext, *,
                  non_interactive: bool = False, refusal: str | None = None
                  ) -> PermissionResult:
        """Ask the session's client (or decide by policy: ``refusal`` denies at once, and so
        does a client that cannot answer)."""
        created = now()
        expires = (created + timedelta(seconds=self.timeout_seconds)
                   if self.timeout_seconds > 0 else None)
        details = {
            "toolUseId": context.tool_use_id,
            "title": context.title,
            "displayName": context.display_name,
            "description": context.description or context.title,
            "blockedPath": context.blocked_path,
            "decisionReason": context.decision_reason,
            "agentId": context.agent_id,
            "suggestions": [s.to_dict() for s in context.suggestions],
        }
        record = PermissionRecord(
            id=f"perm_{uuid.uuid4().hex}", session_id=session_id, tool_name=tool_name,
            input=tool_input, status="pending", created_at=created, turn_id=turn_id,
            details={k: v for k, v in details.items() if v not in (None, [])},
            expires_at=expires)
        waiting = Waiting(record, list(context.suggestions),
                          asyncio.get_running_loop().create_future())
        self._waiting[record.id] = waiting
        try:
            await self.events.emit(session_id, EventType.PERMISSION_REQUESTED,
                                   permission_to_api(record), turn_id,
                                   StateChange(new_permission=record))
            if refusal is not None:
                decision = await self._resolve(waiting, Decision("denied", "policy",
                                                                 message=refusal))
                return self._result(waiting, decision)
            if non_interactive:
                decision = await self._resolve(waiting, Decision(
                    "denied", "policy", message=(
                        f"Permission denied: {tool_name} needs approval, and this session's "
                        "client cannot give it (its permission mode does not allow it).")))
                return self._result(waiting, decision)
            try:
                if expires is None:
                    decision = await asyncio.shield(waiting.future)
                else:
                    decision = await asyncio.wait_for(asyncio.shield(waiting.future),
                                                      self.timeout_seconds)
            except TimeoutError:
                decision = await self._resolve(waiting, Decision(
                    "expired", "timeout", message=(
                        f"Permission denied: nobody answered within "
                        f"{self.timeout_seconds:g} seconds.")))
            await waiting.recorded.wait()
        except asyncio.CancelledError:
            # The CLI withdrew the question (the turn was interrupted): record that,
            # whatever happens to this task, then let the cancellation go on.
            try:
                await asyncio.shield(self._resolve(waiting, Decision(
                    "cancelled", "interrupt", message="The turn was interrupted.")))
            except Exception:
                logger.exception("could not record a withdrawn permission request",
                                 extra={"session_id": record.session_id})
            raise
        finally:
            self._waiting.pop(record.id, None)
        return self._result(waiting, decision)

    @staticmethod
    def _result(waiting: Waiting, decision: Decision) -> PermissionResult:
        if decision.status == "allowed":
            return PermissionResultAllow(
                updated_input=decision.updated_input,
                updated_permissions=(session_only(waiting.suggestions)
                                     if decision.apply_suggestions else None))
        return PermissionResultDeny(message=decision.message or DEFAULT_DENY_MESSAGE,
                                    interrupt=decision.interrupt)

    async def _resolve(self, waiting: Waiting, decision: Decision) -> Decision:
        """Resolve once: the first decision wins; later ones get the first back."""
        if waiting.resolved:
            await waiting.recorded.wait()
            return waiting.future.result()
        waiting.resolved = True
        try:
            await self._record(waiting.record, decision)
        finally:
            waiting.recorded.set()
            if not waiting.future.done():
                waiting.future.set_result(decision)
        return decision

    async def _record(self, record: PermissionRecord, decision: Decision) -> None:
        resolved = now()
        resolution = decision_to_api(decision)
        record.status, record.resolved_at, record.resolution = (
            decision.status, resolved, resolution)
        await self.events.emit(
            record.session_id, EventType.PERMISSION_RESOLVED,
            {"requestId": record.id, "toolName": record.tool_name, **resolution},
            record.turn_id, StateChange(permission_id=record.id, permission={
                "status": decision.status, "resolved_at": resolved,
                "resolution": resolution}))

    async def answer(self, session_id: str, request_id: str, *, decision: str,
                     updated_input: dict[str, Any] | None = None, message: str | None = None,
                     interrupt: bool = False, apply_suggestions: bool = False
                     ) -> PermissionRecord:
        """A client's answer. 404 if unknown to this session, 409 if already resolved."""
        if decision not in ("allow", "deny"):
            raise InvalidRequest("decision must be 'allow' or 'deny'",
                                 details={"decision": decision})
        waiting = self._waiting.get(request_id)
        if waiting is None or waiting.record.session_id != session_id:
            record = await self.store.get_permission(request_id)
            if record is None or record.session_id != session_id:
                raise PermissionNotFound(request_id)
            lease = await self.store.lease(session_id)
            if record.status == "pending" and lease is not None:
                raise SessionOnAnotherNode(session_id, lease.node_id)  # it waits there
            raise PermissionAlreadyResolved(request_id, record.status)
        if waiting.resolved:
            raise PermissionAlreadyResolved(request_id, waiting.record.status
                                            if waiting.recorded.is_set() else "being resolved")
        if decision == "allow":
            chosen = Decision("allowed", "client", updated_input=updated_input,
                              apply_suggestions=apply_suggestions)
        else:
            chosen = Decision("denied", "client", message=message or DEFAULT_DENY_MESSAGE,
                              interrupt=interrupt)
        resolved = await self._resolve(waiting, chosen)
        if resolved is chosen and chosen.apply_suggestions:
            modes = [s.mode for s in session_only(waiting.suggestions)
                     if s.type == "setMode" and s.mode]
            if modes:
                # The CLI switches mode now; the session object says so too (and a process
                # started later for this session starts in it).
                await self.store.update_session(session_id, permission_mode=modes[-1])
                await self.events.emit(session_id, EventType.SESSION_UPDATED, {
                    "permissionMode": modes[-1], "by": "permission",
                    "requestId": request_id})
        return waiting.record

    async def cancel_session(self, session_id: str, by: str, message: str) -> int:
        """Deny every pending request of a session (interrupt, deletion)."""
        cancelled = 0
        for waiting in [w for w in self._waiting.values() if w.record.session_id == session_id]:
            if not waiting.resolved:
                await self._resolve(waiting, Decision("cancelled", by, message=message,
                                                      interrupt=True))
                cancelled += 1
        return cancelled

    def waiting(self, session_id: str, turn_id: str | None = None) -> list[dict[str, Any]]:
        """Requests a session's agent is waiting on right now (of one turn, if given):
        what a client needs to answer them."""
        return [waiting_to_api(w.record) for w in self._waiting.values()
                if w.record.session_id == session_id and not w.resolved
                and (turn_id is None or w.record.turn_id == turn_id)]

    def pending_here(self) -> int:
        """Requests waiting for an answer on this node."""
        return sum(1 for w in self._waiting.values() if not w.resolved)

    def holds(self, request_id: str) -> bool:
        """Whether the request waits on this node."""
        return request_id in self._waiting

    def waiting_count(self) -> int:
        """Requests held in memory (answered ones go once their decision is recorded)."""
        return len(self._waiting)

    async def pending(self, session_id: str) -> list[PermissionRecord]:
        return await self.store.list_permissions(session_id=session_id, statuses=["pending"])
