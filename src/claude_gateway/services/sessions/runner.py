"""The turn runner: each live session's FIFO of prompts, run one at a time.

A prompt becomes a :class:`PendingTurn` (``turn.queued``); the session's worker task
takes turns in order and runs each in explicit steps:

1. **announce** ``turn.started`` (once: before a cold process starts, else right after
   the prompt is handed to the warm CLI);
2. get the process from the supervisor, or **fail** the turn if there is none;
3. send the prompt and **relay** the CLI's messages to the event log as they come;
4. **complete** on the CLI's ``ResultMessage``, or **fail** on its exit.

Every ending goes through :meth:`TurnRunner.finish`: the turn's record, the session's
status and the terminal event in one write, then the waiting request is told.
A session with nothing queued keeps no task: the next prompt starts a worker again.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from claude_agent_sdk import AssistantMessage, ResultMessage

from claude_gateway.errors import ErrorCode, InterruptFailed, WorkspaceBusy
from claude_gateway.events.envelope import EventType
from claude_gateway.events.log import EventLog
from claude_gateway.events.normalize import (
    context_tokens_of,
    context_window_of,
    normalize,
    turn_outcome,
    usage_of,
)
from claude_gateway.observability.tracing import NO_TRACING, Tracing
from claude_gateway.runtime.agent import AgentError, AgentProcess, ProcessExit, Prompt
from claude_gateway.services.permissions import PermissionBroker
from claude_gateway.services.prompts import prompt_blocks
from claude_gateway.services.sessions.admission import Admission
from claude_gateway.services.sessions.state import (
    LiveSession,
    LiveSessions,
    PendingTurn,
    TurnNotRecorded,
    TurnOutcome,
    TurnStatus,
    failure,
    start_failure,
)
from claude_gateway.services.sessions.supervisor import ProcessSupervisor
from claude_gateway.services.workspace_locks import WorkspaceLocks
from claude_gateway.storage.base import FencedOut
from claude_gateway.storage.records import NewEvent, StateChange, TurnRecord

logger = logging.getLogger("claude_gateway.sessions")

SESSION_ENDED = failure(ErrorCode.SESSION_ENDED, "The session has ended.")
SHUTDOWN_RECORD_SECONDS = 5.0
"""At shutdown, how long the turns whose CLIs were stopped may take to record it."""


def now() -> datetime:
    return datetime.now(UTC)


@dataclass
class _Reading:
    """What the relay learned from the CLI's messages of one turn."""

    context_tokens: int | None = None
    answered_by: str | None = None
    """The model that wrote the turn's main answer."""


class _Announcement:
    """``turn.started`` for one turn, written at most once, and only after its
    ``turn.queued`` is in the store."""

    def __init__(self, runner: TurnRunner, live: LiveSession, pending: PendingTurn) -> None:
        self.runner, self.live, self.pending = runner, live, pending
        self.done = False

    async def __call__(self) -> None:
        if self.done:
            return
        self.done = True
        pending = self.pending
        if pending.recorded is not None:
            try:
                await pending.recorded
            except RuntimeError as exc:
                raise TurnNotRecorded(pending.id) from exc
        await self.runner.events.append(self.live.id, [NewEvent(
            EventType.TURN_STARTED, {}, pending.id, message_role="user",
            message_content=prompt_blocks(pending.prompt))], StateChange(
                session=self.runner.admission.activity(status="running"),
                turn_id=pending.id, turn={"status": "running", "started_at": now()}))


