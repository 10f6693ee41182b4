"""Permission prompts answered over the network, with the real CLI and the scripted model."""

from __future__ import annotations

from typing import Any

import anyio
import httpx
import pytest

from claude_gateway.mock_model import MockModelServer
from tests.helpers.api import assert_error, events_of, new_session
from tests.helpers.gateway import Gateway
from tests.helpers.sse import collect, is_turn_end

pytestmark = [pytest.mark.cli, pytest.mark.anyio]

WRITE = '@tool Write {"file_path": "approved.txt", "content": "written after approval"}'


async def wait_for_request(client: httpx.AsyncClient, session_id: str,
                           after: int = 0) -> dict[str, Any]:
    with anyio.fail_after(30):
        events = await collect(client, "GET", f"/v1/sessions/{session_id}/events",
                               params={"after": after},
                               until=lambda e: e["type"] == "permission.requested")
    return dict(events[-1])


async def turn_end(client: httpx.AsyncClient, session_id: str, turn_id: str
                   ) -> dict[str, Any]:
    with anyio.fail_after(30):
        events = await collect(client, "GET", f"/v1/sessions/{session_id}/events",
                               until=lambda e: is_turn_end(e) and e["turnId"] == turn_id)
    return dict(events[-1])


async def test_a_write_waits_for_approval_across_a_reconnect(
    start_gateway: Any, mock_model: MockModelServer
) -> None:
    gateway: Gateway = start_gateway()
    async with gateway.client() as client:
        session_id = await new_session(client)  # permission mode "default"
        turn = (await client.post(f"/v1/sessions/{session_id}/messages", json={
            "prompt": f"Write it.\n{WRITE}\n@reply Written.", "timeoutMs": 0})).json()
        # A client sees the request, then its connection drops (collect closes it).
        requested = await wait_for_request(client, session_id)
        data = requested["data"]
        assert data["toolName"] == "Write"
        # The CLI resolves the path inside the workspace before it asks.
        assert data["input"]["file_path"] == str(
            gateway.settings.workspace_root.resolve() / session_id / "approved.txt")
        assert data["input"]["content"] == "written after approval"
        assert data["expiresAt"] and data["turnId"] == turn["turnId"]
        assert not (gateway.settings.workspace_root / session_id / "approved.txt").exists()
        # It reconnects later: the request is still pending, in the list and in the log.
        pending = (await client.get(f"/v1/sessions/{session_id}/permissions")).json()
        assert [p["requestId"] for p in pending["permissions"]] == [data["requestId"]]
        assert (await client.get(f"/v1/sessions/{session_id}")).json()["status"] == "running"
        url = f"/v1/sessions/{session_id}/permissions/{data['requestId']}"
        allowed = await client.post(url, json={"decision": "allow"})
        assert allowed.status_code == 200, allowed.text
        assert allowed.json()["status"] == "allowed"
        end = await turn_end(client, session_id, turn["turnId"])
        assert end["type"] == "turn.completed" and end["data"]["result"] == "Written."
        assert_error(await client.post(url, json={"decision": "deny"}), 409,
                     "PERMISSION_ALREADY_RESOLVED")
        assert_error(await client.post(f"/v1/sessions/{session_id}/permissions/perm_nope",
                                       json={"decision": "allow"}), 404,
                     "PERMISSION_NOT_FOUND")
        assert_error(await client.post(url, json={"decision": "maybe"}), 400,
                     "INVALID_REQUEST")
        assert (await client.get(f"/v1/sessions/{session_id}/permissions")).json() == {
            "permissions": []}
        resolved = [e for e in await events_of(client, session_id)
                    if e["type"] == "permission.resolved"]
    target = gateway.settings.workspace_root / session_id / "approved.txt"
    assert target.read_text() == "written after approval"
    assert [(r["data"]["decision"], r["data"]["by"]) for r in resolved] == [("allow", "client")]


async def test_a_denied_write_tells_the_model_why(
    start_gateway: Any, mock_model: MockModelServer
) -> None:
    gateway: Gateway = start_gateway()
    async with gateway.client() as client:
        session_id = await new_session(client)
        turn = (await client.post(f"/v1/sessions/{session_id}/messages", json={
            "prompt": f"{WRITE}\n@reply I will not write it.", "timeoutMs": 0})).json()
        request_id = (await wait_for_request(client, session_id))["data"]["requestId"]
        await client.post(f"/v1/sessions/{session_id}/permissions/{request_id}",
                          json={"decision": "deny", "message": "Not in this folder, please."})
        end = await turn_end(client, session_id, turn["turnId"])
    assert end["type"] == "turn.completed"
    assert not (gateway.settings.workspace_root / session_id / "approved.txt").exists()
    (result,) = mock_model.model.requests[-1].tool_results()
    assert result["is_error"] is True
    assert "Not in this folder, please." in str(result["content"])


