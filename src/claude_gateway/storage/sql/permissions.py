"""Permission requests (written with their events)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    Connection,
    Row,
    insert,
    select,
)

from claude_gateway.storage import schema
from claude_gateway.storage.records import (
    PermissionRecord,
)
from claude_gateway.storage.sql.engine import SqlEngine


def permission_from_row(row: Row[Any]) -> PermissionRecord:
    m = row._mapping
    return PermissionRecord(
        id=m["id"], session_id=m["session_id"], tool_name=m["tool_name"],
        input=dict(m["input"]), status=m["status"], created_at=m["created_at"],
        turn_id=m["turn_id"], details=dict(m["details"] or {}), expires_at=m["expires_at"],
        resolved_at=m["resolved_at"], resolution=m["resolution"])


def insert_permission(conn: Connection, record: PermissionRecord) -> None:
    conn.execute(insert(schema.permissions).values(
        id=record.id, session_id=record.session_id, turn_id=record.turn_id,
        tool_name=record.tool_name, input=record.input, details=record.details,
        status=record.status, created_at=record.created_at, expires_at=record.expires_at,
        resolved_at=record.resolved_at, resolution=record.resolution))


class PermissionRows(SqlEngine):
    async def get_permission(self, permission_id: str) -> PermissionRecord | None:
        table = schema.permissions

        def work(conn: Connection) -> PermissionRecord | None:
            row = conn.execute(select(table).where(table.c.id == permission_id)).first()
            return permission_from_row(row) if row else None

        return await self._read(work)

    async def list_permissions(self, *, session_id: str | None = None,
                               statuses: Sequence[str] | None = None,
                               owner: str | None = None) -> list[PermissionRecord]:
        table = schema.permissions
        query = select(table)
        if owner is not None:
            sessions = schema.sessions
            query = query.join(sessions, sessions.c.id == table.c.session_id).where(
                sessions.c.owner == owner)
        if session_id is not None:
            query = query.where(table.c.session_id == session_id)
        if statuses is not None:
            query = query.where(table.c.status.in_(list(statuses)))
        query = query.order_by(table.c.created_at, table.c.id)
        return await self._read(
            lambda conn: [permission_from_row(r) for r in conn.execute(query).all()])
