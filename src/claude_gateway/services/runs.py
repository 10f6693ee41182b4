"""``RunService``: one prompt in a workspace, as a short-lived session.

A run is a session of kind ``run``: it takes its workspace's lock (409 WORKSPACE_BUSY
while another agent works there), runs one turn, and ends. Its history and events stay
readable under its id like any session's.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field, replace
from typing import Any

from claude_gateway.errors import RunNotFound, SessionNotFound
from claude_gateway.services.auth import ANONYMOUS, Principal
from claude_gateway.services.sessions import (
    CLOSED_STATUSES,
    PendingTurn,
    SessionCreate,
    SessionManager,
    TurnOutcome,
    decode_cursor,
    encode_cursor,
)
from claude_gateway.services.workspaces import Placement, normalize_workspace_name
from claude_gateway.storage.base import Store
from claude_gateway.storage.records import SessionRecord

logger = logging.getLogger("claude_gateway.runs")


@dataclass
class RunRequest:
    prompt: str | list[Any]
    session: SessionCreate = field(default_factory=SessionCreate)
    """The run's session (its ``kind`` is set to ``run``)."""
    continue_conversation: bool = False
    """Resume the caller's latest conversation in the workspace (unless ``resume``)."""


class RunService:
    """Starts, finishes and cancels runs on top of the SessionManager."""

    def __init__(self, sessions: SessionManager, store: Store) -> None:
        self.sessions = sessions
        self.store = store
        self._finishers: set[asyncio.Task[None]] = set()
        """Background tasks: each run's end, and cancellations nobody waits for."""

    async def start(self, request: RunRequest, principal: Principal = ANONYMOUS
                    ) -> tuple[SessionRecord, PendingTurn]:
        settings = self.sessions.settings
        workspace = request.session.workspace
        resume = request.session.resume
        if request.continue_conversation and resume is None:
            workspace = workspace or settings.default_run_workspace
            place = Placement(principal.home, normalize_workspace_name(workspace)).path
            latest = await self.store.latest_conversation(place, principal.owner_filter)
            resume = latest.claude_session_id if latest else None
        if resume is None:
            workspace = workspace or settings.default_run_workspace
        # else: without a workspace a resumed conversation carries on where it was made.
        record = await self.sessions.create(replace(
            request.session, kind="run", workspace=workspace, resume=resume), principal)
        try:
            pending = await self.sessions.send_message(record.id, principal.owner_filter,
                                                       request.prompt)
        except BaseException:
            await self._finish(record.id)
            raise
        finisher = asyncio.create_task(self._finish_after(record.id, pending))
        self._finishers.add(finisher)
        finisher.add_done_callback(self._finishers.discard)
        return record, pending

    async def _finish_after(self, run_id: str, pending: PendingTurn) -> None:
        await asyncio.shield(pending.done)  # cancelled on close: the manager ends it then
        await self._finish(run_id)

    async def _finish(self, run_id: str) -> None:
        """The run's turn is over: end its session, which stops its process."""
        try:
            record = await self.sessions.get(run_id)
            if record.status not in CLOSED_STATUSES:
                await self.sessions.end(record, "run_finished")
        except Exception:
            logger.exception("could not end run", extra={"run_id": run_id})

    async def list(self, owner: str | None, *, status: str | None, limit: int,
                   cursor: str | None
                   ) -> tuple[list[tuple[SessionRecord, TurnOutcome | None]], str | None]:
        """A page of the caller's runs, newest first, and the cursor of the next one."""
        after = decode_cursor(cursor) if cursor else None
        rows = await self.store.list_runs(owner=owner, status=status,
                                                   limit=limit + 1, after=after)
        next_cursor = None
        if len(rows) > limit:
            rows = rows[:limit]
            last = rows[-1][0]
            next_cursor = encode_cursor(last.created_at, last.id)
        return [(record, TurnOutcome.of_record(turn) if turn else None)
                for record, turn in rows], next_cursor

    async def get(self, run_id: str, owner: str | None
                  ) -> tuple[SessionRecord, TurnOutcome | None]:
        """One of the caller's runs: its state and, once finished, its result."""
        try:
            record = await self.sessions.get(run_id, owner)
        except SessionNotFound:
            record = None
        if record is None or record.kind != "run":
            raise RunNotFound(f"Run {run_id} not found", details={"runId": run_id})
        turns = await self.store.list_turns(run_id)
        return record, TurnOutcome.of_record(turns[-1]) if turns else None

    async def cancel(self, run_id: str, owner: str | None) -> None:
        """Interrupt a running run; 404 when it is unknown, someone else's, or done."""
        try:
            record = await self.sessions.get(run_id, owner)
        except Exception:
            raise RunNotFound(f"Run {run_id} not found", details={"runId": run_id}) from None
        live = self.sessions.live(run_id)
        if record.kind != "run" or live is None or (live.current is None and not live.queued):
            raise RunNotFound(f"Run {run_id} is not running",
                              details={"runId": run_id, "status": record.status})
        await self.sessions.interrupt(run_id, owner, clear_queue=True)

    async def cancel_quietly(self, run_id: str, owner: str | None) -> None:
        """Cancel a run nobody will read the answer of; one that ended is left alone."""
        try:
            await self.cancel(run_id, owner)
        except RunNotFound:
            pass  # it ended meanwhile
        except Exception:
            # Called where nobody waits for the answer (a client gone); the run ends on
            # its own when its turn does.
            logger.exception("could not cancel a run", extra={"run_id": run_id})

    def cancel_soon(self, run_id: str, owner: str | None) -> None:
        """Cancel a run from where no one can wait for it (a stream's client gone); the
        task is tracked, and awaited on close."""
        task = asyncio.create_task(self.cancel_quietly(run_id, owner), name=f"cancel-{run_id}")
        self._finishers.add(task)
        task.add_done_callback(self._finishers.discard)

    def footprint(self) -> dict[str, int]:
        """Runs whose end is still being recorded (for leak checks)."""
        return {"run finishers": len(self._finishers)}

    async def close(self) -> None:
        for task in list(self._finishers):
            task.cancel()
        await asyncio.gather(*self._finishers, return_exceptions=True)
