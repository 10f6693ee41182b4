"""``SessionManager``: the facade over durable sessions, each with at most one warm CLI
process.

Statuses::

    starting -> idle <-> running          (a process is attached)
    idle -> stopped                       (idle timeout or LRU eviction; resumes later)
    stopped/failed -> starting            (a message arrives: spawn with resume)
    starting -> failed                    (the CLI could not start)
    any -> expired                        (TTL passed; history stays readable)
    any -> ended                          (DELETE; history stays unless purged)

Turns run one at a time per session, in the order they were sent. Every change is an
event appended to the session's log before anyone sees it.

The manager creates, reads, changes and closes sessions and accepts their prompts; the
work is done by its parts: :class:`Admission` (caps, budgets, policy),
:class:`TurnRunner` (queues and turns), :class:`ProcessSupervisor` (CLI processes) and
:class:`Reaper` (idle processes, expiry).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from claude_agent_sdk import project_key_for_directory

from claude_gateway.concurrency import KeyedLocks
from claude_gateway.errors import (
    ErrorCode,
    SessionEnded,
    Unavailable,
)
from claude_gateway.events.envelope import EventType
from claude_gateway.events.log import EventLog
from claude_gateway.runtime.agent import AgentFactory
from claude_gateway.runtime.process_pool import ProcessPool
from claude_gateway.runtime.sdk_agent import sdk_agent_factory
from claude_gateway.services.auth import ANONYMOUS, Principal
from claude_gateway.services.permissions import PermissionBroker
from claude_gateway.services.prompts import prompt_blocks
from claude_gateway.services.sessions.admission import Admission
from claude_gateway.services.sessions.cluster import Routing, Sweeper, TurnWatch
from claude_gateway.services.sessions.creation import SessionRecords
from claude_gateway.services.sessions.inbox import Inbox, raise_if_error
from claude_gateway.services.sessions.options import SessionCreate
from claude_gateway.services.sessions.reads import SessionReads
from claude_gateway.services.sessions.reaper import Reaper
from claude_gateway.services.sessions.recovery import Orphans, recover_after_restart
from claude_gateway.services.sessions.remote import RemoteCommands, fill_in
from claude_gateway.services.sessions.runner import TurnRunner
from claude_gateway.services.sessions.state import (
    CLOSED_STATUSES,
    DuplicateClientId,
    LiveSession,
    LiveSessions,
    PendingTurn,
    SessionStatus,
    TurnStatus,
    failure,
)
from claude_gateway.services.sessions.supervisor import ProcessSupervisor
from claude_gateway.services.workspace_locks import WorkspaceLocks
from claude_gateway.services.workspaces import (
    home_dir,
    resolve_inside,
)
from claude_gateway.settings import Settings
from claude_gateway.storage.base import Store
from claude_gateway.storage.records import (
    SessionRecord,
)
from claude_gateway.storage.transcripts import TranscriptStore
from claude_gateway.wire import session_to_api

logger = logging.getLogger("claude_gateway.sessions")

def now() -> datetime:
    return datetime.now(UTC)


class SessionManager(RemoteCommands, SessionReads):
    """Creates sessions, runs their turns, and keeps their processes within bounds."""

    def __init__(self, settings: Settings, store: Store, events: EventLog, *,
                 cli_path: Path, cli_env: dict[str, str],
                 cli_binary: Path | None = None,
                 agent_factory: AgentFactory = sdk_agent_factory) -> None:
        self.settings = settings
        self.store = store
        self.events = events
        self.transcripts = TranscriptStore(store)
        self.permissions = PermissionBroker(store, events,
                                            timeout_seconds=settings.permission_timeout_seconds)
        self.locks = WorkspaceLocks(None if settings.single_node else store,
                                    node_id=settings.node_id, ttl=settings.lease_ttl_seconds)
        pool = ProcessPool(settings.max_processes, settings.data_dir / "pids",
                           binary=cli_binary or cli_path)
        self._live = LiveSessions(pool)
        self.admission = Admission(settings, store)
        self.records = SessionRecords(settings, store, self.admission, self.locks)
        self.supervisor = ProcessSupervisor(
            settings, store, events, self._live, pool, permissions=self.permissions,
            transcripts=self.transcripts, cli_path=cli_path, cli_env=cli_env,
            agent_factory=agent_factory)
        self.runner = TurnRunner(events, self._live, self.supervisor, self.admission,
                                 self.permissions, self.locks)
        self.reaper = Reaper(settings, store, self._live, self.supervisor,
                             expire=lambda record: self._close(record, SessionStatus.EXPIRED,
                                                               "expired"))
        self._naming = KeyedLocks()
        """One creator at a time per (owner, X-Session-Id) name."""
        self._draining = False
        events.fence_of = self._live.fence_of
        self.supervisor.on_takeover = self.runner.take_over
        self.inbox = Inbox(store, node_id=settings.node_id,
                           lease_ttl=settings.lease_ttl_seconds,
                           poll_seconds=settings.poll_seconds, execute=self.execute)
        self.routing = Routing(self.supervisor.leases, self.inbox,
                               poll_seconds=settings.poll_seconds,
                               take_over=self.runner.take_over)
        self.watch = TurnWatch(events)
        self.sweeper = Sweeper(store, node_id=settings.node_id,
                               interval=settings.lease_ttl_seconds / 3,
                               take=self.take_over_left)
        self.inbox.on_sweep = self.sweeper.wake.set
        self.supervisor.on_handed_over = self.watch.follow

    # -- lifecycle -----------------------------------------------------------------
    async def start(self) -> None:
        """Recover from a previous run, then start the reaper and the spares."""
        self.supervisor.pool.reap_leftovers()
        orphaned = Orphans(self.store, node_id=self.settings.node_id,
                           single_node=self.settings.single_node)
        await self.permissions.recover(orphaned)
        await recover_after_restart(self.store, self.events, self.runner, orphaned)
        self.reaper.start()
        await self.supervisor.start()
        if not self.settings.single_node:
            await self.inbox.start()
            self.sweeper.start()

    async def close(self) -> None:
        """Stop politely: take no new prompts, let the running and queued turns finish
        for up to ``drain_timeout_seconds``, then stop every process and worker (no
        orphans) and give this node's leases up."""
        self._draining = True
        await self.supervisor.leases.draining()
        await self.sweeper.stop()
        # With several nodes the queued turns are handed over (they stay queued in the
        # store, and another node runs them) rather than waited for.
        self.runner.handing_over = not self.settings.single_node
        if not self.settings.single_node:
            # Idle sessions go to other nodes at once, not at the end of the drain.
            for live in self._live.all():
                if live.idle and live.process is not None:
                    await self.supervisor.evict(live.id)
        await self.runner.drain(self.settings.drain_timeout_seconds)
        await self.reaper.stop()
        await self.supervisor.close()
        lives = self._live.all()
        for live in lives:
            live.closed = True
            live.queue.put_nowait(None)
            if live.current is not None:
                live.current.interrupt_requested = True  # it ends as GATEWAY_SHUTDOWN
        await asyncio.gather(*(self.supervisor.stop_process(live, "gateway_shutdown")
                               for live in lives), return_exceptions=True)
        await self.runner.stop_workers(lives)
        await self.supervisor.stop_all()
        await self.inbox.close()
        await self.watch.close()
        await self.locks.close()

    @property
    def draining(self) -> bool:
        """Stopping: no new prompts, turns finishing (see :meth:`close`)."""
        return self._draining

    async def reap(self) -> None:
        """Run the reaper now (it also runs every ``reaper_interval_seconds``)."""
        await self.reaper.reap()

    # -- create / patch / delete -----------------------------------------------------
    async def create(self, request: SessionCreate, principal: Principal = ANONYMOUS
                     ) -> SessionRecord:
        record = await self.records.new(request, principal)
        session_id = record.id
        await self.events.emit(session_id, EventType.SESSION_CREATED,
                               {"session": session_to_api(record)})
        live = self._live.open(session_id)
        fill_in(live, record)
        live.model, live.model_known = record.model, True
        # Start the process now so the first message finds it warm.
        self.supervisor.prestart(live)
        return record

    async def patch(self, session_id: str, owner: str | None, *, model: str | None = None,
                    permission_mode: str | None = None,
                    metadata: dict[str, Any] | None = None) -> SessionRecord:
        record = await self.get(session_id, owner)
        if permission_mode is not None:
            self.admission.check_mode(permission_mode)
        if await self._forwarded(session_id, "patch", {
                "owner": owner, "model": model, "permissionMode": permission_mode,
                "metadata": metadata}) is not None:
            return await self.get(session_id, owner)
        live = self._live.open(session_id)
        # One change at a time per session: a PATCH racing a DELETE either lands before
        # the session ends or gets 409, never an update after session.ended.
        async with live.control:
            record = await self.get(session_id, owner)
            if live.closed or record.status in CLOSED_STATUSES:
                raise SessionEnded.of(session_id, live.closed_status if live.closed
                                   else record.status)
            changes: dict[str, Any] = {}
            if permission_mode is not None:
                changes["permission_mode"] = permission_mode
            if model is not None:
                changes["model"] = model
            if metadata is not None:
                changes["metadata"] = metadata
            if not changes:
                return record
            # Live first: a change the running CLI refuses is not stored either.
            await self.supervisor.apply_live(live, model, permission_mode,
                                             previous_model=record.model)
            await self.store.update_session(session_id, **changes)
            if model is not None:
                live.model, live.model_known = model, True
            await self.events.emit(session_id, EventType.SESSION_UPDATED, {
                "model": model, "permissionMode": permission_mode, "metadata": metadata})
            updated = await self.get(session_id, owner)
        self._live.forget_if_idle(live)
        return updated

    async def delete(self, session_id: str, owner: str | None, *, purge: bool = False) -> None:
        record = await self.get(session_id, owner)
        if await self._forwarded(session_id, "delete", {"owner": owner,
                                                         "purge": purge}) is not None:
            return
        if record.status not in CLOSED_STATUSES:
            await self._close(record, SessionStatus.ENDED, "deleted")
        if purge:
            live = self._live.pop(session_id)
            if live is not None and live.worker is not None:
                # Its last turn records how it ended before the rows go (the worker
                # reports its own failures).
                await asyncio.wait({live.worker}, timeout=10)
            self.events.close_session(session_id)
            if record.claude_session_id:
                try:
                    cwd = resolve_inside(home_dir(self.settings.workspace_root, record.home),
                                         record.workspace)
                    await self.transcripts.delete({
                        "project_key": project_key_for_directory(str(cwd)),
                        "session_id": record.claude_session_id})
                except Exception:
                    # The session's rows go anyway; a transcript left is only storage.
                    logger.warning("could not delete a purged session's transcript",
                                   exc_info=True, extra={"session_id": session_id})
            await self.store.delete_session(session_id)

    async def session_named(self, principal: Principal, external_id: str,
                            create: SessionCreate) -> SessionRecord:
        """The caller's session called ``external_id``; created (from ``create``) if new."""
        async with self._naming.hold((principal.name, external_id)):
            record = await self.store.session_by_external_id(principal.name, external_id)
            if record is None:
                create.external_id = external_id
                record = await self.create(create, principal)
            return record

    async def end(self, record: SessionRecord, reason: str) -> None:
        """End a session (status ``ended``) and stop its process."""
        await self._close(record, SessionStatus.ENDED, reason)

    async def _close(self, record: SessionRecord, status: SessionStatus, reason: str) -> None:
        live = self._live.open(record.id)
        async with live.control:
            if live.closed:
                return  # closed meanwhile (two DELETEs, or a DELETE and the reaper)
            live.closed, live.closed_status = True, status
            await self.store.update_session(record.id, status=status, ended_at=now())
            await self.runner.clear_queue(live, TurnStatus.FAILED, failure(
                ErrorCode.SESSION_ENDED, f"The session was {reason}."))
            live.queue.put_nowait(None)  # wakes the worker to end
            current = live.current
            if current is not None:
                current.interrupt_requested = True
            await self.permissions.cancel_session(record.id, "session_ended",
                                                  f"The session was {reason}.")
            await self.supervisor.stop_process(live, reason)
            if current is not None:
                # Let the running turn record how it ended before the session's last word.
                await asyncio.wait({current.done}, timeout=10)
            self.locks.release(record.workspace_path, record.id)
            await self.events.emit(record.id, EventType.SESSION_ENDED, {"reason": reason,
                                                                "status": str(status)})
        self._live.forget_if_idle(live)

    # -- prompts -------------------------------------------------------------------
    async def send_message(self, session_id: str, owner: str | None,
                           prompt: str | list[Any], *, client_id: str | None = None,
                           turn_id: str | None = None) -> PendingTurn:
        if self._draining:
            raise Unavailable("The gateway is stopping: send the prompt again in a moment "
                              "(another node, or this one restarted, will take it)")
        live = self._live.get(session_id)
        if live is None or not live.owner_known or (owner is not None and live.owner != owner):
            record = await self.get(session_id, owner)
            if record.status in CLOSED_STATUSES:
                raise SessionEnded.of(session_id, record.status)
            live = self._live.open(session_id)
            fill_in(live, record)
        with live.in_use():
            return await self._send(live, owner, prompt, client_id, turn_id)

    async def _send(self, live: LiveSession, owner: str | None, prompt: str | list[Any],
                    client_id: str | None, turn_id: str | None) -> PendingTurn:
        session_id = live.id
        if live.closed:
            raise SessionEnded.of(session_id, live.closed_status)
        blocks = prompt_blocks(prompt, self.settings.max_image_bytes)
        if not isinstance(prompt, str):
            prompt = blocks  # images normalized to base64 sources
        turn_id = turn_id or self.runner.new_turn_id()
        claimed_here = False
        # One node per SQLite database: only on PostgreSQL can another node hold it.
        if not self.settings.single_node and live.fence is None:
            answer = await self.routing.claim_or_forward(live, "prompt", {
                "owner": owner, "prompt": prompt, "clientId": client_id, "turnId": turn_id})
            if answer is not None:  # the node that runs the session queued it
                raise_if_error(answer)
                if "duplicate" in answer:
                    raise DuplicateClientId(answer["duplicate"])
                return self.watch.pending(session_id, answer["turnId"], answer["queuedSeq"],
                                          prompt)
            claimed_here = True
            if await self.store.get_turn(turn_id) is not None:
                # A node that is gone now took this prompt before it died: it is queued
                # here now (or failed with NODE_LOST).
                return self.watch.pending(session_id, turn_id, 0, prompt)
        try:
            return await self._queue_here(live, prompt, blocks, turn_id, client_id)
        except BaseException:
            if claimed_here and live.process is None and not live.busy_turns():
                await self.supervisor.leases.release(live)
            raise

    async def _queue_here(self, live: LiveSession, prompt: str | list[Any],
                          blocks: list[dict[str, Any]], turn_id: str,
                          client_id: str | None) -> PendingTurn:
        session_id = live.id
        busy = (self._live.turns_of(live.owner) if self.settings.single_node
                else await self.store.count_busy_turns(live.owner))
        await self.admission.check_turn(live.owner, busy)
        # Everything that can refuse the prompt comes before the workspace lock, so a
        # refused prompt never holds the workspace.
        if client_id is not None:
            if client_id in live.client_turns:
                raise DuplicateClientId(live.client_turns[client_id])
            live.client_turns[client_id] = turn_id  # claimed before any await
            existing = await self.store.turn_by_client_id(session_id, client_id)
            if existing is not None:
                live.client_turns[client_id] = existing.id
                raise DuplicateClientId(existing.id)
        if not live.share_workspace:
            try:
                await self.locks.take(live.workspace, session_id)
            except BaseException:
                if client_id is not None:
                    live.client_turns.pop(client_id, None)
                raise
        return await self.runner.enqueue(live, prompt, blocks, turn_id, client_id)

    async def interrupt(self, session_id: str, owner: str | None, *,
                        clear_queue: bool = False) -> bool:
        await self.get(session_id, owner)
        answer = await self._forwarded(session_id, "interrupt", {"owner": owner,
                                                                  "clearQueue": clear_queue})
        if answer is not None:
            return bool(answer.get("interrupted"))
        live = self._live.get(session_id)
        if live is None:
            return False
        if clear_queue:
            await self.runner.clear_queue(live, TurnStatus.INTERRUPTED,
                                          {"reason": "queue_cleared"})
        return await self.runner.interrupt(live)

    async def _forwarded(self, session_id: str, kind: str, payload: dict[str, Any]
                         ) -> dict[str, Any] | None:
        """With several nodes: the answer of the node running the session, which acted
        on the command (its errors raised here); None: act here."""
        if self.settings.single_node:
            return None
        answer = await self.routing.forward_if_elsewhere(self._live.get(session_id),
                                                         session_id, kind, payload)
        return None if answer is None else raise_if_error(answer)
