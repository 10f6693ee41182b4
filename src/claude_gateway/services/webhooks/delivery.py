"""Sending webhook deliveries: signing (Standard Webhooks), attempts, retries.

Every node runs one :class:`DeliveryWorker`. It claims due deliveries from the store
(exactly one node claims each attempt), sends each once with at most
``webhook_concurrency`` attempts under way, and records how it went: a 2xx succeeds,
a 410 disables the endpoint, anything else (another status, a timeout, a refused
address) is retried after the next delay of ``webhook_retry_schedule`` with +-10%
jitter, and fails for good once the schedule is spent.

The worker wakes when this node queues deliveries (the store calls it after the
write), when the earliest pending delivery falls due, and at least every
``poll_seconds`` (deliveries another node queued and could not send, claims of a node
that died).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
from standardwebhooks.webhooks import Webhook

from claude_gateway import __version__
from claude_gateway.settings import Settings
from claude_gateway.storage.base import Store
from claude_gateway.storage.records import AttemptResult, DeliveryRecord, WebhookRecord
from claude_gateway.wire import rfc3339

logger = logging.getLogger("claude_gateway.webhooks")

Observe = Callable[[str, float], None]
"""Told each attempt's outcome (``succeeded``, ``retrying`` or ``failed``) and time."""


def delivery_body(delivery: DeliveryRecord, webhook: WebhookRecord) -> dict[str, Any]:
    """What an attempt sends: the event's envelope, its endpoint and attempt number,
    and where its session's history is."""
    body: dict[str, Any] = {
        "type": delivery.event_type, "seq": delivery.seq, "sessionId": delivery.session_id,
        "turnId": delivery.turn_id, "ts": rfc3339(delivery.created_at),
        "data": delivery.data, "webhookId": webhook.id, "deliveryId": delivery.id,
        "attempt": delivery.attempts}
    if delivery.session_id is not None:
        base = f"/v1/sessions/{delivery.session_id}"
        body["links"] = {"session": base, "events": f"{base}/events",
                         "messages": f"{base}/messages"}
    return body


def retry_delay(schedule: list[float], attempts: int) -> float | None:
    """Seconds until the next attempt after ``attempts`` failed ones (None: no more)."""
    if attempts - 1 >= len(schedule):
        return None
    return schedule[attempts - 1] * random.uniform(0.9, 1.1)  # noqa: S311 - jitter


class DeliveryWorker:
    def __init__(self, settings: Settings, store: Store, client: httpx.AsyncClient, *,
                 observe: Observe | None = None) -> None:
        self.settings = settings
        self.store = store
        self.client = client
        self.observe = observe
        self.node_id = settings.node_id
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._attempts: set[asyncio.Task[None]] = set()
        self._idle_poll = settings.poll_seconds if not settings.single_node else 60.0

    @property
    def claim_seconds(self) -> float:
        """How long a claim holds: an attempt's timeout, with room to record it."""
        return self.settings.webhook_timeout_seconds * 2 + 5

    def start(self) -> None:
        self.store.on_deliveries = self.wake
        self._task = asyncio.create_task(self._forever(), name="webhook-deliveries")

    async def stop(self) -> None:
        self.store.on_deliveries = None
        tasks = [t for t in (self._task, *self._attempts) if t is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        self._task = None
        # Attempts cut short are due again at once, here after a restart or elsewhere.
        with contextlib.suppress(Exception):
            await self.store.release_claims(self.node_id)

    def wake(self) -> None:
        self._wake.set()

    def footprint(self) -> dict[str, int]:
        return {"webhook attempts": len(self._attempts)}

    async def _forever(self) -> None:
        try:
            # The only node (SQLite) restarted: whatever was claimed was cut short. With
            # several nodes, a dead node's claims run out (``claim_seconds``).
            if self.settings.single_node:
                await self.store.release_claims(None)
        except Exception:
            logger.exception("could not release earlier delivery claims")
        last_prune = 0.0
        while True:
            try:
                if time.monotonic() - last_prune > 3600:
                    last_prune = time.monotonic()
                    await self._prune()
                await self._once()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("the webhook worker failed a round; it goes on")
                await asyncio.sleep(1)

    async def _once(self) -> None:
        self._wake.clear()
        free = self.settings.webhook_concurrency - len(self._attempts)
        if free > 0:
            claimed = await self.store.claim_deliveries(self.node_id, free,
                                                        self.claim_seconds)
            for delivery, webhook in claimed:
                task = asyncio.create_task(self._attempt_logged(delivery, webhook))
                self._attempts.add(task)
                task.add_done_callback(self._attempt_done)
            if len(claimed) == free:
                return  # more may be due
        wait = self._idle_poll
        due = await self.store.next_delivery_due()
        if due is not None:
            wait = min(wait, max(0.05, (due - datetime.now(UTC)).total_seconds()))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), wait)

    def _attempt_done(self, task: asyncio.Task[None]) -> None:
        self._attempts.discard(task)
        self._wake.set()  # a slot is free

    async def _prune(self) -> None:
        cutoff = datetime.fromtimestamp(time.time() - self.settings.webhook_retention_seconds,
                                        UTC)
        await self.store.prune_deliveries(cutoff)

    async def _attempt_logged(self, delivery: DeliveryRecord, webhook: WebhookRecord) -> None:
        try:
            await self.attempt(delivery, webhook)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("a webhook delivery attempt failed to be recorded",
                             extra={"delivery_id": delivery.id})

    async def attempt(self, delivery: DeliveryRecord, webhook: WebhookRecord
                      ) -> DeliveryRecord | None:
        """Send one (claimed) attempt and record it; the delivery afterwards."""
        result = await self.send(delivery, webhook)
        retry_in = (None if result.succeeded
                    else retry_delay(self.settings.webhook_retry_schedule, delivery.attempts))
        finished = await self.store.finish_attempt(
            delivery, self.node_id, result, retry_in=retry_in,
            disable_after=self.settings.webhook_disable_after_seconds or float("inf"))
        self.wake()  # a retry to schedule, or its owner's webhook.disabled deliveries
        if finished is None:
            return None
        record, disabled = finished
        if disabled:
            logger.warning("webhook endpoint disabled", extra={
                "webhook_id": webhook.id, "owner": webhook.owner})
        if self.observe is not None:
            self.observe(record.status if record.status != "pending" else "retrying",
                         result.latency_ms / 1000)
        return record

    async def send(self, delivery: DeliveryRecord, webhook: WebhookRecord) -> AttemptResult:
        """One signed POST; how it went. Never raises for the receiver's faults."""
        body = json.dumps(delivery_body(delivery, webhook), separators=(",", ":"))
        moment = datetime.now(UTC)
        headers = {
            "content-type": "application/json",
            "user-agent": f"claude-gateway/{__version__}",
            "webhook-id": delivery.id,
            "webhook-timestamp": str(int(moment.timestamp())),
            "webhook-signature": Webhook(webhook.secret).sign(delivery.id, moment, body),
        }
        started = time.monotonic()
        status: int | None = None
        error: str | None = None
        try:
            async with asyncio.timeout(self.settings.webhook_timeout_seconds):
                async with self.client.stream("POST", webhook.url, content=body,
                                              headers=headers) as response:
                    status = response.status_code
        except TimeoutError:
            error = f"no answer within {self.settings.webhook_timeout_seconds:g} s"
        except httpx.HTTPError as exc:
            error = str(exc) or exc.__class__.__name__
        if status is not None and not 200 <= status < 300:
            error = f"answered {status}"
        return AttemptResult(status_code=status, error=error,
                             latency_ms=int((time.monotonic() - started) * 1000), at=moment)
