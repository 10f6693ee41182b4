"""``EventLog``: append to the store first, then fan out to live subscribers.

A subscriber has a bounded queue. When it falls behind, it is dropped (its stream
ends) instead of blocking the session or losing events: the client reconnects with
``Last-Event-ID`` and replays the gap from the store.

With several nodes on one database, events another node appends reach this node's
subscribers too: the store's notifications (PostgreSQL's LISTEN) say which session has
new events, and the log reads them from the table by ``seq``; a poll every
``poll_seconds`` catches whatever a lost notification would have said.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections import defaultdict
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Coroutine, Sequence
from typing import Any

from claude_gateway.concurrency import KeyedLocks
from claude_gateway.events.announce import announcement
from claude_gateway.events.envelope import TERMINAL_TURN_EVENTS
from claude_gateway.storage.base import Listener, Store
from claude_gateway.storage.records import EventRecord, Fence, NewEvent, StateChange

logger = logging.getLogger("claude_gateway.events")


class Subscriber:
    """One live reader of a session's events."""

    def __init__(self, session_id: str, size: int, transport: str = "sse") -> None:
        self.session_id = session_id
        self.transport = transport
        self.queue: asyncio.Queue[EventRecord | None] = asyncio.Queue(size)
        self.overflowed = False
        self.closed = False

    def offer(self, event: EventRecord) -> None:
        if self.closed:
            return
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.overflowed = True
            self.closed = True

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            # When full, the reader finds ``closed`` once it drains the queue.
            with contextlib.suppress(asyncio.QueueFull):
                self.queue.put_nowait(None)


