"""Prometheus metrics (``prometheus_client``), one registry per application.

Most counters follow the event log: every event this node appends passes through
:meth:`Metrics.observe_event`, which counts turns by outcome, their duration and time
to the first streamed token, tokens and cost by model, permission waits, CLI starts,
upstream errors and retries. Gauges (sessions by status, processes, queues, pending
permissions, subscribers) are read when ``/metrics`` is scraped. The HTTP middleware,
the store and the webhook worker report their own.

Labels never carry ids. The key name is a label of turns, tokens and cost only when
``CLAUDE_GATEWAY_METRICS_PER_KEY`` is on. ``claude_gateway_sessions`` counts the
sessions in the database: with several nodes each reports the cluster's count (take
the max, not the sum); everything else is per node.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from claude_gateway.events.envelope import TERMINAL_TURN_EVENTS, EventType
from claude_gateway.storage.records import EventRecord

NS = "claude_gateway"
TURN_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
FAST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
WAIT_BUCKETS = (1, 5, 15, 30, 60, 300, 900, 3600, 14400, 86400)
_TRACKED = 10_000
"""Turns and permission requests followed at once (older ones are forgotten)."""
_TOKEN_KINDS = (("inputTokens", "input"), ("outputTokens", "output"),
                ("cacheReadInputTokens", "cache_read"),
                ("cacheCreationInputTokens", "cache_creation"))

OwnerOf = Callable[[str], str | None]
"""A session's owner (its key name), if this node knows it."""


class _Started(OrderedDict[str, float]):
    """Start times of things under way, bounded."""

    def start(self, key: str) -> None:
        self[key] = time.monotonic()
        while len(self) > _TRACKED:
            self.popitem(last=False)

    def since(self, key: str) -> float | None:
        started = self.pop(key, None)
        return None if started is None else time.monotonic() - started


