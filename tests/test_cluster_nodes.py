"""Three gateway processes on one PostgreSQL database and one workspace root, with the
real CLI and a short lease TTL: any node serves any session, a dead node loses
nothing, a frozen one is fenced off, a stopping one hands over, and the caps hold
across nodes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx
import psycopg
import pytest
from websockets.asyncio.client import connect

from claude_gateway.mock_model import MockModelServer
from tests.helpers.api import new_session
from tests.helpers.gateway import free_port, processes_in, wait_healthy, wait_until
from tests.helpers.gateway_process import start_gateway_process
from tests.helpers.postgres import ADMIN_URL, scratch_database
from tests.helpers.sse import is_turn_end, sse_events

pytestmark = pytest.mark.anyio

TTL = 2.0
LONG = "@slow 0.5\n@reply " + "w " * 20
"""A turn that streams for about ten seconds."""


@dataclass
class Node:
    name: str
    process: subprocess.Popen[bytes]
    url: str

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, timeout=120)


@dataclass
class Cluster:
    database: str
    root: Path
    nodes: list[Node] = field(default_factory=list)

    def cli_pids(self) -> list[int]:
        return processes_in(self.root)


@pytest.fixture
def database() -> Iterator[str]:
    with scratch_database("nodes") as url:
        yield url


@pytest.fixture
async def cluster(database: str, tmp_path: Path, mock_model: MockModelServer,
                  request: pytest.FixtureRequest) -> AsyncIterator[Cluster]:
    extra: dict[str, str] = getattr(request, "param", {})
    made = Cluster(database, tmp_path / "shared-workspaces")
    for name in ("node-a", "node-b", "node-c"):
        port = free_port()
        (tmp_path / name).mkdir()
        process = start_gateway_process(
            tmp_path / name, mock_model.url, port, own_group=True, database_url=database,
            node_id=name, workspace_root=str(made.root), lease_ttl_seconds=str(TTL),
            max_sessions="10", max_processes="3", **extra)
        made.nodes.append(Node(name, process, f"http://127.0.0.1:{port}"))
    try:
        for node in made.nodes:
            await wait_healthy(node.url)
        yield made
    finally:
        for node in made.nodes:
            if node.process.poll() is None:
                node.process.send_signal(signal.SIGTERM)
        for node in made.nodes:
            try:
                node.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(node.process.pid, signal.SIGKILL)
                node.process.wait(timeout=10)
            with_group_gone(node.process.pid)
    await wait_until(lambda: not made.cli_pids(), within=20)


def with_group_gone(pgid: int) -> None:
    """Whatever is left of a node's process group (a CLI) goes too."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


class Follower:
    """Every event of a session as one node streams it, reconnecting with its last id
    when the stream ends (as an EventSource would)."""

    def __init__(self, node: Node, session_id: str) -> None:
        self.node, self.session_id = node, session_id
        self.events: list[dict[str, Any]] = []
        self.changed = asyncio.Event()

    async def run(self) -> None:
        async with self.node.client() as client:
            while True:
                last = self.events[-1]["seq"] if self.events else 0
                async with client.stream("GET", f"/v1/sessions/{self.session_id}/events",
                                         params={"after": last}) as response:
                    async for event in sse_events(response):
                        self.events.append(event)
                        self.changed.set()

    async def until(self, check: Any, within: float = 60) -> dict[str, Any]:
        with anyio.fail_after(within):
            while True:
                for event in self.events:
                    if check(event):
                        return event
                self.changed.clear()
                await self.changed.wait()


def turn_end(turn_id: str) -> Any:
    return lambda e: is_turn_end(e) and e["turnId"] == turn_id


async def session_on(client: httpx.AsyncClient, session_id: str) -> dict[str, Any]:
    response = await client.get(f"/v1/sessions/{session_id}")
    assert response.status_code == 200, response.text
    return dict(response.json())


