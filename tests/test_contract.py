"""What Schemathesis found, pinned one by one: every answer is documented, every refusal
a JSON error with a code, and what the schema says is valid is accepted."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
from typing import Any

import pytest

from claude_gateway.mock_model import MockModelServer
from claude_gateway.services.prompts import Base64Source, ImageBlockIn, prompt_blocks
from tests.helpers.api import assert_error, auth, events_of, new_session
from tests.helpers.gateway import Gateway

pytestmark = pytest.mark.anyio

KEY = "contract-key-0123456789abcdef"


@pytest.fixture
def keyed(start_gateway: Any) -> Gateway:
    gateway: Gateway = start_gateway(api_keys=[{"name": "c", "key": KEY, "admin": True}])
    return gateway


async def test_integer_parameters_are_bounded_and_filters_checked(keyed: Gateway) -> None:
    async with keyed.client(headers=auth(KEY)) as client:
        for path in ["/v1/sessions/ses_x/messages?offset=99999999999999999999",
                     "/v1/sessions/ses_x/messages?limit=99999999999999999999",
                     "/v1/sessions/ses_x/events?after=99999999999999999999&follow=false",
                     "/v1/sessions?status=bogus", "/v1/sessions?limit=0"]:
            assert_error(await client.get(path), 400, "INVALID_REQUEST")
        assert_error(await client.get("/v1/sessions?cursor=not-a-cursor"), 400,
                     "INVALID_CURSOR")
        # Any well-formed cursor is a position in the list, even one no row has.
        page = await client.get("/v1/sessions", params={"cursor": "1700000000000000.ses_gone"})
        assert page.status_code == 200 and page.json() == {"sessions": [], "nextCursor": None}


async def test_405_lists_every_method_of_the_path(keyed: Gateway) -> None:
    checked = 0
    async with keyed.client(headers=auth(KEY)) as client:
        for path, operations in keyed.app.openapi()["paths"].items():
            concrete = path.replace("{path}", "a/b").replace("{session_id}", "ses_x").replace(
                "{request_id}", "perm_x").replace("{run_id}", "run_x")
            response = await client.options(concrete)
            assert_error(response, 405, "METHOD_NOT_ALLOWED")
            documented = sorted(m.upper() for m in operations)
            assert response.headers["allow"].split(", ") == documented, path
            checked += 1
    assert checked >= 15


async def test_lax_types_are_refused_and_integral_numbers_taken(keyed: Gateway) -> None:
    async with keyed.client(headers=auth(KEY)) as client:
        for body in [{"maxTurns": True}, {"maxTurns": "3"}, {"shareWorkspace": 0},
                     {"permissionMode": 1}, {"metadata": {"k": 1}}]:
            assert_error(await client.post("/v1/sessions", json=body), 400, "INVALID_REQUEST")
        for body in [{"prompt": "x", "detach": 0}, {"prompt": "x", "stream": "true"},
                     {"prompt": "x", "continue": 1}]:
            assert_error(await client.post("/v1/runs", json=body), 400, "INVALID_REQUEST")
        for timeout in [True, "5", 5.5]:
            assert_error(await client.post("/v1/sessions/ses_x/messages", json={
                "prompt": "x", "timeoutMs": timeout}), 400, "INVALID_REQUEST")
        # 5.0 is an integer in JSON Schema: validation passes, and the session is unknown.
        assert_error(await client.post("/v1/sessions/ses_x/messages", json={
            "prompt": "x", "timeoutMs": 5.0}), 404, "SESSION_NOT_FOUND")
        chat = await client.post("/v1/chat/completions", json={
            "model": "sonnet", "messages": [{"role": "user", "content": "x"}],
            "temperature": False})
        assert chat.status_code == 400 and chat.json()["error"]["type"] == (
            "invalid_request_error")


async def test_chat_completions_refuses_json_nested_past_the_limit(keyed: Gateway) -> None:
    nested: Any = "leaf"
    for _ in range(40):
        nested = {"x": nested}
    async with keyed.client(headers=auth(KEY)) as client:
        response = await client.post("/v1/chat/completions", json={
            "model": "sonnet", "messages": [{"role": "user", "content": "x"}],
            "metadata": nested})
        assert response.status_code == 400
        assert "nested deeper than 32" in response.json()["error"]["message"]
        runs = await client.post("/v1/runs", json={"prompt": "x", "jsonSchema": nested})
        assert_error(runs, 400, "INVALID_REQUEST")


async def test_errors_made_below_the_routers_are_json_too(start_gateway: Any) -> None:
    gateway: Gateway = start_gateway(cors_origins=["http://console.example"])
    async with gateway.client() as client:
        await client.put("/v1/files/w/data.txt", content=b"0123456789")
        beyond = await client.get("/v1/files/w/data.txt", headers={"Range": "bytes=50-60"})
        assert_error(beyond, 416, "RANGE_NOT_SATISFIABLE")
        assert beyond.headers["content-range"] == "bytes */10"
        assert_error(await client.get("/v1/files/w/data.txt", headers={"Range": "lines=1"}),
                     400, "INVALID_REQUEST")
        assert_error(await client.options("/v1/sessions", headers={
            "Origin": "http://evil.example", "Access-Control-Request-Method": "GET"}),
            403, "ORIGIN_NOT_ALLOWED")
    # A request uvicorn cannot parse never reaches the app; it still gets the JSON body.
    with socket.create_connection(("127.0.0.1", gateway.server.port), timeout=10) as raw:
        raw.sendall(b"GET /v1/sessions\x01 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        answer = b""
        while chunk := raw.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400") and b"application/json" in head
    assert json.loads(body)["error"]["code"] == "INVALID_REQUEST"


async def test_what_the_schema_allows_is_accepted(keyed: Gateway) -> None:
    async with keyed.client(headers=auth(KEY)) as client:
        # '~' is an ordinary character: nothing expands it.
        assert (await client.put("/v1/files/~notes/a.txt", content=b"x")).status_code == 201
        assert (await client.get("/v1/files/~notes/a.txt")).content == b"x"
        assert (keyed.settings.workspace_root / "~notes" / "a.txt").read_bytes() == b"x"
        assert_error(await client.get("/v1/sessions/ses_x/events", params={"follow": "false"},
                                      headers={"Last-Event-ID": "not a number"}),
                     400, "INVALID_CURSOR")
        root = await client.get("/v1/files", params={"path": "~notes/a.txt"})
        assert root.status_code == 200 and root.json()["path"] == ""  # no hidden parameter


def test_an_image_goes_by_its_bytes_not_its_label() -> None:
    png = b"\x89PNG\r\n\x1a\n" + b"\0" * 16
    block = ImageBlockIn(type="image", source=Base64Source(
        type="base64", media_type="image/jpeg", data=base64.b64encode(png).decode()))
    (sent,) = prompt_blocks([block])
    assert sent["source"]["media_type"] == "image/png"
    with pytest.raises(ValueError, match="pattern"):
        Base64Source(type="base64", media_type="image/png",
                     data=base64.b64encode(b"not an image").decode())


async def test_a_structured_output_schema_is_checked_before_any_agent_starts(
    keyed: Gateway,
) -> None:
    async with keyed.client(headers=auth(KEY)) as client:
        for schema in [{"type": "0/0"}, {"type": "object", "0/0": 1},
                       {"type": "object", "properties": {"a": {"minLength": "x"}}}]:
            assert_error(await client.post("/v1/runs", json={"prompt": "x",
                                                             "jsonSchema": schema}),
                         400, "INVALID_JSON_SCHEMA")
            chat = await client.post("/v1/chat/completions", json={
                "model": "sonnet", "messages": [{"role": "user", "content": "x"}],
                "response_format": {"type": "json_schema",
                                    "json_schema": {"name": "s", "schema": schema}}})
            assert chat.status_code == 400, chat.text
            assert chat.json()["error"]["code"] == "INVALID_JSON_SCHEMA"
        assert (await client.get("/v1/sessions")).json()["sessions"] == []


@pytest.mark.cli
async def test_a_conversation_may_end_with_tool_results_or_the_assistant(
    start_gateway: Any, mock_model: MockModelServer
) -> None:
    gateway: Gateway = start_gateway()
    async with gateway.client() as client:
        tool = await client.post("/v1/chat/completions", json={"model": "sonnet", "messages": [
            {"role": "user", "content": "What is the weather?"},
            {"role": "assistant", "content": None, "tool_calls": [{
                "id": "call_1", "type": "function",
                "function": {"name": "weather", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "Sunny, 21 C\n@reply Sunny."}]})
        assert tool.status_code == 200, tool.text
        assert tool.json()["choices"][0]["message"]["content"] == "Sunny."
        sent = json.dumps(mock_model.model.requests[-1].messages)
        assert "Result of tool call call_1" in sent and "What is the weather?" in sent
        mock_model.model.enqueue({"reply": "Going on."})
        going = await client.post("/v1/chat/completions", json={"model": "sonnet", "messages": [
            {"role": "user", "content": "Count to three."},
            {"role": "assistant", "content": "One, two,"}]})
        assert going.status_code == 200, going.text
        assert going.json()["choices"][0]["message"]["content"] == "Going on."
        assert mock_model.model.requests[-1].user_texts()[-1].endswith("Continue.")


@pytest.mark.cli
async def test_a_patch_racing_a_delete_never_updates_an_ended_session(
    start_gateway: Any,
) -> None:
    gateway: Gateway = start_gateway()
    async with gateway.client() as client:
        session_id = await new_session(client)
        done = await client.post(f"/v1/sessions/{session_id}/messages",
                                 json={"prompt": "@reply warm"})
        assert done.json()["status"] == "completed"

        async def patch(i: int) -> int:
            response = await client.patch(f"/v1/sessions/{session_id}", json={
                "model": f"model-{i}", "permissionMode": "acceptEdits"})
            return response.status_code

        async def delete() -> int:
            await asyncio.sleep(0)
            return (await client.delete(f"/v1/sessions/{session_id}")).status_code

        results = await asyncio.wait_for(asyncio.gather(
            *(patch(i) for i in range(6)), delete(), *(patch(i) for i in range(6, 12))), 30)
        assert results[6] == 204
        assert set(results[:6] + results[7:]) <= {200, 409}
        events = await events_of(client, session_id)
    types = [e["type"] for e in events]
    assert types.count("session.ended") == 1
    assert "session.updated" not in types[types.index("session.ended"):]


async def test_a_body_that_is_not_declared_json_gets_415_saying_so(keyed: Gateway) -> None:
    async with keyed.client(headers=auth(KEY)) as client:
        for kind in ("application/x-www-form-urlencoded", "text/plain"):  # curl -d sends the first
            response = await client.post("/v1/runs", content=b'{"prompt": "@reply hi"}',
                                         headers={"content-type": kind})
            assert_error(response, 415, "UNSUPPORTED_MEDIA_TYPE")
            assert "application/json" in response.json()["error"]["message"]
        chat = await client.post("/v1/chat/completions", content=b"{}",
                                 headers={"content-type": "text/plain"})
        assert chat.status_code == 415
        assert chat.json()["error"]["type"] == "invalid_request_error"
