"""``/metrics`` (parsed with ``prometheus_client``'s own parser after a scripted
workload) and OpenTelemetry spans (to an in-memory exporter), in process with fake
agents."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client.parser import text_string_to_metric_families

from claude_gateway.events.log import EventLog
from claude_gateway.observability.tracing import Tracing
from tests.helpers.api import assert_error
from tests.helpers.inprocess import InProcess, in_process_gateway
from tests.helpers.webhooks import Receiver

pytestmark = pytest.mark.anyio

USER = "user-key-0123456789abcdef"
ROOT = "root-key-0123456789abcdef"
KEYS = [{"name": "user", "key": USER}, {"name": "root", "key": ROOT, "admin": True}]
U = {"Authorization": f"Bearer {USER}"}
R = {"Authorization": f"Bearer {ROOT}"}
SCRAPER = "scrape-token-0123456789"


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an exposition: (name, sorted labels) -> value."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(found: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str,
          **labels: str) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


async def scrape(gw: InProcess, headers: dict[str, str] = R) -> dict[Any, float]:
    answer = await gw.client.get("/metrics", headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain")
    return samples(answer.text)


async def test_metrics_need_an_admin_key_or_the_metrics_token(tmp_path: Path) -> None:
    async with in_process_gateway(tmp_path, api_keys=KEYS, metrics_token=SCRAPER) as gw:
        assert_error(await gw.client.get("/metrics"), 401, "UNAUTHORIZED")
        assert_error(await gw.client.get("/metrics", headers=U), 403, "FORBIDDEN")
        await scrape(gw, R)
        await scrape(gw, {"Authorization": f"Bearer {SCRAPER}"})
        # The metrics token opens /metrics and nothing else.
        other = await gw.client.get("/v1/sessions",
                                    headers={"Authorization": f"Bearer {SCRAPER}"})
        assert_error(other, 401, "UNAUTHORIZED")


async def test_a_workload_shows_in_the_metrics(tmp_path: Path) -> None:
    with Receiver() as receiver:
        async with in_process_gateway(tmp_path, api_keys=KEYS, subscriber_queue_size=10,
                                      webhook_allow_private=True,
                                      metrics_per_key=True) as gw:
            before = await scrape(gw)
            assert value(before, "claude_gateway_cli_processes", kind="session") == 0
            hook = await gw.client.post("/v1/webhooks", headers=U, json={
                "url": receiver.url("m"), "events": ["turn.completed",
                                                     "permission.requested"]})
            assert hook.status_code == 201
            sid = (await gw.client.post("/v1/sessions", headers=U, json={})).json()["id"]
            for prompt in ("one", "two", "@fail no luck"):
                answer = await gw.client.post(f"/v1/sessions/{sid}/messages", headers=U,
                                              json={"prompt": prompt})
                assert answer.status_code == 200
            # A permission prompt, answered.
            async with anyio.create_task_group() as group:
                async def ask() -> None:
                    await gw.client.post(f"/v1/sessions/{sid}/messages", headers=U,
                                         json={"prompt": '@ask Bash {"command": "ls"}'})

                group.start_soon(ask)
                for _ in range(3):  # two turns before it, then the request
                    asked = (await receiver.next()).json
                assert asked["type"] == "permission.requested"
                mid = await scrape(gw)
                assert value(mid, "claude_gateway_permission_requests_pending") == 1
                await gw.client.post(f"/v1/sessions/{sid}/permissions/"
                                     f"{asked['data']['requestId']}", headers=U,
                                     json={"decision": "deny", "message": "no"})
            # A subscriber that never reads falls behind and is dropped.
            events: EventLog = gw.app.state.events
            slow = events.subscribe(sid, "sse")
            for i in range(20):
                await events.emit(sid, "status", {"kind": "test", "i": i})
            assert slow.overflowed and events.subscriber_count(sid) == 0
            await receiver.next()  # the last completed turn's delivery
            after = await scrape(gw)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("claude_gateway_turns_total", outcome="completed", key="user") == 3
    assert grew("claude_gateway_turns_total", outcome="failed", key="user") == 1
    assert value(after, "claude_gateway_turn_duration_seconds_count",
                 outcome="completed") == 3
    # Each turn that said anything: not the one that failed at once.
    assert value(after, "claude_gateway_turn_first_token_seconds_count") == 3
    assert value(after, "claude_gateway_cli_processes", kind="session") == 1
    assert grew("claude_gateway_cli_spawns_total", outcome="started") == 1
    assert value(after, "claude_gateway_cli_spawn_seconds_count") == 1
    assert value(after, "claude_gateway_permission_requests_total") == 1
    assert value(after, "claude_gateway_permission_requests_pending") == 0
    assert value(after, "claude_gateway_permission_wait_seconds_count", decision="denied") == 1
    assert value(after, "claude_gateway_event_subscribers_dropped_total", transport="sse") == 1
    assert value(after, "claude_gateway_sessions", status="idle") == 1
    assert value(after, "claude_gateway_webhook_deliveries_total", outcome="succeeded") >= 2
    assert value(after, "claude_gateway_webhook_delivery_seconds_count") >= 2
    # Fake agents report 10 input and 5 output tokens per answered turn.
    output = [v for (name, labels), v in after.items() if name == "claude_gateway_tokens_total"
              and ("kind", "output") in labels and ("key", "user") in labels]
    assert sum(output) == 5 * 4
    assert grew("claude_gateway_events_appended_total", type="turn.completed") == 3
    route = "/v1/sessions/{session_id}/messages"
    assert value(after, "claude_gateway_http_requests_total", method="POST", route=route,
                 status="200") == 4
    assert not any(sid in str(labels) for _, labels in after)  # no ids in labels
    assert value(after, "claude_gateway_store_transaction_seconds_count", kind="write") > 0
    assert value(after, "process_virtual_memory_bytes") > 0


async def test_a_turn_makes_a_span_under_the_request_that_sent_it(tmp_path: Path) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    async with in_process_gateway(tmp_path, app_options={"tracing": Tracing(provider)}) as gw:
        sid = (await gw.client.post("/v1/sessions", json={})).json()["id"]
        answer = await gw.client.post(f"/v1/sessions/{sid}/messages", json={"prompt": "hi"})
        assert answer.status_code == 200
        turn_id = answer.json()["turnId"]
    spans = exporter.get_finished_spans()
    by_id = {span.context.span_id: span for span in spans}
    (turn,) = [s for s in spans if s.name == "turn"]
    assert turn.attributes is not None and turn.attributes["turn.id"] == turn_id
    assert turn.parent is not None
    request = by_id[turn.parent.span_id]
    assert request.name == "POST /v1/sessions/{session_id}/messages"
    assert request.parent is None  # the server span: the root of the request's trace
    writes = [s for s in spans if s.name == "store.write" and s.parent is not None
              and s.parent.span_id == turn.context.span_id]
    assert len(writes) >= 2  # turn.started, the answer, turn.completed
    (spawn,) = [s for s in spans if s.name == "cli.spawn"]
    assert by_id[spawn.parent.span_id].name == "POST /v1/sessions"  # type: ignore[union-attr]
