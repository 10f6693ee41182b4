"""The WebSocket channel: prompts, permissions and interrupts over one connection."""

from __future__ import annotations

import base64
import json
from typing import Any

import anyio
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from claude_gateway.mock_model import MockModelServer
from tests.helpers.api import events_of, new_session
from tests.helpers.gateway import Gateway

pytestmark = [pytest.mark.cli, pytest.mark.anyio]

WRITE = '@tool Write {"file_path": "ws.txt", "content": "approved over the socket"}'


def ws_url(gateway: Gateway, session_id: str, after: int = 0) -> str:
    return f"ws://127.0.0.1:{gateway.server.port}/v1/sessions/{session_id}/ws?after={after}"


async def receive_until(ws: ClientConnection, predicate: Any) -> list[dict[str, Any]]:
    frames = []
    with anyio.fail_after(30):
        while True:
            frame = json.loads(await ws.recv())
            frames.append(frame)
            if predicate(frame):
                return frames


def is_type(kind: str) -> Any:
    return lambda frame: frame.get("type") == kind


async def test_prompt_permission_and_interrupt_over_one_connection(
    start_gateway: Any, mock_model: MockModelServer
) -> None:
    gateway: Gateway = start_gateway()
    async with gateway.client() as client:
        session_id = await new_session(client)
    async with connect(ws_url(gateway, session_id)) as ws, \
            connect(ws_url(gateway, session_id)) as watcher:
        await ws.send(json.dumps({"type": "prompt", "clientId": "p1",
                                  "prompt": f"Write it.\n{WRITE}\n@reply Done."}))
        frames = await receive_until(ws, is_type("permission.requested"))
        ack = next(f for f in frames if f["type"] == "ack")
        assert ack["clientId"] == "p1" and ack["turnId"].startswith("turn_")
        request = frames[-1]["data"]
        await ws.send(json.dumps({"type": "permission", "clientId": "a1",
                                  "requestId": request["requestId"], "decision": "allow"}))
        frames = await receive_until(ws, is_type("turn.completed"))
        permission_ack = next(f for f in frames if f["type"] == "ack")
        assert permission_ack == {"type": "ack", "clientId": "a1",
                                  "requestId": request["requestId"],
                                  "turnId": ack["turnId"], "status": "allowed"}
        assert frames[-1]["data"]["result"] == "Done."

        await ws.send(json.dumps({"type": "prompt", "clientId": "p2",
                                  "prompt": "@slow 0.5\n@reply " + "w " * 40}))
        await receive_until(ws, is_type("message.delta"))
        await ws.send(json.dumps({"type": "interrupt", "clientId": "i1"}))
        frames = await receive_until(ws, is_type("turn.interrupted"))
        assert {"type": "ack", "clientId": "i1", "interrupted": True} in frames
        await ws.send(json.dumps({"type": "ping", "clientId": "k"}))
        assert (await receive_until(ws, is_type("pong")))[-1]["clientId"] == "k"

        # A second client watched the same session all along.
        seen = await receive_until(watcher, is_type("turn.interrupted"))
        envelopes = [f for f in seen if "seq" in f]
        assert [f["seq"] for f in envelopes] == list(range(1, len(envelopes) + 1))
    assert (gateway.settings.workspace_root / session_id / "ws.txt").read_text() == (
        "approved over the socket")


async def test_reconnect_replays_exactly_the_missed_events_and_resends_are_not_rerun(
    start_gateway: Any, mock_model: MockModelServer
) -> None:
    gateway: Gateway = start_gateway()
    async with gateway.client() as client:
        session_id = await new_session(client)
        async with connect(ws_url(gateway, session_id)) as ws:
            await ws.send(json.dumps({"type": "prompt", "clientId": "once",
                                      "prompt": "@reply first"}))
            frames = await receive_until(ws, is_type("turn.completed"))
        first_turn = next(f for f in frames if f["type"] == "ack")["turnId"]
        last_seen = max(f["seq"] for f in frames if "seq" in f)
        # While disconnected, the session goes on.
        await client.post(f"/v1/sessions/{session_id}/messages", json={"prompt": "@reply more"})
        async with connect(ws_url(gateway, session_id, after=last_seen)) as ws:
            replay = await receive_until(ws, is_type("turn.completed"))
            # The client resends its prompt, unsure whether it arrived: not run again.
            await ws.send(json.dumps({"type": "prompt", "clientId": "once",
                                      "prompt": "@reply first"}))
            resent = await receive_until(ws, is_type("ack"))
        log = await events_of(client, session_id)
    assert [f["seq"] for f in replay] == list(range(last_seen + 1, len(log) + 1))
    assert replay == log[last_seen:]
    assert resent[-1] == {"type": "ack", "clientId": "once", "turnId": first_turn,
                          "duplicate": True}
    assert [r.prompt for r in mock_model.model.requests] == ["@reply first", "@reply more"]


async def test_bad_frames_get_errors_and_the_session_stays_usable(
    start_gateway: Any, mock_model: MockModelServer
) -> None:
    gateway: Gateway = start_gateway(max_image_bytes=1024)
    async with gateway.client() as client:
        session_id = await new_session(client)
    big_png = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 4096).decode()
    bad_frames = [
        ("{not json", "INVALID_REQUEST", None),
        (json.dumps(["a list"]), "INVALID_REQUEST", None),
        (json.dumps({"type": "dance", "clientId": "x1"}), "INVALID_REQUEST", "x1"),
        (json.dumps({"type": "permission", "clientId": "x2", "requestId": "perm_1",
                     "decision": "maybe"}), "INVALID_REQUEST", "x2"),
        (json.dumps({"type": "permission", "clientId": "x3", "requestId": "perm_1",
                     "decision": "allow"}), "PERMISSION_NOT_FOUND", "x3"),
        (json.dumps({"type": "prompt", "clientId": "x4", "prompt": []}), "INVALID_REQUEST",
         "x4"),
        (json.dumps({"type": "prompt", "clientId": "x5", "prompt": [
            {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                         "data": big_png}}]}), "PAYLOAD_TOO_LARGE", "x5"),
        (json.dumps({"type": "prompt", "clientId": "x6", "prompt": [
            {"type": "image", "source": {"type": "url",
                                         "url": "data:text/html;base64,PGI+"}}]}),
         "INVALID_REQUEST", "x6"),
    ]
    async with connect(ws_url(gateway, session_id, after=0)) as ws:
        for text, code, client_id in bad_frames:
            await ws.send(text)
            error = (await receive_until(ws, is_type("error")))[-1]
            assert (error["code"], error["clientId"]) == (code, client_id), error
        await ws.send(json.dumps({"type": "prompt", "clientId": "ok", "prompt": "@reply fine"}))
        frames = await receive_until(ws, is_type("turn.completed"))
    assert frames[-1]["data"]["result"] == "fine"
    assert [r.prompt for r in mock_model.model.requests] == ["@reply fine"]


async def test_unknown_session_and_bad_cursor_close_the_socket(start_gateway: Any) -> None:
    gateway: Gateway = start_gateway()
    async with connect(ws_url(gateway, "ses_missing")) as ws:
        error = json.loads(await ws.recv())
        assert error["code"] == "SESSION_NOT_FOUND"
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4404
    async with gateway.client() as client:
        session_id = await new_session(client)
    async with connect(ws_url(gateway, session_id, after=999)) as ws:
        assert json.loads(await ws.recv())["code"] == "INVALID_CURSOR"
        with pytest.raises(ConnectionClosed):
            await ws.recv()
