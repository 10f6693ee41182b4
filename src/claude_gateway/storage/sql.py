"""The SQL store (SQLAlchemy 2 async). SQLite: WAL, and every write through one writer."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Row, and_, delete, event, func, insert, or_, select, update
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from claude_gateway.storage import schema
from claude_gateway.storage.migrations import upgrade_to_head
from claude_gateway.storage.records import (
    EventRecord,
    MessageRecord,
    NewEvent,
    SessionRecord,
    StateChange,
    TurnRecord,
    Usage,
)

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
    )


def _turn_from_row(row: Row[Any]) -> TurnRecord:
    m = row._mapping
    return TurnRecord(id=m["id"], session_id=m["session_id"], status=m["status"],
                      prompt=m["prompt"], created_at=m["created_at"],
                      started_at=m["started_at"], ended_at=m["ended_at"], outcome=m["outcome"])


def _event_from_row(row: Row[Any]) -> EventRecord:
    m = row._mapping
    return EventRecord(session_id=m["session_id"], seq=m["seq"], type=m["type"], ts=m["ts"],
                       data=dict(m["data"]), turn_id=m["turn_id"])


class SqlStore:
    """A :class:`~claude_gateway.storage.base.Store` on any SQLAlchemy async URL."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._is_sqlite = make_url(url).get_backend_name() == "sqlite"
        self._engine: AsyncEngine | None = None
        # SQLite allows one writer at a time; queueing writes here instead of in
        # SQLite's busy handler keeps them in order and never times out.
        self._writer = asyncio.Lock()

    @property
    def engine(self) -> AsyncEngine:
        if self._engine is None:
            raise RuntimeError("store not started")
        return self._engine

    async def start(self) -> None:
        if self._is_sqlite:
            database = make_url(self.url).database
            if database and database != ":memory:":
                Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(self.url)
        if self._is_sqlite:
            @event.listens_for(engine.sync_engine, "connect")
            def _pragmas(dbapi_connection: Any, _record: Any) -> None:
                cursor = dbapi_connection.cursor()
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute("PRAGMA synchronous=NORMAL")
                cursor.execute("PRAGMA foreign_keys=ON")
                cursor.execute("PRAGMA busy_timeout=10000")
                cursor.close()
        self._engine = engine
        async with self._write() as conn:
            await conn.run_sync(upgrade_to_head)

    async def close(self) -> None:
        if self._engine is not None:
            await self._engine.dispose()
            self._engine = None

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[AsyncConnection]:
        async with self._writer, self.engine.begin() as conn:
            yield conn

    @asynccontextmanager
    async def _read(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.connect() as conn:
            yield conn

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
            **{c: getattr(session.usage, c) for c in _USAGE_COLUMNS},
        }
        async with self._write() as conn:
            await conn.execute(insert(schema.sessions).values(**values))

    async def get_session(self, session_id: str) -> SessionRecord | None:
        async with self._read() as conn:
            row = (await conn.execute(
                select(schema.sessions).where(schema.sessions.c.id == session_id))).first()
        return _session_from_row(row) if row else None

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
        async with self._read() as conn:
            rows = (await conn.execute(query)).all()
        return [_session_from_row(r) for r in rows]

    async def update_session(self, session_id: str, **fields: Any) -> None:
        if not fields:
            return
        async with self._write() as conn:
            await conn.execute(update(schema.sessions)
                               .where(schema.sessions.c.id == session_id).values(**fields))

    async def add_session_usage(self, session_id: str, usage: Usage, *, turn_id: str | None,
                                model: str | None) -> None:
        table = schema.sessions
        increments = {c: getattr(table.c, c) + getattr(usage, c) for c in _USAGE_COLUMNS}
        increments["total_cost_usd"] = table.c.total_cost_usd + usage.total_cost_usd
        async with self._write() as conn:
            owner = (await conn.execute(
                update(table).where(table.c.id == session_id).values(**increments)
                .returning(table.c.owner))).scalar_one_or_none()
            if owner is None:
                return
            await conn.execute(insert(schema.usage).values(
                session_id=session_id, turn_id=turn_id, owner=owner, model=model,
                cost_usd=usage.total_cost_usd, created_at=_now(),
                **{c: getattr(usage, c) for c in _USAGE_COLUMNS},
            ))

    async def delete_session(self, session_id: str) -> bool:
        async with self._write() as conn:
            for table in (schema.events, schema.messages, schema.usage, schema.turns):
                await conn.execute(delete(table).where(table.c.session_id == session_id))
            result = await conn.execute(
                delete(schema.sessions).where(schema.sessions.c.id == session_id))
        return bool(result.rowcount)

    async def count_sessions(self, statuses: Sequence[str]) -> int:
        table = schema.sessions
        async with self._read() as conn:
            return int((await conn.execute(
                select(func.count()).select_from(table)
                .where(table.c.status.in_(list(statuses)), table.c.kind == "session")
            )).scalar_one())

    # -- turns ---------------------------------------------------------------------
    async def create_turn(self, turn: TurnRecord) -> None:
        async with self._write() as conn:
            await conn.execute(insert(schema.turns).values(
                id=turn.id, session_id=turn.session_id, status=turn.status, prompt=turn.prompt,
                created_at=turn.created_at, started_at=turn.started_at, ended_at=turn.ended_at,
                outcome=turn.outcome,
            ))

    async def get_turn(self, turn_id: str) -> TurnRecord | None:
        async with self._read() as conn:
            row = (await conn.execute(
                select(schema.turns).where(schema.turns.c.id == turn_id))).first()
        return _turn_from_row(row) if row else None

    async def update_turn(self, turn_id: str, **fields: Any) -> None:
        async with self._write() as conn:
            await conn.execute(update(schema.turns)
                               .where(schema.turns.c.id == turn_id).values(**fields))

    async def list_turns(self, session_id: str, statuses: Sequence[str] | None = None
                         ) -> list[TurnRecord]:
        table = schema.turns
        query = select(table).where(table.c.session_id == session_id)
        if statuses is not None:
            query = query.where(table.c.status.in_(list(statuses)))
        async with self._read() as conn:
            rows = (await conn.execute(query.order_by(table.c.created_at, table.c.id))).all()
        return [_turn_from_row(r) for r in rows]

    async def turns_with_status(self, statuses: Sequence[str]) -> list[TurnRecord]:
        table = schema.turns
        async with self._read() as conn:
            rows = (await conn.execute(select(table).where(table.c.status.in_(list(statuses)))
                                       .order_by(table.c.created_at))).all()
        return [_turn_from_row(r) for r in rows]

    # -- event log -----------------------------------------------------------------
    async def append_events(self, session_id: str, events: Sequence[NewEvent],
                            change: StateChange | None = None) -> list[EventRecord]:
        change = change or StateChange()
        table = schema.sessions
        ts = _now()
        messages = [e for e in events if e.message_role is not None]
        values: dict[str, Any] = dict(change.session)
        if events:
            values["last_seq"] = table.c.last_seq + len(events)
        if messages:
            values["message_count"] = table.c.message_count + len(messages)
        if change.usage is not None:
            for column in _USAGE_COLUMNS:
                values[column] = getattr(table.c, column) + getattr(change.usage, column)
            values["total_cost_usd"] = table.c.total_cost_usd + change.usage.total_cost_usd
        async with self._write() as conn:
            if change.new_turn is not None:
                turn = change.new_turn
                await conn.execute(insert(schema.turns).values(
                    id=turn.id, session_id=turn.session_id, status=turn.status,
                    prompt=turn.prompt, created_at=turn.created_at, started_at=turn.started_at,
                    ended_at=turn.ended_at, outcome=turn.outcome))
            if change.turn_id is not None and change.turn:
                await conn.execute(update(schema.turns)
                                   .where(schema.turns.c.id == change.turn_id)
                                   .values(**change.turn))
            query = update(table).where(table.c.id == session_id).returning(
                table.c.last_seq, table.c.owner)
            row = (await conn.execute(query.values(**values) if values else
                                      query.values(last_seq=table.c.last_seq))).first()
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
                await conn.execute(insert(schema.events), [
                    {"session_id": r.session_id, "seq": r.seq, "turn_id": r.turn_id,
                     "type": r.type, "ts": r.ts, "data": r.data} for r in records
                ])
            if messages:
                await conn.execute(insert(schema.messages), [
                    {"session_id": session_id, "turn_id": e.turn_id, "role": e.message_role,
                     "content": e.message_content, "created_at": ts} for e in messages
                ])
            if change.usage is not None:
                await conn.execute(insert(schema.usage).values(
                    session_id=session_id, turn_id=change.turn_id, owner=owner,
                    model=change.usage_model, cost_usd=change.usage.total_cost_usd,
                    created_at=ts, **{c: getattr(change.usage, c) for c in _USAGE_COLUMNS}))
        return records

    async def list_events(self, session_id: str, *, after: int = 0, limit: int = 1000
                          ) -> list[EventRecord]:
        table = schema.events
        async with self._read() as conn:
            rows = (await conn.execute(
                select(table).where(table.c.session_id == session_id, table.c.seq > after)
                .order_by(table.c.seq).limit(limit))).all()
        return [_event_from_row(r) for r in rows]

    # -- messages ------------------------------------------------------------------
    async def add_message(self, session_id: str, role: str, content: Any,
                          turn_id: str | None) -> MessageRecord:
        created = _now()
        async with self._write() as conn:
            result = await conn.execute(insert(schema.messages).values(
                session_id=session_id, turn_id=turn_id, role=role, content=content,
                created_at=created))
            await conn.execute(update(schema.sessions).where(schema.sessions.c.id == session_id)
                               .values(message_count=schema.sessions.c.message_count + 1))
        (message_id,) = result.inserted_primary_key or (0,)
        return MessageRecord(id=int(message_id), session_id=session_id, role=role,
                             content=content, created_at=created, turn_id=turn_id)

    async def list_messages(self, session_id: str, *, limit: int, offset: int
                            ) -> tuple[list[MessageRecord], int]:
        table = schema.messages
        async with self._read() as conn:
            total = int((await conn.execute(select(func.count()).select_from(table)
                                            .where(table.c.session_id == session_id))
                         ).scalar_one())
            rows = (await conn.execute(select(table).where(table.c.session_id == session_id)
                                       .order_by(table.c.id).limit(limit).offset(offset))).all()
        return [
            MessageRecord(id=r.id, session_id=r.session_id, role=r.role, content=r.content,
                          created_at=r.created_at, turn_id=r.turn_id)
            for r in rows
        ], total

    # -- transcripts ---------------------------------------------------------------
    async def transcript_append(self, project_key: str, session_id: str, subpath: str,
                                entries: Sequence[str]) -> None:
        if not entries:
            return
        stamp = int(time.time() * 1000)
        async with self._write() as conn:
            await conn.execute(insert(schema.transcript_entries), [
                {"project_key": project_key, "session_id": session_id, "subpath": subpath,
                 "entry": e, "created_at": stamp} for e in entries
            ])

    async def transcript_load(self, project_key: str, session_id: str, subpath: str
                              ) -> list[str] | None:
        table = schema.transcript_entries
        async with self._read() as conn:
            rows = (await conn.execute(
                select(table.c.entry).where(table.c.project_key == project_key,
                                            table.c.session_id == session_id,
                                            table.c.subpath == subpath)
                .order_by(table.c.id))).scalars().all()
        return list(rows) if rows else None

    async def transcript_sessions(self, project_key: str) -> list[tuple[str, int]]:
        table = schema.transcript_entries
        async with self._read() as conn:
            rows = (await conn.execute(
                select(table.c.session_id, func.max(table.c.created_at))
                .where(table.c.project_key == project_key, table.c.subpath == "")
                .group_by(table.c.session_id))).all()
        return [(r[0], int(r[1])) for r in rows]

    async def transcript_delete(self, project_key: str, session_id: str,
                                subpath: str | None) -> None:
        table = schema.transcript_entries
        condition = and_(table.c.project_key == project_key, table.c.session_id == session_id)
        async with self._write() as conn:
            if subpath is None:
                await conn.execute(delete(table).where(condition))
                summaries = schema.transcript_summaries
                await conn.execute(delete(summaries).where(
                    summaries.c.project_key == project_key, summaries.c.session_id == session_id))
            else:
                await conn.execute(delete(table).where(condition, table.c.subpath == subpath))

    async def transcript_subkeys(self, project_key: str, session_id: str) -> list[str]:
        table = schema.transcript_entries
        async with self._read() as conn:
            rows = (await conn.execute(
                select(table.c.subpath).distinct()
                .where(table.c.project_key == project_key, table.c.session_id == session_id,
                       table.c.subpath != ""))).scalars().all()
        return sorted(rows)

    async def transcript_summary_get_all(self, project_key: str
                                         ) -> list[tuple[str, int, dict[str, Any]]]:
        table = schema.transcript_summaries
        async with self._read() as conn:
            rows = (await conn.execute(
                select(table).where(table.c.project_key == project_key))).all()
        return [(r.session_id, int(r.mtime), dict(r.data)) for r in rows]

    async def transcript_summary_put(self, project_key: str, session_id: str, mtime: int,
                                     data: dict[str, Any]) -> None:
        table = schema.transcript_summaries
        async with self._write() as conn:
            await conn.execute(delete(table).where(table.c.project_key == project_key,
                                                   table.c.session_id == session_id))
            await conn.execute(insert(table).values(project_key=project_key,
                                                    session_id=session_id, mtime=mtime,
                                                    data=data))
