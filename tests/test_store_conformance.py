"""The ``Store`` conformance suite: every implementation must pass all of it.

The ``store`` fixture is parametrized by backend; a new implementation adds itself to
``BACKENDS`` and runs the same tests.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from claude_agent_sdk.testing import run_session_store_conformance
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from claude_gateway.storage.base import Store
from claude_gateway.storage.migrations import head_revision
from claude_gateway.storage.records import NewEvent, SessionRecord, TurnRecord, Usage
from claude_gateway.storage.sql import SqlStore
from claude_gateway.storage.transcripts import TranscriptStore

pytestmark = pytest.mark.anyio


def sqlite_store(tmp_path: Path) -> SqlStore:
    return SqlStore(f"sqlite+aiosqlite:///{tmp_path / 'store.db'}")


BACKENDS: dict[str, Callable[[Path], SqlStore]] = {"sqlite": sqlite_store}


@pytest.fixture(params=sorted(BACKENDS))
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[SqlStore]:
    instance = BACKENDS[request.param](tmp_path)
    await instance.start()
    try:
        yield instance
    finally:
        await instance.close()


def session(session_id: str, *, created: datetime | None = None, owner: str = "",
            status: str = "idle") -> SessionRecord:
    moment = created or datetime.now(UTC)
    return SessionRecord(id=session_id, status=status, workspace=session_id,
                         permission_mode="default", created_at=moment,
                         last_activity_at=moment, owner=owner, options={"maxTurns": 3},
                         metadata={"k": "v"})


async def test_migrations_reach_head_and_are_idempotent(store: SqlStore) -> None:
    with store.engine.connect() as conn:
        version = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    assert version == head_revision()
    await store.close()
    await store.start()  # a second start finds nothing to do
    assert await store.get_session("missing") is None


async def test_migrations_build_exactly_the_declared_schema(store: SqlStore) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from claude_gateway.storage.schema import metadata

    with store.engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), metadata)
    assert differences == []


async def test_session_round_trip_and_update(store: Store) -> None:
    record = session("s1")
    await store.create_session(record)
    loaded = await store.get_session("s1")
    assert loaded == record
    assert loaded.created_at.tzinfo is not None
    await store.update_session("s1", status="running", model="opus", metadata={"a": 1})
    loaded = await store.get_session("s1")
    assert loaded is not None
    assert (loaded.status, loaded.model, loaded.metadata) == ("running", "opus", {"a": 1})


async def test_list_sessions_pages_newest_first(store: Store) -> None:
    base = datetime(2026, 1, 1, tzinfo=UTC)
    for i in range(5):
        await store.create_session(session(f"s{i}", created=base + timedelta(seconds=i),
                                           owner="alice" if i % 2 else "bob"))
    first = await store.list_sessions(limit=2)
    assert [s.id for s in first] == ["s4", "s3"]
    rest = await store.list_sessions(limit=10, after=(first[-1].created_at, first[-1].id))
    assert [s.id for s in rest] == ["s2", "s1", "s0"]
    assert [s.id for s in await store.list_sessions(owner="alice")] == ["s3", "s1"]
    await store.update_session("s2", status="stopped")
    assert [s.id for s in await store.list_sessions(status="stopped")] == ["s2"]
    assert await store.count_sessions(["idle"]) == 4


async def test_events_get_gapless_sequence_numbers_under_concurrency(store: Store) -> None:
    await store.create_session(session("s1"))
    await store.create_session(session("s2"))

    async def writer(session_id: str, n: int) -> None:
        for i in range(n):
            await store.append_events(session_id, [NewEvent("a", {"i": i}),
                                                   NewEvent("b", {"i": i}, turn_id="t")])

    await asyncio.gather(*(writer("s1", 10) for _ in range(5)), writer("s2", 3))
    events = await store.list_events("s1")
    assert [e.seq for e in events] == list(range(1, 101))
    assert [e.seq for e in await store.list_events("s2")] == list(range(1, 7))
    tail = await store.list_events("s1", after=97)
    assert [e.seq for e in tail] == [98, 99, 100]
    assert [e.seq for e in await store.list_events("s1", after=10, limit=2)] == [11, 12]
    loaded = await store.get_session("s1")
    assert loaded is not None and loaded.last_seq == 100


async def test_append_to_unknown_session_fails(store: Store) -> None:
    with pytest.raises(KeyError):
        await store.append_events("nope", [NewEvent("x", {})])


async def test_turns(store: Store) -> None:
    await store.create_session(session("s1"))
    now = datetime.now(UTC)
    for i, status in enumerate(["completed", "running", "queued"]):
        await store.create_turn(TurnRecord(id=f"t{i}", session_id="s1", status=status,
                                           prompt=[{"type": "text", "text": str(i)}],
                                           created_at=now + timedelta(milliseconds=i)))
    await store.update_turn("t1", status="failed", outcome={"error": {"code": "X"}},
                            ended_at=now)
    turn = await store.get_turn("t1")
    assert turn is not None and turn.outcome == {"error": {"code": "X"}}
    assert [t.id for t in await store.list_turns("s1")] == ["t0", "t1", "t2"]
    assert [t.id for t in await store.list_turns("s1", ["queued"])] == ["t2"]
    assert [t.id for t in await store.turns_with_status(["queued", "running"])] == ["t2"]


async def test_messages_page_and_count(store: Store) -> None:
    await store.create_session(session("s1"))
    for i in range(5):
        await store.add_message("s1", "user" if i % 2 == 0 else "assistant",
                                [{"type": "text", "text": str(i)}], turn_id="t")
    page, total = await store.list_messages("s1", limit=2, offset=3)
    assert total == 5
    assert [m.content[0]["text"] for m in page] == ["3", "4"]
    loaded = await store.get_session("s1")
    assert loaded is not None and loaded.message_count == 5


async def test_usage_accumulates(store: Store) -> None:
    await store.create_session(session("s1"))
    await store.add_session_usage("s1", Usage(10, 2, 1, 0, 0.5), turn_id="t1", model="m")
    await store.add_session_usage("s1", Usage(5, 1, 0, 3, 0.25), turn_id="t2", model="m")
    loaded = await store.get_session("s1")
    assert loaded is not None
    assert loaded.usage == Usage(15, 3, 1, 3, 0.75)


async def test_purge_removes_everything(store: Store) -> None:
    await store.create_session(session("s1"))
    await store.append_events("s1", [NewEvent("x", {})])
    await store.add_message("s1", "user", "hi", None)
    assert await store.delete_session("s1") is True
    assert await store.get_session("s1") is None
    assert await store.list_events("s1") == []
    assert await store.list_messages("s1", limit=10, offset=0) == ([], 0)
    assert await store.delete_session("s1") is False


async def test_transcript_store_passes_the_sdk_conformance_suite(store: Store) -> None:
    # Each contract gets a fresh, empty store: clear the transcript tables between them.
    async def fresh() -> TranscriptStore:
        assert isinstance(store, SqlStore)
        with store.engine.begin() as conn:
            conn.execute(text("DELETE FROM transcript_entries"))
            conn.execute(text("DELETE FROM transcript_summaries"))
        return TranscriptStore(store)

    await run_session_store_conformance(fresh)


async def test_permissions_live_and_resolve_with_their_events(store: Store) -> None:
    from claude_gateway.storage.records import PermissionRecord, StateChange

    await store.create_session(session("s1"))
    moment = datetime.now(UTC)
    request = PermissionRecord(id="perm_1", session_id="s1", tool_name="Write",
                               input={"file_path": "a"}, status="pending", created_at=moment,
                               turn_id="t1", details={"description": "Write a"},
                               expires_at=moment + timedelta(minutes=15))
    (requested,) = await store.append_events(
        "s1", [NewEvent("permission.requested", {"requestId": "perm_1"}, "t1")],
        StateChange(new_permission=request))
    assert await store.get_permission("perm_1") == request
    assert [p.id for p in await store.list_permissions(statuses=["pending"])] == ["perm_1"]
    await store.append_events("s1", [NewEvent("permission.resolved", {}, "t1")], StateChange(
        permission_id="perm_1", permission={"status": "allowed", "resolved_at": moment,
                                            "resolution": {"decision": "allow"}}))
    resolved = await store.get_permission("perm_1")
    assert resolved is not None and resolved.status == "allowed"
    assert resolved.resolution == {"decision": "allow"}
    assert await store.list_permissions(session_id="s1", statuses=["pending"]) == []
    assert requested.seq == 1


async def test_turns_are_found_by_client_id_and_it_is_unique(store: Store) -> None:
    await store.create_session(session("s1"))
    turn = TurnRecord(id="t1", session_id="s1", status="queued", prompt="x",
                      created_at=datetime.now(UTC), client_id="c-1")
    await store.create_turn(turn)
    found = await store.turn_by_client_id("s1", "c-1")
    assert found is not None and found.id == "t1"
    assert await store.turn_by_client_id("s1", "c-2") is None
    with pytest.raises(IntegrityError):
        await store.create_turn(TurnRecord(id="t2", session_id="s1", status="queued",
                                           prompt="x", created_at=datetime.now(UTC),
                                           client_id="c-1"))


async def test_sessions_expired_by(store: Store) -> None:
    base = datetime(2026, 1, 1, tzinfo=UTC)
    for i in range(3):
        record = session(f"s{i}", created=base)
        record.expires_at = base + timedelta(hours=i)
        await store.create_session(record)
    await store.update_session("s0", status="ended")
    found = await store.sessions_expired_by(base + timedelta(hours=1), ["idle"])
    assert [s.id for s in found] == ["s1"]
