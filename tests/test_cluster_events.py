"""Live events across nodes: a stream on one node follows events another node appends,
woken by PostgreSQL's NOTIFY and read from the table by seq; a lost LISTEN connection
loses nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime

import anyio
import psycopg
import pytest

from claude_gateway.events.log import EventLog
from claude_gateway.storage.records import NewEvent, SessionRecord
from claude_gateway.storage.sql import SqlStore
from tests.helpers.gateway import wait_until
from tests.helpers.postgres import ADMIN_URL, scratch_database

pytestmark = pytest.mark.anyio


@pytest.fixture
def database() -> Iterator[str]:
    with scratch_database("events") as url:
        yield url


@pytest.fixture
async def two_logs(database: str) -> AsyncIterator[tuple[EventLog, EventLog]]:
    logs = []
    for node in ("node-a", "node-b"):
        store = SqlStore(database, node_id=node)
        await store.start()
        log = EventLog(store, node_id=node, poll_seconds=0.5)
        await log.start()
        logs.append(log)
    moment = datetime.now(UTC)
    await logs[0].store.create_session(SessionRecord(
        id="s1", status="idle", workspace="w", permission_mode="default",
        created_at=moment, last_activity_at=moment))
    yield logs[0], logs[1]
    for log in logs:
        await log.close()
        await log.store.close()


async def follow(log: EventLog, count: int, seen: list[int]) -> None:
    async for event in log.stream("s1", 0):
        seen.append(event.seq)
        if len(seen) == count:
            return


async def test_a_stream_on_one_node_follows_another_nodes_appends(
    two_logs: tuple[EventLog, EventLog],
) -> None:
    a, b = two_logs
    seen: list[int] = []
    with anyio.fail_after(20):
        async with anyio.create_task_group() as group:
            group.start_soon(follow, b, 30, seen)
            await wait_until(lambda: b.subscriber_count("s1") > 0)
            for i in range(15):
                await a.append("s1", [NewEvent("x", {"i": i}), NewEvent("y", {"i": i})])
    assert seen == list(range(1, 31))


async def test_a_lost_listen_connection_loses_no_event(
    two_logs: tuple[EventLog, EventLog], database: str
) -> None:
    a, b = two_logs
    seen: list[int] = []
    with anyio.fail_after(30):
        async with anyio.create_task_group() as group:
            group.start_soon(follow, b, 40, seen)
            await wait_until(lambda: b.subscriber_count("s1") > 0)
            for i in range(10):
                await a.append("s1", [NewEvent("x", {"i": i})])
            with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
                killed = admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE application_name = 'cgw-listen-node-b' AND datname = %s",
                    [database.rsplit("/", 1)[1]]).fetchall()
            assert killed == [(True,)]
            # The last events are appended while B's LISTEN is gone, and none follow:
            # B must find them without a notification.
            for i in range(30):
                await a.append("s1", [NewEvent("y", {"i": i})])
    assert seen == list(range(1, 41))  # every event once, in order
