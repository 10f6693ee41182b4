"""What PostgreSQL adds over SQLite: several nodes on one database. Each test starts
several stores on one scratch database, as several gateway nodes would."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from claude_gateway.storage.migrations import head_revision
from claude_gateway.storage.records import NewEvent, SessionRecord
from claude_gateway.storage.sql import SqlStore
from tests.helpers.postgres import scratch_database

pytestmark = pytest.mark.anyio


async def test_nodes_starting_at_once_migrate_exactly_once() -> None:
    with scratch_database("migrate") as url:
        nodes = [SqlStore(url) for _ in range(4)]
        await asyncio.gather(*(node.start() for node in nodes))
        try:
            with nodes[0].engine.connect() as conn:
                versions = conn.execute(text("SELECT version_num FROM alembic_version")).all()
            assert [v for (v,) in versions] == [head_revision()]
            assert nodes[0].url.drivername == "postgresql+psycopg"  # from postgresql://
        finally:
            await asyncio.gather(*(node.close() for node in nodes))


async def test_sequence_numbers_stay_gap_free_across_nodes() -> None:
    with scratch_database("seq") as url:
        nodes = [SqlStore(url, pool_size=6) for _ in range(3)]
        for node in nodes:
            await node.start()
        try:
            moment = datetime.now(UTC)
            await nodes[0].create_session(SessionRecord(
                id="s1", status="idle", workspace="w", permission_mode="default",
                created_at=moment, last_activity_at=moment))

            async def writer(node: SqlStore, n: int) -> list[int]:
                seqs = []
                for i in range(n):
                    written = await node.append_events("s1", [NewEvent("a", {"i": i}),
                                                              NewEvent("b", {"i": i})])
                    seqs += [e.seq for e in written]
                return seqs

            results = await asyncio.gather(*(writer(node, 20) for node in nodes for _ in range(2)))
            seen = sorted(seq for seqs in results for seq in seqs)
            assert seen == list(range(1, 241))  # unique and without a gap
            assert [e.seq for e in await nodes[2].list_events("s1", limit=500)] == seen
            session = await nodes[1].get_session("s1")
            assert session is not None and session.last_seq == 240
        finally:
            for node in nodes:
                await node.close()
