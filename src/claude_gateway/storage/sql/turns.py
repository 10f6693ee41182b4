"""Turns."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    Connection,
    Row,
    insert,
    select,
    update,
)

from claude_gateway.storage import schema
from claude_gateway.storage.records import (
    TurnRecord,
)
from claude_gateway.storage.sql.engine import SqlEngine


def turn_from_row(row: Row[Any]) -> TurnRecord:
    m = row._mapping
    return TurnRecord(id=m["id"], session_id=m["session_id"], status=m["status"],
                      prompt=m["prompt"], created_at=m["created_at"],
                      started_at=m["started_at"], ended_at=m["ended_at"], outcome=m["outcome"],
                      client_id=m["client_id"])


def insert_turn(conn: Connection, turn: TurnRecord) -> None:
    conn.execute(insert(schema.turns).values(
        id=turn.id, session_id=turn.session_id, status=turn.status, prompt=turn.prompt,
        created_at=turn.created_at, started_at=turn.started_at, ended_at=turn.ended_at,
        outcome=turn.outcome, client_id=turn.client_id))


class TurnRows(SqlEngine):
    async def create_turn(self, turn: TurnRecord) -> None:
        await self._write(lambda conn: insert_turn(conn, turn))

    async def get_turn(self, turn_id: str) -> TurnRecord | None:
        def work(conn: Connection) -> TurnRecord | None:
            row = conn.execute(select(schema.turns).where(schema.turns.c.id == turn_id)).first()
            return turn_from_row(row) if row else None

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
            lambda conn: [turn_from_row(r) for r in conn.execute(query).all()])

    async def turn_by_client_id(self, session_id: str, client_id: str) -> TurnRecord | None:
        table = schema.turns
        query = select(table).where(table.c.session_id == session_id,
                                    table.c.client_id == client_id)

        def work(conn: Connection) -> TurnRecord | None:
            row = conn.execute(query).first()
            return turn_from_row(row) if row else None

        return await self._read(work)

    async def turns_with_status(self, statuses: Sequence[str]) -> list[TurnRecord]:
        table = schema.turns
        query = (select(table).where(table.c.status.in_(list(statuses)))
                 .order_by(table.c.created_at))
        return await self._read(
            lambda conn: [turn_from_row(r) for r in conn.execute(query).all()])
