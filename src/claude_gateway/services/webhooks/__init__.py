"""Webhooks: a key's endpoints, told of its sessions' events (Standard Webhooks).

=============  ========================================================================
``targets``    where an endpoint may point (the SSRF guard, at creation and connect)
``delivery``   the worker that signs, sends and retries deliveries
=============  ========================================================================

Deliveries are queued by the store in the transaction of the event they announce
(``storage/sql/webhooks.py``); this service manages endpoints for their owners and
lets them look at, retry and test deliveries.
"""

from __future__ import annotations

import base64
import secrets
import uuid
from datetime import datetime
from typing import Any

from claude_gateway.errors import DeliveryNotFound, WebhookDisabled, WebhookNotFound
from claude_gateway.events.announce import PING
from claude_gateway.services.auth import Principal
from claude_gateway.services.webhooks.delivery import DeliveryWorker, Observe
from claude_gateway.services.webhooks.targets import Resolve, check_url, guarded_client, resolve
from claude_gateway.settings import Settings
from claude_gateway.storage.base import Store
from claude_gateway.storage.records import DeliveryRecord, WebhookRecord
from claude_gateway.storage.sql.engine import now


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


class WebhookService:
    def __init__(self, settings: Settings, store: Store, *, observe: Observe | None = None,
                 resolver: Resolve = resolve) -> None:
        self.settings = settings
        self.store = store
        self.client = guarded_client(allow_private=settings.webhook_allow_private,
                                     timeout=settings.webhook_timeout_seconds,
                                     max_connections=settings.webhook_concurrency,
                                     resolver=resolver)
        self.worker = DeliveryWorker(settings, store, self.client, observe=observe)

    def start(self) -> None:
        self.worker.start()

    async def close(self) -> None:
        await self.worker.stop()
        await self.client.aclose()

    def _url(self, url: str) -> str:
        return check_url(url, allow_private=self.settings.webhook_allow_private)

    async def create(self, caller: Principal, url: str, events: list[str],
                     description: str = "") -> WebhookRecord:
        created = now()
        record = WebhookRecord(id=f"wh_{uuid.uuid4().hex}", owner=caller.name,
                               url=self._url(url), events=list(dict.fromkeys(events)),
                               secret=new_secret(), created_at=created, updated_at=created,
                               description=description)
        await self.store.create_webhook(record)
        return record

    async def list_for(self, caller: Principal) -> list[WebhookRecord]:
        return await self.store.list_webhooks(caller.owner_filter)

    async def get(self, caller: Principal, webhook_id: str) -> WebhookRecord:
        record = await self.store.get_webhook(webhook_id)
        owner = caller.owner_filter
        if record is None or (owner is not None and record.owner != owner):
            raise WebhookNotFound(webhook_id)
        return record

    async def update(self, caller: Principal, webhook_id: str, changes: dict[str, Any]
                     ) -> WebhookRecord:
        await self.get(caller, webhook_id)
        if "url" in changes:
            changes["url"] = self._url(changes["url"])
        if "events" in changes:
            changes["events"] = list(dict.fromkeys(changes["events"]))
        record = await self.store.update_webhook(webhook_id, **changes)
        if record is None:
            raise WebhookNotFound(webhook_id)
        if changes.get("enabled"):
            self.worker.wake()  # its pending deliveries are due again
        return record

    async def delete(self, caller: Principal, webhook_id: str) -> None:
        await self.get(caller, webhook_id)
        await self.store.delete_webhook(webhook_id)

    async def deliveries(self, caller: Principal, webhook_id: str, *, limit: int,
                         before: tuple[datetime, str] | None, status: str | None
                         ) -> list[DeliveryRecord]:
        await self.get(caller, webhook_id)
        return await self.store.list_deliveries(webhook_id, limit=limit, before=before,
                                                status=status)

    async def delivery(self, caller: Principal, webhook_id: str, delivery_id: str
                       ) -> DeliveryRecord:
        await self.get(caller, webhook_id)
        record = await self.store.get_delivery(delivery_id)
        if record is None or record.webhook_id != webhook_id:
            raise DeliveryNotFound(delivery_id)
        return record

    async def retry(self, caller: Principal, webhook_id: str, delivery_id: str
                    ) -> DeliveryRecord:
        """Due again now; answered once queued (the worker sends it)."""
        webhook = await self.get(caller, webhook_id)
        if not webhook.enabled:
            raise WebhookDisabled(f"Webhook {webhook_id} is disabled: "
                                  f"{webhook.disabled_reason or 'by its owner'}",
                                  details={"webhookId": webhook_id})
        await self.delivery(caller, webhook_id, delivery_id)
        record = await self.store.retry_delivery(delivery_id)
        if record is None:
            # An attempt is under way right now: it is about to be recorded.
            record = await self.delivery(caller, webhook_id, delivery_id)
        self.worker.wake()
        return record

    async def test(self, caller: Principal, webhook_id: str) -> DeliveryRecord:
        """Send a signed ping now (even to a disabled endpoint, to check it before
        enabling it again); the delivery after its first attempt."""
        webhook = await self.get(caller, webhook_id)
        delivery = await self.store.add_delivery(
            webhook, PING, {"message": "A test delivery from claude-gateway."},
            node_id=self.settings.node_id, claim_seconds=self.worker.claim_seconds)
        await self.worker.attempt(delivery, webhook)
        return await self.delivery(caller, webhook_id, delivery.id)
