"""The CLI transcripts of the SDK's SessionStore."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import (
    Connection,
    and_,
    delete,
    func,
    insert,
    select,
    update,
)

from claude_gateway.storage import schema
from claude_gateway.storage.sql.engine import SqlEngine


class TranscriptRows(SqlEngine):
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
