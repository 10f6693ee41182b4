"""Sessions, their usage and what is counted over them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Connection,
    Row,
    Select,
    and_,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)

from claude_gateway.storage import schema
from claude_gateway.storage.base import CapReached
from claude_gateway.storage.records import (
    Fence,
    SessionCaps,
    SessionRecord,
    TurnRecord,
    Usage,
)
from claude_gateway.storage.sql.engine import USAGE_COLUMNS, SqlEngine, now
from claude_gateway.storage.sql.leases import fenced, raise_missing_or_fenced

LEASES = schema.session_leases
LEASE_COLUMNS = (LEASES.c.node_id.label("lease_node"),
                 LEASES.c.expires_at.label("lease_expires_at"))


def with_lease() -> Select[Any]:
    """Sessions, each with the node holding its lease (if any)."""
    return select(schema.sessions, *LEASE_COLUMNS).select_from(schema.sessions.outerjoin(
        LEASES, LEASES.c.session_id == schema.sessions.c.id))


def session_from_row(row: Row[Any]) -> SessionRecord:
    m = row._mapping
    expires = m.get("lease_expires_at")
    node = m.get("lease_node") if expires is not None and expires > now() else None
    return SessionRecord(
        node=node,
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


CAPS_LOCK = 0x63677701
"""PostgreSQL advisory lock taken by session creates that check the caps: they count
and insert one at a time, on every node."""


def check_caps(conn: Connection, caps: SessionCaps, owner: str) -> None:
    """CapReached if a new session of ``owner`` would pass a cap (counted in the
    database, so the caps hold across nodes). SQLite's one writer thread serializes
    the creates already; PostgreSQL's take an advisory lock to the end of the
    transaction."""
    table = schema.sessions
    if conn.dialect.name == "postgresql":
        conn.execute(select(func.pg_advisory_xact_lock(CAPS_LOCK)))
    active = (select(func.count()).select_from(table)
              .where(table.c.status.in_(list(caps.statuses)), table.c.kind == "session"))
    if caps.total > 0 and int(conn.execute(active).scalar_one()) >= caps.total:
        raise CapReached("total", caps.total)
    if owner and caps.per_owner > 0 and int(conn.execute(
            active.where(table.c.owner == owner)).scalar_one()) >= caps.per_owner:
        raise CapReached("per_owner", caps.per_owner)


class SessionRows(SqlEngine):
    async def create_session(self, session: SessionRecord,
                             caps: SessionCaps | None = None) -> None:
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
            **{c: getattr(session.usage, c) for c in USAGE_COLUMNS},
        }

        def work(conn: Connection) -> None:
            if caps is not None and session.kind == "session":
                check_caps(conn, caps, session.owner)
            conn.execute(insert(schema.sessions).values(**values))

        await self._write(work)

    async def get_session(self, session_id: str) -> SessionRecord | None:
        def work(conn: Connection) -> SessionRecord | None:
            row = conn.execute(
                with_lease().where(schema.sessions.c.id == session_id)).first()
            return session_from_row(row) if row else None

        return await self._read(work)

    async def list_sessions(
        self, *, owner: str | None = None, status: str | None = None, limit: int = 50,
        after: tuple[datetime, str] | None = None,
    ) -> list[SessionRecord]:
        table = schema.sessions
        query = with_lease().where(table.c.kind == "session")
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
            lambda conn: [session_from_row(r) for r in conn.execute(query).all()])

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
                     turns.c.outcome.label("turn_outcome"), *LEASE_COLUMNS)
                 .select_from(sessions.outerjoin(turns, turns.c.session_id == sessions.c.id)
                              .outerjoin(LEASES, LEASES.c.session_id == sessions.c.id))
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
                found.append((session_from_row(row), turn))
            return found

        return await self._read(work)

    async def session_by_external_id(self, owner: str, external_id: str
                                     ) -> SessionRecord | None:
        table = schema.sessions
        query = with_lease().where(table.c.owner == owner, table.c.external_id == external_id)

        def work(conn: Connection) -> SessionRecord | None:
            row = conn.execute(query).first()
            return session_from_row(row) if row else None

        return await self._read(work)

    async def latest_conversation(self, workspace_path: str, owner: str | None = None
                                  ) -> SessionRecord | None:
        table = schema.sessions
        query = with_lease().where(table.c.workspace_path == workspace_path,
                                    table.c.claude_session_id.is_not(None))
        if owner is not None:
            query = query.where(table.c.owner == owner)
        return await self._latest(query)

    async def conversation(self, claude_session_id: str, owner: str | None = None
                           ) -> SessionRecord | None:
        table = schema.sessions
        query = with_lease().where(table.c.claude_session_id == claude_session_id)
        if owner is not None:
            query = query.where(table.c.owner == owner)
        return await self._latest(query)

    async def _latest(self, query: Select[Any]) -> SessionRecord | None:
        """The most recently active session ``query`` selects."""
        table = schema.sessions
        query = query.order_by(table.c.last_activity_at.desc(), table.c.id.desc()).limit(1)

        def work(conn: Connection) -> SessionRecord | None:
            row = conn.execute(query).first()
            return session_from_row(row) if row else None

        return await self._read(work)

    async def sessions_expired_by(self, moment: datetime, statuses: Sequence[str],
                                  limit: int = 500) -> list[SessionRecord]:
        table = schema.sessions
        query = (with_lease().where(table.c.expires_at <= moment,
                                     table.c.status.in_(list(statuses)))
                 .order_by(table.c.expires_at).limit(limit))
        return await self._read(
            lambda conn: [session_from_row(r) for r in conn.execute(query).all()])

    async def update_session(self, session_id: str, *, fence: Fence | None = None,
                             **fields: Any) -> None:
        if not fields:
            return
        table = schema.sessions

        def work(conn: Connection) -> None:
            query = fenced(update(table).where(table.c.id == session_id), fence)
            if conn.execute(query.values(**fields)).rowcount == 0 and fence is not None:
                raise_missing_or_fenced(conn, session_id, fence)

        await self._write(work)

    async def delete_session(self, session_id: str) -> bool:
        def work(conn: Connection) -> bool:
            for table in (schema.events, schema.messages, schema.usage, schema.permissions,
                          schema.turns, schema.session_leases):
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

    async def spent_since(self, owner: str, since: datetime) -> float:
        table = schema.usage
        query = select(func.coalesce(func.sum(table.c.cost_usd), 0.0)).where(
            table.c.owner == owner, table.c.created_at >= since)
        return await self._read(lambda conn: float(conn.execute(query).scalar_one()))