class Metrics:
    def __init__(self, *, per_key: bool = False) -> None:
        self.per_key = per_key
        self.owner_of: OwnerOf = lambda _session_id: None
        r = self.registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        GCCollector(registry=r)
        key = ["key"] if per_key else []
        self.sessions = Gauge(f"{NS}_sessions", "Sessions by status (in the database: "
                              "the whole cluster).", ["status"], registry=r)
        self.cli_processes = Gauge(f"{NS}_cli_processes", "Live Claude Code CLI processes "
                                   "on this node: attached to a session, or spare.",
                                   ["kind"], registry=r)
        self.max_cli_processes = Gauge(f"{NS}_cli_processes_max", "The process cap "
                                       "(CLAUDE_GATEWAY_MAX_PROCESSES).", registry=r)
        self.spawns = Counter(f"{NS}_cli_spawns", "CLI processes started for sessions, by "
                              "outcome (started, failed).", ["outcome"], registry=r)
        self.spawn_seconds = Histogram(f"{NS}_cli_spawn_seconds", "Time for a CLI process "
                                       "to start and answer.", buckets=(*FAST_BUCKETS, 60),
                                       registry=r)
        self.turns = Counter(f"{NS}_turns", "Turns ended, by outcome (completed, failed, "
                             "interrupted).", ["outcome", *key], registry=r)
        self.turn_seconds = Histogram(f"{NS}_turn_duration_seconds", "Turn duration, "
                                      "start to end.", ["outcome"], buckets=TURN_BUCKETS,
                                      registry=r)
        self.first_token_seconds = Histogram(f"{NS}_turn_first_token_seconds", "Time from "
                                             "a turn's start to its first streamed output.",
                                             buckets=TURN_BUCKETS, registry=r)
        self.queued_turns = Gauge(f"{NS}_queued_turns", "Turns waiting behind a running "
                                  "one on this node.", registry=r)
        self.running_turns = Gauge(f"{NS}_running_turns", "Turns running on this node.",
                                   registry=r)
        self.permissions_pending = Gauge(f"{NS}_permission_requests_pending", "Permission "
                                         "requests waiting for an answer on this node.",
                                         registry=r)
        self.permission_requests = Counter(f"{NS}_permission_requests", "Permission "
                                           "requests made.", registry=r)
        self.permission_wait = Histogram(f"{NS}_permission_wait_seconds", "Time a "
                                         "permission request waited, by how it ended.",
                                         ["decision"], buckets=WAIT_BUCKETS, registry=r)
        self.events = Counter(f"{NS}_events_appended", "Events appended to session logs.",
                              ["type"], registry=r)
        self.subscribers = Gauge(f"{NS}_event_subscribers", "Live event streams, by "
                                 "transport (sse, websocket, internal).", ["transport"],
                                 registry=r)
        self.subscribers_dropped = Counter(f"{NS}_event_subscribers_dropped", "Live "
                                           "streams ended for falling behind (the client "
                                           "replays with Last-Event-ID).", ["transport"],
                                           registry=r)
        self.webhook_deliveries = Counter(f"{NS}_webhook_deliveries", "Webhook delivery "
                                          "attempts, by what the delivery became "
                                          "(succeeded, retrying, failed).", ["outcome"],
                                          registry=r)
        self.webhook_seconds = Histogram(f"{NS}_webhook_delivery_seconds", "Webhook "
                                         "attempt latency.", buckets=FAST_BUCKETS,
                                         registry=r)
        self.upstream_errors = Counter(f"{NS}_upstream_errors", "Turns failed by the "
                                       "model API, by HTTP status.", ["status"], registry=r)
        self.upstream_retries = Counter(f"{NS}_upstream_retries", "Model API calls the CLI "
                                        "retried, by HTTP status.", ["status"], registry=r)
        self.tokens = Counter(f"{NS}_tokens", "Tokens used, by model and kind (input, "
                              "output, cache_read, cache_creation).",
                              ["model", "kind", *key], registry=r)
        self.cost = Counter(f"{NS}_cost_usd", "Cost in USD as the CLI reports it, by "
                            "model.", ["model", *key], registry=r)
        self.http_requests = Counter(f"{NS}_http_requests", "HTTP requests, by method, "
                                     "route template and status.",
                                     ["method", "route", "status"], registry=r)
        self.http_seconds = Histogram(f"{NS}_http_request_duration_seconds", "HTTP "
                                      "request duration (streams: until they end).",
                                      ["method", "route"], buckets=(*FAST_BUCKETS, 60, 300),
                                      registry=r)
        self.store_seconds = Histogram(f"{NS}_store_transaction_seconds", "Store "
                                       "transactions, by kind (read, write).", ["kind"],
                                       buckets=FAST_BUCKETS, registry=r)
        self._turns = _Started()
        self._first = _Started()
        self._permissions = _Started()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    # -- the event log ------------------------------------------------------------------
    def _key(self, record: EventRecord) -> list[str]:
        return [self.owner_of(record.session_id) or ""] if self.per_key else []

    def observe_event(self, record: EventRecord) -> None:
        type_, data = record.type, record.data
        self.events.labels(type_).inc()
        turn = record.turn_id or ""
        if type_ == EventType.TURN_STARTED:
            self._turns.start(turn)
            self._first.start(turn)
        elif type_ in (EventType.MESSAGE_DELTA, EventType.MESSAGE):
            if data.get("role", "assistant") == "assistant":
                waited = self._first.since(turn)
                if waited is not None:
                    self.first_token_seconds.observe(waited)
        elif type_ in TERMINAL_TURN_EVENTS:
            self._turn_ended(record)
        elif type_ == EventType.PERMISSION_REQUESTED:
            self.permission_requests.inc()
            self._permissions.start(str(data.get("requestId", "")))
        elif type_ == EventType.PERMISSION_RESOLVED:
            waited = self._permissions.since(str(data.get("requestId", "")))
            if waited is not None:
                self.permission_wait.labels(str(data.get("status") or "unknown")).observe(
                    waited)
        elif type_ == EventType.PROCESS_STARTED:
            self.spawns.labels("started").inc()
            if isinstance(data.get("startMs"), int | float):
                self.spawn_seconds.observe(data["startMs"] / 1000)
        elif type_ == EventType.PROCESS_STOPPED and data.get("reason") == "start_failed":
            self.spawns.labels("failed").inc()
        elif type_ == EventType.STATUS and data.get("kind") == "api_retry":
            self.upstream_retries.labels(str(data.get("errorStatus") or "none")).inc()

    def _turn_ended(self, record: EventRecord) -> None:
        data = record.data
        outcome = record.type.removeprefix("turn.")
        self.turns.labels(outcome, *self._key(record)).inc()
        self._first.pop(record.turn_id or "", None)
        took = self._turns.since(record.turn_id or "")
        if took is None and isinstance(data.get("durationMs"), int | float):
            took = data["durationMs"] / 1000
        if took is not None:
            self.turn_seconds.labels(outcome).observe(took)
        error = data.get("error") or {}
        if isinstance(error, dict) and error.get("apiErrorStatus"):
            self.upstream_errors.labels(str(error["apiErrorStatus"])).inc()
        model = str(data.get("model") or "unknown")
        usage = data.get("usage")
        if isinstance(usage, dict):
            for field, kind in _TOKEN_KINDS:
                count = usage.get(field)
                if isinstance(count, int) and count > 0:
                    self.tokens.labels(model, kind, *self._key(record)).inc(count)
        cost = data.get("totalCostUsd")
        if isinstance(cost, int | float) and cost > 0:
            self.cost.labels(model, *self._key(record)).inc(cost)

    # -- others ---------------------------------------------------------------------------
    def subscriber_dropped(self, transport: str) -> None:
        self.subscribers_dropped.labels(transport).inc()

    def webhook_attempt(self, outcome: str, seconds: float) -> None:
        self.webhook_deliveries.labels(outcome).inc()
        self.webhook_seconds.observe(seconds)

    def store_transaction(self, kind: str, seconds: float) -> None:
        self.store_seconds.labels(kind).observe(seconds)

    def http_request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.http_requests.labels(method, route, str(status)).inc()
        self.http_seconds.labels(method, route).observe(seconds)

    def set_gauges(self, values: dict[str, Any]) -> None:
        """The scrape-time readings (see ``api/metrics.py``)."""
        self.sessions.clear()
        for status, count in values["sessions"].items():
            self.sessions.labels(status).set(count)
        self.cli_processes.labels("session").set(values["processes"])
        self.cli_processes.labels("spare").set(values["spares"])
        self.max_cli_processes.set(values["max_processes"])
        self.queued_turns.set(values["queued"])
        self.running_turns.set(values["running"])
        self.permissions_pending.set(values["permissions"])
        self.subscribers.clear()
        for transport, count in values["subscribers"].items():
            self.subscribers.labels(transport).set(count)
