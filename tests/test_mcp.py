"""The MCP server at /mcp, driven by the official `mcp` client over streamable HTTP."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
from mcp import Client, ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult, TextContent

from tests.helpers.gateway import Gateway, wait_until

pytestmark = [pytest.mark.cli, pytest.mark.anyio]

TOOLS = {"claude_run", "create_session", "send_message", "get_messages", "list_files",
         "read_file", "write_file", "delete_file"}


@asynccontextmanager
async def mcp_session(gateway: Gateway) -> AsyncIterator[ClientSession]:
    """A client session over the initialize handshake (the 2025 protocol revisions)."""
    async with (streamable_http_client(f"{gateway.url}/mcp") as (read, write),
                ClientSession(read, write) as session):
        await session.initialize()
        yield session


def text_of(result: CallToolResult) -> str:
    return "\n".join(block.text for block in result.content if isinstance(block, TextContent))


async def test_the_tools_are_listed_with_their_input_schemas(start_gateway: Any) -> None:
    gateway: Gateway = start_gateway()
    async with mcp_session(gateway) as session:
        assert session.server_info is not None and session.server_info.name == "claude-gateway"
        tools = {tool.name: tool for tool in (await session.list_tools()).tools}
    assert set(tools) == TOOLS
    for tool in tools.values():
        assert tool.description and tool.input_schema["type"] == "object", tool.name
        assert "ctx" not in tool.input_schema["properties"], tool.name
    run = tools["claude_run"].input_schema
    assert run["required"] == ["prompt"]
    assert set(run["properties"]) == {
        "prompt", "workspace", "model", "system_prompt", "append_system_prompt",
        "permission_mode", "json_schema", "continue_conversation", "resume"}
    assert run["properties"]["prompt"]["description"]
    assert "acceptEdits" in json.dumps(run["properties"]["permission_mode"])
    assert tools["claude_run"].output_schema is not None
    assert "runId" in tools["claude_run"].output_schema["properties"]
    assert set(tools["send_message"].input_schema["required"]) == {"session_id", "prompt"}
    assert set(tools["get_messages"].input_schema["properties"]) == {
        "session_id", "limit", "offset"}
    assert tools["read_file"].input_schema["required"] == ["path"]
    assert set(tools["write_file"].input_schema["required"]) == {"path", "content"}
    assert set(tools["delete_file"].input_schema["properties"]) == {"path", "recursive"}
    assert tools["list_files"].input_schema.get("required", []) == []
    assert set(tools["create_session"].input_schema["properties"]) == {
        "workspace", "model", "permission_mode", "system_prompt", "append_system_prompt"}
    assert tools["read_file"].annotations is not None
    assert tools["read_file"].annotations.read_only_hint is True


async def test_claude_run_answers_with_the_result_and_reports_progress(
    start_gateway: Any,
) -> None:
    gateway: Gateway = start_gateway()
    progress: list[tuple[float, str | None]] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append((value, message))

    async with mcp_session(gateway) as session:
        result = await session.call_tool("claude_run", {
            "workspace": "mcp-run", "permission_mode": "acceptEdits",
            "prompt": 'Write it.\n@tool Write {"file_path": "out.txt", "content": "made"}\n'
                      "@reply Hello from the mock model."}, progress_callback=on_progress)
    assert not result.is_error, text_of(result)
    assert result.content[0] == TextContent(type="text", text="Hello from the mock model.")
    run = result.structured_content
    assert run is not None
    assert run["status"] == "completed" and run["result"] == "Hello from the mock model."
    assert run["runId"].startswith("run_") and run["sessionId"] == run["runId"]
    assert run["claudeSessionId"] and run["workspace"] == "mcp-run"
    assert run["usage"]["inputTokens"] > 0 and run["totalCostUsd"] > 0
    assert json.loads(result.content[1].text)["runId"] == run["runId"]  # type: ignore[union-attr]
    assert (gateway.settings.workspace_root / "mcp-run/out.txt").read_text() == "made"
    # One notification per message and streamed delta, counting up.
    values = [value for value, _ in progress]
    assert values == list(range(1, len(values) + 1)) and len(values) >= 3
    messages = [message or "" for _, message in progress]
    assert any("[tool Write]" in m for m in messages)
    assert any(m.startswith("text: ") for m in messages)


async def test_cancelling_claude_run_stops_the_run(start_gateway: Any) -> None:
    gateway: Gateway = start_gateway()
    working = anyio.Event()

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        working.set()

    async with mcp_session(gateway) as session, gateway.client() as client:
        async with anyio.create_task_group() as group:
            group.start_soon(session.call_tool, "claude_run", {
                "workspace": "slow", "prompt": "@slow 0.5\n@reply " + "w " * 60}, None,
                on_progress)
            with anyio.fail_after(30):
                await working.wait()
            group.cancel_scope.cancel()

        async def interrupted() -> bool:
            runs = (await client.get("/v1/runs", params={"status": "interrupted"})).json()
            return any(r["workspace"] == "slow" for r in runs["runs"])

        async def free() -> bool:
            status = (await client.get("/v1/status")).json()
            return "slow" not in status["busyWorkspaces"]

        await wait_until(interrupted, within=20)  # the scripted stream needs 30 s
        await wait_until(free)
        # The session is still usable, and the workspace free for the next run.
        again = await session.call_tool("claude_run", {"workspace": "slow",
                                                       "prompt": "@reply free again"})
    assert again.content[0] == TextContent(type="text", text="free again")


async def test_files_round_trip_and_paths_outside_the_root_are_refused(
    start_gateway: Any,
) -> None:
    gateway: Gateway = start_gateway()
    root = gateway.settings.workspace_root
    (root.parent / "outside.txt").write_text("secret")
    # The 2026 protocol revision (no handshake, one POST per request) works as well.
    async with Client(f"{gateway.url}/mcp") as client:
        written = await client.call_tool("write_file", {"path": "proj/notes/a.md",
                                                        "content": "# Hi\nthere\n"})
        assert written.structured_content == {"path": "proj/notes/a.md", "size": 11}
        assert (root / "proj/notes/a.md").read_text() == "# Hi\nthere\n"
        read = await client.call_tool("read_file", {"path": "proj/notes/a.md"})
        assert read.structured_content == {"path": "proj/notes/a.md", "size": 11,
                                           "encoding": "text", "content": "# Hi\nthere\n"}
        await client.call_tool("write_file", {"path": "proj/b.bin", "content": "AAEC/w==",
                                              "encoding": "base64"})
        assert (root / "proj/b.bin").read_bytes() == b"\x00\x01\x02\xff"
        binary = await client.call_tool("read_file", {"path": "proj/b.bin"})
        assert binary.is_error and text_of(binary).count("BINARY_FILE") == 1
        as_base64 = await client.call_tool("read_file", {"path": "proj/b.bin",
                                                         "encoding": "base64"})
        assert as_base64.structured_content is not None
        assert as_base64.structured_content["content"] == "AAEC/w=="
        listing = await client.call_tool("list_files", {"path": "proj"})
        assert listing.structured_content is not None
        assert [(e["name"], e["type"]) for e in listing.structured_content["entries"]] == [
            ("b.bin", "file"), ("notes", "dir")]

        for path in ("../outside.txt", "/etc/passwd", "proj/../../outside.txt"):
            refused = await client.call_tool("read_file", {"path": path})
            assert refused.is_error and "PATH_OUTSIDE_WORKSPACE" in text_of(refused), path
            assert "secret" not in text_of(refused) and refused.structured_content is None
        escaped = await client.call_tool("write_file", {"path": "../outside.txt",
                                                        "content": "overwritten"})
        assert escaped.is_error and "PATH_OUTSIDE_WORKSPACE" in text_of(escaped)
        missing = await client.call_tool("read_file", {"path": "proj/nope.txt"})
        assert missing.is_error and "FILE_NOT_FOUND" in text_of(missing)

        not_empty = await client.call_tool("delete_file", {"path": "proj"})
        assert not_empty.is_error and "IS_A_DIRECTORY" in text_of(not_empty)
        deleted = await client.call_tool("delete_file", {"path": "proj", "recursive": True})
        assert deleted.structured_content == {"path": "proj", "deleted": True}
    assert not (root / "proj").exists()
    assert (root.parent / "outside.txt").read_text() == "secret"


async def test_a_session_is_created_messaged_and_read_back(start_gateway: Any) -> None:
    gateway: Gateway = start_gateway()
    async with mcp_session(gateway) as session:
        created = await session.call_tool("create_session", {"workspace": "chat",
                                                             "model": "sonnet"})
        assert not created.is_error, text_of(created)
        ses = created.structured_content
        assert ses is not None and ses["id"].startswith("ses_")
        assert ses["workspace"] == "chat" and ses["model"] == "sonnet"
        first = await session.call_tool("send_message", {"session_id": ses["id"],
                                                         "prompt": "Hi.\n@reply Hello!"})
        second = await session.call_tool("send_message", {"session_id": ses["id"],
                                                          "prompt": "Again.\n@reply Still here."})
        assert [text_of(r).splitlines()[0] for r in (first, second)] == ["Hello!", "Still here."]
        assert second.structured_content is not None
        assert second.structured_content["status"] == "completed"
        assert second.structured_content["turnId"].startswith("turn_")
        history = await session.call_tool("get_messages", {"session_id": ses["id"],
                                                           "limit": 3})
        assert history.structured_content is not None
        messages = history.structured_content["messages"]
        assert [m["role"] for m in messages] == ["user", "assistant", "user"]
        assert messages[1]["content"] == [{"type": "text", "text": "Hello!"}]
        assert history.structured_content["pagination"] == {
            "limit": 3, "offset": 0, "total": 4, "hasMore": True}
        unknown = await session.call_tool("send_message", {"session_id": "ses_nope",
                                                           "prompt": "@reply no"})
        assert unknown.is_error and "SESSION_NOT_FOUND" in text_of(unknown)
        invalid = await session.call_tool("get_messages", {"session_id": ses["id"],
                                                           "limit": 0})
        assert invalid.is_error
        bare = await session.call_tool("create_session", {})  # every argument is optional
        assert not bare.is_error, text_of(bare)
        assert bare.structured_content["id"].startswith("ses_")
        assert bare.structured_content["workspace"] == bare.structured_content["id"]


async def test_a_foreign_host_or_origin_is_refused(start_gateway: Any) -> None:
    gateway: Gateway = start_gateway()
    initialize = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "test", "version": "0"}}}
    headers = {"Accept": "application/json, text/event-stream"}
    async with gateway.client() as client:
        rebound = await client.post("/mcp", json=initialize,
                                    headers={**headers, "Host": "evil.example"})
        assert rebound.status_code == 421 and "Host" in rebound.text
        cross_site = await client.post("/mcp", json=initialize,
                                       headers={**headers, "Origin": "http://evil.example"})
        assert cross_site.status_code == 403
        own = await client.post("/mcp", json=initialize, headers=headers)
        assert own.status_code == 200, own.text  # no redirect to /mcp/
        assert "mcp-session-id" in own.headers
        assert (await client.get("/health")).status_code == 200
        assert (await client.get("/v1/nope")).json()["error"]["code"] == "NOT_FOUND"


async def test_one_pair_of_host_and_origin_settings_guards_every_surface(
    start_gateway: Any,
) -> None:
    gateway: Gateway = start_gateway(
        allowed_hosts=["127.0.0.1", "gw.example"], allowed_origins=["http://app.example:*"],
        mcp_allowed_hosts=["old.example:*"])  # the deprecated alias still counts
    assert gateway.app.state.settings.deprecations()
    initialize = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "test", "version": "0"}}}
    mcp_headers = {"Accept": "application/json, text/event-stream"}
    async with gateway.client() as client:
        for extra, allowed in (({"Host": "gw.example"}, True),
                               ({"Host": "old.example"}, True),
                               ({"Host": "localhost"}, False),
                               ({"Origin": "http://app.example:5173"}, True),
                               ({"Origin": "http://app.example.evil:5173"}, False),
                               ({"Origin": "https://app.example:5173"}, False)):
            rest = await client.get("/v1/sessions", headers=extra)
            mcp = await client.post("/mcp", json=initialize, headers={**mcp_headers, **extra})
            if allowed:
                assert rest.status_code == 200 and mcp.status_code == 200, (extra, mcp.text)
            else:
                assert rest.status_code in (403, 421), extra
                assert mcp.status_code == rest.status_code, extra