async def test_deny_with_interrupt_and_interrupting_a_pending_request(
    start_gateway: Any, mock_model: MockModelServer
) -> None:
    gateway: Gateway = start_gateway()
    async with gateway.client() as client:
        session_id = await new_session(client)
        url = f"/v1/sessions/{session_id}/messages"
        first = (await client.post(url, json={"prompt": f"{WRITE}\n@reply never",
                                              "timeoutMs": 0})).json()
        request_id = (await wait_for_request(client, session_id))["data"]["requestId"]
        await client.post(f"/v1/sessions/{session_id}/permissions/{request_id}",
                          json={"decision": "deny", "interrupt": True})
        assert (await turn_end(client, session_id, first["turnId"]))["type"] == (
            "turn.interrupted")
        last = (await client.get(f"/v1/sessions/{session_id}")).json()["lastSeq"]
        second = (await client.post(url, json={"prompt": f"Again.\n{WRITE}\n@reply never",
                                               "timeoutMs": 0})).json()
        pending = await wait_for_request(client, session_id, after=last)
        assert (await client.post(f"/v1/sessions/{session_id}/interrupt")).json() == {
            "interrupted": True}
        assert (await turn_end(client, session_id, second["turnId"]))["type"] == (
            "turn.interrupted")
        resolved = [e["data"] for e in await events_of(client, session_id)
                    if e["type"] == "permission.resolved"]
        assert_error(await client.post(
            f"/v1/sessions/{session_id}/permissions/{pending['data']['requestId']}",
            json={"decision": "allow"}), 409, "PERMISSION_ALREADY_RESOLVED")
    assert [(r["status"], r["by"]) for r in resolved] == [("denied", "client"),
                                                          ("cancelled", "interrupt")]
    # Only the two prompts reached the model: no request after a denied interrupt.
    assert len(mock_model.model.requests) == 2


async def test_an_unanswered_request_times_out_with_a_clear_message(
    start_gateway: Any, mock_model: MockModelServer
) -> None:
    gateway: Gateway = start_gateway(permission_timeout_seconds=1)
    async with gateway.client() as client:
        session_id = await new_session(client)
        result = (await client.post(f"/v1/sessions/{session_id}/messages", json={
            "prompt": f"{WRITE}\n@reply Nobody answered."})).json()
        resolved = [e["data"] for e in await events_of(client, session_id)
                    if e["type"] == "permission.resolved"]
    assert result["status"] == "completed"
    assert [(r["status"], r["by"]) for r in resolved] == [("expired", "timeout")]
    (tool_result,) = mock_model.model.requests[-1].tool_results()
    assert "nobody answered within 1 seconds" in str(tool_result["content"])


async def test_accept_edits_set_live_stops_the_prompts(
    start_gateway: Any, mock_model: MockModelServer
) -> None:
    gateway: Gateway = start_gateway()
    async with gateway.client() as client:
        session_id = await new_session(client)
        await client.post(f"/v1/sessions/{session_id}/messages", json={"prompt": "@reply hi"})
        patched = await client.patch(f"/v1/sessions/{session_id}",
                                     json={"permissionMode": "acceptEdits"})
        assert patched.json()["permissionMode"] == "acceptEdits"
        result = (await client.post(f"/v1/sessions/{session_id}/messages",
                                    json={"prompt": f"{WRITE}\n@reply done"})).json()
        types = [e["type"] for e in await events_of(client, session_id)]
    assert result["status"] == "completed"
    assert "permission.requested" not in types
    assert (gateway.settings.workspace_root / session_id / "approved.txt").exists()


async def test_bypass_permissions_is_refused_unless_the_operator_allows_it(
    start_gateway: Any,
) -> None:
    gateway: Gateway = start_gateway()
    async with gateway.client() as client:
        assert_error(await client.post("/v1/sessions",
                                       json={"permissionMode": "bypassPermissions"}),
                     403, "PERMISSION_MODE_NOT_ALLOWED")
        session_id = await new_session(client)
        assert_error(await client.patch(f"/v1/sessions/{session_id}",
                                        json={"permissionMode": "bypassPermissions"}),
                     403, "PERMISSION_MODE_NOT_ALLOWED")


