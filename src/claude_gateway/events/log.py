"""``EventLog``: append to the store first, then fan out to live subscribers.

A subscriber has a bounded queue. When it falls behind, it is dropped (its stream
ends) instead of blocking the session or losing events: the client reconnects with
``Last-Event-ID`` and replays the gap from the store.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from typing import Any

from claude_gateway.concurrency import KeyedLocks
from claude_gateway.events.envelope import TERMINAL_TURN_EVENTS
from claude_gateway.storage.base import Store
from claude_gateway.storage.records import EventRecord, Fence, NewEvent, StateChange


class Subscriber:
    """One live reader of a session's events."""

    def __init__(self, session_id: str, size: int) -> None:
        self.session_id = session_id
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
                 page_size: int = 500) -> None:
        self.store = store
        self.subscriber_queue_size = subscriber_queue_size
        self.page_size = page_size
        self._subscribers: defaultdict[str, set[Subscriber]] = defaultdict(set)
        # Publishing in sequence order needs appends of one session to be serialized; a
        # session's lock lives only while appends hold or wait for it.
        self._locks = KeyedLocks()
        self.fence_of: Callable[[str], Fence | None] | None = None
        """This node's lease on a session, which its writes then carry (set by the
        session manager); a write whose lease was taken over raises FencedOut."""

    async def append(self, session_id: str, events: Sequence[NewEvent],
                     change: StateChange | None = None) -> list[EventRecord]:
        """Store the events (and the state change they announce), then publish them."""
        if self.fence_of is not None and (change is None or change.fence is None):
            fence = self.fence_of(session_id)
            if fence is not None:
                change = change or StateChange()
                change.fence = fence
        async with self._locks.hold(session_id):
            records = await self.store.append_events(session_id, events, change)
            for subscriber in list(self._subscribers.get(session_id, ())):
                for record in records:
                    subscriber.offer(record)
                if subscriber.overflowed:
                    self.unsubscribe(subscriber)
        return records

    async def emit(self, session_id: str, type_: str, data: dict[str, Any] | None = None,
                   turn_id: str | None = None, change: StateChange | None = None
                   ) -> EventRecord:
        (record,) = await self.append(session_id, [NewEvent(type_, dict(data or {}), turn_id)],
                                      change)
        return record

    def footprint(self) -> dict[str, int]:
        """Sizes of the per-session state it holds (for leak checks)."""
        return {"append locks": len(self._locks), "subscribers": self.subscriber_count()}

    def subscribe(self, session_id: str) -> Subscriber:
        subscriber = Subscriber(session_id, self.subscriber_queue_size)
        self._subscribers[session_id].add(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        subscribers = self._subscribers.get(subscriber.session_id)
        if subscribers is not None:
            subscribers.discard(subscriber)
            if not subscribers:
                self._subscribers.pop(subscriber.session_id, None)

    def close_session(self, session_id: str) -> None:
        """End every live stream of a session (it was deleted)."""
        for subscriber in list(self._subscribers.pop(session_id, ())):
            subscriber.close()

    def subscriber_count(self, session_id: str | None = None) -> int:
        if session_id is not None:
            return len(self._subscribers.get(session_id, ()))
        return sum(len(s) for s in self._subscribers.values())

    async def replay(self, session_id: str, after: int) -> AsyncIterator[EventRecord]:
        """Stored events after ``after``, in pages."""
        while True:
            page = await self.store.list_events(session_id, after=after, limit=self.page_size)
            for event in page:
                yield event
                after = event.seq
            if len(page) < self.page_size:
                return

    async def stream(self, session_id: str, after: int, *, follow: bool = True
                     ) -> AsyncIterator[EventRecord]:
        """Replay after ``after``, then (with ``follow``) live events, none lost or repeated.

        Ends when the subscriber falls behind or the session's streams are closed.
        """
        subscriber = self.subscribe(session_id) if follow else None
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

    async def stream_turn(self, session_id: str, turn_id: str, after: int
                          ) -> AsyncGenerator[EventRecord, None]:
        """The events of one turn, from ``after`` until it completes, fails or is
        interrupted."""
        async for event in self.stream(session_id, after):
            if event.turn_id != turn_id:
                continue
            yield event
            if event.type in TERMINAL_TURN_EVENTS:
                return