class TurnRunner:
    tracing: Tracing = NO_TRACING

    def __init__(self, events: EventLog, live: LiveSessions, supervisor: ProcessSupervisor,
                 admission: Admission, permissions: PermissionBroker,
                 locks: WorkspaceLocks) -> None:
        self.events = events
        self.live = live
        self.supervisor = supervisor
        self.admission = admission
        self.permissions = permissions
        self.locks = locks
        self.handing_over = False
        """A node stopping among several: queued turns stay queued in the store, and
        another node runs them."""

    # -- accepting prompts -------------------------------------------------------------
    async def enqueue(self, live: LiveSession, prompt: Prompt, blocks: list[dict[str, Any]],
                      turn_id: str, client_id: str | None) -> PendingTurn:
        """Queue a prompt (its workspace is held already) and record ``turn.queued``."""
        loop = asyncio.get_running_loop()
        recorded: asyncio.Future[None] = loop.create_future()
        pending = PendingTurn(turn_id, prompt, loop.create_future(), recorded=recorded,
                              trace=self.tracing.current())
        position = live.busy_turns()
        # The worker may hand the prompt to a warm CLI while turn.queued is being written;
        # it announces the turn only once that write is done, so the log stays in order.
        live.queued.append(pending)
        live.queue.put_nowait(pending)
        if live.worker is None or live.worker.done():
            live.worker = asyncio.create_task(self._work(live), name=f"turns-{live.id}")
        try:
            queued = await self.events.emit(
                live.id, EventType.TURN_QUEUED, {"prompt": blocks, "position": position}, turn_id,
                StateChange(new_turn=TurnRecord(id=turn_id, session_id=live.id,
                                                status="queued", prompt=blocks,
                                                created_at=now(), client_id=client_id)))
        except BaseException as exc:
            if client_id is not None:
                live.client_turns.pop(client_id, None)
            if pending in live.queued:
                live.queued.remove(pending)
            if live.idle:
                self.locks.release(live.workspace, live.id)
            recorded.set_exception(RuntimeError(f"turn not recorded: {exc!r}"))
            raise
        pending.queued_seq = queued.seq
        recorded.set_result(None)
        return pending

    @staticmethod
    def new_turn_id() -> str:
        return f"turn_{uuid.uuid4().hex}"

    # -- the worker --------------------------------------------------------------------
    async def _work(self, live: LiveSession) -> None:
        """Run the session's queued turns in order, then end."""
        while not live.queue.empty() and not self.handing_over:
            pending = live.queue.get_nowait()
            if pending is None or pending not in live.queued:
                continue  # a wake-up, or cleared from the queue meanwhile
            live.queued.remove(pending)
            live.current = pending
            try:
                with self.tracing.span("turn", {"session.id": live.id, "turn.id": pending.id},
                                       parent=pending.trace):
                    await self._run_turn(live, pending)
            except FencedOut:
                # Another node took the session over: never write for it again.
                await self.supervisor.fenced_out(live)
                return
            except TurnNotRecorded:
                # Its session vanished while the prompt was on its way: stop the CLI's work.
                if live.process is not None and live.process.alive:
                    try:
                        await live.process.interrupt()
                    except AgentError:
                        logger.warning("could not interrupt the prompt of a vanished turn",
                                       exc_info=True, extra={"session_id": live.id})
            except Exception as exc:
                logger.exception("turn runner failed", extra={"session_id": live.id})
                try:
                    await self.finish(live.id, pending, TurnStatus.FAILED,
                                      failure(ErrorCode.INTERNAL_ERROR, str(exc)))
                except Exception:
                    logger.exception("could not record the turn's failure",
                                     extra={"session_id": live.id, "turn_id": pending.id})
            finally:
                live.current = None
                if not live.queued:
                    self.locks.release(live.workspace, live.id)
                await self.supervisor.pool.notify()
        # No await from the emptiness check on: a prompt queued after it finds this task
        # done and starts a new worker.
        self.live.forget_if_idle(live, worker_ending=True)

    async def _run_turn(self, live: LiveSession, pending: PendingTurn) -> None:
        if live.closed:
            await self.finish(live.id, pending, TurnStatus.FAILED, SESSION_ENDED)
            return
        if not live.model_known:
            record = await self.supervisor.store.get_session(live.id)
            live.model, live.model_known = (record.model if record else None), True
        announce = _Announcement(self, live, pending)
        if not live.warm:
            await announce()  # clients see the turn begin while the process starts
        process = await self.supervisor.ensure_process(live)
        if process is None or live.closed or pending.interrupt_requested:
            await announce()
            await self._refuse(live, pending, process)
            return
        process.drain()
        try:
            await process.send(pending.prompt)
        except Exception as exc:
            await announce()
            await self._fail_on_exit(live, process, pending, ProcessExit(
                expected=False, reason=f"{exc.__class__.__name__}: {exc}",
                stderr=process.stderr_tail.text(8192)))
            return
        # Written while the CLI works on the prompt; still before any of its output.
        await announce()
        last, reading = await self._relay(live, process, pending)
        if isinstance(last, ProcessExit):
            await self._fail_on_exit(live, process, pending, last)
        else:
            await self._complete(live, process, pending, last, reading)

    async def _refuse(self, live: LiveSession, pending: PendingTurn,
                      process: AgentProcess | None) -> None:
        """End a turn that never reached a process."""
        if process is None and not live.closed:
            await self.finish(live.id, pending, TurnStatus.FAILED,
                              start_failure(live.spawn_error or {}))
        elif live.closed or process is None:
            await self.finish(live.id, pending, TurnStatus.FAILED, SESSION_ENDED)
        else:
            await self.finish(live.id, pending, TurnStatus.INTERRUPTED,
                              {"reason": "interrupted_before_start"})

    async def _relay(self, live: LiveSession, process: AgentProcess, pending: PendingTurn
                     ) -> tuple[ResultMessage | ProcessExit, _Reading]:
        """Append the CLI's messages to the log until its result or its exit.

        A helper task writes them, so reading the next message never waits for the
        database; the turn's outcome is written after all of them."""
        outbox: asyncio.Queue[list[NewEvent] | None] = asyncio.Queue()
        writer = asyncio.create_task(self._write_events(live.id, outbox))
        reading = _Reading()
        try:
            while True:
                batch = [await process.next_message()]
                if not isinstance(batch[0], ProcessExit | ResultMessage):
                    batch.extend(process.drain(until=ResultMessage))
                process.last_used = time.monotonic()
                events: list[NewEvent] = []
                for message in batch:
                    if isinstance(message, ProcessExit | ResultMessage):
                        break  # always the batch's last
                    if isinstance(message, AssistantMessage) and not message.parent_tool_use_id:
                        reading.context_tokens = (context_tokens_of(message)
                                                  or reading.context_tokens)
                        reading.answered_by = message.model or reading.answered_by
                    for type_, data in normalize(message):
                        role = data["role"] if type_ == EventType.MESSAGE else None
                        events.append(NewEvent(type_, data, pending.id, message_role=role,
                                               message_content=data.get("content")))
                if events:
                    outbox.put_nowait(events)
                last = batch[-1]
                if isinstance(last, ProcessExit | ResultMessage):
                    return last, reading
        finally:
            outbox.put_nowait(None)
            await writer

    async def _write_events(self, session_id: str,
                            outbox: asyncio.Queue[list[NewEvent] | None]) -> None:
        """Append queued events in order, merging whatever piled up into one write."""
        while True:
            item = await outbox.get()
            if item is None:
                return
            chunk, finished = list(item), False
            while not outbox.empty():
                more = outbox.get_nowait()
                if more is None:
                    finished = True
                    break
                chunk.extend(more)
            await self.events.append(session_id, chunk)
            if finished:
                return

    # -- endings ---------------------------------------------------------------------
    async def _complete(self, live: LiveSession, process: AgentProcess, pending: PendingTurn,
                        result: ResultMessage, reading: _Reading) -> None:
        total = result.total_cost_usd or 0.0
        turn_cost = total - process.cost_reported
        if turn_cost < 0:  # the CLI reset its running total (a new conversation)
            turn_cost = total
        process.cost_reported = total
        type_, data = turn_outcome(result, turn_cost)
        data["model"] = reading.answered_by
        session: dict[str, Any] = {}
        if result.session_id:
            session["claude_session_id"] = result.session_id
        if (window := context_window_of(result)) is not None:
            session["context_window"] = window
        if reading.context_tokens is not None:
            session["context_tokens"] = reading.context_tokens
        await self.finish(live.id, pending, TurnStatus(type_.removeprefix("turn.")), data,
                          StateChange(session=session, usage=usage_of(result, turn_cost),
                                      usage_model=live.model))

    async def _fail_on_exit(self, live: LiveSession, process: AgentProcess,
                            pending: PendingTurn, exit_: ProcessExit) -> None:
        await self.supervisor.drop_process(live, process, exit_)
        if not exit_.expected:
            self.supervisor.prestart(live)  # a warm process again, into a free slot
        if exit_.expected and pending.interrupt_requested:
            code, message = ErrorCode.SESSION_ENDED, "The session ended during this turn."
            if self.supervisor.closing:
                code, message = (ErrorCode.GATEWAY_SHUTDOWN,
                                 "The gateway stopped during this turn.")
        else:
            code, message = (ErrorCode.PROCESS_EXITED,
                             f"The Claude Code process exited: {exit_.reason}")
        await self.finish(live.id, pending, TurnStatus.FAILED, failure(
            code, message, exitCode=exit_.exit_code, stderr=exit_.stderr))

    async def finish(self, session_id: str, pending: PendingTurn | str, status: TurnStatus,
                     data: dict[str, Any], change: StateChange | None = None) -> None:
        """End a turn: its record, the session's status and the event, in one write; then
        whoever waits on it is told. ``pending`` may be a bare turn id (a turn a previous
        gateway left)."""
        turn_id = pending if isinstance(pending, str) else pending.id
        change = change or StateChange()
        change.turn_id = turn_id
        change.turn = {"status": str(status), "ended_at": now(), "outcome": data}
        live = self.live.get(session_id)
        elsewhere = (live is not None and live.spawn_error is not None
                     and live.spawn_error.get("code") == ErrorCode.SESSION_ON_ANOTHER_NODE)
        if live is not None and live.current is pending and not live.closed and not elsewhere:
            # Whoever learns that the turn ended must find the session at rest already.
            change.session = {**self.admission.activity(status=live.resting_status()),
                              **change.session}
        await self.events.emit(session_id, f"turn.{status}", data, turn_id, change)
        if not isinstance(pending, str) and not pending.done.done():
            pending.done.set_result(TurnOutcome(turn_id, status, data))

    async def drain(self, within: float) -> None:
        """Wait (up to ``within`` seconds) for every running and queued turn to end."""
        busy = [live.worker for live in self.live.all()
                if live.worker is not None and not live.worker.done()]
        if busy:
            await asyncio.wait(busy, timeout=within)

    async def stop_workers(self, lives: list[LiveSession]) -> None:
        """At shutdown, once the CLIs are stopped: let each turn record how it ended,
        then stop the workers; whoever still waits is told, even if nothing could be
        written."""
        workers = [live.worker for live in lives if live.worker and not live.worker.done()]
        if workers:
            await asyncio.wait(workers, timeout=SHUTDOWN_RECORD_SECONDS)
        for worker in workers:
            worker.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        stopped = failure(ErrorCode.GATEWAY_SHUTDOWN, "The gateway stopped during this turn.")
        handed = failure(ErrorCode.GATEWAY_SHUTDOWN, "This gateway node stopped; the turn "
                         "is still queued and another node runs it (follow the session's "
                         "events)", handedOver=True)
        for live in lives:
            for pending in live.queued:
                if not pending.done.done():
                    pending.done.set_result(TurnOutcome(
                        pending.id, TurnStatus.FAILED, handed if self.handing_over
                        else stopped))
            if live.current is not None and not live.current.done.done():
                live.current.done.set_result(TurnOutcome(live.current.id,
                                                         TurnStatus.FAILED, stopped))

    async def clear_queue(self, live: LiveSession, status: TurnStatus,
                          data: dict[str, Any]) -> None:
        """End every turn still waiting in the queue."""
        for pending in list(live.queued):
            live.queued.remove(pending)
            await self.finish(live.id, pending, status, data)

    async def take_over(self, live: LiveSession) -> None:
        """This node took the session over from a node that is gone (or was cut off):
        the turn that was running there fails (NODE_LOST), written under this node's new
        lease; the queued ones run here, before anything queued here since."""
        left = await self.supervisor.store.list_turns(live.id, ["queued", "running"])
        # Known after the read: a prompt queued here meanwhile is in the queue before its
        # turn is in the store.
        known = {p.id for p in live.queued} | ({live.current.id} if live.current else set())
        adopted: list[PendingTurn] = []
        loop = asyncio.get_running_loop()
        for turn in left:
            if turn.id in known:
                continue
            if turn.status == "running":
                await self.events.emit(live.id, EventType.TURN_FAILED, failure(
                    ErrorCode.NODE_LOST, "The gateway node running this turn was lost."),
                    turn.id, StateChange(turn_id=turn.id, turn={
                        "status": "failed", "ended_at": now()}))
            else:
                adopted.append(PendingTurn(turn.id, turn.prompt, loop.create_future()))
        if not adopted:
            return
        if not live.share_workspace:
            try:
                self.locks.acquire(live.workspace, live.id)
            except WorkspaceBusy:
                logger.warning("a taken-over session's workspace is busy; its queued turns "
                               "wait for it", extra={"session_id": live.id})
        live.queued[:0] = adopted
        while not live.queue.empty():
            live.queue.get_nowait()
        for pending in live.queued:
            live.queue.put_nowait(pending)
        if live.worker is None or live.worker.done():
            live.worker = asyncio.create_task(self._work(live), name=f"turns-{live.id}")

    async def interrupt(self, live: LiveSession) -> bool:
        """Stop the running turn; False if none runs (or it is being interrupted).
        InterruptFailed if the CLI did not take the request (the turn goes on)."""
        current = live.current
        if current is None or current.interrupt_requested:
            return False
        current.interrupt_requested = True
        await self.permissions.cancel_session(live.id, "interrupt",
                                              "The turn was interrupted.")
        process = live.process
        if process is not None and process.alive:
            try:
                await process.interrupt()
            except AgentError as exc:
                current.interrupt_requested = False  # so that a retry is tried again
                logger.warning("the CLI did not take an interrupt", exc_info=True,
                               extra={"session_id": live.id})
                raise InterruptFailed(
                    f"The Claude Code process did not take the interrupt: {exc}",
                    details={"sessionId": live.id, "turnId": current.id}) from exc
        return True