async def test_bypass_permissions_when_allowed_can_be_switched_on_live(
    start_gateway: Any,
) -> None:
    gateway: Gateway = start_gateway(allow_bypass_permissions=True)
    async with gateway.client() as client:
        session_id = await new_session(client)
        await client.post(f"/v1/sessions/{session_id}/messages", json={"prompt": "@reply hi"})
        patched = await client.patch(f"/v1/sessions/{session_id}",
                                     json={"permissionMode": "bypassPermissions"})
        assert patched.status_code == 200
        result = (await client.post(f"/v1/sessions/{session_id}/messages", json={
            "prompt": '@tool Bash {"command": "echo bypass > bypass.txt"}\n@reply ran'})).json()
        types = [e["type"] for e in await events_of(client, session_id)]
    assert result["status"] == "completed"
    assert "permission.requested" not in types
    assert (gateway.settings.workspace_root / session_id / "bypass.txt").read_text() == (
        "bypass\n")


PNG_1X1 = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAA"
           "AABJRU5ErkJggg==")


async def test_an_image_prompt_reaches_the_model_as_an_image_block(
    start_gateway: Any, mock_model: MockModelServer
) -> None:
    gateway: Gateway = start_gateway(max_image_bytes=2048)
    async with gateway.client() as client:
        session_id = await new_session(client)
        url = f"/v1/sessions/{session_id}/messages"
        result = (await client.post(url, json={"prompt": [
            {"type": "text", "text": "What is in these?\n@usage 120 30\n@reply Two dots."},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                         "data": PNG_1X1}},
            {"type": "image", "source": {"type": "url",
                                         "url": f"data:image/png;base64,{PNG_1X1}"}},
        ]})).json()
        assert result["result"] == "Two dots."
        history = (await client.get(f"{url}?limit=1")).json()["messages"][0]
        session = (await client.get(f"/v1/sessions/{session_id}")).json()
        big = base64_png(4096)
        assert_error(await client.post(url, json={"prompt": [
            {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                         "data": big}}]}), 413, "PAYLOAD_TOO_LARGE")
        for source in (
            {"type": "base64", "media_type": "image/svg+xml", "data": PNG_1X1},
            {"type": "url", "url": "data:application/pdf;base64,JVBERi0="},
            {"type": "base64", "media_type": "image/png", "data": "not base64!"},
            {"type": "url", "url": "https://example.com/cat.png"},
        ):
            assert_error(await client.post(url, json={"prompt": [
                {"type": "image", "source": source}]}), 400, "INVALID_REQUEST")
        after = (await client.post(url, json={"prompt": "@reply still fine"})).json()
    assert after["status"] == "completed"
    images = [b for m in mock_model.model.requests[0].messages if m["role"] == "user"
              and isinstance(m["content"], list) for b in m["content"] if b["type"] == "image"]
    assert [i["source"] for i in images] == [
        {"type": "base64", "media_type": "image/png", "data": PNG_1X1}] * 2
    assert [b["type"] for b in history["content"]] == ["text", "image", "image"]
    assert history["content"][2]["source"]["type"] == "base64"
    budget = session["tokenBudget"]
    assert budget["contextTokens"] == 120
    assert budget["contextWindow"] and budget["contextWindow"] > 120
    assert budget["contextRemaining"] == budget["contextWindow"] - 120
    assert budget["inputTokens"] == 120


def base64_png(size: int) -> str:
    import base64

    return base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * size).decode()


async def test_deleting_the_session_cancels_its_pending_request(start_gateway: Any) -> None:
    gateway: Gateway = start_gateway()
    async with gateway.client() as client:
        session_id = await new_session(client)
        turn = (await client.post(f"/v1/sessions/{session_id}/messages", json={
            "prompt": f"{WRITE}\n@reply never", "timeoutMs": 0})).json()
        request_id = (await wait_for_request(client, session_id))["data"]["requestId"]
        assert (await client.delete(f"/v1/sessions/{session_id}")).status_code == 204
        events = await events_of(client, session_id)
        assert_error(await client.post(
            f"/v1/sessions/{session_id}/permissions/{request_id}", json={"decision": "allow"}),
            409, "PERMISSION_ALREADY_RESOLVED")
    resolved = [e["data"] for e in events if e["type"] == "permission.resolved"]
    assert [(r["status"], r["by"]) for r in resolved] == [("cancelled", "session_ended")]
    failed = next(e for e in events if e["type"] == "turn.failed")
    assert failed["turnId"] == turn["turnId"]
    assert failed["data"]["error"]["code"] == "SESSION_ENDED"
    assert events[-1]["type"] == "session.ended"
    assert not (gateway.settings.workspace_root / session_id / "approved.txt").exists()


