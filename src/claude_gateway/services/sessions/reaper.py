"""The reaper: stops processes idle too long and expires sessions past their TTL.

It wakes every ``reaper_interval_seconds``; :meth:`Reaper.reap` is also the "run the
reaper now" hook for tests and operators. One session's failure is logged and skipped,
never a reason to leave the others unreaped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from claude_gateway.services.sessions.state import LiveSessions, SessionStatus
from claude_gateway.services.sessions.supervisor import ProcessSupervisor
from claude_gateway.settings import Settings
from claude_gateway.storage.base import Store
from claude_gateway.storage.records import ACTIVE_SESSION_STATUSES, SessionRecord

logger = logging.getLogger("claude_gateway.sessions")

Expire = Callable[[SessionRecord], Awaitable[None]]


class Reaper:
    def __init__(self, settings: Settings, store: Store, live: LiveSessions,
                 supervisor: ProcessSupervisor, expire: Expire) -> None:
        self.settings = settings
        self.store = store
        self.live = live
        self.supervisor = supervisor
        self.expire = expire
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._forever(), name="session-reaper")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait({self._task})
            self._task = None

    async def _forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.reaper_interval_seconds)
            try:
                await self.reap()
            except Exception:
                logger.exception("reaper pass failed; it runs again next interval")

    async def reap(self) -> None:
        """One pass: stop idle processes, expire sessions, drop state nobody needs."""
        idle_limit = self.settings.idle_timeout_seconds
        if idle_limit > 0:
            for session_id, process in self.supervisor.pool.live.items():
                live = self.live.get(session_id)
                if (live is None or not live.idle
                        or time.monotonic() - process.last_used <= idle_limit):
                    continue
                try:
                    await self.supervisor.stop_process(live, "idle_timeout")
                    if not live.closed:
                        await self.store.update_session(session_id,
                                                        status=SessionStatus.STOPPED)
                except Exception:
                    logger.exception("could not stop an idle process",
                                     extra={"session_id": session_id})
        if self.settings.session_ttl_seconds > 0:
            expired = await self.store.sessions_expired_by(datetime.now(UTC),
                                                           ACTIVE_SESSION_STATUSES)
            for record in expired:
                if record.id in self.live and not self.live.is_idle(record.id):
                    continue  # a turn runs: it pushes the expiry back when it ends
                try:
                    await self.expire(record)
                except Exception:
                    logger.exception("could not expire a session",
                                     extra={"session_id": record.id})
        self.live.forget_idle()