async def test_any_node_serves_any_session_and_a_killed_one_loses_nothing(
    cluster: Cluster, mock_model: MockModelServer
) -> None:
    a, b, c = cluster.nodes
    async with a.client() as on_a, b.client() as on_b, c.client() as on_c:
        session_id = await new_session(on_a)
        follower = Follower(c, session_id)
        async with anyio.create_task_group() as group:
            group.start_soon(follower.run)
            first = await on_b.post(f"/v1/sessions/{session_id}/messages",
                                    json={"prompt": "First.\n@reply one"})
            assert first.status_code == 200 and first.json()["result"] == "one"
            assert (await session_on(on_c, session_id))["node"] == "node-a"
            await follower.until(turn_end(first.json()["turnId"]))
            status = (await on_c.get("/v1/status")).json()
            assert status["node"] == "node-c"
            assert {n["id"]: n["sessions"] for n in status["nodes"]} == {
                "node-a": 1, "node-b": 0, "node-c": 0}

            # C's LISTEN connection is cut: its stream goes on (it polls, reconnects).
            with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
                killed = admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE application_name = 'cgw-listen-node-c' AND datname = %s",
                    [cluster.database.rsplit("/", 1)[1]]).fetchall()
            assert killed == [(True,)]

            # A client waits on B for a turn A runs.
            waiting = asyncio.create_task(on_b.post(f"/v1/sessions/{session_id}/messages",
                                                    json={"prompt": LONG}))
            started = await follower.until(lambda e: e["type"] == "message.delta"
                                           and e["turnId"] != first.json()["turnId"])
            lost_turn = started["turnId"]
            os.killpg(a.process.pid, signal.SIGKILL)  # A and its CLI, mid-turn
            a.process.wait(timeout=10)
            killed_at = time.monotonic()

            # With no other request, a sweep takes the session over within about a TTL
            # and the waiting client is answered with the failure.
            lost_answer = await waiting
            assert time.monotonic() - killed_at < TTL + 10
            assert lost_answer.status_code == 200, lost_answer.text
            assert lost_answer.json()["turnId"] == lost_turn
            assert lost_answer.json()["status"] == "failed"
            assert lost_answer.json()["error"]["code"] == "NODE_LOST"

            after = await on_b.post(f"/v1/sessions/{session_id}/messages",
                                    json={"prompt": "After.\n@reply three"})
            assert after.status_code == 200, after.text
            assert after.json()["result"] == "three", after.text
            await follower.until(turn_end(after.json()["turnId"]))
            group.cancel_scope.cancel()

        seqs = [e["seq"] for e in follower.events]
        assert seqs == list(range(1, seqs[-1] + 1))  # no gap, no repeat, through C
        lost = [e for e in follower.events if is_turn_end(e) and e["turnId"] == lost_turn]
        assert [e["data"]["error"]["code"] for e in lost] == ["NODE_LOST"]
        owner = (await session_on(on_c, session_id))["node"]
        assert owner in ("node-b", "node-c")
        assert len(cluster.cli_pids()) == 1  # one CLI for the session, on its new node
        # A dropped out of the nodes (not seen for a TTL); each node has a last-seen time.
        nodes = (await on_b.get("/v1/status")).json()["nodes"]
        assert {n["id"]: n["sessions"] for n in nodes} == {
            "node-b": int(owner == "node-b"), "node-c": int(owner == "node-c")}
        assert all(n["lastSeenAt"].endswith("Z") for n in nodes)
    # The conversation went on from the transcript in the database.
    assert mock_model.model.requests[-1].user_texts()[0] == "First.\n@reply one"


async def test_a_frozen_owner_is_fenced_off_when_it_wakes(cluster: Cluster) -> None:
    a, b, c = cluster.nodes
    async with a.client() as on_a, b.client() as on_b, c.client() as on_c:
        session_id = await new_session(on_a)
        first = await on_a.post(f"/v1/sessions/{session_id}/messages",
                                json={"prompt": "@reply one"})
        assert first.json()["result"] == "one"
        follower = Follower(c, session_id)
        async with anyio.create_task_group() as group:
            group.start_soon(follower.run)
            running = await on_b.post(f"/v1/sessions/{session_id}/messages",
                                      json={"prompt": LONG, "timeoutMs": 0})
            stale_turn = running.json()["turnId"]
            await follower.until(lambda e: e["type"] == "message.delta"
                                 and e["turnId"] == stale_turn)
            a.process.send_signal(signal.SIGSTOP)  # A freezes past its lease
            try:
                taken = await on_b.post(f"/v1/sessions/{session_id}/messages",
                                        json={"prompt": "@reply two"})
                assert taken.status_code == 200, taken.text
                assert taken.json()["result"] == "two"
                assert len(cluster.cli_pids()) == 2  # A's CLI, and the new owner's
            finally:
                a.process.send_signal(signal.SIGCONT)
            # A finds its lease gone: it stops its CLI and writes nothing more.
            await wait_until(lambda: len(cluster.cli_pids()) == 1, within=TTL * 5)
            again = await on_c.post(f"/v1/sessions/{session_id}/messages",
                                    json={"prompt": "@reply three"})
            assert again.json()["result"] == "three"
            await follower.until(turn_end(again.json()["turnId"]))
            group.cancel_scope.cancel()
        ends = [i for i, e in enumerate(follower.events)
                if is_turn_end(e) and e["turnId"] == stale_turn]
        assert len(ends) == 1
        assert follower.events[ends[0]]["data"]["error"]["code"] == "NODE_LOST"
        assert not [e for e in follower.events[ends[0] + 1:] if e["turnId"] == stale_turn]
        seqs = [e["seq"] for e in follower.events]
        assert seqs == list(range(seqs[0], seqs[-1] + 1))
        assert (await session_on(on_a, session_id))["node"] in ("node-b", "node-c")
        assert len(cluster.cli_pids()) == 1


