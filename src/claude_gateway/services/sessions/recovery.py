"""Starting after a previous gateway: what a node that is gone left running is marked as
ended. With SQLite there is one node per database (the data-dir lock), so everything
left is orphaned; on PostgreSQL, only sessions no live node holds a lease on."""

from __future__ import annotations

from datetime import UTC, datetime

from claude_gateway.errors import ErrorCode
from claude_gateway.events.envelope import EventType
from claude_gateway.events.log import EventLog
from claude_gateway.services.sessions.runner import TurnRunner
from claude_gateway.services.sessions.state import SessionStatus, TurnStatus, failure
from claude_gateway.storage.base import Store
from claude_gateway.storage.records import SessionRecord

LIVE_STATUSES = (SessionStatus.STARTING, SessionStatus.IDLE, SessionStatus.RUNNING)
FOREVER = 10 ** 8
"""Seconds: "every node ever seen"."""


class Orphans:
    """Which sessions no live node runs."""

    def __init__(self, store: Store, *, node_id: str, single_node: bool) -> None:
        self.store = store
        self.node_id = node_id
        self.single_node = single_node

    async def forget_previous_nodes(self) -> None:
        """One node per database: every other node's row and leases are a previous
        run's (this node's id is new at each start)."""
        for node, _ in await self.store.live_nodes(FOREVER):
            if node.id != self.node_id:
                await self.store.forget_node(node.id)

    async def __call__(self, session_id: str) -> bool:
        if self.single_node:
            return True
        lease = await self.store.lease(session_id)
        return lease is None or lease.expires_at <= datetime.now(UTC)


async def recover_after_restart(store: Store, events: EventLog, runner: TurnRunner,
                                orphaned: Orphans) -> None:
    """Turns a gone node left queued or running fail (GATEWAY_RESTARTED); its sessions
    with a process are ``stopped`` (their next prompt resumes them)."""
    if orphaned.single_node:
        await orphaned.forget_previous_nodes()
    for turn in await store.turns_with_status(["queued", "running"]):
        if await orphaned(turn.session_id):
            await runner.finish(turn.session_id, turn.id, TurnStatus.FAILED, failure(
                ErrorCode.GATEWAY_RESTARTED,
                "The gateway restarted before this turn finished."))
    for status in LIVE_STATUSES:
        for record in await _all_sessions(store, status):
            if await orphaned(record.id):
                await store.update_session(record.id, status=SessionStatus.STOPPED)
                await events.emit(record.id, EventType.PROCESS_STOPPED,
                                  {"reason": "gateway_restarted"})


async def _all_sessions(store: Store, status: str) -> list[SessionRecord]:
    found: list[SessionRecord] = []
    after: tuple[datetime, str] | None = None
    while True:
        page = await store.list_sessions(status=status, limit=500, after=after)
        found.extend(page)
        if len(page) < 500:
            return found
        after = (page[-1].created_at, page[-1].id)
