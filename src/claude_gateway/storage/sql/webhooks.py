"""Webhook endpoints and their deliveries.

Deliveries for events are queued by :func:`queue_deliveries` inside the transaction that
appends the events (``events.py``), so an event is never stored without the deliveries
that announce it. A node's worker claims due deliveries (``claimed_by`` until
``claimed_until``; ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so two nodes never claim
one row), sends one attempt each and records how it went. A claim whose node died runs
out and the delivery is due again, on any node.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Row, and_, delete, func, insert, or_, select, update

from claude_gateway.storage import schema
from claude_gateway.storage.records import (
    AttemptResult,
    DeliveryRecord,
    EventRecord,
    NewEvent,
    WebhookRecord,
)
from claude_gateway.storage.sql.engine import SqlEngine
from claude_gateway.storage.sql.leases import db_now

WEBHOOK_DISABLED = "webhook.disabled"


def delivery_id() -> str:
    return f"msg_{uuid.uuid4().hex}"


def webhook_from_row(row: Row[Any]) -> WebhookRecord:
    m = row._mapping
    return WebhookRecord(
        id=m["id"], owner=m["owner"], url=m["url"], events=list(m["events"]),
        secret=m["secret"], created_at=m["created_at"], updated_at=m["updated_at"],
        description=m["description"], enabled=m["enabled"], disabled_at=m["disabled_at"],
        disabled_reason=m["disabled_reason"], failing_since=m["failing_since"])


def delivery_from_row(row: Row[Any]) -> DeliveryRecord:
    m = row._mapping
    return DeliveryRecord(
        id=m["id"], webhook_id=m["webhook_id"], owner=m["owner"], event_type=m["event_type"],
        data=dict(m["payload"]), status=m["status"], created_at=m["created_at"],
        attempts=m["attempts"], session_id=m["session_id"], turn_id=m["turn_id"],
        seq=m["seq"], next_attempt_at=m["next_attempt_at"], claimed_by=m["claimed_by"],
        claimed_until=m["claimed_until"], last_status_code=m["last_status_code"],
        last_error=m["last_error"], last_latency_ms=m["last_latency_ms"],
        last_attempt_at=m["last_attempt_at"])


def _enabled_hooks(conn: Connection, owner: str) -> list[WebhookRecord]:
    table = schema.webhooks
    rows = conn.execute(select(table).where(table.c.owner == owner,
                                            table.c.enabled.is_(True))).all()
    return [webhook_from_row(r) for r in rows]


def _insert_deliveries(conn: Connection, rows: list[dict[str, Any]]) -> None:
    if rows:
        conn.execute(insert(schema.webhook_deliveries), rows)


def _delivery_row(webhook: WebhookRecord, event_type: str, data: dict[str, Any],
                  created: datetime, *, session_id: str | None = None,
                  turn_id: str | None = None, seq: int | None = None) -> dict[str, Any]:
    return {"id": delivery_id(), "webhook_id": webhook.id, "owner": webhook.owner,
            "event_type": event_type, "session_id": session_id, "turn_id": turn_id,
            "seq": seq, "payload": data, "status": "pending", "attempts": 0,
            "next_attempt_at": created, "created_at": created}


def queue_deliveries(conn: Connection, owner: str, events: Sequence[NewEvent],
                     records: Sequence[EventRecord]) -> int:
    """In the events' transaction: a pending delivery of each announced event to each of
    the owner's enabled endpoints that subscribe to its type. Returns how many."""
    announced = [(e.announce, r) for e, r in zip(events, records, strict=True)
                 if e.announce is not None]
    if not announced:
        return 0
    hooks = _enabled_hooks(conn, owner)
    rows = [_delivery_row(hook, announcement.type, announcement.data, record.ts,
                          session_id=record.session_id, turn_id=record.turn_id,
                          seq=record.seq)
            for announcement, record in announced for hook in hooks
            if hook.wants(announcement.type)]
    _insert_deliveries(conn, rows)
    return len(rows)


