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

PostgreSQL (``postgresql://user@host/db``) runs the same code on psycopg 3: one code
path for both databases, several writer threads (PostgreSQL serializes the writes of one
session by its row lock, and ``seq`` comes from ``UPDATE ... RETURNING`` in the same
transaction, so it stays gap-free across nodes), and psycopg's own asyncio connection
where the gateway waits on ``LISTEN``. asyncpg would have needed the asyncio extension
and a second code path for one database.
"""

from __future__ import annotations

import asyncio
import time
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
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import IntegrityError

from claude_gateway.observability.tracing import NO_TRACING, Tracing
from claude_gateway.storage.base import DuplicateRecord, StoreError
from claude_gateway.storage.migrations import current_revision, head_revision, upgrade_to_head
from claude_gateway.storage.sql.listen import EventListener, OnEvent, event_payloads

T = TypeVar("T")
EVENTS_CHANNEL = "cgw_events"
"""PostgreSQL's NOTIFY channel for new events: ``"<node> <session> <first> <last>"``."""
USAGE_COLUMNS = ("input_tokens", "output_tokens", "cache_read_input_tokens",
                 "cache_creation_input_tokens")


def now() -> datetime:
    return datetime.now(UTC)


def database_url(url: str) -> URL:
    """The SQLAlchemy URL of a database setting: plain SQLite (``sqlite+aiosqlite`` and
    the like too) or PostgreSQL on psycopg 3 (a plain ``postgresql://`` works)."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return parsed.set(drivername="sqlite")
    if backend == "postgresql":
        return parsed.set(drivername="postgresql+psycopg")
    raise StoreError(f"unsupported database {backend!r}: use sqlite:/// or postgresql://")


class SqlEngine:
    """The engine, its threads, and a transaction per call on them."""

    def __init__(self, url: str, *, pool_size: int = 5, max_overflow: int = 5,
                 node_id: str = "") -> None:
        self.node_id = node_id
        """The node this store serves (named in its event notifications)."""
        self.url = database_url(url)
        self._is_sqlite = self.url.get_backend_name() == "sqlite"
        # SQLite takes one writer at a time: one writer thread queues the writes. PostgreSQL
        # takes several, each serialized per session by its row lock.
        self._writers = 1 if self._is_sqlite else max(1, pool_size // 2)
        self._readers = max(1, pool_size - self._writers)
        self._max_overflow = max_overflow
        self._engine: Engine | None = None
        self._writer: ThreadPoolExecutor | None = None
        self._reader: ThreadPoolExecutor | None = None
        self.tracing: Tracing = NO_TRACING
        """Spans of its transactions (``store.read``, ``store.write``)."""
        self.observe: Callable[[str, float], None] | None = None
        """Told each transaction's kind (``read``, ``write``) and seconds (metrics)."""
        self.on_deliveries: Callable[[], None] | None = None
        """Called (on the event loop) after a write queued webhook deliveries."""

    def listen_events(self, on_event: OnEvent, on_gap: Callable[[], None]
                      ) -> EventListener | None:
        """Wake-ups when other nodes append events (PostgreSQL); None on SQLite, where
        this node is the only writer."""
        if self._is_sqlite:
            return None
        return EventListener(self.url, EVENTS_CHANNEL, node_id=self.node_id,
                             on_payload=event_payloads(on_event), on_gap=on_gap)

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
        engine = create_engine(self.url, pool_size=self._readers + self._writers,
                               max_overflow=self._max_overflow, pool_pre_ping=True)
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
        self._writer = ThreadPoolExecutor(self._writers, thread_name_prefix="store-writer")
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

    async def readiness(self) -> str | None:
        """None when the database answers and its schema is this version's; else why
        not (for ``/health/ready``)."""
        try:
            current = await asyncio.wait_for(self._read(current_revision), 5)
        except Exception as exc:  # any failure to reach the database means not ready
            return f"the database does not answer ({exc.__class__.__name__})"
        head = head_revision()
        if current != head:
            return f"the database schema is at {current}, this gateway needs {head}"
        return None

    def _timed(self, kind: str, work: Callable[[Connection], T]) -> Callable[[], T]:
        """``work`` in a transaction (``write``) or on a connection (``read``), timed."""
        def run() -> T:
            started = time.perf_counter()
            try:
                with (self.engine.begin() if kind == "write"
                      else self.engine.connect()) as conn:
                    return work(conn)
            finally:
                if self.observe is not None:
                    self.observe(kind, time.perf_counter() - started)

        return run

    async def _write(self, work: Callable[[Connection], T]) -> T:
        """Run ``work`` in a transaction on the writer thread."""
        if self._writer is None:
            raise RuntimeError("store not started")
        try:
            with self.tracing.span("store.write"):
                return await asyncio.get_running_loop().run_in_executor(
                    self._writer, self._timed("write", work))
        except IntegrityError as exc:  # the one place SQLAlchemy's errors are mapped
            raise DuplicateRecord(str(exc.orig)) from exc

    async def _read(self, work: Callable[[Connection], T]) -> T:
        if self._reader is None:
            raise RuntimeError("store not started")
        with self.tracing.span("store.read"):
            return await asyncio.get_running_loop().run_in_executor(
                self._reader, self._timed("read", work))
