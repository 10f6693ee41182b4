"""This node's leases on the sessions whose CLI it runs.

A node claims a session's lease before it starts the session's process and gives it up
when the process stops; a background task renews its leases every third of the TTL and
says the node is alive. A lease lost to a takeover (this node froze, or was cut off)
is reported to the supervisor, which stops that CLI at once; every write the node makes
for a session carries its fence, so a lost one fails (``FencedOut``) instead of
landing. On one node with SQLite this is cheap bookkeeping; it is what makes several
nodes on PostgreSQL safe.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from claude_gateway.errors import ErrorCode
from claude_gateway.services.sessions.state import LiveSession, LiveSessions
from claude_gateway.storage.base import Store
from claude_gateway.storage.records import Fence

logger = logging.getLogger("claude_gateway.sessions")

OnLost = Callable[[LiveSession], Awaitable[None]]


class LeaseKeeper:
    def __init__(self, store: Store, live: LiveSessions, *, node_id: str, ttl: float,
                 on_lost: OnLost) -> None:
        self.store = store
        self.live = live
        self.node_id = node_id
        self.ttl = ttl
        self.on_lost = on_lost
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.store.touch_node(self.node_id)
        self._task = asyncio.create_task(self._renew_forever(), name="lease-keeper")

    async def stop(self) -> None:
        """Stop renewing; the node's row and remaining leases go (others may claim its
        sessions at once)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait({self._task})
            self._task = None
        try:
            await self.store.forget_node(self.node_id)
        except Exception:
            logger.warning("could not remove this node's row and leases; they expire "
                           "within one lease TTL", exc_info=True)

    async def draining(self) -> None:
        """Tell the other nodes this one is stopping (best effort)."""
        try:
            await self.store.touch_node(self.node_id, draining=True)
        except Exception:
            logger.warning("could not mark this node as draining", exc_info=True)

    async def claim(self, live: LiveSession) -> bool | str:
        """Hold the session's lease (kept if held already): True, or the id of the node
        it was taken over from; False, with the reason in ``live.spawn_error``, while
        another live node holds it."""
        lease = await self.store.claim_lease(live.id, self.node_id, self.ttl)
        if lease is None:
            holder = await self.store.lease(live.id)
            node = holder.node_id if holder else "?"
            live.spawn_error = {"code": ErrorCode.SESSION_ON_ANOTHER_NODE,
                                "detail": f"Gateway node {node} runs this session",
                                "node": node}
            return False
        live.fence = Fence(self.node_id, lease.generation)
        return lease.taken_from or True

    async def release(self, live: LiveSession) -> None:
        """Give the lease up (the session's process stopped)."""
        fence, live.fence = live.fence, None
        if fence is not None:
            try:
                await self.store.release_lease(fence, live.id)
            except Exception:
                logger.warning("could not release a lease; it expires within one lease TTL",
                               exc_info=True, extra={"session_id": live.id})

    async def owner_elsewhere(self, session_id: str) -> str | None:
        """The other node whose live lease holds this session, if any."""
        lease = await self.store.lease(session_id)
        if lease is None or lease.node_id == self.node_id:
            return None
        return lease.node_id if lease.expires_at > datetime.now(UTC) else None

    async def renew(self) -> None:
        """One pass: this node is alive; its leases last another TTL; lost ones are
        reported."""
        await self.store.touch_node(self.node_id)
        held = {live.id: live for live in self.live.all() if live.fence is not None}
        lost = await self.store.renew_leases(self.node_id, list(held), self.ttl)
        for session_id in lost:
            live = held[session_id]
            logger.warning("another node took the session over", extra={
                "session_id": session_id, "node": self.node_id})
            await self.on_lost(live)

    async def _renew_forever(self) -> None:
        while True:
            await asyncio.sleep(self.ttl / 3)
            try:
                await self.renew()
            except Exception:
                logger.exception("lease renewal failed; it is tried again in a third of "
                                 "the lease TTL")