@pytest.mark.parametrize("cluster", [{"drain_timeout_seconds": "60"}], indirect=True)
async def test_a_stopping_node_finishes_its_turn_and_hands_the_queue_over(
    cluster: Cluster,
) -> None:
    a, b, _c = cluster.nodes
    async with a.client() as on_a, b.client() as on_b:
        session_id = await new_session(on_a)
        running = await on_a.post(f"/v1/sessions/{session_id}/messages",
                                  json={"prompt": "@slow 0.2\n@reply " + "w " * 10,
                                        "timeoutMs": 0})
        follower = Follower(b, session_id)
        async with anyio.create_task_group() as group:
            group.start_soon(follower.run)
            await follower.until(lambda e: e["type"] == "message.delta")
            queued = asyncio.create_task(on_b.post(
                f"/v1/sessions/{session_id}/messages", json={"prompt": "@reply second"}))
            await follower.until(lambda e: e["type"] == "turn.queued"
                                 and e["turnId"] != running.json()["turnId"])
            a.process.send_signal(signal.SIGTERM)
            finished = await follower.until(turn_end(running.json()["turnId"]))
            assert finished["type"] == "turn.completed"  # the running turn finished
            with anyio.fail_after(TTL * 10):
                second = await queued
            assert second.status_code == 200 and second.json()["result"] == "second"
            group.cancel_scope.cancel()
        assert a.process.wait(timeout=60) in (0, -signal.SIGTERM)  # a clean stop
        assert (await session_on(on_b, session_id))["node"] in ("node-b", "node-c")


async def test_parallel_creates_over_three_nodes_stop_at_the_cap(cluster: Cluster) -> None:
    clients = [node.client() for node in cluster.nodes]
    try:
        made = await asyncio.gather(*(
            clients[i % 3].post("/v1/sessions", json={}) for i in range(20)))
    finally:
        for client in clients:
            await client.aclose()
    statuses = sorted(r.status_code for r in made)
    assert statuses == [201] * 10 + [429] * 10
    assert {r.json()["error"]["code"] for r in made if r.status_code == 429} == {
        "MAX_SESSIONS_REACHED"}


NGINX = Path("/usr/sbin/nginx")
SHIPPED_CONFIG = Path(__file__).parent.parent / "deploy" / "nginx.conf"


