"""Nodes and session leases: which node runs each live session's CLI.

A lease is held while a node has (or is starting) a session's process; giving it up
expires it at once (the row stays, so generations only grow). Its expiry
comes from the database's clock (PostgreSQL's ``now()``; one node's clock on SQLite,
where there is only one node), so nodes need not agree on the time. Every takeover
raises the generation; the owner's writes for the session are conditional on it
(:func:`fenced`), so a node that lost its lease cannot write for the session again.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, NoReturn, TypeVar

from sqlalchemy import Connection, Update, delete, exists, func, insert, select, text, update

from claude_gateway.storage import schema
from claude_gateway.storage.base import DuplicateRecord, FencedOut, RecordNotFound
from claude_gateway.storage.records import Fence, LeaseRecord, NodeRecord
from claude_gateway.storage.sql.engine import SqlEngine, now

Q = TypeVar("Q", bound=Update)


def fenced(query: Q, fence: Fence | None) -> Q:
    """``query`` (an UPDATE of the sessions table) only if ``fence`` still holds: its
    node is the lease's holder at that generation, expired or not (a lease given up is
    an expired one, so the writes in flight when it was given up still land, unless
    another node has claimed the session since)."""
    if fence is None:
        return query
    leases = schema.session_leases
    return query.where(exists().where(leases.c.session_id == schema.sessions.c.id,
                                      leases.c.node_id == fence.node_id,
                                      leases.c.generation == fence.generation))


def raise_missing_or_fenced(conn: Connection, session_id: str, fence: Fence | None
                            ) -> NoReturn:
    """A fenced write changed nothing: the session is gone, or the lease is."""
    found = conn.execute(select(schema.sessions.c.id)
                         .where(schema.sessions.c.id == session_id)).first()
    if found is None:
        raise RecordNotFound(f"session {session_id}")
    raise FencedOut(f"session {session_id}: {fence} no longer holds its lease")


def db_now(conn: Connection) -> datetime:
    """The database's time (PostgreSQL's ``now()``: every node agrees on it)."""
    if conn.dialect.name == "postgresql":
        moment: datetime = conn.execute(select(func.now())).scalar_one()
        return moment
    return now()


def lease_from_row(row: Any) -> LeaseRecord:
    m = row._mapping
    return LeaseRecord(session_id=m["session_id"], node_id=m["node_id"],
                       generation=m["generation"], expires_at=m["expires_at"])


class LeaseRows(SqlEngine):
    async def claim_lease(self, session_id: str, node_id: str, ttl: float
                          ) -> LeaseRecord | None:
        """The session's lease for ``node_id``: kept (renewed) if it holds it, taken
        (generation + 1) if nobody does or its holder's lease expired; None while
        another node holds a live lease."""
        table = schema.session_leases

        def work(conn: Connection) -> LeaseRecord | None:
            moment = db_now(conn)
            query = select(table).where(table.c.session_id == session_id)
            if conn.dialect.name == "postgresql":
                query = query.with_for_update()
            row = conn.execute(query).first()
            expires = moment + timedelta(seconds=ttl)
            if row is None:
                conn.execute(insert(table).values(session_id=session_id, node_id=node_id,
                                                  generation=1, expires_at=expires))
                return LeaseRecord(session_id, node_id, 1, expires)
            current = lease_from_row(row)
            if current.node_id != node_id and current.expires_at > moment:
                return None
            takeover = current.node_id != node_id
            generation = current.generation + 1 if takeover else current.generation
            conn.execute(update(table).where(table.c.session_id == session_id).values(
                node_id=node_id, generation=generation, expires_at=expires))
            return LeaseRecord(session_id, node_id, generation, expires,
                               taken_from=current.node_id if takeover else None)

        try:
            return await self._write(work)
        except DuplicateRecord:  # another node made the first lease meanwhile
            return await self._write(work)

    async def renew_leases(self, node_id: str, session_ids: Sequence[str], ttl: float
                           ) -> list[str]:
        """Push back the expiry of ``node_id``'s leases on these sessions; the sessions
        whose lease it no longer holds (lost to a takeover)."""
        table = schema.session_leases
        wanted = list(session_ids)

        def work(conn: Connection) -> list[str]:
            if not wanted:
                return []
            expires = db_now(conn) + timedelta(seconds=ttl)
            renewed = {row[0] for row in conn.execute(
                update(table).where(table.c.node_id == node_id,
                                    table.c.session_id.in_(wanted))
                .values(expires_at=expires).returning(table.c.session_id))}
            return [s for s in wanted if s not in renewed]

        return await self._write(work)

    async def release_lease(self, fence: Fence, session_id: str) -> None:
        """Give a session's lease up (its process stopped): any node may claim it at once."""
        table = schema.session_leases

        def work(conn: Connection) -> None:
            conn.execute(update(table).where(
                table.c.session_id == session_id, table.c.node_id == fence.node_id,
                table.c.generation == fence.generation).values(
                    expires_at=db_now(conn) - timedelta(seconds=1)))

        await self._write(work)

    async def lease(self, session_id: str) -> LeaseRecord | None:
        """The session's lease while a node holds it (None: free)."""
        table = schema.session_leases

        def work(conn: Connection) -> LeaseRecord | None:
            row = conn.execute(select(table).where(table.c.session_id == session_id,
                                                   table.c.expires_at > db_now(conn))).first()
            return lease_from_row(row) if row is not None else None

        return await self._read(work)

    # -- nodes -------------------------------------------------------------------------
    async def touch_node(self, node_id: str, *, draining: bool = False) -> None:
        """This node is alive (and whether it takes new sessions)."""
        table = schema.nodes

        def work(conn: Connection) -> None:
            moment = db_now(conn)
            changed = conn.execute(update(table).where(table.c.id == node_id).values(
                last_seen_at=moment, draining=draining)).rowcount
            if not changed:
                conn.execute(insert(table).values(id=node_id, started_at=moment,
                                                  last_seen_at=moment, draining=draining))

        await self._write(work)

    async def live_nodes(self, ttl: float) -> list[tuple[NodeRecord, int]]:
        """Nodes seen within ``ttl`` seconds, each with how many leases it holds."""
        nodes, leases = schema.nodes, schema.session_leases

        def work(conn: Connection) -> list[tuple[NodeRecord, int]]:
            moment = db_now(conn)
            since = moment - timedelta(seconds=ttl)
            held = (select(func.count()).where(leases.c.node_id == nodes.c.id,
                                               leases.c.expires_at > moment)
                    .scalar_subquery())
            rows = conn.execute(select(nodes, held.label("leases"))
                                .where(nodes.c.last_seen_at > since)
                                .order_by(nodes.c.id)).all()
            return [(NodeRecord(id=r.id, started_at=r.started_at, last_seen_at=r.last_seen_at,
                                draining=bool(r.draining)), int(r.leases)) for r in rows]

        return await self._read(work)

    async def forget_node(self, node_id: str) -> None:
        """A node stopping: its row goes, and its leases run out now (their rows and
        generations stay; other nodes' sweeps take over the sessions with work left,
        woken by a notification)."""
        def work(conn: Connection) -> None:
            conn.execute(update(schema.session_leases)
                         .where(schema.session_leases.c.node_id == node_id)
                         .values(expires_at=db_now(conn) - timedelta(seconds=1)))
            conn.execute(delete(schema.nodes).where(schema.nodes.c.id == node_id))
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_notify('cgw_inbox', 's')"))

        await self._write(work)

    async def forget_gone_nodes(self, unseen_for: float) -> int:
        """Rows of nodes not seen for ``unseen_for`` seconds (they died) go; how many.
        Their leases ran out long ago; the rows stay (generations only grow)."""
        table = schema.nodes

        def work(conn: Connection) -> int:
            since = db_now(conn) - timedelta(seconds=unseen_for)
            return int(conn.execute(delete(table).where(table.c.last_seen_at < since))
                       .rowcount)

        return await self._write(work)
