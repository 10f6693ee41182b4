"""The SQL store (SQLAlchemy Core in threads). SQLite: WAL, and every write on one writer."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import (
    Connection,
    Engine,
    Row,
    Select,
    and_,
    create_engine,
    delete,
    event,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.engine import make_url

from claude_gateway.storage import schema
from claude_gateway.storage.migrations import upgrade_to_head
from claude_gateway.storage.records import (
    ApiKeyRecord,
    EventRecord,
    MessageRecord,
    NewEvent,
    PermissionRecord,
    SessionRecord,
    StateChange,
    TurnRecord,
    Usage,
)

T = TypeVar("T")
_USAGE_COLUMNS = ("input_tokens", "output_tokens", "cache_read_input_tokens",
                  "cache_creation_input_tokens")


def _now() -> datetime:
    return datetime.now(UTC)


def _session_from_row(row: Row[Any]) -> SessionRecord:
    m = row._mapping
    return SessionRecord(
        id=m["id"], status=m["status"], workspace=m["workspace"],
        permission_mode=m["permission_mode"], created_at=m["created_at"],
        last_activity_at=m["last_activity_at"], owner=m["owner"], kind=m["kind"],
        model=m["model"], options=dict(m["options"] or {}), metadata=dict(m["metadata"] or {}),
        claude_session_id=m["claude_session_id"], expires_at=m["expires_at"],
        ended_at=m["ended_at"], last_seq=m["last_seq"], message_count=m["message_count"],
        usage=Usage(m["input_tokens"], m["output_tokens"], m["cache_read_input_tokens"],
                    m["cache_creation_input_tokens"], m["total_cost_usd"]),
        context_window=m["context_window"], context_tokens=m["context_tokens"],
        external_id=m["external_id"], home=m["home"], workspace_path=m["workspace_path"],
    )


def _turn_from_row(row: Row[Any]) -> TurnRecord:
    m = row._mapping
    return TurnRecord(id=m["id"], session_id=m["session_id"], status=m["status"],
                      prompt=m["prompt"], created_at=m["created_at"],
                      started_at=m["started_at"], ended_at=m["ended_at"], outcome=m["outcome"],
                      client_id=m["client_id"])


def _permission_from_row(row: Row[Any]) -> PermissionRecord:
    m = row._mapping
    return PermissionRecord(
        id=m["id"], session_id=m["session_id"], tool_name=m["tool_name"],
        input=dict(m["input"]), status=m["status"], created_at=m["created_at"],
        turn_id=m["turn_id"], details=dict(m["details"] or {}), expires_at=m["expires_at"],
        resolved_at=m["resolved_at"], resolution=m["resolution"])


def _event_from_row(row: Row[Any]) -> EventRecord:
    m = row._mapping
    return EventRecord(session_id=m["session_id"], seq=m["seq"], type=m["type"], ts=m["ts"],
                       data=dict(m["data"]), turn_id=m["turn_id"])


class SqlStore:
    """A :class:`~claude_gateway.storage.base.Store` on SQLAlchemy Core.

    Statements run synchronously in threads, one transaction per hop: every write on
    one writer thread (SQLite allows one writer; a queue keeps writes in order and never
    waits on a busy database), reads on a few reader threads. With aiosqlite each
    statement would be a hop of its own, several times slower per transaction.
    """

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

        assert self._writer is not None, "store not started"
        return await asyncio.get_running_loop().run_in_executor(self._writer, run)

    async def _read(self, work: Callable[[Connection], T]) -> T:
        def run() -> T:
            with self.engine.connect() as conn:
                return work(conn)

        assert self._reader is not None, "store not started"
        return await asyncio.get_running_loop().run_in_executor(self._reader, run)

    # -- sessions ------------------------------------------------------------------
    async def create_session(self, session: SessionRecord) -> None:
        values = {
            "id": session.id, "owner": session.owner, "kind": session.kind,
            "status": session.status, "model": session.model, "workspace": session.workspace,
            "permission_mode": session.permission_mode, "options": session.options,
            "metadata": session.metadata, "claude_session_id": session.claude_session_id,
            "created_at": session.created_at, "last_activity_at": session.last_activity_at,
            "expires_at": session.expires_at, "ended_at": session.ended_at,
            "last_seq": session.last_seq, "message_count": session.message_count,
            "total_cost_usd": session.usage.total_cost_usd,
            "external_id": session.external_id, "home": session.home,
            "workspace_path": session.workspace_path,
            **{c: getattr(session.usage, c) for c in _USAGE_COLUMNS},
        }
        await self._write(lambda conn: conn.execute(insert(schema.sessions).values(**values)))

    async def get_session(self, session_id: str) -> SessionRecord | None:
        def work(conn: Connection) -> SessionRecord | None:
            row = conn.execute(
                select(schema.sessions).where(schema.sessions.c.id == session_id)).first()
            return _session_from_row(row) if row else None

        return await self._read(work)

    async def list_sessions(
        self, *, owner: str | None = None, status: str | None = None, limit: int = 50,
        after: tuple[datetime, str] | None = None,
    ) -> list[SessionRecord]:
        table = schema.sessions
        query = select(table).where(table.c.kind == "session")
        if owner is not None:
            query = query.where(table.c.owner == owner)
        if status is not None:
            query = query.where(table.c.status == status)
        if after is not None:
            created, last_id = after
            query = query.where(or_(table.c.created_at < created,
                                    and_(table.c.created_at == created, table.c.id < last_id)))
        query = query.order_by(table.c.created_at.desc(), table.c.id.desc()).limit(limit)
        return await self._read(
            lambda conn: [_session_from_row(r) for r in conn.execute(query).all()])

    async def list_runs(
        self, *, owner: str | None = None, status: str | None = None, limit: int = 50,
        after: tuple[datetime, str] | None = None,
    ) -> list[tuple[SessionRecord, TurnRecord | None]]:
        sessions, turns = schema.sessions, schema.turns
        query = (select(sessions, turns.c.id.label("turn_id"), turns.c.status.label(
                     "turn_status"), turns.c.prompt.label("turn_prompt"),
                     turns.c.created_at.label("turn_created_at"),
                     turns.c.started_at.label("turn_started_at"),
                     turns.c.ended_at.label("turn_ended_at"),
                     turns.c.outcome.label("turn_outcome"))
                 .select_from(sessions.outerjoin(turns, turns.c.session_id == sessions.c.id))
                 .where(sessions.c.kind == "run"))
        if owner is not None:
            query = query.where(sessions.c.owner == owner)
        if status == "queued":
            query = query.where(or_(turns.c.status == status, turns.c.id.is_(None)))
        elif status is not None:
            query = query.where(turns.c.status == status)
        if after is not None:
            created, last_id = after
            query = query.where(or_(sessions.c.created_at < created,
                                    and_(sessions.c.created_at == created,
                                         sessions.c.id < last_id)))
        query = query.order_by(sessions.c.created_at.desc(), sessions.c.id.desc()).limit(limit)

        def work(conn: Connection) -> list[tuple[SessionRecord, TurnRecord | None]]:
            found = []
            for row in conn.execute(query).all():
                m = row._mapping
                turn = None if m["turn_id"] is None else TurnRecord(
                    id=m["turn_id"], session_id=m["id"], status=m["turn_status"],
                    prompt=m["turn_prompt"], created_at=m["turn_created_at"],
                    started_at=m["turn_started_at"], ended_at=m["turn_ended_at"],
                    outcome=m["turn_outcome"])
                found.append((_session_from_row(row), turn))
            return found

        return await self._read(work)

    async def session_by_external_id(self, owner: str, external_id: str
                                     ) -> SessionRecord | None:
        table = schema.sessions
        query = select(table).where(table.c.owner == owner, table.c.external_id == external_id)

        def work(conn: Connection) -> SessionRecord | None:
            row = conn.execute(query).first()
            return _session_from_row(row) if row else None

        return await self._read(work)

    async def latest_conversation(self, workspace_path: str, owner: str | None = None
                                  ) -> SessionRecord | None:
        table = schema.sessions
        query = select(table).where(table.c.workspace_path == workspace_path,
                                    table.c.claude_session_id.is_not(None))
        if owner is not None:
            query = query.where(table.c.owner == owner)
        return await self._latest(query)

    async def conversation(self, claude_session_id: str, owner: str | None = None
                           ) -> SessionRecord | None:
        table = schema.sessions
        query = select(table).where(table.c.claude_session_id == claude_session_id)
        if owner is not None:
            query = query.where(table.c.owner == owner)
        return await self._latest(query)

    async def _latest(self, query: Select[Any]) -> SessionRecord | None:
        """The most recently active session ``query`` selects."""
        table = schema.sessions
        query = query.order_by(table.c.last_activity_at.desc(), table.c.id.desc()).limit(1)

        def work(conn: Connection) -> SessionRecord | None:
            row = conn.execute(query).first()
            return _session_from_row(row) if row else None

        return await self._read(work)

    async def sessions_expired_by(self, moment: datetime, statuses: Sequence[str],
                                  limit: int = 500) -> list[SessionRecord]:
        table = schema.sessions
        query = (select(table).where(table.c.expires_at <= moment,
                                     table.c.status.in_(list(statuses)))
                 .order_by(table.c.expires_at).limit(limit))
        return await self._read(
            lambda conn: [_session_from_row(r) for r in conn.execute(query).all()])

    async def update_session(self, session_id: str, **fields: Any) -> None:
        if not fields:
            return
        await self._write(lambda conn: conn.execute(
            update(schema.sessions).where(schema.sessions.c.id == session_id).values(**fields)))

    async def add_session_usage(self, session_id: str, usage: Usage, *, turn_id: str | None,
                                model: str | None) -> None:
        await self.append_events(session_id, [], StateChange(
            turn_id=turn_id, usage=usage, usage_model=model))

    async def delete_session(self, session_id: str) -> bool:
        def work(conn: Connection) -> bool:
            for table in (schema.events, schema.messages, schema.usage, schema.permissions,
                          schema.turns):
                conn.execute(delete(table).where(table.c.session_id == session_id))
            result = conn.execute(
                delete(schema.sessions).where(schema.sessions.c.id == session_id))
            return bool(result.rowcount)

        return await self._write(work)

    async def count_sessions_by_owner(self, statuses: Sequence[str]) -> dict[str, int]:
        table = schema.sessions
        query = (select(table.c.owner, func.count()).where(
            table.c.status.in_(list(statuses)), table.c.kind == "session")
            .group_by(table.c.owner))
        return await self._read(lambda conn: {r[0]: int(r[1]) for r in conn.execute(query)})

    async def count_sessions_by_status(self, owner: str | None = None) -> dict[str, int]:
        table = schema.sessions
        query = select(table.c.status, func.count()).where(table.c.kind == "session")
        if owner is not None:
            query = query.where(table.c.owner == owner)
        query = query.group_by(table.c.status)
        return await self._read(lambda conn: {r[0]: int(r[1]) for r in conn.execute(query)})

    async def count_sessions(self, statuses: Sequence[str]) -> int:
        table = schema.sessions
        query = (select(func.count()).select_from(table)
                 .where(table.c.status.in_(list(statuses)), table.c.kind == "session"))
        return await self._read(lambda conn: int(conn.execute(query).scalar_one()))

    # -- turns ---------------------------------------------------------------------
    async def create_turn(self, turn: TurnRecord) -> None:
        await self._write(lambda conn: _insert_turn(conn, turn))

    async def get_turn(self, turn_id: str) -> TurnRecord | None:
        def work(conn: Connection) -> TurnRecord | None:
            row = conn.execute(select(schema.turns).where(schema.turns.c.id == turn_id)).first()
            return _turn_from_row(row) if row else None

        return await self._read(work)

    async def update_turn(self, turn_id: str, **fields: Any) -> None:
        await self._write(lambda conn: conn.execute(
            update(schema.turns).where(schema.turns.c.id == turn_id).values(**fields)))

    async def list_turns(self, session_id: str, statuses: Sequence[str] | None = None
                         ) -> list[TurnRecord]:
        table = schema.turns
        query = select(table).where(table.c.session_id == session_id)
        if statuses is not None:
            query = query.where(table.c.status.in_(list(statuses)))
        query = query.order_by(table.c.created_at, table.c.id)
        return await self._read(
            lambda conn: [_turn_from_row(r) for r in conn.execute(query).all()])

    async def turn_by_client_id(self, session_id: str, client_id: str) -> TurnRecord | None:
        table = schema.turns
        query = select(table).where(table.c.session_id == session_id,
                                    table.c.client_id == client_id)

        def work(conn: Connection) -> TurnRecord | None:
            row = conn.execute(query).first()
            return _turn_from_row(row) if row else None

        return await self._read(work)

    async def get_permission(self, permission_id: str) -> PermissionRecord | None:
        table = schema.permissions

        def work(conn: Connection) -> PermissionRecord | None:
            row = conn.execute(select(table).where(table.c.id == permission_id)).first()
            return _permission_from_row(row) if row else None

        return await self._read(work)

    async def list_permissions(self, *, session_id: str | None = None,
                               statuses: Sequence[str] | None = None
                               ) -> list[PermissionRecord]:
        table = schema.permissions
        query = select(table)
        if session_id is not None:
            query = query.where(table.c.session_id == session_id)
        if statuses is not None:
            query = query.where(table.c.status.in_(list(statuses)))
        query = query.order_by(table.c.created_at, table.c.id)
        return await self._read(
            lambda conn: [_permission_from_row(r) for r in conn.execute(query).all()])

    async def turns_with_status(self, statuses: Sequence[str]) -> list[TurnRecord]:
        table = schema.turns
        query = (select(table).where(table.c.status.in_(list(statuses)))
                 .order_by(table.c.created_at))
        return await self._read(
            lambda conn: [_turn_from_row(r) for r in conn.execute(query).all()])

    # -- event log -----------------------------------------------------------------
    async def append_events(self, session_id: str, events: Sequence[NewEvent],
                            change: StateChange | None = None) -> list[EventRecord]:
        change = change or StateChange()
        table = schema.sessions
        ts = _now()
        messages = [e for e in events if e.message_role is not None]
        values: dict[str, Any] = dict(change.session)
        values["last_seq"] = table.c.last_seq + len(events)
        if messages:
            values["message_count"] = table.c.message_count + len(messages)
        if change.usage is not None:
            for column in _USAGE_COLUMNS:
                values[column] = getattr(table.c, column) + getattr(change.usage, column)
            values["total_cost_usd"] = table.c.total_cost_usd + change.usage.total_cost_usd

        def work(conn: Connection) -> list[EventRecord]:
            if change.new_turn is not None:
                _insert_turn(conn, change.new_turn)
            if change.new_permission is not None:
                _insert_permission(conn, change.new_permission)
            if change.permission_id is not None and change.permission:
                conn.execute(update(schema.permissions)
                             .where(schema.permissions.c.id == change.permission_id)
                             .values(**change.permission))
            if change.turn_id is not None and change.turn:
                conn.execute(update(schema.turns).where(schema.turns.c.id == change.turn_id)
                             .values(**change.turn))
            row = conn.execute(update(table).where(table.c.id == session_id).values(**values)
                               .returning(table.c.last_seq, table.c.owner)).first()
            if row is None:
                raise KeyError(session_id)
            last, owner = row
            first = last - len(events) + 1
            records = [
                EventRecord(session_id=session_id, seq=first + i, type=e.type, ts=ts,
                            data=e.data, turn_id=e.turn_id)
                for i, e in enumerate(events)
            ]
            if records:
                conn.execute(insert(schema.events), [
                    {"session_id": r.session_id, "seq": r.seq, "turn_id": r.turn_id,
                     "type": r.type, "ts": r.ts, "data": r.data} for r in records
                ])
            if messages:
                conn.execute(insert(schema.messages), [
                    {"session_id": session_id, "turn_id": e.turn_id, "role": e.message_role,
                     "content": e.message_content, "created_at": ts} for e in messages
                ])
            if change.usage is not None:
                conn.execute(insert(schema.usage).values(
                    session_id=session_id, turn_id=change.turn_id, owner=owner,
                    model=change.usage_model, cost_usd=change.usage.total_cost_usd,
                    created_at=ts, **{c: getattr(change.usage, c) for c in _USAGE_COLUMNS}))
            return records

        return await self._write(work)

    async def list_events(self, session_id: str, *, after: int = 0, limit: int = 1000
                          ) -> list[EventRecord]:
        table = schema.events
        query = (select(table).where(table.c.session_id == session_id, table.c.seq > after)
                 .order_by(table.c.seq).limit(limit))
        return await self._read(
            lambda conn: [_event_from_row(r) for r in conn.execute(query).all()])

    # -- messages ------------------------------------------------------------------
    async def add_message(self, session_id: str, role: str, content: Any,
                          turn_id: str | None) -> MessageRecord:
        created = _now()

        def work(conn: Connection) -> int:
            result = conn.execute(insert(schema.messages).values(
                session_id=session_id, turn_id=turn_id, role=role, content=content,
                created_at=created))
            conn.execute(update(schema.sessions).where(schema.sessions.c.id == session_id)
                         .values(message_count=schema.sessions.c.message_count + 1))
            (message_id,) = result.inserted_primary_key or (0,)
            return int(message_id)

        message_id = await self._write(work)
        return MessageRecord(id=message_id, session_id=session_id, role=role,
                             content=content, created_at=created, turn_id=turn_id)

    async def list_messages(self, session_id: str, *, limit: int, offset: int
                            ) -> tuple[list[MessageRecord], int]:
        table = schema.messages

        def work(conn: Connection) -> tuple[list[MessageRecord], int]:
            total = int(conn.execute(select(func.count()).select_from(table)
                                     .where(table.c.session_id == session_id)).scalar_one())
            rows = conn.execute(select(table).where(table.c.session_id == session_id)
                                .order_by(table.c.id).limit(limit).offset(offset)).all()
            return [
                MessageRecord(id=r.id, session_id=r.session_id, role=r.role, content=r.content,
                              created_at=r.created_at, turn_id=r.turn_id)
                for r in rows
            ], total

        return await self._read(work)

    # -- API keys ------------------------------------------------------------------
    async def create_api_key(self, record: ApiKeyRecord) -> None:
        await self._write(lambda conn: conn.execute(insert(schema.api_keys).values(
            name=record.name, key_hash=record.key_hash, prefix=record.prefix,
            admin=record.admin, rate_limit=record.rate_limit, created_at=record.created_at,
            revoked_at=record.revoked_at)))

    async def list_api_keys(self, *, include_revoked: bool = False) -> list[ApiKeyRecord]:
        table = schema.api_keys
        query = select(table).order_by(table.c.name)
        if not include_revoked:
            query = query.where(table.c.revoked_at.is_(None))
        return await self._read(lambda conn: [_key_from_row(r) for r in conn.execute(query)])

    async def api_key(self, name: str) -> ApiKeyRecord | None:
        table = schema.api_keys
        query = select(table).where(table.c.name == name)

        def work(conn: Connection) -> ApiKeyRecord | None:
            row = conn.execute(query).first()
            return _key_from_row(row) if row else None

        return await self._read(work)

    async def revoke_api_key(self, name: str, when: datetime) -> bool:
        table = schema.api_keys

        def work(conn: Connection) -> bool:
            result = conn.execute(update(table).where(table.c.name == name,
                                                      table.c.revoked_at.is_(None))
                                  .values(revoked_at=when))
            return bool(result.rowcount)

        return await self._write(work)

    async def spent_since(self, owner: str, since: datetime) -> float:
        table = schema.usage
        query = select(func.coalesce(func.sum(table.c.cost_usd), 0.0)).where(
            table.c.owner == owner, table.c.created_at >= since)
        return await self._read(lambda conn: float(conn.execute(query).scalar_one()))

    # -- transcripts ---------------------------------------------------------------
    async def transcript_append(
        self, project_key: str, session_id: str, subpath: str, entries: Sequence[str],
        summarize: Callable[[tuple[int, dict[str, Any]] | None], dict[str, Any]] | None = None,
    ) -> None:
        if not entries:
            return
        stamp = int(time.time() * 1000)
        rows = [{"project_key": project_key, "session_id": session_id, "subpath": subpath,
                 "entry": e, "created_at": stamp} for e in entries]
        summaries = schema.transcript_summaries

        def work(conn: Connection) -> None:
            conn.execute(insert(schema.transcript_entries), rows)
            if summarize is None:
                return
            key = and_(summaries.c.project_key == project_key,
                       summaries.c.session_id == session_id)
            row = conn.execute(select(summaries.c.mtime, summaries.c.data).where(key)).first()
            data = summarize((int(row.mtime), dict(row.data)) if row else None)
            if row:
                conn.execute(update(summaries).where(key).values(mtime=stamp, data=data))
            else:
                conn.execute(insert(summaries).values(project_key=project_key,
                                                      session_id=session_id, mtime=stamp,
                                                      data=data))

        await self._write(work)

    async def transcript_load(self, project_key: str, session_id: str, subpath: str
                              ) -> list[str] | None:
        table = schema.transcript_entries
        query = (select(table.c.entry).where(table.c.project_key == project_key,
                                             table.c.session_id == session_id,
                                             table.c.subpath == subpath).order_by(table.c.id))
        rows = await self._read(lambda conn: list(conn.execute(query).scalars().all()))
        return rows or None

    async def transcript_sessions(self, project_key: str) -> list[tuple[str, int]]:
        table = schema.transcript_entries
        query = (select(table.c.session_id, func.max(table.c.created_at))
                 .where(table.c.project_key == project_key, table.c.subpath == "")
                 .group_by(table.c.session_id))
        return await self._read(
            lambda conn: [(r[0], int(r[1])) for r in conn.execute(query).all()])

    async def transcript_delete(self, project_key: str, session_id: str,
                                subpath: str | None) -> None:
        table = schema.transcript_entries
        summaries = schema.transcript_summaries
        condition = and_(table.c.project_key == project_key, table.c.session_id == session_id)

        def work(conn: Connection) -> None:
            if subpath is None:
                conn.execute(delete(table).where(condition))
                conn.execute(delete(summaries).where(summaries.c.project_key == project_key,
                                                     summaries.c.session_id == session_id))
            else:
                conn.execute(delete(table).where(condition, table.c.subpath == subpath))

        await self._write(work)

    async def transcript_subkeys(self, project_key: str, session_id: str) -> list[str]:
        table = schema.transcript_entries
        query = (select(table.c.subpath).distinct()
                 .where(table.c.project_key == project_key, table.c.session_id == session_id,
                        table.c.subpath != ""))
        return await self._read(lambda conn: sorted(conn.execute(query).scalars().all()))

    async def transcript_summary_get_all(self, project_key: str
                                         ) -> list[tuple[str, int, dict[str, Any]]]:
        table = schema.transcript_summaries
        query = select(table).where(table.c.project_key == project_key)
        return await self._read(lambda conn: [
            (r.session_id, int(r.mtime), dict(r.data)) for r in conn.execute(query).all()])

    async def transcript_summary_put(self, project_key: str, session_id: str, mtime: int,
                                     data: dict[str, Any]) -> None:
        table = schema.transcript_summaries

        def work(conn: Connection) -> None:
            conn.execute(delete(table).where(table.c.project_key == project_key,
                                             table.c.session_id == session_id))
            conn.execute(insert(table).values(project_key=project_key, session_id=session_id,
                                              mtime=mtime, data=data))

        await self._write(work)


def _key_from_row(row: Row[Any]) -> ApiKeyRecord:
    m = row._mapping
    return ApiKeyRecord(name=m["name"], key_hash=m["key_hash"], prefix=m["prefix"],
                        created_at=m["created_at"], admin=bool(m["admin"]),
                        rate_limit=m["rate_limit"], revoked_at=m["revoked_at"])


def _insert_turn(conn: Connection, turn: TurnRecord) -> None:
    conn.execute(insert(schema.turns).values(
        id=turn.id, session_id=turn.session_id, status=turn.status, prompt=turn.prompt,
        created_at=turn.created_at, started_at=turn.started_at, ended_at=turn.ended_at,
        outcome=turn.outcome, client_id=turn.client_id))


def _insert_permission(conn: Connection, record: PermissionRecord) -> None:
    conn.execute(insert(schema.permissions).values(
        id=record.id, session_id=record.session_id, turn_id=record.turn_id,
        tool_name=record.tool_name, input=record.input, details=record.details,
        status=record.status, created_at=record.created_at, expires_at=record.expires_at,
        resolved_at=record.resolved_at, resolution=record.resolution))