class EventLog:
    """Durable, ordered, replayable events per session."""

    def __init__(self, store: Store, *, subscriber_queue_size: int = 1000,
                 page_size: int = 500, node_id: str = "", poll_seconds: float = 2.0) -> None:
        self.store = store
        self.subscriber_queue_size = subscriber_queue_size
        self.page_size = page_size
        self._subscribers: defaultdict[str, set[Subscriber]] = defaultdict(set)
        # Publishing in sequence order needs appends of one session to be serialized; a
        # session's lock lives only while appends hold or wait for it.
        self._locks = KeyedLocks()
        self.node_id = node_id
        self.poll_seconds = poll_seconds
        self._offered: dict[str, int] = {}
        """Per session with subscribers: the highest ``seq`` offered to them."""
        self._listener: Listener | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._poller: asyncio.Task[None] | None = None
        self.observe: Callable[[EventRecord], None] | None = None
        """Told of every event this node appends (metrics)."""
        self.on_dropped: Callable[[str], None] | None = None
        """Told the transport of each subscriber dropped for falling behind."""
        self.fence_of: Callable[[str], Fence | None] | None = None
        """This node's lease on a session, which its writes then carry (set by the
        session manager); a write whose lease was taken over raises FencedOut."""

    async def append(self, session_id: str, events: Sequence[NewEvent],
                     change: StateChange | None = None) -> list[EventRecord]:
        """Store the events (and the state change they announce, and the webhook
        deliveries that announce them), then publish them."""
        events = [e if (told := announcement(e.type, e.data)) is None
                  else dataclasses.replace(e, announce=told) for e in events]
        if self.fence_of is not None and (change is None or change.fence is None):
            fence = self.fence_of(session_id)
            if fence is not None:
                change = change or StateChange()
                change.fence = fence
        async with self._locks.hold(session_id):
            records = await self.store.append_events(session_id, events, change)
            self._publish(session_id, records)
        if self.observe is not None:
            for record in records:
                self.observe(record)
        return records

    def _publish(self, session_id: str, records: Sequence[EventRecord]) -> None:
        subscribers = self._subscribers.get(session_id)
        if not subscribers or not records:
            return
        for subscriber in list(subscribers):
            for record in records:
                subscriber.offer(record)
            if subscriber.overflowed:
                self.unsubscribe(subscriber)
                if self.on_dropped is not None:
                    self.on_dropped(subscriber.transport)
        if session_id in self._subscribers:
            self._offered[session_id] = max(self._offered.get(session_id, 0),
                                            records[-1].seq)

    # -- other nodes' events ---------------------------------------------------------
    async def start(self) -> None:
        """Follow other nodes' appends, where the store has other nodes (PostgreSQL)."""
        self._listener = self.store.listen_events(self._remote, self._look_for_missed)
        if self._listener is not None:
            self._listener.start()
            self._poller = asyncio.create_task(self._poll_forever(), name="event-poller")

    async def close(self) -> None:
        if self._listener is not None:
            await self._listener.stop()
        if self._poller is not None:
            self._poller.cancel()
            await asyncio.wait({self._poller})
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _remote(self, node: str, session_id: str, first: int, last: int) -> None:
        """Another node appended events ``first..last`` to a session."""
        if node == self.node_id or session_id not in self._subscribers:
            return
        if last > self._offered.get(session_id, 0):
            self._spawn(self._catch_up(session_id, first - 1))

    def _look_for_missed(self) -> None:
        self._spawn(self.poll_once())

    async def _catch_up(self, session_id: str, after: int) -> None:
        """Offer this node's subscribers the session's stored events they lack."""
        try:
            async with self._locks.hold(session_id):
                if session_id not in self._subscribers:
                    return
                start = max(after, self._offered.get(session_id, after))
                page = await self.store.list_events(session_id, after=start,
                                                    limit=self.page_size)
                self._publish(session_id, page)
        except Exception:
            logger.exception("could not read another node's events",
                             extra={"session_id": session_id})

    async def poll_once(self) -> None:
        """For every session followed here, read what is new (a missed notification)."""
        for session_id in list(self._subscribers):
            record = await self.store.get_session(session_id)
            if record is None:
                continue
            known = self._offered.get(session_id)
            if known is None:
                # Followed since the last poll: its stream replayed from the store and
                # fills any gap itself once a later event arrives; offer the latest.
                known = record.last_seq - 1
            if record.last_seq > known:
                await self._catch_up(session_id, known)

    async def _poll_forever(self) -> None:
        while True:
            await asyncio.sleep(self.poll_seconds)
            try:
                await self.poll_once()
            except Exception:
                logger.exception("polling for other nodes' events failed")

    async def emit(self, session_id: str, type_: str, data: dict[str, Any] | None = None,
                   turn_id: str | None = None, change: StateChange | None = None
                   ) -> EventRecord:
        (record,) = await self.append(session_id, [NewEvent(type_, dict(data or {}), turn_id)],
                                      change)
        return record

    def footprint(self) -> dict[str, int]:
        """Sizes of the per-session state it holds (for leak checks)."""
        return {"append locks": len(self._locks), "subscribers": self.subscriber_count()}

    def subscribe(self, session_id: str, transport: str = "sse") -> Subscriber:
        subscriber = Subscriber(session_id, self.subscriber_queue_size, transport)
        self._subscribers[session_id].add(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        subscribers = self._subscribers.get(subscriber.session_id)
        if subscribers is not None:
            subscribers.discard(subscriber)
            if not subscribers:
                self._subscribers.pop(subscriber.session_id, None)
                self._offered.pop(subscriber.session_id, None)

    def close_session(self, session_id: str) -> None:
        """End every live stream of a session (it was deleted)."""
        for subscriber in list(self._subscribers.pop(session_id, ())):
            subscriber.close()
        self._offered.pop(session_id, None)

    def subscriber_count(self, session_id: str | None = None) -> int:
        if session_id is not None:
            return len(self._subscribers.get(session_id, ()))
        return sum(len(s) for s in self._subscribers.values())

    def subscribers_by_transport(self) -> dict[str, int]:
        counts = {"sse": 0, "websocket": 0, "internal": 0}
        for subscribers in self._subscribers.values():
            for subscriber in subscribers:
                counts[subscriber.transport] = counts.get(subscriber.transport, 0) + 1
        return counts

    async def replay(self, session_id: str, after: int) -> AsyncIterator[EventRecord]:
        """Stored events after ``after``, in pages."""
        while True:
            page = await self.store.list_events(session_id, after=after, limit=self.page_size)
            for event in page:
                yield event
                after = event.seq
            if len(page) < self.page_size:
                return

    async def stream(self, session_id: str, after: int, *, follow: bool = True,
                     transport: str = "sse") -> AsyncIterator[EventRecord]:
        """Replay after ``after``, then (with ``follow``) live events, none lost or repeated.

        Ends when the subscriber falls behind or the session's streams are closed.
        """
        subscriber = self.subscribe(session_id, transport) if follow else None
        last = after
        try:
            async for event in self.replay(session_id, after):
                last = event.seq
                yield event
            if subscriber is None:
                return
            while True:
                if subscriber.closed and subscriber.queue.empty():
                    return
                live = await subscriber.queue.get()
                if live is None:
                    return
                if live.seq <= last:
                    continue  # already replayed from the store
                if live.seq > last + 1:
                    # Missed while replaying a long backlog; fill from the store.
                    async for event in self.replay(session_id, last):
                        if event.seq >= live.seq:
                            break
                        last = event.seq
                        yield event
                last = live.seq
                yield live
        finally:
            if subscriber is not None:
                self.unsubscribe(subscriber)

    async def stream_turn(self, session_id: str, turn_id: str, after: int,
                          transport: str = "sse") -> AsyncGenerator[EventRecord, None]:
        """The events of one turn, from ``after`` until it completes, fails or is
        interrupted."""
        async for event in self.stream(session_id, after, transport=transport):
            if event.turn_id != turn_id:
                continue
            yield event
            if event.type in TERMINAL_TURN_EVENTS:
                return
