"""The event log and the messages it carries, with the state changes they announce."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    Connection,
    Row,
    func,
    insert,
    select,
    text,
    update,
)

from claude_gateway.storage import schema
from claude_gateway.storage.records import (
    EventRecord,
    MessageRecord,
    NewEvent,
    StateChange,
    Usage,
)
from claude_gateway.storage.sql.engine import EVENTS_CHANNEL, USAGE_COLUMNS, SqlEngine, now
from claude_gateway.storage.sql.leases import fenced, raise_missing_or_fenced
from claude_gateway.storage.sql.permissions import insert_permission
from claude_gateway.storage.sql.turns import insert_turn
from claude_gateway.storage.sql.webhooks import queue_deliveries


def event_from_row(row: Row[Any]) -> EventRecord:
    m = row._mapping
    return EventRecord(session_id=m["session_id"], seq=m["seq"], type=m["type"], ts=m["ts"],
                       data=dict(m["data"]), turn_id=m["turn_id"])


class EventRows(SqlEngine):
    async def append_events(self, session_id: str, events: Sequence[NewEvent],
                            change: StateChange | None = None) -> list[EventRecord]:
        change = change or StateChange()
        table = schema.sessions
        ts = now()
        messages = [e for e in events if e.message_role is not None]
        values: dict[str, Any] = dict(change.session)
        values["last_seq"] = table.c.last_seq + len(events)
        if messages:
            values["message_count"] = table.c.message_count + len(messages)
        if change.usage is not None:
            for column in USAGE_COLUMNS:
                values[column] = getattr(table.c, column) + getattr(change.usage, column)
            values["total_cost_usd"] = table.c.total_cost_usd + change.usage.total_cost_usd

        queued = 0

        def work(conn: Connection) -> list[EventRecord]:
            nonlocal queued
            if change.new_turn is not None:
                insert_turn(conn, change.new_turn)
            if change.new_permission is not None:
                insert_permission(conn, change.new_permission)
            if change.permission_id is not None and change.permission:
                conn.execute(update(schema.permissions)
                             .where(schema.permissions.c.id == change.permission_id)
                             .values(**change.permission))
            if change.turn_id is not None and change.turn:
                conn.execute(update(schema.turns).where(schema.turns.c.id == change.turn_id)
                             .values(**change.turn))
            query = fenced(update(table).where(table.c.id == session_id), change.fence)
            row = conn.execute(query.values(**values)
                               .returning(table.c.last_seq, table.c.owner)).first()
            if row is None:
                raise_missing_or_fenced(conn, session_id, change.fence)
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
                    created_at=ts, **{c: getattr(change.usage, c) for c in USAGE_COLUMNS}))
            if records and conn.dialect.name == "postgresql":
                # Delivered at commit: other nodes' live streams of the session wake up.
                conn.execute(text("SELECT pg_notify(:channel, :payload)"), {
                    "channel": EVENTS_CHANNEL,
                    "payload": f"{self.node_id} {session_id} {first} {last}"})
            queued = queue_deliveries(conn, owner, events, records)
            return records

        written = await self._write(work)
        if queued and self.on_deliveries is not None:
            self.on_deliveries()
        return written

    async def list_events(self, session_id: str, *, after: int = 0, limit: int = 1000
                          ) -> list[EventRecord]:
        table = schema.events
        query = (select(table).where(table.c.session_id == session_id, table.c.seq > after)
                 .order_by(table.c.seq).limit(limit))
        return await self._read(
            lambda conn: [event_from_row(r) for r in conn.execute(query).all()])

    async def add_message(self, session_id: str, role: str, content: Any,
                          turn_id: str | None) -> MessageRecord:
        created = now()

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

    async def add_session_usage(self, session_id: str, usage: Usage, *, turn_id: str | None,
                                model: str | None) -> None:
        await self.append_events(session_id, [], StateChange(
            turn_id=turn_id, usage=usage, usage_model=model))
