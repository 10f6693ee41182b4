"""The smaller holes: failed authentication, OPTIONS, logs, free-form fields, orphaned
CLIs and the largest prompt the gateway accepts."""

from __future__ import annotations

import io
import json
import logging
import signal
import warnings
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from claude_gateway.logs import build_handler
from claude_gateway.mock_model import MockModelServer
from tests.helpers.api import assert_error, auth, events_of, new_session
from tests.helpers.gateway import Gateway, free_port, pid_alive, wait_healthy, wait_until
from tests.helpers.gateway_process import start_gateway_process
from tests.helpers.sse import collect

pytestmark = pytest.mark.anyio

KEY = "good-key-0123456789abcdef"


async def test_wrong_keys_are_limited_per_address(start_gateway: Any) -> None:
    gateway: Gateway = start_gateway(api_keys=[{"name": "k", "key": KEY}],
                                     auth_failure_rate_limit="3/minute")
    async with gateway.client() as client:
        # No key at all is a plain 401 and guesses nothing: not counted.
        for _ in range(5):
            assert_error(await client.get("/v1/sessions"), 401, "UNAUTHORIZED")
        for _ in range(3):
            assert_error(await client.get("/v1/sessions", headers=auth("wrong-guess-1234")),
                         401, "UNAUTHORIZED")
        limited = await client.get("/v1/sessions", headers=auth("wrong-guess-5678"))
        assert_error(limited, 429, "RATE_LIMITED")
        assert int(limited.headers["retry-after"]) >= 1
        # While the address is blocked even the right key waits: guessing stops here.
        assert_error(await client.get("/v1/sessions", headers=auth(KEY)), 429, "RATE_LIMITED")


async def test_wrong_websocket_auth_frames_count_too(start_gateway: Any) -> None:
    gateway: Gateway = start_gateway(api_keys=[{"name": "k", "key": KEY}],
                                     auth_failure_rate_limit="2/minute")
    url = f"ws://127.0.0.1:{gateway.server.port}/v1/sessions/ses_x/ws"
    codes = []
    for _ in range(3):
        async with connect(url) as ws:
            await ws.send(json.dumps({"type": "auth", "token": "wrong-guess-1234"}))
            with pytest.raises(ConnectionClosed) as closed:
                await ws.recv()
            assert closed.value.rcvd is not None
            codes.append(closed.value.rcvd.code)
    assert codes == [4401, 4401, 4429]
    async with gateway.client() as client:
        assert_error(await client.get("/v1/sessions", headers=auth(KEY)), 429, "RATE_LIMITED")


async def test_options_needs_a_key_unless_it_is_an_allowed_preflight(
    start_gateway: Any,
) -> None:
    gateway: Gateway = start_gateway(api_keys=[{"name": "k", "key": KEY}],
                                     cors_origins=["http://console.example"])
    async with gateway.client() as client:
        assert_error(await client.options("/v1/sessions"), 401, "UNAUTHORIZED")
        assert_error(await client.options("/v1/sessions/x/messages"), 401, "UNAUTHORIZED")
        with_key = await client.options("/v1/sessions", headers=auth(KEY))
        assert_error(with_key, 405, "METHOD_NOT_ALLOWED")
        assert with_key.headers["allow"] == "GET, POST"
        preflight = await client.options("/v1/sessions", headers={
            "Origin": "http://console.example", "Access-Control-Request-Method": "POST"})
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == "http://console.example"
        foreign = await client.options("/v1/sessions", headers={
            "Origin": "http://evil.example", "Access-Control-Request-Method": "POST"})
        assert_error(foreign, 403, "ORIGIN_NOT_ALLOWED")
        # An OPTIONS that is not a preflight, even from the allowed origin, needs a key.
        assert_error(await client.options("/v1/sessions", headers={
            "Origin": "http://console.example"}), 401, "UNAUTHORIZED")


FORGED = 'Read\n{"level": "CRITICAL", "message": "forged"}\r\n'


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_every_log_record_is_one_line(fmt: str) -> None:
    stream = io.StringIO()
    handler = build_handler(fmt, stream=stream)
    logger = logging.getLogger(f"test-one-line-{fmt}")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("tool %s", FORGED, extra={"tool": FORGED})
        try:
            raise ValueError(FORGED)
        except ValueError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2, lines
    if fmt == "json":
        records = [json.loads(line) for line in lines]
        assert records[0]["tool"] == FORGED and records[0]["level"] == "WARNING"
        assert FORGED in records[1]["exception"]
    assert not any(line.startswith('{"level": "CRITICAL"') for line in lines)


def test_python_warnings_go_through_the_log_and_stay_on_one_line() -> None:
    from claude_gateway.logs import configure_logging

    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    stream = io.StringIO()
    try:
        configure_logging("INFO", "json")
        root.handlers[0].stream = stream  # type: ignore[attr-defined]
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.warn(f"can_use_tool will not be invoked for: {FORGED}", UserWarning,
                          stacklevel=1)
    finally:
        logging.captureWarnings(False)
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["logger"] == "py.warnings"


