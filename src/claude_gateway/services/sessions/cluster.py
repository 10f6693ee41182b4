"""Sessions across nodes: which node acts on a command, turns watched from another
node, and sessions taken over from nodes that are gone.

A command for a session (a prompt, an interrupt, a permission answer, a change, a
deletion) is acted on by the node holding the session's lease; any other node forwards
it through the :class:`Inbox` and answers its client as the owner answered. A prompt
for a session no live node holds is taken here: this node claims the lease first, so
every node sends the session's next prompts to it, in order.

A node that is gone leaves leases that run out. The :class:`Sweeper` on every node
looks for sessions whose lease ran out with work left (a turn queued or running, or a
process the session thinks it has) and takes them over without waiting for a request:
the turn that was running fails (NODE_LOST), the queued ones run here, and the session
is ``stopped`` if nothing is left to run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from claude_gateway.events.envelope import TERMINAL_TURN_EVENTS
from claude_gateway.events.log import EventLog
from claude_gateway.services.sessions.inbox import Inbox
from claude_gateway.services.sessions.leases import LeaseKeeper
from claude_gateway.services.sessions.state import (
    LiveSession,
    PendingTurn,
    TurnOutcome,
    TurnStatus,
)
from claude_gateway.storage.base import Store

logger = logging.getLogger("claude_gateway.cluster")

HANDOVER = {"handover": True}
"""A draining owner's answer to a prompt: ask again once it has let the session go."""


class Routing:
    """Claim a session here, or forward a command to the node holding it."""

    def __init__(self, leases: LeaseKeeper, inbox: Inbox, *, poll_seconds: float,
                 take_over: Callable[[LiveSession], Awaitable[None]]) -> None:
        self.leases = leases
        self.inbox = inbox
        self.poll_seconds = poll_seconds
        self.take_over = take_over

    async def claim_or_forward(self, live: LiveSession, kind: str, payload: dict[str, Any]
                               ) -> dict[str, Any] | None:
        """None once this node holds the session's lease (act here); else the answer of
        the node that holds it."""
        while True:
            claimed = await self.leases.claim(live)
            if claimed:
                live.spawn_error = None
                if isinstance(claimed, str):
                    await self.take_over(live)
                return None
            node = str((live.spawn_error or {}).get("node"))
            live.spawn_error = None
            answer = await self.inbox.send(live.id, node, kind, payload)
            if answer is not None and answer != HANDOVER:
                return answer
            # Gone, or letting the session go: its lease is about to be free.
            await asyncio.sleep(self.poll_seconds)

    async def forward_if_elsewhere(self, live: LiveSession | None, session_id: str,
                                   kind: str, payload: dict[str, Any]
                                   ) -> dict[str, Any] | None:
        """The owner's answer if another live node holds the session; None: act here
        (this node holds it, or nobody does)."""
        if live is not None and live.fence is not None:
            return None
        node = await self.leases.owner_elsewhere(session_id)
        if node is None:
            return None
        return await self.inbox.send(session_id, node, kind, payload)


class TurnWatch:
    """Turns run by another node, watched through the event log: their ``done`` is
    set when their terminal event is written, wherever it is written from."""

    def __init__(self, events: EventLog) -> None:
        self.events = events
        self._tasks: set[asyncio.Task[None]] = set()

    def pending(self, session_id: str, turn_id: str, queued_seq: int, prompt: Any
                ) -> PendingTurn:
        """A turn another node queued, as a client waiting here sees it."""
        done: asyncio.Future[TurnOutcome] = asyncio.get_running_loop().create_future()
        pending = PendingTurn(turn_id, prompt, done, queued_seq=queued_seq, remote=True)
        self.follow(session_id, pending)
        return pending

    def follow(self, session_id: str, pending: PendingTurn) -> None:
        """Set ``pending.done`` when the turn ends, on whichever node runs it (a queued
        turn of a session another node took over runs there)."""
        pending.remote = True
        task = asyncio.create_task(self._watch(session_id, pending),
                                   name=f"watch-{pending.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _watch(self, session_id: str, pending: PendingTurn) -> None:
        async for event in self.events.stream_turn(session_id, pending.id,
                                                   max(0, pending.queued_seq - 1),
                                                   transport="internal"):
            if event.type in TERMINAL_TURN_EVENTS and not pending.done.done():
                pending.done.set_result(TurnOutcome(
                    pending.id, TurnStatus(event.type.removeprefix("turn.")), event.data))
                return

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.gather(*self._tasks, return_exceptions=True)


class Sweeper:
    """Takes over, within about a lease TTL, the sessions of nodes that are gone."""

    def __init__(self, store: Store, *, node_id: str, interval: float,
                 take: Callable[[str], Awaitable[None]]) -> None:
        self.store = store
        self.node_id = node_id
        self.interval = interval
        self.take = take
        self.wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._sweep_forever(), name="sweeper")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait({self._task})
            self._task = None

    async def sweep(self) -> int:
        """One pass; how many sessions it took over. Rows of nodes gone for a while
        (a hundred lease TTLs) are dropped too."""
        await self.store.forget_gone_nodes(self.interval * 300)
        taken = 0
        for session_id in await self.store.sessions_left_behind(self.node_id):
            try:
                await self.take(session_id)
                taken += 1
            except Exception:
                logger.exception("could not take over a session left by a gone node",
                                 extra={"session_id": session_id})
        return taken

    async def _sweep_forever(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), self.interval)
            self.wake.clear()
            try:
                await self.sweep()
            except Exception:
                logger.exception("the sweep for sessions left by gone nodes failed")
