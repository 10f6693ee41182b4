"""What nodes share besides leases: the inbox of commands between them, workspace holds,
and counts of work across every node.

A node that gets a command (a prompt, an interrupt, a permission answer, a change, a
deletion) for a session another live node runs writes it here for that node, which
takes it, acts on it and writes the answer back. On PostgreSQL a ``NOTIFY`` on
``cgw_inbox`` wakes the receiver (payload ``c <target>``) and the sender (``a <sender>
<id>``); both also poll, so a lost notification only delays.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Row, delete, func, insert, or_, select, text, update

from claude_gateway.storage import schema
from claude_gateway.storage.records import CommandRecord
from claude_gateway.storage.sql.engine import SqlEngine
from claude_gateway.storage.sql.leases import db_now
from claude_gateway.storage.sql.listen import EventListener

INBOX_CHANNEL = "cgw_inbox"


def command_from_row(row: Row[Any]) -> CommandRecord:
    m = row._mapping
    return CommandRecord(id=m["id"], session_id=m["session_id"], target_node=m["target_node"],
                         from_node=m["from_node"], kind=m["kind"], payload=dict(m["payload"]),
                         status=m["status"], answer=m["answer"], created_at=m["created_at"])


def notify(conn: Connection, payload: str) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_notify(:channel, :payload)"),
                     {"channel": INBOX_CHANNEL, "payload": payload})


class ClusterRows(SqlEngine):
    # -- the inbox ---------------------------------------------------------------------
    async def send_command(self, command: CommandRecord) -> int:
        table = schema.node_commands

        def work(conn: Connection) -> int:
            result = conn.execute(insert(table).values(
                session_id=command.session_id, target_node=command.target_node,
                from_node=command.from_node, kind=command.kind, payload=command.payload,
                status="pending", created_at=db_now(conn)).returning(table.c.id))
            command_id = int(result.scalar_one())
            notify(conn, f"c {command.target_node}")
            return command_id

        command.id = await self._write(work)
        return command.id

    async def take_commands(self, node_id: str) -> list[CommandRecord]:
        table = schema.node_commands

        def work(conn: Connection) -> list[CommandRecord]:
            rows = conn.execute(update(table).where(
                table.c.target_node == node_id, table.c.status == "pending")
                .values(status="taken").returning(*table.c)).all()
            return sorted((command_from_row(r) for r in rows), key=lambda c: c.id)

        return await self._write(work)

    async def answer_command(self, command_id: int, answer: dict[str, Any]) -> None:
        table = schema.node_commands

        def work(conn: Connection) -> None:
            sender = conn.execute(update(table).where(table.c.id == command_id).values(
                status="answered", answer=answer, answered_at=db_now(conn))
                .returning(table.c.from_node)).scalar()
            if sender is not None:
                notify(conn, f"a {sender} {command_id}")

        await self._write(work)

    async def command(self, command_id: int) -> CommandRecord | None:
        table = schema.node_commands

        def work(conn: Connection) -> CommandRecord | None:
            row = conn.execute(select(table).where(table.c.id == command_id)).first()
            return command_from_row(row) if row is not None else None

        return await self._read(work)

    async def withdraw_command(self, command_id: int) -> bool:
        table = schema.node_commands
        return bool(await self._write(lambda conn: conn.execute(
            update(table).where(table.c.id == command_id, table.c.status == "pending")
            .values(status="withdrawn")).rowcount))

    async def forget_commands(self, before: datetime) -> int:
        table = schema.node_commands
        return int(await self._write(lambda conn: conn.execute(
            delete(table).where(table.c.created_at < before)).rowcount))

    def listen_commands(self, node_id: str, on_wake: Callable[[str], None],
                        on_gap: Callable[[], None]) -> EventListener | None:
        if self._is_sqlite:
            return None

        def dispatch(payload: str) -> None:
            kind, _, rest = payload.partition(" ")
            if kind == "c" and rest == node_id:
                on_wake("c")
            elif kind == "s":
                on_wake("s")
            elif kind == "a" and rest.split(" ")[0] == node_id:
                on_wake(f"a {rest.split(' ')[-1]}")

        return EventListener(self.url, INBOX_CHANNEL, node_id=node_id, on_payload=dispatch,
                             on_gap=on_gap, name="inbox")

    # -- workspace holds ---------------------------------------------------------------
    async def hold_workspace(self, workspace_path: str, session_id: str, node_id: str,
                             token: str, ttl: float) -> str | None:
        table, nodes = schema.workspace_holds, schema.nodes

        def work(conn: Connection) -> str | None:
            moment = db_now(conn)
            query = select(table).where(table.c.workspace_path == workspace_path)
            if conn.dialect.name == "postgresql":
                query = query.with_for_update()
            row = conn.execute(query).first()
            values = {"session_id": session_id, "node_id": node_id, "token": token,
                      "acquired_at": moment}
            if row is None:
                conn.execute(insert(table).values(workspace_path=workspace_path, **values))
                return None
            if row.session_id != session_id:
                alive = conn.execute(select(nodes.c.id).where(
                    nodes.c.id == row.node_id,
                    nodes.c.last_seen_at > moment - timedelta(seconds=ttl))).first()
                if alive is not None:
                    return str(row.session_id)
            conn.execute(update(table).where(table.c.workspace_path == workspace_path)
                         .values(**values))
            return None

        return await self._write(work)

    async def release_workspace(self, workspace_path: str, token: str) -> None:
        table = schema.workspace_holds
        await self._write(lambda conn: conn.execute(delete(table).where(
            table.c.workspace_path == workspace_path, table.c.token == token)))

    async def workspace_holds(self) -> dict[str, str]:
        table = schema.workspace_holds
        return await self._read(lambda conn: {
            r.workspace_path: r.session_id for r in conn.execute(select(table))})

    # -- work across nodes -------------------------------------------------------------
    async def sessions_left_behind(self, node_id: str, limit: int = 100) -> list[str]:
        leases, sessions, turns = schema.session_leases, schema.sessions, schema.turns

        def work(conn: Connection) -> list[str]:
            busy = (select(turns.c.id).where(turns.c.session_id == sessions.c.id,
                                              turns.c.status.in_(["queued", "running"]))
                    .exists())
            query = (select(sessions.c.id).join(leases, leases.c.session_id == sessions.c.id)
                     .where(leases.c.expires_at <= db_now(conn), leases.c.node_id != node_id,
                            or_(sessions.c.status.in_(["starting", "idle", "running"]), busy))
                     .order_by(sessions.c.last_activity_at).limit(limit))
            return [str(r[0]) for r in conn.execute(query)]

        return await self._read(work)

    async def count_busy_turns(self, owner: str) -> int:
        turns, sessions = schema.turns, schema.sessions
        query = (select(func.count()).select_from(turns.join(
            sessions, sessions.c.id == turns.c.session_id))
            .where(sessions.c.owner == owner, turns.c.status.in_(["queued", "running"])))
        return await self._read(lambda conn: int(conn.execute(query).scalar_one()))