def nginx_in_front(directory: Path, nodes: list[Node]) -> tuple[subprocess.Popen[bytes], str]:
    """Debian's nginx on a loopback port, with the project's shipped configuration
    (deploy/nginx.conf) pointed at the nodes."""
    port = free_port()
    servers = "\n".join(f"    server {node.url.removeprefix('http://')} max_fails=1 "
                        "fail_timeout=5s;" for node in nodes)
    shipped = SHIPPED_CONFIG.read_text()
    start = shipped.index("upstream claude_gateway {")
    end = shipped.index("    keepalive", start)
    site = (shipped[:start] + "upstream claude_gateway {\n" + servers + "\n" + shipped[end:]
            ).replace("listen 80;", f"listen 127.0.0.1:{port};")
    temp = directory / "nginx"
    temp.mkdir()
    user = "user root;" if os.geteuid() == 0 else ""
    (temp / "nginx.conf").write_text(f"""
daemon off;
worker_processes 1;
{user}
pid {temp}/nginx.pid;
error_log {temp}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {temp}/body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
    {site}
}}
""")
    process = subprocess.Popen([str(NGINX), "-p", str(temp), "-c", str(temp / "nginx.conf")],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return process, f"http://127.0.0.1:{port}"


async def test_through_nginx_a_stream_whose_node_dies_resumes_with_last_event_id(
    cluster: Cluster, tmp_path: Path
) -> None:
    a = cluster.nodes[0]
    nginx, url = nginx_in_front(tmp_path, cluster.nodes)
    try:
        await wait_healthy(url)
        async with a.client() as on_a, httpx.AsyncClient(base_url=url,
                                                         timeout=120) as proxy:
            session_id = await new_session(proxy)
            first = await on_a.post(f"/v1/sessions/{session_id}/messages",
                                    json={"prompt": "@reply one"})
            assert first.json()["result"] == "one"
            # Streams through nginx land on every node in turn: take one not on A
            # (which runs the session's CLI).
            seen: list[dict[str, Any]] = []
            streamed_by = ""
            for _ in range(3):
                async with proxy.stream("GET", f"/v1/sessions/{session_id}/events") as stream:
                    streamed_by = stream.headers["x-gateway-node"]
                    if streamed_by == "node-a":
                        continue
                    events = sse_events(stream)
                    async for event in events:
                        seen.append(event)
                        if event["type"] == "turn.completed":
                            break
                    victim = next(n for n in cluster.nodes if n.name == streamed_by)
                    os.killpg(victim.process.pid, signal.SIGKILL)  # mid-stream
                    victim.process.wait(timeout=10)
                    with contextlib.suppress(httpx.HTTPError):  # the stream ends, cut
                        async for event in events:
                            seen.append(event)
                break
            assert streamed_by in ("node-b", "node-c")
            last = seen[-1]["seq"]
            # Events the client misses while it has no stream.
            second = await on_a.post(f"/v1/sessions/{session_id}/messages",
                                     json={"prompt": "@reply two"})
            assert second.json()["result"] == "two"
            resumed: list[dict[str, Any]] = []
            async with proxy.stream("GET", f"/v1/sessions/{session_id}/events",
                                    headers={"Last-Event-ID": str(last)}) as stream:
                assert stream.status_code == 200
                assert stream.headers["x-gateway-node"] != streamed_by
                async for event in sse_events(stream):
                    resumed.append(event)
                    if is_turn_end(event) and event["turnId"] == second.json()["turnId"]:
                        break
            everything = (await on_a.get(f"/v1/sessions/{session_id}/events",
                                         params={"follow": "false"})).json()["events"]
            assert [e["seq"] for e in seen] == list(range(1, last + 1))
            assert resumed == [e for e in everything if e["seq"] > last]
            # A WebSocket through nginx too (the upgrade passes), resuming at a seq.
            ws_url = url.replace("http://", "ws://")
            async with connect(f"{ws_url}/v1/sessions/{session_id}/ws?after={last}") as ws:
                replayed = await frames_until(ws, lambda f: f.get("seq") == everything[-1][
                    "seq"])
                assert [f["seq"] for f in replayed] == [e["seq"] for e in everything
                                                         if e["seq"] > last]
    finally:
        nginx.terminate()
        nginx.wait(timeout=10)


async def frames_until(ws: Any, predicate: Any) -> list[dict[str, Any]]:
    frames = []
    with anyio.fail_after(60):
        while True:
            frame = json.loads(await ws.recv())
            frames.append(frame)
            if predicate(frame):
                return frames


async def test_websocket_frames_on_one_node_act_on_a_session_another_node_runs(
    cluster: Cluster,
) -> None:
    a, b = cluster.nodes[0], cluster.nodes[1]
    async with a.client() as on_a:
        session_id = await new_session(on_a)
        write = '@tool Write {"file_path": "ws.txt", "content": "approved on b"}'
        ready = await on_a.post(f"/v1/sessions/{session_id}/messages",
                                json={"prompt": "@reply ready"})
        assert ready.json()["result"] == "ready"  # its CLI runs on A
        ws_url = b.url.replace("http://", "ws://")
        async with connect(f"{ws_url}/v1/sessions/{session_id}/ws?after=0") as ws:
            await ws.send(json.dumps({"type": "prompt", "clientId": "p1",
                                      "prompt": f"Write it.\n{write}\n@reply Done."}))
            frames = await frames_until(ws, lambda f: f.get("type") == "permission.requested")
            ack = next(f for f in frames if f.get("type") == "ack")
            request = frames[-1]["data"]
            await ws.send(json.dumps({"type": "permission", "clientId": "a1",
                                      "requestId": request["requestId"],
                                      "decision": "allow"}))
            # The ack comes once the node running the agent has taken the answer: the
            # turn may end (and its events arrive) before it.
            frames = await frames_until(ws, lambda f: f.get("type") == "turn.completed")
            if not any(f.get("clientId") == "a1" for f in frames):
                frames += await frames_until(ws, lambda f: f.get("clientId") == "a1")
            assert {"type": "ack", "clientId": "a1", "requestId": request["requestId"],
                    "turnId": ack["turnId"], "status": "allowed"} in frames
            completed = next(f for f in frames if f.get("type") == "turn.completed")
            assert completed["data"]["result"] == "Done."
            await ws.send(json.dumps({"type": "prompt", "clientId": "p2",
                                      "prompt": LONG}))
            await frames_until(ws, lambda f: f.get("type") == "message.delta")
            await ws.send(json.dumps({"type": "interrupt", "clientId": "i1"}))
            frames = await frames_until(ws, lambda f: f.get("type") == "turn.interrupted")
            assert {"type": "ack", "clientId": "i1", "interrupted": True} in frames
        assert (await session_on(on_a, session_id))["node"] == "node-a"
    # The agent on A wrote it, approved over a socket on B.
    assert (cluster.root / session_id / "ws.txt").read_text() == "approved on b"
