"""API keys (hashed)."""

from __future__ import annotations

from datetime import datetime
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
    ApiKeyRecord,
)
from claude_gateway.storage.sql.engine import SqlEngine


def key_from_row(row: Row[Any]) -> ApiKeyRecord:
    m = row._mapping
    return ApiKeyRecord(name=m["name"], key_hash=m["key_hash"], prefix=m["prefix"],
                        created_at=m["created_at"], admin=bool(m["admin"]),
                        rate_limit=m["rate_limit"], revoked_at=m["revoked_at"])


class ApiKeyRows(SqlEngine):
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
        return await self._read(lambda conn: [key_from_row(r) for r in conn.execute(query)])

    async def api_key(self, name: str) -> ApiKeyRecord | None:
        table = schema.api_keys
        query = select(table).where(table.c.name == name)

        def work(conn: Connection) -> ApiKeyRecord | None:
            row = conn.execute(query).first()
            return key_from_row(row) if row else None

        return await self._read(work)

    async def revoke_api_key(self, name: str, when: datetime) -> bool:
        table = schema.api_keys

        def work(conn: Connection) -> bool:
            result = conn.execute(update(table).where(table.c.name == name,
                                                      table.c.revoked_at.is_(None))
                                  .values(revoked_at=when))
            return bool(result.rowcount)

        return await self._write(work)