def _disable(conn: Connection, webhook_id: str, reason: str, moment: datetime) -> None:
    """Disable an endpoint and tell its owner's other endpoints that want to know."""
    table = schema.webhooks
    row = conn.execute(update(table).where(table.c.id == webhook_id,
                                           table.c.enabled.is_(True))
                       .values(enabled=False, disabled_at=moment, disabled_reason=reason,
                               updated_at=moment)
                       .returning(table.c.owner, table.c.url)).first()
    if row is None:
        return
    owner, url = row
    data = {"webhookId": webhook_id, "url": url, "reason": reason,
            "disabledAt": moment.isoformat().replace("+00:00", "Z")}
    _insert_deliveries(conn, [_delivery_row(hook, WEBHOOK_DISABLED, data, moment)
                              for hook in _enabled_hooks(conn, owner)
                              if hook.wants(WEBHOOK_DISABLED)])


class WebhookRows(SqlEngine):
    # -- endpoints ---------------------------------------------------------------------
    async def create_webhook(self, webhook: WebhookRecord) -> None:
        def work(conn: Connection) -> None:
            conn.execute(insert(schema.webhooks).values(
                id=webhook.id, owner=webhook.owner, url=webhook.url,
                description=webhook.description, events=webhook.events,
                secret=webhook.secret, enabled=webhook.enabled,
                created_at=webhook.created_at, updated_at=webhook.updated_at))

        await self._write(work)

    async def get_webhook(self, webhook_id: str) -> WebhookRecord | None:
        table = schema.webhooks
        row = await self._read(
            lambda conn: conn.execute(select(table).where(table.c.id == webhook_id)).first())
        return webhook_from_row(row) if row is not None else None

    async def list_webhooks(self, owner: str | None = None) -> list[WebhookRecord]:
        table = schema.webhooks
        query = select(table).order_by(table.c.created_at, table.c.id)
        if owner is not None:
            query = query.where(table.c.owner == owner)
        rows = await self._read(lambda conn: conn.execute(query).all())
        return [webhook_from_row(r) for r in rows]

    async def update_webhook(self, webhook_id: str, **fields: Any) -> WebhookRecord | None:
        """Set columns; enabling clears the disabled and failing marks."""
        table = schema.webhooks

        def work(conn: Connection) -> WebhookRecord | None:
            values = dict(fields)
            values["updated_at"] = db_now(conn)
            if values.get("enabled") is True:
                values.update(disabled_at=None, disabled_reason=None, failing_since=None)
            row = conn.execute(update(table).where(table.c.id == webhook_id)
                               .values(**values).returning(*table.c)).first()
            return webhook_from_row(row) if row is not None else None

        return await self._write(work)

    async def delete_webhook(self, webhook_id: str) -> bool:
        def work(conn: Connection) -> bool:
            conn.execute(delete(schema.webhook_deliveries)
                         .where(schema.webhook_deliveries.c.webhook_id == webhook_id))
            result = conn.execute(delete(schema.webhooks)
                                  .where(schema.webhooks.c.id == webhook_id))
            return bool(result.rowcount)

        return await self._write(work)

    # -- deliveries --------------------------------------------------------------------
    async def add_delivery(self, webhook: WebhookRecord, event_type: str,
                           data: dict[str, Any], *, node_id: str, claim_seconds: float
                           ) -> DeliveryRecord:
        """A delivery that announces no stored event (a test ping), claimed by
        ``node_id`` for its first attempt."""
        def work(conn: Connection) -> DeliveryRecord:
            moment = db_now(conn)
            row = _delivery_row(webhook, event_type, data, moment)
            row.update(claimed_by=node_id, attempts=1, last_attempt_at=moment,
                       claimed_until=moment + timedelta(seconds=claim_seconds))
            _insert_deliveries(conn, [row])
            return self._delivery(conn, row["id"])

        return await self._write(work)

    @staticmethod
    def _delivery(conn: Connection, delivery_id: str) -> DeliveryRecord:
        table = schema.webhook_deliveries
        return delivery_from_row(conn.execute(
            select(table).where(table.c.id == delivery_id)).one())

    async def get_delivery(self, delivery_id: str) -> DeliveryRecord | None:
        table = schema.webhook_deliveries
        row = await self._read(lambda conn: conn.execute(
            select(table).where(table.c.id == delivery_id)).first())
        return delivery_from_row(row) if row is not None else None

    async def list_deliveries(self, webhook_id: str, *, limit: int,
                              before: tuple[datetime, str] | None = None,
                              status: str | None = None) -> list[DeliveryRecord]:
        """Newest first; ``before``: the (created_at, id) of the last one already seen."""
        table = schema.webhook_deliveries
        query = select(table).where(table.c.webhook_id == webhook_id)
        if status is not None:
            query = query.where(table.c.status == status)
        if before is not None:
            query = query.where(or_(table.c.created_at < before[0],
                                    and_(table.c.created_at == before[0],
                                         table.c.id < before[1])))
        query = query.order_by(table.c.created_at.desc(), table.c.id.desc()).limit(limit)
        rows = await self._read(lambda conn: conn.execute(query).all())
        return [delivery_from_row(r) for r in rows]

    async def claim_deliveries(self, node_id: str, limit: int, claim_seconds: float
                               ) -> list[tuple[DeliveryRecord, WebhookRecord]]:
        """Claim up to ``limit`` due deliveries of enabled endpoints for one attempt
        each: their attempt count goes up now."""
        deliveries, hooks = schema.webhook_deliveries, schema.webhooks

        def work(conn: Connection) -> list[tuple[DeliveryRecord, WebhookRecord]]:
            moment = db_now(conn)
            free = or_(deliveries.c.claimed_until.is_(None),
                       deliveries.c.claimed_until < moment)
            query = (select(deliveries.c.id).join(hooks, hooks.c.id == deliveries.c.webhook_id)
                     .where(deliveries.c.status == "pending", free, hooks.c.enabled.is_(True),
                            deliveries.c.next_attempt_at <= moment))
            query = (query.order_by(deliveries.c.next_attempt_at).limit(limit)
                     .with_for_update(of=deliveries, skip_locked=True))
            ids = list(conn.execute(query).scalars())
            if not ids:
                return []
            conn.execute(update(deliveries).where(deliveries.c.id.in_(ids)).values(
                claimed_by=node_id, claimed_until=moment + timedelta(seconds=claim_seconds),
                attempts=deliveries.c.attempts + 1, last_attempt_at=moment))
            claimed = [delivery_from_row(r) for r in conn.execute(
                select(deliveries).where(deliveries.c.id.in_(ids))).all()]
            endpoints = {w.id: w for w in map(webhook_from_row, conn.execute(
                select(hooks).where(hooks.c.id.in_({d.webhook_id for d in claimed}))).all())}
            return [(d, endpoints[d.webhook_id]) for d in claimed]

        return await self._write(work)

    async def finish_attempt(self, delivery: DeliveryRecord, node_id: str,
                             result: AttemptResult, *, retry_in: float | None,
                             disable_after: float) -> tuple[DeliveryRecord, bool] | None:
        """Record an attempt: ``succeeded``; or ``pending`` again in ``retry_in`` seconds;
        or ``failed`` (``retry_in`` None). A 410, or failures with no success for
        ``disable_after`` seconds, disable the endpoint. None if this node's claim was
        lost meanwhile (another node took the delivery); else the delivery and whether the
        endpoint was disabled now."""
        deliveries, hooks = schema.webhook_deliveries, schema.webhooks

        def work(conn: Connection) -> tuple[DeliveryRecord, bool] | None:
            moment = db_now(conn)
            values: dict[str, Any] = {
                "claimed_by": None, "claimed_until": None,
                "last_status_code": result.status_code, "last_error": result.error,
                "last_latency_ms": result.latency_ms}
            if result.succeeded:
                values.update(status="succeeded", next_attempt_at=None)
            elif retry_in is not None and result.status_code != 410:
                values.update(status="pending",
                              next_attempt_at=moment + timedelta(seconds=retry_in))
            else:
                values.update(status="failed", next_attempt_at=None)
            done = conn.execute(update(deliveries).where(
                deliveries.c.id == delivery.id, deliveries.c.claimed_by == node_id,
                deliveries.c.status == "pending").values(**values))
            if not done.rowcount:
                return None
            disabled = False
            if result.succeeded:
                conn.execute(update(hooks).where(hooks.c.id == delivery.webhook_id)
                             .values(failing_since=None))
            else:
                conn.execute(update(hooks).where(hooks.c.id == delivery.webhook_id,
                                                 hooks.c.failing_since.is_(None))
                             .values(failing_since=result.at))
                since = conn.execute(select(hooks.c.failing_since, hooks.c.enabled)
                                     .where(hooks.c.id == delivery.webhook_id)).first()
                reason = None
                if result.status_code == 410:
                    reason = "The endpoint answered 410 Gone."
                elif (since is not None and since[0] is not None
                      and (moment - since[0]).total_seconds() >= disable_after):
                    reason = (f"Every delivery failed for {int(disable_after)} s "
                              f"(last: {result.error or result.status_code}).")
                if reason is not None and since is not None and since[1]:
                    _disable(conn, delivery.webhook_id, reason, moment)
                    disabled = True
            return self._delivery(conn, delivery.id), disabled

        return await self._write(work)

    async def retry_delivery(self, delivery_id: str) -> DeliveryRecord | None:
        """Due again now (its attempt count goes on); None while an attempt is under way."""
        table = schema.webhook_deliveries

        def work(conn: Connection) -> DeliveryRecord | None:
            moment = db_now(conn)
            done = conn.execute(update(table).where(
                table.c.id == delivery_id,
                or_(table.c.claimed_until.is_(None), table.c.claimed_until < moment))
                .values(status="pending", next_attempt_at=moment, claimed_by=None,
                        claimed_until=None))
            return self._delivery(conn, delivery_id) if done.rowcount else None

        return await self._write(work)

    async def next_delivery_due(self) -> datetime | None:
        """When the earliest pending delivery of an enabled endpoint is due."""
        deliveries, hooks = schema.webhook_deliveries, schema.webhooks
        query = (select(func.min(func.coalesce(deliveries.c.claimed_until,
                                               deliveries.c.next_attempt_at),
                                 type_=schema.UTCDateTime()))
                 .join(hooks, hooks.c.id == deliveries.c.webhook_id)
                 .where(deliveries.c.status == "pending", hooks.c.enabled.is_(True)))
        moment: datetime | None = await self._read(
            lambda conn: conn.execute(query).scalar_one_or_none())
        return moment

    async def release_claims(self, node_id: str | None) -> int:
        """Claims that will never be finished: this node's (at stop), or every node's
        (None: at the start of the only node on a database)."""
        table = schema.webhook_deliveries

        def work(conn: Connection) -> int:
            query = update(table).where(table.c.status == "pending",
                                        table.c.claimed_by.is_not(None))
            if node_id is not None:
                query = query.where(table.c.claimed_by == node_id)
            result = conn.execute(query.values(claimed_by=None, claimed_until=None))
            return int(result.rowcount)

        return await self._write(work)

    async def prune_deliveries(self, finished_before: datetime) -> int:
        """Forget finished deliveries (succeeded or failed) older than a moment."""
        table = schema.webhook_deliveries

        def work(conn: Connection) -> int:
            result = conn.execute(delete(table).where(
                table.c.status != "pending", table.c.created_at < finished_before))
            return int(result.rowcount)

        return await self._write(work)
