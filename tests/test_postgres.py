"""What PostgreSQL adds over SQLite: several nodes on one database. Each test starts
several stores on one scratch database, as several gateway nodes would."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import anyio
import pytest
from sqlalchemy import text

from claude_gateway.storage.migrations import head_revision
from claude_gateway.storage.records import Announcement, NewEvent, SessionRecord, WebhookRecord
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


async def test_each_webhook_delivery_is_claimed_by_exactly_one_node() -> None:
    with scratch_database("hooks") as url:
        nodes = [SqlStore(url, pool_size=6, node_id=f"n{i}") for i in range(3)]
        for node in nodes:
            await node.start()
        try:
            moment = datetime.now(UTC)
            await nodes[0].create_session(SessionRecord(
                id="s1", owner="alice", status="idle", workspace="w",
                permission_mode="default", created_at=moment, last_activity_at=moment))
            await nodes[0].create_webhook(WebhookRecord(
                id="wh_1", owner="alice", url="https://example.com/h", events=["*"],
                secret="whsec_c2VjcmV0", created_at=moment, updated_at=moment))
            for i in range(60):
                await nodes[i % 3].append_events("s1", [NewEvent(
                    "turn.completed", {"i": i}, f"t{i}",
                    announce=Announcement("turn.completed", {"i": i}))])

            async def claimer(node: SqlStore) -> list[str]:
                mine: list[str] = []
                while claimed := await node.claim_deliveries(node.node_id, 4, 30):
                    mine += [d.id for d, _ in claimed]
                return mine

            results = await asyncio.gather(*(claimer(node) for node in nodes for _ in range(2)))
            claimed = [d for ids in results for d in ids]
            assert len(claimed) == 60 and len(set(claimed)) == 60
            # A node that dies mid-attempt: its claim runs out and another node sends
            # the delivery (the next attempt), never two at once.
            await nodes[0].append_events("s1", [NewEvent(
                "turn.completed", {}, "t-last", announce=Announcement("turn.completed", {}))])
            ((orphan, _),) = await nodes[0].claim_deliveries("n0", 1, 0.5)
            assert await nodes[1].claim_deliveries("n1", 1, 30) == []
            due = await nodes[1].next_delivery_due()  # when the claim runs out
            assert due is not None
            await anyio.sleep((due - datetime.now(UTC)).total_seconds() + 0.05)
            ((again, _),) = await nodes[1].claim_deliveries("n1", 1, 30)
            assert (again.id, again.attempts) == (orphan.id, 2)
        finally:
            for node in nodes:
                await node.close()