async def test_a_turn_waiting_for_an_answer_says_so_everywhere(start_gateway: Any) -> None:
    gateway: Gateway = start_gateway()
    async with gateway.client() as client:
        session_id = await new_session(client)  # permission mode "default"
        body = {"prompt": f"{WRITE}\n@reply Written.", "clientId": "first", "timeoutMs": 0}
        turn_id = (await client.post(f"/v1/sessions/{session_id}/messages", json=body)
                   ).json()["turnId"]
        request_id = (await wait_for_request(client, session_id))["data"]["requestId"]
        expected = {"requestId": request_id, "turnId": turn_id, "toolName": "Write",
                    "answerUrl": f"/v1/sessions/{session_id}/permissions/{request_id}"}
        # The 202 a client gets when it waits too little (here: the resent prompt's).
        again = await client.post(f"/v1/sessions/{session_id}/messages", json=body)
        assert again.status_code == 202
        (waiting,) = again.json()["waitingForPermission"]
        assert {k: waiting[k] for k in expected} == expected and waiting["expiresAt"]
        session = (await client.get(f"/v1/sessions/{session_id}")).json()
        assert [w["requestId"] for w in session["waitingForPermission"]] == [request_id]
        status = (await client.get("/v1/status")).json()
        assert [w["requestId"] for w in status["waitingForPermission"][session_id]] == [
            request_id]
        answered = await client.post(expected["answerUrl"], json={"decision": "allow"})
        assert answered.status_code == 200
        assert (await turn_end(client, session_id, turn_id))["type"] == "turn.completed"
        assert (await client.get(f"/v1/sessions/{session_id}")).json()[
            "waitingForPermission"] == []


async def test_applied_suggestions_stay_in_the_session_and_show_in_its_mode(
    start_gateway: Any,
) -> None:
    gateway: Gateway = start_gateway()
    async with gateway.client() as client:
        session_id = await new_session(client)  # permission mode "default"
        turn_id = (await client.post(f"/v1/sessions/{session_id}/messages", json={
            "prompt": f"{WRITE}\n@reply Written.", "timeoutMs": 0})).json()["turnId"]
        data = (await wait_for_request(client, session_id))["data"]
        assert {"type": "setMode", "mode": "acceptEdits"}.items() <= data["suggestions"][0].items()
        answered = await client.post(f"/v1/sessions/{session_id}/permissions/"
                                     f"{data['requestId']}",
                                     json={"decision": "allow", "applySuggestions": True})
        assert answered.status_code == 200
        assert (await turn_end(client, session_id, turn_id))["type"] == "turn.completed"
        session = (await client.get(f"/v1/sessions/{session_id}")).json()
        assert session["permissionMode"] == "acceptEdits"
        # The CLI is in that mode too: the next write is not asked about.
        second = await client.post(f"/v1/sessions/{session_id}/messages", json={
            "prompt": '@tool Write {"file_path": "second.txt", "content": "x"}\n@reply ok'})
        assert second.json()["status"] == "completed"
        requested = [e for e in await events_of(client, session_id)
                     if e["type"] == "permission.requested"]
        assert len(requested) == 1
        # A shell command's suggestion is a rule for a settings file: kept to the session.
        bash = (await client.post(f"/v1/sessions/{session_id}/messages", json={
            "prompt": '@tool Bash {"command": "python3 -c \\"print(6*7)\\""}\n@reply ran',
            "timeoutMs": 0})).json()["turnId"]
        asked = (await wait_for_request(client, session_id, after=requested[0]["seq"]))["data"]
        assert asked["toolName"] == "Bash" and asked["suggestions"]
        await client.post(f"/v1/sessions/{session_id}/permissions/{asked['requestId']}",
                          json={"decision": "allow", "applySuggestions": True})
        assert (await turn_end(client, session_id, bash))["type"] == "turn.completed"
    # Nothing was written to settings other keys' agents would read.
    assert not (gateway.settings.cli_config_dir / "settings.json").exists()
    assert not (gateway.settings.workspace_root / session_id / ".claude").exists()