async def test_metadata_and_free_form_fields_are_bounded(start_gateway: Any) -> None:
    gateway: Gateway = start_gateway()
    limits = [
        {"metadata": {f"k{i}": "v" for i in range(17)}},
        {"metadata": {"k" * 65: "v"}},
        {"metadata": {"k": "v" * 513}},
        {"metadata": {"k": 1}},
        {"metadata": {"k": {"nested": "v"}}},
        {"systemPrompt": "x" * 32_001},
        {"appendSystemPrompt": "x" * 32_001},
        {"allowedTools": ["Read"] * 129},
        {"allowedTools": ["x" * 257]},
        {"disallowedTools": ["Bash\nRead"]},
        {"addDirs": ["d"] * 17},
        {"env": {f"V{i}": "x" for i in range(65)}},
        {"env": {"V": "x" * 16_385}},
        {"model": "-dangerously-skip-permissions"},
        {"model": "x" * 129},
        {"resume": "../../etc"},
        {"forkFrom": "x" * 129},
        {"workspace": "w" * 1025},
        {"maxTurns": True},
        {"shareWorkspace": 0},
    ]
    async with gateway.client() as client:
        for body in limits:
            response = await client.post("/v1/sessions", json=body)
            assert_error(response, 400, "INVALID_REQUEST")
        assert_error(await client.post("/v1/runs", json={"prompt": "x", "detach": 0}), 400,
                     "INVALID_REQUEST")
        assert_error(await client.post("/v1/runs", json={"prompt": "x", "jsonSchema": {
            "description": "d" * 33_000}}), 400, "INVALID_REQUEST")
        at_the_limit = {
            "metadata": {f"{i:02d}" + "k" * 62: "v" * 512 for i in range(16)},
            "systemPrompt": "x" * 32_000, "allowedTools": ["Read"] * 128}
        created = await client.post("/v1/sessions", json=at_the_limit)
        assert created.status_code == 201, created.text
        assert created.json()["metadata"] == at_the_limit["metadata"]
        assert (await client.get("/v1/sessions")).json()["sessions"][0]["id"] == (
            created.json()["id"])




@pytest.mark.cli
async def test_a_busy_cli_dies_with_a_killed_gateway(
    tmp_path: Path, mock_model: MockModelServer
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    gateway = start_gateway_process(tmp_path, mock_model.url, port)
    try:
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            await wait_healthy(url)
            session_id = await new_session(client)
            await client.post(f"/v1/sessions/{session_id}/messages",
                              json={"prompt": "@slow 1\n@reply " + "w " * 60, "timeoutMs": 0})
            with anyio.fail_after(30):
                await collect(client, "GET", f"/v1/sessions/{session_id}/events",
                              until=lambda e: e["type"] == "message.delta")
            (pid,) = [e["data"]["pid"] for e in await events_of(client, session_id)
                      if e["type"] == "process.started"]
        gateway.send_signal(signal.SIGKILL)
        gateway.wait(timeout=30)
        # No gateway is started again: the CLI must go by itself, in the middle of a turn.
        await wait_until(lambda: not pid_alive(pid), within=10)
    finally:
        if gateway.poll() is None:
            gateway.kill()
            gateway.wait(timeout=30)




@pytest.mark.cli
async def test_no_key_appears_in_the_log_even_at_debug(
    tmp_path: Path, mock_model: MockModelServer
) -> None:
    from claude_gateway.services.auth import create_key
    from claude_gateway.storage.sql import SqlStore

    configured = "configured-key-0123456789abcdefghijklmnopqrstuvwxyz"
    store = SqlStore(f"sqlite:///{tmp_path / 'data' / 'gateway.db'}")
    (tmp_path / "data").mkdir()
    await store.start()
    made = await create_key(store, "made")
    await store.close()
    port = free_port()
    log = tmp_path / "gateway.log"
    with log.open("wb") as sink:
        gateway = start_gateway_process(
            tmp_path, mock_model.url, port, stderr=sink, log_level="DEBUG",
            api_keys=json.dumps([{"name": "conf", "key": configured}]))
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as c:
            await wait_healthy(f"http://127.0.0.1:{port}")
            session_id = ""
            for key in (configured, made):
                created = await c.post("/v1/sessions", headers=auth(key))
                session_id = created.json()["id"]
                await c.get("/v1/sessions", params={"access_token": key})
                await c.get("/v1/status", headers={"x-api-key": key, **auth(key + "x")})
            url = f"ws://127.0.0.1:{port}/v1/sessions/{session_id}/ws"
            async with connect(url) as ws:  # the first frame carries the key
                await ws.send(json.dumps({"type": "auth", "token": made}))
                assert json.loads(await ws.recv())["seq"] == 1
            async with connect(url, additional_headers=auth(made)) as ws:
                assert json.loads(await ws.recv())["seq"] == 1
            await c.post("/mcp", headers={**auth(made), "Accept": "application/json, "
                                          "text/event-stream"},
                         json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
    finally:
        gateway.send_signal(signal.SIGTERM)
        gateway.wait(timeout=30)
    text = log.read_text()
    assert "< TEXT" in text, "the DEBUG log shows the frames (their content withheld)"
    for secret in (configured, made):
        fragments = {secret[i:i + 8] for i in range(len(secret) - 7)}
        leaked = sorted(f for f in fragments if f in text)
        assert not leaked, leaked
    for line in text.splitlines():
        json.loads(line)


@pytest.mark.cli
async def test_a_prompt_near_the_body_limit_completes(
    start_gateway: Any, mock_model: MockModelServer
) -> None:
    gateway: Gateway = start_gateway(max_body_bytes=3 * 1024 * 1024)
    prompt = "Summarise this.\n" + ("lorem ipsum \"quoted\" " * 130_000) + "\n@reply Done."
    assert 2.5 * 1024 * 1024 < len(prompt) < 3 * 1024 * 1024
    async with gateway.client() as client:
        session_id = await new_session(client)
        done = await client.post(f"/v1/sessions/{session_id}/messages",
                                 json={"prompt": prompt})
        assert done.json()["status"] == "completed", done.text[:2000]
        assert done.json()["result"] == "Done."
    assert mock_model.model.requests[-1].user_texts()[-1] == prompt

