"""What a session manager answers without changing anything: sessions, their
messages, events and turns, who waits for what, and what runs now."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

from claude_gateway.errors import SessionNotFound
from claude_gateway.events.log import EventLog
from claude_gateway.services.auth import Principal
from claude_gateway.services.permissions import PermissionBroker
from claude_gateway.services.sessions.activity import Activity, describe_activity
from claude_gateway.services.sessions.creation import SessionRecords
from claude_gateway.services.sessions.cursor import decode_cursor, encode_cursor
from claude_gateway.services.sessions.state import LiveSession, LiveSessions, PendingTurn
from claude_gateway.services.sessions.supervisor import ProcessSupervisor
from claude_gateway.services.workspace_locks import WorkspaceLocks
from claude_gateway.settings import Settings
from claude_gateway.storage.base import Store
from claude_gateway.storage.records import (
    EventRecord,
    MessageRecord,
    SessionRecord,
    TurnRecord,
)
from claude_gateway.wire import session_to_api, waiting_to_api


class SessionReads:
    """The read side of :class:`SessionManager` (which sets these attributes)."""

    settings: Settings
    store: Store
    events: EventLog
    permissions: PermissionBroker
    locks: WorkspaceLocks
    records: SessionRecords
    supervisor: ProcessSupervisor
    _live: LiveSessions
    _naming: Any

    async def get(self, session_id: str, owner: str | None = None) -> SessionRecord:
        record = await self.store.get_session(session_id)
        if record is None or (owner is not None and record.owner != owner):
            raise SessionNotFound(session_id)
        return record

    def live(self, session_id: str) -> LiveSession | None:
        return self._live.get(session_id)

    def live_sessions(self) -> dict[str, LiveSession]:
        """Sessions with in-memory state (a process, a queue or a running turn)."""
        return self._live.snapshot()

    def to_api(self, record: SessionRecord) -> dict[str, Any]:
        """The session as this node knows it (its queue and waiting requests are in
        memory here when it runs here)."""
        live = self._live.get(record.id)
        return session_to_api(record, queue_depth=len(live.queued) if live else 0,
                              waiting=self.permissions.waiting(record.id))

    def _runs_elsewhere(self, record: SessionRecord) -> bool:
        live = self._live.get(record.id)
        return (not self.settings.single_node and record.node is not None
                and record.node != self.settings.node_id
                and (live is None or live.fence is None))

    async def view(self, record: SessionRecord) -> dict[str, Any]:
        """The session for a client: like :meth:`to_api`, with the queue and waiting
        requests read from the store when another node runs it."""
        if not self._runs_elsewhere(record):
            return self.to_api(record)
        queued = await self.store.list_turns(record.id, ["queued"])
        return session_to_api(record, queue_depth=len(queued),
                              waiting=await self.waiting_for(record.id))

    async def waiting_for(self, session_id: str, turn_id: str | None = None
                          ) -> list[dict[str, Any]]:
        """Permission requests the session's agent waits on now, on whichever node."""
        local = self.permissions.waiting(session_id, turn_id)
        if local or self.settings.single_node:
            return local
        return [waiting_to_api(p) for p in await self.store.list_permissions(
            session_id=session_id, statuses=["pending"])
            if turn_id is None or p.turn_id == turn_id]

    async def turn_status(self, session_id: str, pending: PendingTurn) -> str:
        """``running`` or ``queued`` (or how it ended), on whichever node it runs."""
        if pending.remote:
            turn = await self.store.get_turn(pending.id)
            return turn.status if turn is not None else "queued"
        live = self._live.get(session_id)
        return "running" if live is not None and live.current is pending else "queued"

    def footprint(self) -> dict[str, int]:
        """Sizes of the in-memory state it holds (for leak checks): each drops back to
        its baseline once nothing runs."""
        return {
            "live sessions": len(self._live),
            "naming locks": len(self._naming),
            "stopping": self.supervisor.stopping_count(),
            "waiting permissions": self.permissions.waiting_count(),
            "workspace locks": len(self.locks.busy()),
            "processes": len(self.supervisor.pool.live),
        }

    async def list_sessions(self, *, owner: str | None, status: str | None, limit: int,
                            cursor: str | None) -> tuple[list[SessionRecord], str | None]:
        after = decode_cursor(cursor) if cursor else None
        page = await self.store.list_sessions(owner=owner, status=status, limit=limit + 1,
                                              after=after)
        next_cursor = None
        if len(page) > limit:
            page = page[:limit]
            next_cursor = encode_cursor(page[-1].created_at, page[-1].id)
        return page, next_cursor

    async def messages(self, session_id: str, owner: str | None, *, limit: int,
                       offset: int) -> tuple[list[MessageRecord], int]:
        """A page of the session's messages and how many there are."""
        await self.get(session_id, owner)
        return await self.store.list_messages(session_id, limit=limit, offset=offset)

    async def events_page(self, session_id: str, *, after: int, limit: int
                          ) -> list[EventRecord]:
        return await self.store.list_events(session_id, after=after, limit=limit)

    def event_stream(self, session_id: str, after: int, transport: str = "sse"
                     ) -> AsyncIterator[EventRecord]:
        """The session's events after ``after``, then live ones (see EventLog.stream)."""
        return self.events.stream(session_id, after, transport=transport)

    async def turn(self, session_id: str, turn_id: str) -> TurnRecord:
        turn = await self.store.get_turn(turn_id)
        if turn is None or turn.session_id != session_id:
            raise SessionNotFound(session_id)
        return turn

    async def conversation(self, claude_session_id: str, principal: Principal
                           ) -> SessionRecord:
        """The latest session on a Claude conversation the caller owns (admins: any)."""
        return await self.records.conversation(claude_session_id, principal)

    async def activity(self, principal: Principal) -> Activity:
        """What runs now, confined to what ``principal`` may see."""
        return await describe_activity(principal, live=self._live, supervisor=self.supervisor,
                                       locks=self.locks, permissions=self.permissions,
                                       store=self.store, events=self.events)

    def owner_of(self, session_id: str) -> str | None:
        """A live session's owner, if this node holds it in memory."""
        live = self._live.get(session_id)
        return live.owner if live is not None and live.owner_known else None

    async def gauges(self) -> dict[str, Any]:
        """What ``/metrics`` reads at each scrape (this node's, but sessions: all)."""
        lives = self._live.all()
        spares = self.supervisor.spares
        return {
            "sessions": await self.store.count_sessions_by_status(None),
            "processes": len(self.supervisor.pool.live),
            "spares": sum(spares.ready(profile.key) for profile in spares.profiles),
            "max_processes": self.supervisor.pool.max_processes,
            "queued": sum(len(live.queued) for live in lives),
            "running": sum(1 for live in lives if live.current is not None),
            "permissions": self.permissions.pending_here(),
            "subscribers": self.events.subscribers_by_transport(),
        }

    def turn_events(self, session_id: str, turn_id: str, after: int
                    ) -> AsyncGenerator[EventRecord, None]:
        """The events of one turn, from ``after`` until it completes, fails or is interrupted."""
        return self.events.stream_turn(session_id, turn_id, after)
