"""Starting after a previous gateway: what it left running is marked as ended."""

from __future__ import annotations

from datetime import datetime

from claude_gateway.errors import ErrorCode
from claude_gateway.events.envelope import EventType
from claude_gateway.events.log import EventLog
from claude_gateway.services.sessions.runner import TurnRunner
from claude_gateway.services.sessions.state import SessionStatus, TurnStatus, failure
from claude_gateway.storage.base import Store
from claude_gateway.storage.records import SessionRecord

LIVE_STATUSES = (SessionStatus.STARTING, SessionStatus.IDLE, SessionStatus.RUNNING)


async def recover_after_restart(store: Store, events: EventLog, runner: TurnRunner) -> None:
    """Turns a previous gateway left queued or running fail (GATEWAY_RESTARTED); its
    sessions with a process are ``stopped`` (their next prompt resumes them)."""
    for turn in await store.turns_with_status(["queued", "running"]):
        await runner.finish(turn.session_id, turn.id, TurnStatus.FAILED, failure(
            ErrorCode.GATEWAY_RESTARTED, "The gateway restarted before this turn finished."))
    for status in LIVE_STATUSES:
        for record in await _all_sessions(store, status):
            await store.update_session(record.id, status=SessionStatus.STOPPED)
            await events.emit(record.id, EventType.PROCESS_STOPPED, {"reason": "gateway_restarted"})


async def _all_sessions(store: Store, status: str) -> list[SessionRecord]:
    found: list[SessionRecord] = []
    after: tuple[datetime, str] | None = None
    while True:
        page = await store.list_sessions(status=status, limit=500, after=after)
        found.extend(page)
        if len(page) < 500:
            return found
        after = (page[-1].created_at, page[-1].id)
