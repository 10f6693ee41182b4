"""Webhooks, in process with fake agents, delivered to a real HTTP receiver that checks
every signature with the ``standardwebhooks`` library."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest

from claude_gateway.services.webhooks.targets import resolve
from tests.helpers.api import assert_error
from tests.helpers.inprocess import InProcess, in_process_gateway
from tests.helpers.webhooks import Receiver

pytestmark = pytest.mark.anyio

ALICE = "alice-key-0123456789abcdef"
BOB = "bob-key-0123456789abcdefgh"
KEYS = [{"name": "alice", "key": ALICE}, {"name": "bob", "key": BOB}]
A = {"Authorization": f"Bearer {ALICE}"}
B = {"Authorization": f"Bearer {BOB}"}


@asynccontextmanager
async def gateway(tmp_path: Path, **overrides: Any) -> AsyncIterator[InProcess]:
    values: dict[str, Any] = {"api_keys": KEYS, "webhook_allow_private": True,
                              "webhook_retry_schedule": [0.2, 0.6, 1.5],
                              "webhook_timeout_seconds": 5}
    values.update(overrides)
    async with in_process_gateway(tmp_path, **values) as gw:
        yield gw


async def add_hook(gw: InProcess, url: str, events: list[str], headers: dict[str, str] = A
                   ) -> dict[str, Any]:
    created = await gw.client.post("/v1/webhooks", headers=headers,
                                   json={"url": url, "events": events})
    assert created.status_code == 201, created.text
    hook: dict[str, Any] = created.json()
    return hook


async def turn(gw: InProcess, prompt: str, headers: dict[str, str] = A) -> tuple[str, str]:
    """A session of the caller's with one finished turn: its id and the turn's id."""
    session = (await gw.client.post("/v1/sessions", headers=headers, json={})).json()
    answer = await gw.client.post(f"/v1/sessions/{session['id']}/messages", headers=headers,
                                  json={"prompt": prompt})
    assert answer.status_code == 200, answer.text
    return session["id"], answer.json()["turnId"]


async def test_endpoints_are_per_key_and_the_secret_is_shown_once(tmp_path: Path) -> None:
    with Receiver() as receiver:
        async with gateway(tmp_path) as gw:
            hook = await add_hook(gw, receiver.url("a"), ["turn.completed"])
            assert hook["id"].startswith("wh_") and hook["secret"].startswith("whsec_")
            assert hook["enabled"] is True
            secret = hook["secret"]
            listed = await gw.client.get("/v1/webhooks", headers=A)
            one = await gw.client.get(f"/v1/webhooks/{hook['id']}", headers=A)
            changed = await gw.client.patch(f"/v1/webhooks/{hook['id']}", headers=A,
                                            json={"description": "CI"})
            for answer in (listed, one, changed):
                assert answer.status_code == 200
                assert secret not in answer.text and "secret" not in answer.json()
            assert [h["id"] for h in listed.json()["webhooks"]] == [hook["id"]]
            assert changed.json()["description"] == "CI"
            # Bob sees none of it.
            assert (await gw.client.get("/v1/webhooks", headers=B)).json() == {"webhooks": []}
            for method, path in (("GET", ""), ("PATCH", ""), ("DELETE", ""),
                                 ("GET", "/deliveries"), ("POST", "/test")):
                answer = await gw.client.request(
                    method, f"/v1/webhooks/{hook['id']}{path}", headers=B,
                    json={"description": "x"} if method == "PATCH" else None)
                assert_error(answer, 404, "WEBHOOK_NOT_FOUND")
            assert receiver.count() == 0  # Bob's test ping went nowhere
            # Creation does not contact the URL: a public address that answers nothing.
            public = await gw.client.post("/v1/webhooks", headers=A, json={
                "url": "https://8.8.8.8/hook", "events": ["*"]})
            assert public.status_code == 201
            for bad in ({"url": receiver.url("a"), "events": ["turn.finished"]},
                        {"url": "ftp://example.com/hook", "events": ["*"]},
                        {"url": "https://user:pw@example.com/", "events": ["*"]},
                        {"url": receiver.url("a"), "events": []}):
                refused = await gw.client.post("/v1/webhooks", headers=A, json=bad)
                assert_error(refused, 400, "INVALID_REQUEST")
            deleted = await gw.client.delete(f"/v1/webhooks/{hook['id']}", headers=A)
            assert deleted.status_code == 204
            gone = await gw.client.get(f"/v1/webhooks/{hook['id']}", headers=A)
            assert_error(gone, 404, "WEBHOOK_NOT_FOUND")


async def test_each_subscribed_event_is_delivered_signed_and_no_other(tmp_path: Path) -> None:
    with Receiver() as receiver:
        async with gateway(tmp_path) as gw:
            done = await add_hook(gw, receiver.url("done"), ["turn.completed", "turn.failed"])
            everything = await add_hook(gw, receiver.url("all"), ["*"])
            session_id, turn_id = await turn(gw, "@reply all green")
            got = (await receiver.until(lambda r: r.path == "done")).verified(done["secret"])
            assert got["type"] == "turn.completed"
            assert got["sessionId"] == session_id and got["turnId"] == turn_id
            assert got["webhookId"] == done["id"] and got["attempt"] == 1
            assert got["data"]["result"] == "all green"
            assert got["data"]["usage"]["outputTokens"] == 5
            assert "content" not in str(got["data"])  # no transcript
            assert got["links"]["messages"] == f"/v1/sessions/{session_id}/messages"
            # A failed turn goes to both; session.created and .ended only to "*".
            failed_session, _ = await turn(gw, "@fail upstream fell over")
            failed = await receiver.until(lambda r: r.path == "done")
            assert failed.verified(done["secret"])["type"] == "turn.failed"
            ended = await gw.client.delete(f"/v1/sessions/{failed_session}", headers=A)
            assert ended.status_code == 204
            await receiver.until(lambda r: r.path == "all"
                                 and r.json["type"] == "session.ended")
            seen_all = [r.verified(everything["secret"])["type"]
                        for r in receiver.log if r.path == "all"]
            assert seen_all.count("session.created") == 2
            assert seen_all.count("turn.completed") == 1 and "turn.failed" in seen_all
            assert receiver.count("done") == 2
            # One webhook-id per event and endpoint.
            ids = [r.headers["webhook-id"] for r in receiver.log]
            assert len(ids) == len(set(ids))


async def test_a_permission_request_is_delivered_while_it_is_pending(tmp_path: Path) -> None:
    with Receiver() as receiver:
        async with gateway(tmp_path) as gw:
            hook = await add_hook(gw, receiver.url("ask"),
                                  ["permission.requested", "permission.resolved"])
            session = (await gw.client.post("/v1/sessions", headers=A, json={})).json()
            sid = session["id"]
            async with anyio.create_task_group() as group:
                async def ask() -> None:
                    answer = await gw.client.post(
                        f"/v1/sessions/{sid}/messages", headers=A,
                        json={"prompt": '@ask Write {"file_path": "a.txt"}'})
                    assert answer.status_code == 200

                group.start_soon(ask)
                asked = (await receiver.next()).verified(hook["secret"])
                assert asked["type"] == "permission.requested"
                request_id = asked["data"]["requestId"]
                pending = (await gw.client.get(f"/v1/sessions/{sid}/permissions",
                                               headers=A)).json()["permissions"]
                assert [p["requestId"] for p in pending] == [request_id]
                allowed = await gw.client.post(f"/v1/sessions/{sid}/permissions/{request_id}",
                                               headers=A, json={"decision": "allow"})
                assert allowed.status_code == 200
            resolved = (await receiver.next()).verified(hook["secret"])
            assert resolved["type"] == "permission.resolved"
            assert resolved["data"]["requestId"] == request_id


async def test_failed_attempts_are_retried_with_growing_delays(tmp_path: Path) -> None:
    with Receiver() as receiver:
        receiver.plans["flaky"] = [500, 503, 502]
        async with gateway(tmp_path) as gw:
            hook = await add_hook(gw, receiver.url("flaky"), ["turn.completed"])
            await turn(gw, "hello")
            attempts = [await receiver.next() for _ in range(4)]
            bodies = [a.verified(hook["secret"]) for a in attempts]
            assert [b["attempt"] for b in bodies] == [1, 2, 3, 4]
            assert len({a.headers["webhook-id"] for a in attempts}) == 1
            gaps = [later.at - earlier.at for earlier, later in itertools.pairwise(attempts)]
            assert gaps[0] < gaps[1] < gaps[2], gaps
            assert gaps[0] >= 0.2 * 0.9
            delivery = await wait_for_status(gw, hook["id"], "succeeded")
            assert delivery["id"] == attempts[0].headers["webhook-id"]
            assert delivery["attempts"] == 4 and delivery["status"] == "succeeded"
            assert delivery["responseCode"] == 200 and delivery["latencyMs"] >= 0
            # Once the schedule is spent, it fails for good; a retry sends it again.
            receiver.plans["flaky"] = [500, 500, 500, 500]
            await turn(gw, "again")
            for _ in range(4):
                await receiver.next()
            failed = await wait_for_status(gw, hook["id"], "failed")
            assert failed["attempts"] == 4 and failed["responseCode"] == 500
            assert failed["nextAttemptAt"] is None
            retried = await gw.client.post(
                f"/v1/webhooks/{hook['id']}/deliveries/{failed['id']}/retry", headers=A)
            assert retried.status_code == 202
            again = (await receiver.next()).verified(hook["secret"])
            assert again["attempt"] == 5 and again["deliveryId"] == failed["id"]


async def wait_for_status(gw: InProcess, webhook_id: str, status: str) -> dict[str, Any]:
    """The newest delivery of an endpoint once it has this status (recorded right after
    the receiver answered)."""
    with anyio.fail_after(10):
        while True:
            log = (await gw.client.get(f"/v1/webhooks/{webhook_id}/deliveries",
                                       headers=A, params={"status": status})).json()
            if log["deliveries"]:
                found: dict[str, Any] = log["deliveries"][0]
                return found
            await anyio.sleep(0.05)


async def test_410_disables_the_endpoint_and_its_owner_hears_of_it(tmp_path: Path) -> None:
    with Receiver() as receiver:
        receiver.plans["gone"] = [410]
        async with gateway(tmp_path) as gw:
            gone = await add_hook(gw, receiver.url("gone"), ["turn.completed"])
            watcher = await add_hook(gw, receiver.url("watch"), ["webhook.disabled"])
            await turn(gw, "one")
            assert (await receiver.next()).path == "gone"
            told = (await receiver.next()).verified(watcher["secret"])
            assert told["type"] == "webhook.disabled"
            assert told["data"]["webhookId"] == gone["id"]
            assert "410" in told["data"]["reason"]
            shown = (await gw.client.get(f"/v1/webhooks/{gone['id']}", headers=A)).json()
            assert shown["enabled"] is False and shown["disabledAt"]
            assert "410" in shown["disabledReason"]
            # Nothing more is sent to it, and a retry says why not.
            await turn(gw, "two")
            (delivery,) = (await gw.client.get(f"/v1/webhooks/{gone['id']}/deliveries",
                                               headers=A)).json()["deliveries"]
            assert delivery["status"] == "failed" and delivery["responseCode"] == 410
            refused = await gw.client.post(
                f"/v1/webhooks/{gone['id']}/deliveries/{delivery['id']}/retry", headers=A)
            assert_error(refused, 409, "WEBHOOK_DISABLED")
            # Enabled again, it gets the events from then on (none were queued for it
            # while it was disabled).
            enabled = await gw.client.patch(f"/v1/webhooks/{gone['id']}", headers=A,
                                            json={"enabled": True})
            assert enabled.json()["enabled"] is True and enabled.json()["disabledAt"] is None
            await turn(gw, "three")
            later = (await receiver.next()).verified(gone["secret"])
            assert later["data"]["result"] == "three"
            assert receiver.count("gone") == 2


async def test_an_endpoint_failing_for_long_is_disabled(tmp_path: Path) -> None:
    with Receiver() as receiver:
        receiver.plans["down"] = [503] * 20
        async with gateway(tmp_path, webhook_retry_schedule=[0.1] * 20,
                           webhook_disable_after_seconds=0.5) as gw:
            hook = await add_hook(gw, receiver.url("down"), ["turn.completed"])
            watcher = await add_hook(gw, receiver.url("watch"), ["webhook.disabled"])
            await turn(gw, "hello")
            told = await receiver.until(lambda r: r.path == "watch")
            assert told.verified(watcher["secret"])["data"]["webhookId"] == hook["id"]
            shown = (await gw.client.get(f"/v1/webhooks/{hook['id']}", headers=A)).json()
            assert shown["enabled"] is False
            assert "503" in shown["disabledReason"] and shown["failingSince"]
            sent = receiver.count("down")
            assert 2 <= sent < 20


async def test_no_event_of_another_key_reaches_an_endpoint(tmp_path: Path) -> None:
    with Receiver() as receiver:
        async with gateway(tmp_path) as gw:
            hook = await add_hook(gw, receiver.url("alice"), ["*"])
            await turn(gw, "bob's secret work", headers=B)
            await turn(gw, "alice's work")
            seen = []
            while "turn.completed" not in seen:
                item = (await receiver.next()).verified(hook["secret"])
                seen.append(item["type"])
                assert "bob" not in str(item)
            assert seen == ["session.created", "turn.completed"]


async def test_the_test_ping_is_signed_and_reports_its_attempt(tmp_path: Path) -> None:
    with Receiver() as receiver:
        receiver.plans["ping"] = [500]
        async with gateway(tmp_path) as gw:
            hook = await add_hook(gw, receiver.url("ping"), ["turn.completed"])
            first = await gw.client.post(f"/v1/webhooks/{hook['id']}/test", headers=A)
            assert first.status_code == 200
            assert first.json()["responseCode"] == 500
            assert first.json()["status"] == "pending" and first.json()["nextAttemptAt"]
            ping = (await receiver.next()).verified(hook["secret"])
            assert ping["type"] == "webhook.test" and ping["sessionId"] is None
            retried = (await receiver.next()).verified(hook["secret"])
            assert retried["attempt"] == 2
            second = await gw.client.post(f"/v1/webhooks/{hook['id']}/test", headers=A)
            assert second.json()["status"] == "succeeded"
            assert second.json()["responseCode"] == 200


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:9/hook", "http://169.254.169.254/latest/meta-data",
    "https://10.0.0.1/hook", "http://[::1]:8080/hook", "http://localhost/hook",
    "http://[::ffff:127.0.0.1]/hook", "http://0.0.0.0:8080/", "http://100.64.0.1/"])
async def test_private_targets_are_refused_unless_allowed(tmp_path: Path, url: str) -> None:
    async with gateway(tmp_path, webhook_allow_private=False) as gw:
        refused = await gw.client.post("/v1/webhooks", headers=A,
                                       json={"url": url, "events": ["*"]})
        assert_error(refused, 400, "WEBHOOK_URL_NOT_ALLOWED")
        assert (await gw.client.get("/v1/webhooks", headers=A)).json() == {"webhooks": []}


async def test_a_name_resolving_to_loopback_is_refused_at_connect_time(tmp_path: Path) -> None:
    """The name passes at creation (it is not resolved then); at connect time it resolves
    to loopback and the receiver there is never contacted."""
    names: list[str] = []

    async def fake_dns(host: str, port: int) -> list[str]:
        names.append(host)
        return ["127.0.0.1"] if host == "hooks.example.test" else await resolve(host, port)

    with Receiver() as receiver:
        port = receiver.url("x").rsplit(":", 1)[1].split("/")[0]
        async with in_process_gateway(tmp_path, api_keys=KEYS, webhook_retry_schedule=[0.1],
                                      app_options={"webhook_resolver": fake_dns}) as gw:
            hook = await add_hook(gw, f"http://hooks.example.test:{port}/x", ["*"])
            tested = (await gw.client.post(f"/v1/webhooks/{hook['id']}/test",
                                           headers=A)).json()
            assert tested["responseCode"] is None
            assert "not a public address" in tested["error"]
            assert "127.0.0.1" not in tested["error"]  # the gateway's network stays unmapped
            assert names == ["hooks.example.test"]
            assert receiver.count() == 0


async def test_bodies_are_strict(tmp_path: Path) -> None:
    async with gateway(tmp_path) as gw:
        hook = await add_hook(gw, "https://8.8.8.8/hook", ["*"])
        for bad in ({"enabled": 0}, {"enabled": "false"}, {"events": "*"}, {"colour": "red"}):
            refused = await gw.client.patch(f"/v1/webhooks/{hook['id']}", headers=A, json=bad)
            assert_error(refused, 400, "INVALID_REQUEST")
        shown = (await gw.client.get(f"/v1/webhooks/{hook['id']}", headers=A)).json()
        assert shown["enabled"] is True and shown["events"] == ["*"]
