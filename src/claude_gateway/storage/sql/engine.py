"""The SQL engine under the store: SQLAlchemy Core, run synchronously on threads.

Sync or async? The store is synchronous SQLAlchemy Core on its own threads, not
SQLAlchemy's asyncio extension:

- every write runs on one writer thread, in a transaction per call. SQLite allows one
  writer at a time; a queue of writes on one thread keeps them in order and never waits
  on ``SQLITE_BUSY``;
- reads run on a few reader threads (WAL lets them run beside the writer);
- a store call is one thread hop for a whole transaction. ``aiosqlite`` hops to its own
  thread for every statement, and the asyncio extension adds a greenlet switch per
  statement on top, so a turn's event write (several statements) would cost several
  hops instead of one.

So neither ``aiosqlite`` nor ``sqlalchemy[asyncio]`` is a dependency; a URL naming them
(``sqlite+aiosqlite://``, as earlier versions wrote it) means plain SQLite.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import (
    Connection,
    Engine,
    create_engine,
    event,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError

from claude_gateway.storage.base import DuplicateRecord
from claude_gateway.storage.migrations import upgrade_to_head

T = TypeVar("T")
USAGE_COLUMNS = ("input_tokens", "output_tokens", "cache_read_input_tokens",
                 "cache_creation_input_tokens")


def now() -> datetime:
    return datetime.now(UTC)


class SqlEngine:
    """The engine, its threads, and a transaction per call on them."""

    def __init__(self, url: str, *, readers: int = 4) -> None:
        parsed = make_url(url)
        self._is_sqlite = parsed.get_backend_name() == "sqlite"
        if parsed.drivername in ("sqlite+aiosqlite", "sqlite+pysqlite"):
            parsed = parsed.set(drivername="sqlite")
        self.url = parsed
        self._readers = readers
        self._engine: Engine | None = None
        self._writer: ThreadPoolExecutor | None = None
        self._reader: ThreadPoolExecutor | None = None

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            raise RuntimeError("store not started")
        return self._engine

    async def start(self) -> None:
        if self._is_sqlite:
            database = self.url.database
            if database and database != ":memory:":
                Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(self.url, pool_size=self._readers + 1, max_overflow=2)
        if self._is_sqlite:
            @event.listens_for(engine, "connect")
            def _pragmas(dbapi_connection: Any, _record: Any) -> None:
                cursor = dbapi_connection.cursor()
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute("PRAGMA synchronous=NORMAL")
                cursor.execute("PRAGMA foreign_keys=ON")
                cursor.execute("PRAGMA busy_timeout=10000")
                cursor.close()
        self._engine = engine
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="store-writer")
        self._reader = ThreadPoolExecutor(self._readers, thread_name_prefix="store-reader")
        await self._write(upgrade_to_head)

    async def close(self) -> None:
        for pool in (self._writer, self._reader):
            if pool is not None:
                pool.shutdown(wait=True)
        self._writer = self._reader = None
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    async def _write(self, work: Callable[[Connection], T]) -> T:
        """Run ``work`` in a transaction on the writer thread."""
        def run() -> T:
            with self.engine.begin() as conn:
                return work(conn)

        if self._writer is None:
            raise RuntimeError("store not started")
        try:
            return await asyncio.get_running_loop().run_in_executor(self._writer, run)
        except IntegrityError as exc:  # the one place SQLAlchemy's errors are mapped
            raise DuplicateRecord(str(exc.orig)) from exc

    async def _read(self, work: Callable[[Connection], T]) -> T:
        def run() -> T:
            with self.engine.connect() as conn:
                return work(conn)

        if self._reader is None:
            raise RuntimeError("store not started")
        return await asyncio.get_running_loop().run_in_executor(self._reader, run)
