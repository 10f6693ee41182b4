"""The process supervisor: each live session's CLI process, from spawn to exit.

It spawns processes (or adopts a warm spare), keeps their count under the cap by
evicting the least recently used idle one, reacts to a process that exits on its own,
and stops them. It owns the :class:`ProcessPool` and the :class:`SparePool`; nothing
else starts or stops a CLI.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

from claude_gateway.errors import ErrorCode, LiveChangeRefused
from claude_gateway.events.envelope import EventType
from claude_gateway.events.log import EventLog
from claude_gateway.observability.tracing import NO_TRACING, Tracing
from claude_gateway.runtime.agent import (
    AgentError,
    AgentFactory,
    AgentProcess,
    ProcessBinding,
    ProcessExit,
    stop_quietly,
)
from claude_gateway.runtime.options import AgentSpec, Launch
from claude_gateway.runtime.process_pool import ProcessPool
from claude_gateway.services.permissions import PermissionBroker
from claude_gateway.services.sessions.launcher import ProcessLauncher
from claude_gateway.services.sessions.leases import LeaseKeeper
from claude_gateway.services.sessions.options import SessionOptions
from claude_gateway.services.sessions.spare_supply import SpareSupply
from claude_gateway.services.sessions.state import (
    CLOSED_STATUSES,
    LiveSession,
    LiveSessions,
    PendingTurn,
    SessionStatus,
    TurnOutcome,
    TurnStatus,
    failure,
)
from claude_gateway.services.workspaces import (
    Placement,
)
from claude_gateway.settings import Settings
from claude_gateway.storage.base import Store
from claude_gateway.storage.records import SessionRecord
from claude_gateway.storage.transcripts import TranscriptStore

logger = logging.getLogger("claude_gateway.sessions")


async def _nothing(live: LiveSession) -> None:
    return None

CONTROL_TIMEOUT_SECONDS = 10.0
"""How long a live change (model, permission mode) may take before the process is
restarted with it instead."""


class ProcessSupervisor:
    tracing: Tracing = NO_TRACING

    def __init__(self, settings: Settings, store: Store, events: EventLog,
                 live: LiveSessions, pool: ProcessPool, *, permissions: PermissionBroker,
                 transcripts: TranscriptStore, cli_path: Path, cli_env: dict[str, str],
                 agent_factory: AgentFactory) -> None:
        self.settings = settings
        self.store = store
        self.events = events
        self.live = live
        self.pool = pool
        self.launcher = ProcessLauncher(
            settings, permissions=permissions, transcripts=transcripts, cli_path=cli_path,
            cli_env=cli_env, agent_factory=agent_factory, on_exit=self._on_exit)
        self.supply = SpareSupply(settings, self.launcher, pool)
        self.spares = self.supply.pool
        self.leases = LeaseKeeper(store, live, node_id=settings.node_id,
                                  ttl=settings.lease_ttl_seconds, on_lost=self.fenced_out)
        self._stopping: set[asyncio.Future[None]] = set()
        self.closing = False
        self.on_takeover: Callable[[LiveSession], Awaitable[None]] = _nothing
        self.on_handed_over: Callable[[str, PendingTurn], None] = lambda _s, _p: None
        """Called for each turn still queued here when another node took the session
        over (the manager follows it there)."""
        """Called with the session's lock held when this node takes a session over from
        another (the manager sets it: the turns left there fail or run here)."""

    async def start(self) -> None:
        """Say this node is alive (and keep saying it), then start warming spares."""
        await self.leases.start()
        self.spares.fill()

    async def close(self) -> None:
        """Stop every process, spares included (no orphans)."""
        self.closing = True
        await self.spares.close()
        spawns = [live.spawning for live in self.live.all() if live.starting]
        for spawn in spawns:
            if spawn is not None:
                spawn.cancel()
        await asyncio.gather(*(s for s in spawns if s is not None), return_exceptions=True)

    async def stop_all(self) -> None:
        """After close() and the workers: whatever is still in the pool is stopped too."""
        await asyncio.gather(*self._stopping, return_exceptions=True)
        for session_id, process in self.pool.live.items():
            await process.stop()
            await self.pool.release(session_id, process)
        await self.leases.stop()

    def stopping_count(self) -> int:
        """Processes being stopped right now."""
        return len(self._stopping)

    # -- getting a process -------------------------------------------------------------
    def prestart(self, live: LiveSession) -> None:
        """Start a process for ``live`` in the background, into a free slot only (a
        session nobody has written to yet must not evict a warm one)."""
        if live.closed or self.closing:
            return
        if not live.starting:
            live.spawning = asyncio.create_task(self.spawn(live, prestart=True))

    async def ensure_process(self, live: LiveSession) -> AgentProcess | None:
        """The session's live process: the one starting, the warm one, or a new one."""
        if live.spawning is not None:
            spawning = live.spawning
            process = await spawning
            if live.spawning is spawning:
                live.spawning = None
            if process is not None and process.alive:
                return process
        if live.process is not None:
            if live.process.alive:
                return live.process
            # It died between turns, before anyone read its exit: record and release it.
            dead = live.process
            await self.drop_process(live, dead, dead.exit or ProcessExit(False, "exited"))
        return await self.spawn(live)

    async def spawn(self, live: LiveSession, *, prestart: bool = False
                    ) -> AgentProcess | None:
        """Start the session's process (None if it is closed, the CLI failed to start, or
        for a prestart, no slot was free)."""
        async with live.lock:
            if live.process is not None and live.process.alive:
                return live.process
            if self.live.get(live.id) is not live:
                # Forgotten meanwhile (it was idle): a process started for it now would
                # belong to nothing the gateway holds, and nobody would stop it.
                return None
            record = await self.store.get_session(live.id)
            if record is None or live.closed or record.status in CLOSED_STATUSES:
                return None
            claimed = await self.leases.claim(live)
            if not claimed:
                return None  # another node runs it (live.spawn_error says which)
            if isinstance(claimed, str):
                await self.on_takeover(live)  # taken over from a node that is gone
            if prestart:
                if not self.pool.try_reserve(live.id):
                    await self.store.update_session(live.id, fence=live.fence,
                                                    status=SessionStatus.STOPPED)
                    await self.leases.release(live)
                    return None
            else:
                await self.store.update_session(live.id, fence=live.fence,
                                                status=SessionStatus.STARTING)
                await self.pool.reserve(live.id, self.live.is_idle, self.evict)
            options = SessionOptions.from_json(record.options)
            spec = AgentSpec(record.model, record.permission_mode, options.agent)
            if record.claude_session_id:
                launch = Launch(resume=record.claude_session_id)
            elif options.fork_of:
                launch = Launch(resume=options.fork_of, fork=True)
            else:
                launch = Launch(session_id=str(uuid.uuid4()))
            binding = ProcessBinding(live.id, live.current_turn_id,
                                     non_interactive=options.non_interactive)
            started = time.monotonic()
            process = await self.supply.adopt(record, spec, launch, binding)
            adopted = process is not None
            if process is None:
                process = await self._start_new(live, record, spec, launch, binding)
                if process is None:
                    await self.leases.release(live)
                    return None
            if live.closed:  # deleted while it started
                await self.pool.release(live.id)
                await process.stop()
                await self.leases.release(live)
                return None
            live.process = process
            live.spawn_error = None
            await self.pool.attach(live.id, process)
            await self.store.update_session(live.id, fence=live.fence,
                                            status=SessionStatus.RUNNING
                                            if live.current else SessionStatus.IDLE)
            await self.events.emit(live.id, EventType.PROCESS_STARTED, {
                "pid": process.pid, "resumed": launch.resume is not None,
                "forked": launch.fork, "spare": adopted,
                "startMs": round((time.monotonic() - started) * 1000)})
            return process

    async def fenced_out(self, live: LiveSession) -> None:
        """Another node took the session over: stop its CLI here at once, and tell whoever
        waits on this node. No write for the session is made (its fence is stale now,
        so any would fail)."""
        process, live.process = live.process, None
        if process is not None:
            logger.warning("stopping a CLI whose session another node took over",
                           extra={"session_id": live.id})
            await stop_quietly(process, "its session was taken over")
            await self.pool.release(live.id, process)
        lost = failure(ErrorCode.NODE_LOST,
                       "Another gateway node took this session over during the turn.")
        current = live.current
        if current is not None and not current.done.done():
            current.done.set_result(TurnOutcome(current.id, TurnStatus.FAILED, lost))
        for pending in live.queued:
            # Still queued in the store: the node that took the session over runs it.
            self.on_handed_over(live.id, pending)
        live.queued.clear()
        live.queue.put_nowait(None)

    async def _start_new(self, live: LiveSession, record: SessionRecord, spec: AgentSpec,
                         launch: Launch, binding: ProcessBinding) -> AgentProcess | None:
        starting: AgentProcess | None = None
        try:
            # Checked again at every start: the agent may have replaced its workspace
            # with a link since the session was created.
            starting = self.launcher.new_process(spec, Placement(record.home, record.workspace),
                                         launch, binding)
            with self.tracing.span("cli.spawn", {"session.id": live.id,
                                                 "cli.resume": launch.resume is not None}):
                await asyncio.wait_for(starting.start(), self.settings.spawn_timeout_seconds)
            return starting
        except BaseException as exc:
            await self.pool.release(live.id)
            if starting is not None:
                await stop_quietly(starting, "it failed to start")
            if not isinstance(exc, Exception):
                raise
            error = {"detail": f"{exc.__class__.__name__}: {exc}",
                     "stderr": starting.stderr_tail.text(8192) if starting else ""}
            live.spawn_error = error
            logger.warning("CLI process failed to start: %s", error["detail"],
                           extra={"session_id": live.id, "stderr": error["stderr"][-2000:]})
            await self.store.update_session(live.id, status=SessionStatus.FAILED)
            await self.events.emit(live.id, EventType.PROCESS_STOPPED,
                                   {"reason": "start_failed", **error})
            return None

    async def apply_live(self, live: LiveSession, model: str | None,
                         permission_mode: str | None, *, previous_model: str | None) -> None:
        """Change a live process's model and mode, before the change is stored.

        A process that refuses is stopped when idle (its next start reads the stored
        values); a busy one cannot be, so the change is refused (LiveChangeRefused) and
        a model it took already is set back."""
        process = self.pool.get(live.id)
        if process is None or not process.alive or (model is None and permission_mode is None):
            return
        model_set = False
        try:
            async with asyncio.timeout(CONTROL_TIMEOUT_SECONDS):
                if model is not None:
                    await process.set_model(model)
                    model_set = True
                if permission_mode is not None:
                    await process.set_permission_mode(permission_mode)
        except (AgentError, TimeoutError) as exc:
            if live.idle:
                logger.warning("the live process refused a change; it restarts with it",
                               exc_info=True, extra={"session_id": live.id})
                await self.stop_process(live, "settings_changed")
                await self.store.update_session(live.id, status=SessionStatus.STOPPED)
                return
            logger.warning("the busy process refused a change", exc_info=True,
                           extra={"session_id": live.id})
            if model_set:
                try:
                    await process.set_model(previous_model)
                except AgentError:
                    logger.warning("could not set the model back", exc_info=True,
                                   extra={"session_id": live.id})
            raise LiveChangeRefused(
                f"The running Claude Code process refused the change ({exc}); nothing "
                "changed: try again when the turn has ended",
                details={"sessionId": live.id}) from exc

    # -- losing a process ----------------------------------------------------------------
    async def evict(self, session_id: str) -> bool:
        """Stop an idle session's process to free its slot; False if it is busy."""
        live = self.live.get(session_id)
        if live is None or not live.idle:
            return False
        held = self.pool.get(session_id)
        if held is not None and live.process is not held:
            # The pool holds a process its session has let go of (it is being stopped,
            # or the session was purged and named again): free the slot all the same.
            logger.debug("evicting a process its session no longer holds",
                         extra={"session_id": session_id})
            await held.stop()
            await self.pool.release(session_id, held)
            return True
        await self.stop_process(live, "evicted")
        if not live.closed:
            await self.store.update_session(session_id, status=SessionStatus.STOPPED)
        return True

    async def _on_exit(self, process: AgentProcess, exit_: ProcessExit) -> None:
        """A process ended; if nobody is waiting on it (an idle death), record it."""
        if not exit_.expected and self.spares.owns(process):
            self.pool.forget_pid(process)
            self.spares.died(process)
            return
        for live in self.live.all():
            if live.process is process and live.current is None and not exit_.expected:
                await self.drop_process(live, process, exit_)
                if not live.closed:
                    await self.store.update_session(live.id, status=SessionStatus.STOPPED)
                    # A warm process again, into a free slot, for the session's state as
                    # the gateway holds it now (the reaper may have let this one go).
                    self.prestart(self.live.open(live.id))
                return

    async def drop_process(self, live: LiveSession, process: AgentProcess,
                           exit_: ProcessExit) -> None:
        """Forget a process that has exited, and say so in the session's log."""
        if live.process is not process:
            return
        live.process = None
        await self.pool.release(live.id, process)
        await self.leases.release(live)
        if not exit_.expected:
            await stop_quietly(process, "it exited")  # release the SDK's resources
        await self.events.emit(live.id, EventType.PROCESS_STOPPED, {
            "reason": "stopped" if exit_.expected else "exited",
            "detail": exit_.reason, "exitCode": exit_.exit_code,
            "stderr": "" if exit_.expected else exit_.stderr})

    async def stop_process(self, live: LiveSession, reason: str) -> None:
        """Stop the session's process (after its start, if one is under way)."""
        if live.starting and live.spawning is not None:
            # Let the start finish (it reports its own failure); wait() does not swallow
            # our own cancellation.
            await asyncio.wait({live.spawning})
        process = live.process
        if process is None:
            return
        live.process = None
        # A caller cancelled mid-stop (a shutdown, a client gone) must not leave the CLI
        # half stopped: the stop runs to its end on its own, and stop_all() waits for it.
        stopping = asyncio.ensure_future(self._stop_and_release(live.id, process))
        self._stopping.add(stopping)
        stopping.add_done_callback(self._stopping.discard)
        await asyncio.shield(stopping)
        await self.events.emit(live.id, EventType.PROCESS_STOPPED, {"reason": reason})
        await self.leases.release(live)

    async def _stop_and_release(self, session_id: str, process: AgentProcess) -> None:
        await process.stop()
        await self.pool.release(session_id, process)
