"""EventLog: replay then live with no gap or repeat; slow subscribers dropped, never blocking."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import anyio
import pytest

from claude_gateway.events.log import EventLog
from claude_gateway.storage.records import NewEvent, SessionRecord
from claude_gateway.storage.sql import SqlStore
from tests.helpers.gateway import wait_until

pytestmark = pytest.mark.anyio


@pytest.fixture
async def log(tmp_path: Path) -> AsyncIterator[EventLog]:
    store = SqlStore(f"sqlite:///{tmp_path / 'events.db'}")
    await store.start()
    moment = datetime.now(UTC)
    await store.create_session(SessionRecord(id="s", status="idle", workspace="w",
                                             permission_mode="default", created_at=moment,
                                             last_activity_at=moment))
    try:
        yield EventLog(store, subscriber_queue_size=10, page_size=7)
    finally:
        await store.close()


async def test_stream_replays_then_follows_without_gaps_or_repeats(log: EventLog) -> None:
    for i in range(20):
        await log.emit("s", "before", {"i": i})
    seen: list[int] = []

    async def read() -> None:
        async for event in log.stream("s", after=5):
            seen.append(event.seq)
            if event.seq == 30:
                return

    with anyio.fail_after(10):
        async with anyio.create_task_group() as group:
            group.start_soon(read)
            for i in range(10):
                await log.emit("s", "after", {"i": i})
    assert seen == list(range(6, 31))
    assert log.subscriber_count("s") == 0, "a finished stream unsubscribes"


async def test_follow_false_stops_at_the_end_of_the_log(log: EventLog) -> None:
    await log.append("s", [NewEvent("a", {}), NewEvent("b", {})])
    seqs = [e.seq async for e in log.stream("s", after=0, follow=False)]
    assert seqs == [1, 2]


async def test_a_subscriber_that_falls_behind_is_dropped_not_waited_for(log: EventLog) -> None:
    subscriber = log.subscribe("s")
    with anyio.fail_after(5):  # appends never wait for a reader
        for i in range(25):
            await log.emit("s", "x", {"i": i})
    assert subscriber.overflowed and subscriber.closed
    assert subscriber.queue.qsize() == 10
    assert log.subscriber_count("s") == 0
    # What it did receive is a gapless prefix; the rest is replayed on reconnect.
    received = [subscriber.queue.get_nowait() for _ in range(10)]
    assert [e.seq for e in received if e is not None] == list(range(1, 11))


async def test_closing_a_session_ends_its_streams(log: EventLog) -> None:
    await log.emit("s", "x")
    seen: list[str] = []

    async def read() -> None:
        async for event in log.stream("s", after=0):
            seen.append(event.type)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            group.start_soon(read)
            await wait_until(lambda: log.subscriber_count("s") == 1)
            log.close_session("s")
    assert seen == ["x"]
