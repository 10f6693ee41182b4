"""The ``Store`` conformance suite (``claude_gateway.testing.run_store_conformance``) on
every backend, one test per contract; and what only the SQL store has: its migrations.

Each backend runs every contract on fresh stores: SQLite in a file per store,
PostgreSQL on a scratch database whose tables are emptied for each store.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from itertools import count
from pathlib import Path

import pytest
from sqlalchemy import text

from claude_gateway.storage.base import Store
from claude_gateway.storage.migrations import head_revision
from claude_gateway.storage.sql import SqlStore
from claude_gateway.testing.store_conformance import CONTRACTS, run_store_conformance
from tests.helpers.postgres import empty_all_tables, scratch_database

pytestmark = pytest.mark.anyio


def sqlite_stores(tmp_path: Path) -> Callable[[], Awaitable[Store]]:
    """Fresh, started SQLite stores, each in a file of its own."""
    numbers = count()

    async def make() -> Store:
        store = SqlStore(f"sqlite:///{tmp_path / f'store-{next(numbers)}.db'}")
        await store.start()
        return store

    return make


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    """One scratch database for this module's PostgreSQL tests (emptied per store)."""
    with scratch_database("store") as url:
        yield url


def postgres_stores(url: str) -> Callable[[], Awaitable[Store]]:
    """Started stores on one PostgreSQL database, each finding every table empty."""

    async def make() -> Store:
        store = SqlStore(url)
        await store.start()
        empty_all_tables(url)
        return store

    return make


@pytest.mark.parametrize("contract", [*CONTRACTS, "transcripts"])
async def test_store_contract_on_sqlite(contract: str, tmp_path: Path) -> None:
    await run_store_conformance(sqlite_stores(tmp_path), contracts=[contract])


@pytest.mark.parametrize("contract", [*CONTRACTS, "transcripts"])
async def test_store_contract_on_postgresql(contract: str, postgres_url: str) -> None:
    await run_store_conformance(postgres_stores(postgres_url), contracts=[contract])


async def test_a_broken_store_fails_the_suite(tmp_path: Path) -> None:
    """The suite can fail: a store that forgets metadata is caught, by contract name."""
    make = sqlite_stores(tmp_path)

    async def forgetful() -> Store:
        store = await make()
        real = store.get_session

        async def get_session(session_id: str):  # type: ignore[no-untyped-def]
            record = await real(session_id)
            if record is not None:
                record.metadata = {}
            return record

        store.get_session = get_session  # type: ignore[method-assign]
        return store

    with pytest.raises(AssertionError, match="session_round_trip_and_update"):
        await run_store_conformance(forgetful, contracts=["session_round_trip_and_update"])


@pytest.fixture
async def sql_store(tmp_path: Path) -> AsyncIterator[SqlStore]:
    store = SqlStore(f"sqlite:///{tmp_path / 'store.db'}")
    await store.start()
    try:
        yield store
    finally:
        await store.close()


async def test_migrations_reach_head_and_are_idempotent(sql_store: SqlStore) -> None:
    with sql_store.engine.connect() as conn:
        version = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    assert version == head_revision()
    await sql_store.close()
    await sql_store.start()  # a second start finds nothing to do
    assert await sql_store.get_session("missing") is None


async def test_migrations_build_exactly_the_declared_schema(sql_store: SqlStore) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from claude_gateway.storage.schema import metadata

    with sql_store.engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), metadata)
    assert differences == []


async def test_an_old_aiosqlite_url_means_plain_sqlite(tmp_path: Path) -> None:
    store = SqlStore(f"sqlite+aiosqlite:///{tmp_path / 'old.db'}")
    await store.start()
    try:
        assert store.engine.url.drivername == "sqlite"
        assert await store.get_session("missing") is None
    finally:
        await store.close()
