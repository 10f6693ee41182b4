"""Two keys, alice and bob, on one gateway: bob reaches nothing of alice's through any
field that names a directory, a conversation or an environment variable, on any surface."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from claude_gateway.mock_model import MockModelServer
from tests.helpers.api import assert_error, auth, events_of
from tests.helpers.gateway import Gateway
from tests.helpers.sse import collect

pytestmark = pytest.mark.anyio

ALICE = "alice-key-0123456789abcdef"
BOB = "bob-key-0123456789abcdef"
ROOT = "root-key-0123456789abcdef"
KEYS = [{"name": "alice", "key": ALICE}, {"name": "bob", "key": BOB},
        {"name": "root", "key": ROOT, "admin": True}]


@pytest.fixture
def two_keys(start_gateway: Any) -> Gateway:
    gateway: Gateway = start_gateway(api_keys=KEYS)
    return gateway


def alices_secret(gateway: Gateway) -> Path:
    secret = gateway.settings.workspace_root / "alice" / "proj" / "secret.txt"
    secret.parent.mkdir(parents=True, exist_ok=True)
    secret.write_text("alice's secret")
    return secret


ESCAPES = ["../alice/proj", "../alice", "..", "/tmp", "a/../../alice/proj"]


async def test_a_workspace_name_cannot_leave_the_keys_directory(two_keys: Gateway) -> None:
    alices_secret(two_keys)
    root = two_keys.settings.workspace_root
    async with two_keys.client(headers=auth(BOB)) as bob:
        for name in ESCAPES:
            assert_error(await bob.post("/v1/sessions", json={"workspace": name}), 400,
                         "PATH_OUTSIDE_WORKSPACE")
            assert_error(await bob.post("/v1/runs", json={"workspace": name,
                                                          "prompt": "@reply no"}),
                         400, "PATH_OUTSIDE_WORKSPACE")
            refused = await bob.post("/v1/chat/completions", headers={"X-Workspace": name},
                                     json={"model": "sonnet", "messages": [
                                         {"role": "user", "content": "@reply no"}]})
            assert refused.status_code == 400, refused.text
            assert refused.json()["error"]["code"] == "PATH_OUTSIDE_WORKSPACE"
        # A link bob's agent could plant in his own directory leads nowhere either.
        (root / "bob").mkdir(exist_ok=True)
        (root / "bob" / "shortcut").symlink_to(root / "alice" / "proj")
        assert_error(await bob.post("/v1/sessions", json={"workspace": "shortcut"}), 400,
                     "PATH_OUTSIDE_WORKSPACE")
        assert_error(await bob.post("/v1/sessions", json={"addDirs": ["shortcut"]}), 400,
                     "PATH_OUTSIDE_WORKSPACE")
        for name in ["../alice/proj", "/", "/etc", "../../.."]:
            assert_error(await bob.post("/v1/sessions", json={"addDirs": [name]}), 400,
                         "PATH_OUTSIDE_WORKSPACE")
        assert_error(await bob.post("/v1/sessions", json={"addDirs": ["missing"]}), 400,
                     "INVALID_PATH")
        assert (await bob.get("/v1/sessions")).json()["sessions"] == []
    assert sorted(p.name for p in root.iterdir()) == ["alice", "bob"]
    assert sorted(p.name for p in (root / "bob").iterdir()) == ["shortcut"]


async def test_an_admin_names_any_directory_under_the_root(two_keys: Gateway) -> None:
    alices_secret(two_keys)
    async with two_keys.client(headers=auth(ROOT)) as admin:
        created = await admin.post("/v1/sessions", json={
            "workspace": "alice/proj", "addDirs": ["alice"]})
        assert created.status_code == 201, created.text
        assert created.json()["workspace"] == "alice/proj"
        assert_error(await admin.post("/v1/sessions", json={"workspace": "../outside"}), 400,
                     "PATH_OUTSIDE_WORKSPACE")
        assert (await admin.delete(f"/v1/sessions/{created.json()['id']}")).status_code == 204


@pytest.mark.cli
async def test_mcp_claude_run_is_confined_like_every_other_surface(two_keys: Gateway) -> None:
    import httpx2
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    alices_secret(two_keys)
    async with httpx2.AsyncClient(headers=auth(BOB), timeout=60) as http, \
            streamable_http_client(f"{two_keys.url}/mcp", http_client=http) as (r, w), \
            ClientSession(r, w) as session:
        await session.initialize()
        for name in ESCAPES:
            result = await session.call_tool("claude_run", {"prompt": "@reply no",
                                                            "workspace": name})
            text = result.content[0].text  # type: ignore[union-attr]
            assert result.is_error and "PATH_OUTSIDE_WORKSPACE: " in text, text
        resumed = await session.call_tool("claude_run", {"prompt": "@reply no",
                                                         "resume": "not-a-conversation"})
        assert resumed.is_error
        assert "CONVERSATION_NOT_FOUND: " in resumed.content[0].text  # type: ignore[union-attr]


@pytest.mark.cli
async def test_another_keys_conversation_is_as_good_as_missing(
    two_keys: Gateway, mock_model: MockModelServer
) -> None:
    async with two_keys.client(headers=auth(ALICE)) as alice, \
            two_keys.client(headers=auth(BOB)) as bob:
        run = (await alice.post("/v1/runs", json={
            "workspace": "proj", "prompt": "The code word is PELICAN.\n@reply Noted."})).json()
        assert run["status"] == "completed", run
        conversation = run["claudeSessionId"]
        requests_before = len(mock_model.model.requests)
        unknown = "00000000-0000-4000-8000-000000000000"
        for target in (conversation, unknown):
            for path, body in [("/v1/runs", {"prompt": "@reply what was it?",
                                            "resume": target}),
                               ("/v1/sessions", {"resume": target})]:
                response = await bob.post(path, json=body)
                assert_error(response, 404, "CONVERSATION_NOT_FOUND")
                assert response.json()["error"]["details"] == {"conversationId": target}
        # Nothing ran: the model never saw alice's conversation on bob's behalf.
        assert len(mock_model.model.requests) == requests_before
        assert_error(await bob.post("/v1/sessions", json={"forkFrom": run["runId"]}), 404,
                     "SESSION_NOT_FOUND")
        # `continue` looks only at bob's own conversations in his own "proj".
        carried = (await bob.post("/v1/runs", json={
            "workspace": "proj", "continue": True, "prompt": "@reply fresh start"})).json()
        assert carried["status"] == "completed" and carried["claudeSessionId"] != conversation
        assert "PELICAN" not in json.dumps(mock_model.model.requests[-1].messages)
        # Alice herself resumes it, in the directory it was made in.
        again = (await alice.post("/v1/runs", json={
            "prompt": "What was it?\n@reply PELICAN", "resume": conversation})).json()
        assert again["status"] == "completed" and again["workspace"] == "proj"
        assert "PELICAN" in json.dumps(mock_model.model.requests[-1].messages)


async def test_env_cannot_choose_the_upstream_or_the_credentials(two_keys: Gateway) -> None:
    async with two_keys.client(headers=auth(BOB)) as bob:
        for name in ["ANTHROPIC_BASE_URL", "ANTHROPIC_API_KEY", "CLAUDE_CONFIG_DIR",
                     "HTTPS_PROXY", "https_proxy", "NODE_OPTIONS", "LD_PRELOAD", "PATH",
                     "HOME"]:
            response = await bob.post("/v1/sessions", json={
                "env": {name: "http://attacker.example"}})
            assert_error(response, 400, "ENV_NOT_ALLOWED")
            assert response.json()["error"]["details"]["name"] == name
        assert (await bob.get("/v1/sessions")).json()["sessions"] == []


@pytest.mark.cli
async def test_the_operator_narrows_env_and_allowed_variables_reach_the_agent(
    start_gateway: Any,
) -> None:
    gateway: Gateway = start_gateway(session_env_allowlist=["MY_APP_*"])
    async with gateway.client() as client:
        assert_error(await client.post("/v1/sessions", json={"env": {"LANG": "C"}}), 400,
                     "ENV_NOT_ALLOWED")
        created = await client.post("/v1/sessions", json={"env": {"MY_APP_TOKEN": "t-42"}})
        assert created.status_code == 201, created.text
        started = await _started(client, created.json()["id"])
    environ = proc_file(started["pid"], "environ")
    assert b"MY_APP_TOKEN=t-42" in environ
    # The operator's upstream settings are the CLI's, whatever the session asked.
    assert f"ANTHROPIC_BASE_URL={gateway.settings.upstream_base_url}".encode() in environ


@pytest.mark.cli
async def test_added_directories_reach_the_cli_resolved_inside_the_home(
    two_keys: Gateway,
) -> None:
    shared = two_keys.settings.workspace_root / "bob" / "shared"
    shared.mkdir(parents=True)
    async with two_keys.client(headers=auth(BOB)) as bob:
        created = await bob.post("/v1/sessions", json={"addDirs": ["shared"]})
        assert created.status_code == 201, created.text
        assert created.json()["addDirs"] == ["shared"]
        session_id = created.json()["id"]
        started = await _started(bob, session_id)
    command = proc_file(started["pid"], "cmdline")
    assert command[command.index(b"--add-dir") + 1] == str(shared.resolve()).encode()


def proc_file(pid: int, name: str) -> list[bytes]:
    """A NUL-separated file of /proc about a live process (its environment, its argv)."""
    return Path(f"/proc/{pid}/{name}").read_bytes().split(b"\0")


async def _started(client: httpx.AsyncClient, session_id: str) -> dict[str, Any]:
    from tests.helpers.gateway import wait_until

    found: list[dict[str, Any]] = []

    async def started() -> bool:
        found[:] = [e["data"] for e in await events_of(client, session_id)
                    if e["type"] == "process.started"]
        return bool(found)

    await wait_until(started)
    return found[0]


@pytest.mark.cli
async def test_status_shows_a_key_only_its_own_sessions(two_keys: Gateway) -> None:
    async with two_keys.client(headers=auth(ALICE)) as alice, \
            two_keys.client(headers=auth(BOB)) as bob, \
            two_keys.client(headers=auth(ROOT)) as admin:
        alices = (await alice.post("/v1/sessions", json={"workspace": "alice-secret-name"})
                  ).json()["id"]
        bobs = (await bob.post("/v1/sessions", json={"workspace": "mine"})).json()["id"]
        await _started(alice, alices)
        await _started(bob, bobs)
        seen = (await bob.get("/v1/status")).json()
        text = json.dumps(seen)
        assert alices not in text and "alice" not in text and "pid" not in text
        assert [s["sessionId"] for s in seen["processes"]["sessions"]] == [bobs]
        assert seen["processes"]["live"] == 2  # an aggregate count is fine
        assert seen["sessions"]["idle"] + seen["sessions"]["starting"] == 1
        everything = (await admin.get("/v1/status")).json()
        assert {s["sessionId"] for s in everything["processes"]["sessions"]} == {alices, bobs}
        assert all(isinstance(s["pid"], int) for s in everything["processes"]["sessions"])
        assert "spares" in everything and "spares" not in seen


@pytest.mark.cli
async def test_file_tools_never_reach_another_keys_directory_even_if_approved(
    two_keys: Gateway, mock_model: MockModelServer
) -> None:
    secret = alices_secret(two_keys)
    config = two_keys.settings.cli_config_dir
    async with two_keys.client(headers=auth(BOB)) as bob:
        session_id = (await bob.post("/v1/sessions", json={"workspace": "mine"})).json()["id"]
        steps = "\n".join([
            f'@tool Read {{"file_path": "{secret}"}}',
            '@tool Read {"file_path": "../../alice/proj/secret.txt"}',
            f'@tool Write {{"file_path": "{config}/planted.json", "content": "{{}}"}}',
            "@reply done"])
        done = await bob.post(f"/v1/sessions/{session_id}/messages",
                              json={"prompt": steps, "timeoutMs": 60_000})
        assert done.json()["status"] == "completed", done.text
        assert (await bob.get(f"/v1/sessions/{session_id}/permissions")).json() == {
            "permissions": []}
        resolved = [e["data"] for e in await events_of(bob, session_id)
                    if e["type"] == "permission.resolved"]
    assert [(r["status"], r["by"]) for r in resolved] == [("denied", "policy")] * 3
    results = [json.dumps(r) for r in mock_model.model.requests[-1].tool_results()]
    assert len(results) == 3
    assert all("outside your workspace directory" in r for r in results), results
    assert not any("alice's secret" in json.dumps(r.messages)
                   for r in mock_model.model.requests)
    assert not (config / "planted.json").exists()


async def test_pending_permissions_across_sessions_are_only_the_callers(
    two_keys: Gateway,
) -> None:
    write = '@tool Write {"file_path": "x.txt", "content": "x"}\n@reply done'
    asked: dict[str, list[str]] = {}
    for name, key in (("alice", ALICE), ("bob", BOB), ("alice", ALICE)):
        async with two_keys.client(headers=auth(key)) as client:
            session_id = (await client.post("/v1/sessions", json={})).json()["id"]
            turn = await client.post(f"/v1/sessions/{session_id}/messages",
                                     json={"prompt": write, "timeoutMs": 0})
            assert turn.status_code == 202
            await wait_for_pending(client, session_id)
            asked.setdefault(name, []).append(session_id)
    async with two_keys.client(headers=auth(ALICE)) as alice, \
            two_keys.client(headers=auth(BOB)) as bob, \
            two_keys.client(headers=auth(ROOT)) as root:
        alices = (await alice.get("/v1/permissions")).json()["permissions"]
        assert [p["sessionId"] for p in alices] == asked["alice"]  # oldest first
        assert all(p["toolName"] == "Write" and p["input"]["file_path"].endswith("x.txt")
                   for p in alices)
        bobs = (await bob.get("/v1/permissions")).json()["permissions"]
        assert [p["sessionId"] for p in bobs] == asked["bob"]
        everyone = (await root.get("/v1/permissions")).json()["permissions"]
        assert len(everyone) == 3
        # Allowing one answers exactly that request.
        first = alices[0]
        allowed = await alice.post(
            f"/v1/sessions/{first['sessionId']}/permissions/{first['requestId']}",
            json={"decision": "allow"})
        assert allowed.status_code == 200
        left = (await alice.get("/v1/permissions")).json()["permissions"]
        assert [p["requestId"] for p in left] == [alices[1]["requestId"]]
    async with two_keys.client() as nobody:
        assert_error(await nobody.get("/v1/permissions"), 401, "UNAUTHORIZED")


async def wait_for_pending(client: httpx.AsyncClient, session_id: str) -> None:
    with anyio.fail_after(30):
        await collect(client, "GET", f"/v1/sessions/{session_id}/events",
                      until=lambda e: e["type"] == "permission.requested")
