"""API keys, isolation between principals, rate limits and the hardened surface."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from claude_gateway.cli import app as cli_app
from tests.helpers.api import auth
from tests.helpers.gateway import Gateway

pytestmark = pytest.mark.anyio

ALICE = "alice-key-0123456789abcdef"
BOB = "bob-key-0123456789abcdef"
ROOT = "root-key-0123456789abcd"
SLOW = "slow-key-0123456789abcdef"
KEYS = [
    {"name": "alice", "key": ALICE},
    {"name": "bob", "key": BOB},
    {"name": "root", "key": ROOT, "admin": True},
    {"name": "slow", "key": SLOW, "rateLimit": "8/minute"},
]


def routes(gateway: Gateway) -> list[tuple[str, str]]:
    """Every (method, path) of the OpenAPI schema, path parameters filled in."""
    found = []
    for path, operations in gateway.app.openapi()["paths"].items():
        concrete = re.sub(r"\{[^}]+\}", "x", path)
        found.extend((method.upper(), concrete) for method in operations)
    return found


@pytest.fixture
def secured(start_gateway: Any) -> Gateway:
    # Every route is tried with no key and a wrong one: more failures than the default
    # per-address allowance (tested on its own elsewhere).
    gateway: Gateway = start_gateway(api_keys=KEYS, max_body_bytes=4096,
                                     auth_failure_rate_limit="1000/minute")
    return gateway


async def test_every_route_needs_a_key_but_health(secured: Gateway) -> None:
    checked = 0
    async with secured.client() as client:
        for method, path in routes(secured):
            response = await client.request(method, path, json={} if method in (
                "POST", "PUT", "PATCH") else None)
            if path in ("/health", "/health/ready"):  # probes: liveness and readiness
                assert response.status_code == 200
                continue
            assert response.status_code == 401, (method, path, response.text)
            body = response.json()
            if path.startswith(("/v1/models", "/v1/chat/completions")):
                assert body["error"]["type"] == "authentication_error"
            else:
                assert body["error"]["code"] == "UNAUTHORIZED"
            assert response.headers["www-authenticate"].startswith("Bearer")
            checked += 1
            wrong = await client.request(method, path, headers=auth("cgw_not-a-real-key"))
            assert wrong.status_code == 401, (method, path)
        assert checked >= 15
        # The MCP endpoint refuses before the MCP layer sees anything.
        mcp = await client.post("/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
        assert mcp.status_code == 401 and mcp.json()["error"]["data"]["code"] == "UNAUTHORIZED"
        assert mcp.headers["www-authenticate"].startswith("Bearer")
        # Keys are never accepted in the URL unless the operator enables it.
        query = await client.get("/v1/sessions", params={"access_token": ALICE})
        assert query.status_code == 401
        ok = await client.get("/v1/sessions", headers=auth(ALICE))
        assert ok.status_code == 200
        assert (await client.get("/v1/models", headers=auth(BOB))).status_code == 200


@pytest.mark.cli
async def test_principals_only_see_their_own_resources(secured: Gateway) -> None:
    async with secured.client() as client:
        created = await client.post("/v1/sessions", headers=auth(ALICE),
                                    json={"workspace": "proj"})
        session_id = created.json()["id"]
        done = await client.post(f"/v1/sessions/{session_id}/messages", headers=auth(ALICE),
                                 json={"prompt": "@reply mine"})
        assert done.json()["result"] == "mine"
        for method, path in [("GET", ""), ("GET", "/messages"), ("GET", "/permissions"),
                             ("POST", "/interrupt"), ("PATCH", ""), ("DELETE", "")]:
            other = await client.request(method, f"/v1/sessions/{session_id}{path}",
                                         headers=auth(BOB), json={} if method == "PATCH"
                                         else None)
            assert other.status_code == 404, (method, path, other.text)
            assert other.json()["error"]["code"] == "SESSION_NOT_FOUND"
        events = await client.get(f"/v1/sessions/{session_id}/events", headers=auth(BOB),
                                  params={"follow": "false"})
        assert events.status_code == 404
        assert (await client.post(f"/v1/sessions/{session_id}/messages", headers=auth(BOB),
                                  json={"prompt": "@reply theirs"})).status_code == 404
        assert [s["id"] for s in (await client.get("/v1/sessions", headers=auth(BOB))
                                  ).json()["sessions"]] == []
        # The admin sees everyone's.
        assert (await client.get(f"/v1/sessions/{session_id}", headers=auth(ROOT))
                ).status_code == 200
        # Files: each principal has its own directory; the admin sees the whole root.
        put = await client.put("/v1/files/proj/notes.txt", content=b"alice's",
                               headers=auth(ALICE))
        assert put.status_code == 201
        root = secured.settings.workspace_root
        assert (root / "alice" / "proj" / "notes.txt").read_bytes() == b"alice's"
        assert (await client.get("/v1/files/proj/notes.txt", headers=auth(BOB))
                ).status_code == 404
        theirs = await client.get("/v1/files/%2e%2e/alice/proj/notes.txt", headers=auth(BOB))
        assert theirs.json()["error"]["code"] == "PATH_OUTSIDE_WORKSPACE"
        assert (await client.get("/v1/files/alice/proj/notes.txt", headers=auth(ROOT))
                ).content == b"alice's"
        # The session ran in alice's directory.
        assert (root / "alice" / "proj").is_dir()
        # WebSocket: another principal's session is as good as missing.
        url = f"ws://127.0.0.1:{secured.server.port}/v1/sessions/{session_id}/ws"
        async with connect(url, additional_headers=auth(BOB)) as ws:
            assert json.loads(await ws.recv())["code"] == "SESSION_NOT_FOUND"


@pytest.mark.cli
async def test_websocket_authenticates_by_header_or_first_frame(secured: Gateway) -> None:
    async with secured.client() as client:
        session_id = (await client.post("/v1/sessions", headers=auth(ALICE))).json()["id"]
    url = f"ws://127.0.0.1:{secured.server.port}/v1/sessions/{session_id}/ws"
    async with connect(url) as ws:  # no header: the first frame must authenticate
        await ws.send(json.dumps({"type": "auth", "token": "wrong"}))
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401
    async with connect(url) as ws:
        await ws.send(json.dumps({"type": "auth", "token": ALICE}))
        first = json.loads(await ws.recv())
        assert first["seq"] == 1 and first["type"] == "session.created"
    async with connect(url, additional_headers=auth(ALICE)) as ws:
        assert json.loads(await ws.recv())["seq"] == 1
    with pytest.raises(InvalidStatus, match="HTTP 401"):  # a wrong header: refused at once
        async with connect(url, additional_headers=auth("cgw_wrong")) as ws:
            await ws.recv()


async def test_rate_limits_per_key_with_retry_after(secured: Gateway) -> None:
    async with secured.client() as client:
        codes = [(await client.get("/v1/sessions", headers=auth(SLOW))).status_code
                 for _ in range(9)]
        assert codes == [200] * 8 + [429]
        limited = await client.get("/v1/sessions", headers=auth(SLOW))
        assert limited.json()["error"]["code"] == "RATE_LIMITED"
        assert int(limited.headers["retry-after"]) >= 1
        # Another key has its own budget.
        assert (await client.get("/v1/sessions", headers=auth(ALICE))).status_code == 200


async def test_oversized_bodies_get_413_everywhere(secured: Gateway) -> None:
    big = "x" * 8000
    async with secured.client() as client:
        for path, body in [("/v1/sessions", {"metadata": {"big": big}}),
                           ("/v1/runs", {"prompt": big}),
                           ("/v1/chat/completions", {"model": "sonnet", "messages": [
                               {"role": "user", "content": big}]})]:
            response = await client.post(path, json=body, headers=auth(ALICE))
            assert response.status_code == 413, (path, response.text)
        async def pieces() -> Any:
            for _ in range(10):
                yield b" " * 1000

        chunked = await client.post("/v1/sessions", headers={
            **auth(ALICE), "content-type": "application/json"}, content=pieces())
        assert chunked.status_code == 413
        assert chunked.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"


async def test_host_origin_and_security_headers(start_gateway: Any) -> None:
    gateway: Gateway = start_gateway(cors_origins=["http://console.example"])
    async with gateway.client() as client:
        plain = await client.get("/health")
        assert plain.headers["x-content-type-options"] == "nosniff"
        assert plain.headers["x-frame-options"] == "DENY"
        rebound = await client.get("/v1/sessions", headers={"Host": "evil.example"})
        assert rebound.status_code == 421
        assert rebound.json()["error"]["code"] == "HOST_NOT_ALLOWED"
        cross = await client.get("/v1/sessions", headers={"Origin": "http://evil.example"})
        assert cross.status_code == 403 and cross.json()["error"]["code"] == (
            "ORIGIN_NOT_ALLOWED")
        allowed = await client.get("/v1/sessions",
                                   headers={"Origin": "http://console.example"})
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == "http://console.example"
        preflight = await client.options("/v1/sessions", headers={
            "Origin": "http://console.example", "Access-Control-Request-Method": "POST"})
        assert preflight.status_code == 200
        error = await client.get("/v1/sessions/ses_missing")
        assert "Traceback" not in error.text and "/src/" not in error.text


def test_keys_are_hashed_and_compared_in_constant_time(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio
    import hmac

    from claude_gateway.services import auth as auth_module
    from claude_gateway.settings import Settings
    from claude_gateway.storage.sql import SqlStore

    async def scenario() -> tuple[list[int], list[str], list[str]]:
        store = SqlStore(f"sqlite:///{tmp_path / 'keys.db'}")
        await store.start()
        keys = [await auth_module.create_key(store, f"user{i}") for i in range(5)]
        stored = await store.list_api_keys()
        ring = auth_module.KeyRing(store, Settings(_env_file=None, data_dir=tmp_path))  # type: ignore[call-arg]
        calls: list[int] = []
        real = hmac.compare_digest

        def counting(a: Any, b: Any) -> bool:
            calls[-1] += 1
            return real(a, b)

        monkeypatch.setattr(auth_module.hmac, "compare_digest", counting)
        for key in [keys[0], keys[4], "cgw_nope"]:
            calls.append(0)
            await ring.authenticate(key)
        await store.close()
        return calls, [s.key_hash for s in stored], keys

    calls, hashes, keys = asyncio.run(scenario())
    # Every key is compared, whether the match is first, last or missing.
    # (A key that matches nothing is looked for again after reloading the list: it may
    # have been made a moment ago.)
    assert calls == [5, 5, 10]
    assert len(hashes) == len(keys) == 5
    for key in keys:
        assert key.startswith("cgw_")
        assert not any(key in stored or key[4:] in stored for stored in hashes)


def test_keys_command_and_the_refusal_to_serve_exposed_without_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CLAUDE_GATEWAY_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("CLAUDE_GATEWAY_SPARE_PROCESSES", "0")
    runner = CliRunner()
    refused = runner.invoke(cli_app, ["serve", "--host", "0.0.0.0"])
    assert refused.exit_code == 2
    assert "refusing to serve 0.0.0.0 without API keys" in refused.output
    created = runner.invoke(cli_app, ["keys", "create", "carol", "--rate-limit", "5/second"])
    assert created.exit_code == 0, created.output
    key = created.stdout.strip().splitlines()[-1]
    assert key.startswith("cgw_") and len(key) > 40
    listed = runner.invoke(cli_app, ["keys", "list"])
    assert "carol" in listed.output and key not in listed.output
    assert key[:8] in listed.output
    database = (tmp_path / "data" / "gateway.db").read_bytes()
    assert key.encode() not in database, "keys are stored hashed"
    assert runner.invoke(cli_app, ["keys", "create", "carol"]).exit_code == 1
    assert runner.invoke(cli_app, ["keys", "create", "../evil"]).exit_code == 1
    assert runner.invoke(cli_app, ["keys", "revoke", "carol"]).exit_code == 0
    assert runner.invoke(cli_app, ["keys", "revoke", "carol"]).exit_code == 1


@pytest.mark.cli
async def test_a_revoked_key_stops_working_on_a_running_gateway(start_gateway: Any) -> None:
    from claude_gateway.services.auth import create_key, revoke_key
    from claude_gateway.storage.sql import SqlStore

    gateway: Gateway = start_gateway()
    # As `claude-gateway keys` does: another process writes the gateway's database.
    store = SqlStore(gateway.settings.database_url)
    await store.start()
    try:
        assert _status(gateway, "") == 200  # no keys yet: open (it listens on loopback)
        key = await create_key(store, "dave")
        # The first key turns authentication on, and works, from the next request on.
        assert _status(gateway, "") == 401
        assert _status(gateway, key) == 200
        erin = await create_key(store, "erin")
        assert _status(gateway, erin) == 200  # a key made a moment ago works at once
        await revoke_key(store, "dave")
        assert _status(gateway, key) == 401  # revoked: refused at once
        await revoke_key(store, "erin")
        assert _status(gateway, erin) == 401
        # Revoking the last key does not open the gateway.
        assert _status(gateway, "") == 401
    finally:
        await store.close()


def _status(gateway: Gateway, key: str) -> int:
    headers = auth(key) if key else {}
    return httpx.get(f"{gateway.url}/v1/sessions", headers=headers).status_code


async def test_a_valid_key_reaches_every_route(secured: Gateway) -> None:
    async with secured.client() as client:
        for method, path in routes(secured):
            if (method, path) in {("POST", "/v1/runs"), ("POST", "/v1/chat/completions"),
                                  ("POST", "/v1/sessions"), ("POST", "/v1/sessions/x/messages")}:
                continue  # these start agents; other tests cover them with a key
            response = await client.request(method, path, headers=auth(ROOT))
            assert response.status_code not in (401, 403), (method, path, response.text)
            assert response.status_code < 500, (method, path, response.text)


@pytest.mark.cli
async def test_mcp_and_websocket_share_the_guards(secured: Gateway) -> None:
    initialize = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "t", "version": "0"}}}
    accept = {"Accept": "application/json, text/event-stream"}
    async with secured.client() as client:
        ok = await client.post("/mcp", json=initialize, headers={**accept, **auth(ALICE)})
        assert ok.status_code == 200
        big = await client.post("/mcp", headers={**accept, **auth(ALICE)},
                                json={**initialize, "padding": "x" * 8000})
        assert big.status_code == 413
        alices = (await client.post("/v1/sessions", headers=auth(ALICE))).json()["id"]
        run = (await client.post("/v1/runs", headers=auth(ALICE),
                                 json={"prompt": "@reply a run"})).json()
        assert run["status"] == "completed"
        assert (await client.get(f"/v1/runs/{run['runId']}", headers=auth(BOB))
                ).status_code == 404
        assert (await client.post(f"/v1/runs/{run['runId']}/cancel", headers=auth(BOB))
                ).json()["error"]["code"] == "RUN_NOT_FOUND"
        for _ in range(8):
            await client.get("/v1/sessions", headers=auth(SLOW))
        limited = await client.post("/mcp", json=initialize, headers={**accept, **auth(SLOW)})
        assert limited.status_code == 429
    port = secured.server.port
    with pytest.raises(InvalidStatus, match="HTTP 429"):
        async with connect(f"ws://127.0.0.1:{port}/v1/sessions/{alices}/ws",
                           additional_headers=auth(SLOW)) as ws:
            await ws.recv()
    async with connect(f"ws://127.0.0.1:{port}/v1/sessions/{alices}/ws") as ws:
        await ws.send(json.dumps({"type": "prompt", "prompt": "no auth frame first"}))
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401


@pytest.mark.cli
async def test_per_key_caps_and_the_daily_budget(start_gateway: Any) -> None:
    gateway: Gateway = start_gateway(api_keys=KEYS, max_sessions_per_principal=1,
                                     max_turns_per_principal=1, daily_budget_usd=0.000001)
    async with gateway.client() as client:
        bobs = (await client.post("/v1/sessions", headers=auth(BOB))).json()["id"]
        slow = await client.post(f"/v1/sessions/{bobs}/messages", headers=auth(BOB), json={
            "prompt": "@slow 0.2\n@reply " + "w " * 10, "timeoutMs": 0})
        assert slow.status_code == 202
        busy = await client.post(f"/v1/sessions/{bobs}/messages", headers=auth(BOB),
                                 json={"prompt": "@reply queued?", "timeoutMs": 0})
        assert busy.status_code == 429 and busy.json()["error"]["code"] == "TOO_MANY_TURNS"
        first = await client.post("/v1/sessions", headers=auth(ALICE))
        assert first.status_code == 201
        second = await client.post("/v1/sessions", headers=auth(ALICE))
        assert second.status_code == 429
        assert second.json()["error"]["code"] == "MAX_SESSIONS_REACHED"
        assert (await client.post("/v1/sessions", headers=auth(BOB))).status_code == 429
        session_id = first.json()["id"]
        spent = await client.post(f"/v1/sessions/{session_id}/messages", headers=auth(ALICE),
                                  json={"prompt": "@usage 1000 100\n@reply that cost"})
        assert spent.json()["totalCostUsd"] > 0
        over = await client.post(f"/v1/sessions/{session_id}/messages", headers=auth(ALICE),
                                 json={"prompt": "@reply more"})
        assert over.status_code == 402
        assert over.json()["error"]["code"] == "BUDGET_EXCEEDED"
        # Ending a session frees its place under the cap.
        await client.delete(f"/v1/sessions/{session_id}", headers=auth(ALICE))
        assert (await client.post("/v1/sessions", headers=auth(ALICE))).status_code == 201


async def test_deeply_nested_json_is_refused(secured: Gateway) -> None:
    nested: Any = "leaf"
    for _ in range(40):
        nested = [nested]
    async with secured.client() as client:
        response = await client.post("/v1/runs", headers=auth(ALICE),
                                     json={"prompt": "x", "jsonSchema": {"deep": nested}})
        assert response.status_code == 400
        assert "nested deeper" in response.text
        bomb = '{"metadata": ' + "[" * 20000 + "]" * 20000 + "}"
        response = await client.post("/v1/sessions", content=bomb, headers={
            **auth(ALICE), "content-type": "application/json"})
        assert response.status_code in (400, 413)


@pytest.mark.cli
async def test_mcp_tools_act_for_the_calling_key(secured: Gateway) -> None:
    import httpx2
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    async with secured.client() as client:
        alices = (await client.post("/v1/sessions", headers=auth(ALICE))).json()["id"]
        await client.put("/v1/files/mine.txt", content=b"alice only", headers=auth(ALICE))

    async def call(key: str, tool: str, arguments: dict[str, Any]) -> Any:
        async with httpx2.AsyncClient(headers=auth(key), timeout=60) as http, \
                streamable_http_client(f"{secured.url}/mcp", http_client=http) as (r, w), \
                ClientSession(r, w) as session:
            await session.initialize()
            return await session.call_tool(tool, arguments)

    theirs = await call(BOB, "get_messages", {"session_id": alices})
    assert theirs.is_error and "SESSION_NOT_FOUND" in theirs.content[0].text  # type: ignore[union-attr]
    own = await call(ALICE, "get_messages", {"session_id": alices})
    assert not own.is_error
    hidden = await call(BOB, "read_file", {"path": "mine.txt"})
    assert hidden.is_error and "FILE_NOT_FOUND" in hidden.content[0].text  # type: ignore[union-attr]
    visible = await call(ALICE, "read_file", {"path": "mine.txt"})
    assert "alice only" in str(visible.content)


async def test_mcp_clients_see_an_authentication_failure(secured: Gateway) -> None:
    import httpx2
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared.exceptions import MCPError

    def mcp_error(exc: BaseException) -> MCPError | None:
        """The MCPError inside what the client raised (task groups wrap it)."""
        if isinstance(exc, MCPError):
            return exc
        for inner in getattr(exc, "exceptions", ()):
            if (found := mcp_error(inner)) is not None:
                return found
        return None

    for headers, says in [({}, "A valid API key is needed"),
                          (auth("cgw_wrong"), "not valid")]:
        error: MCPError | None = None
        try:
            async with httpx2.AsyncClient(headers=headers, timeout=30) as http, \
                    streamable_http_client(f"{secured.url}/mcp", http_client=http) as (r, w), \
                    ClientSession(r, w) as session:
                await session.initialize()
        except BaseException as exc:
            error = mcp_error(exc)
        assert error is not None
        assert error.error.code == -32001
        assert error.error.message.startswith("UNAUTHORIZED: ")
        assert says in error.error.message
