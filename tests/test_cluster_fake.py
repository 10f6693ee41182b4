"""Two gateway nodes on one PostgreSQL database, in this process, with fake agents:
leases decide which node runs a session's CLI, and fencing stops a node that lost one.

(The TTL is long, so no lease runs out unless a test says so: it expires a lease the way
a node frozen past its TTL would see it, then lets the nodes renew when it chooses.)
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import anyio
import pytest

from claude_gateway.errors import SessionOnAnotherNode
from claude_gateway.events.log import EventLog
from claude_gateway.services.sessions import SessionCreate, SessionManager
from claude_gateway.storage.sql import SqlStore
from claude_gateway.testing.fake_agent import FakeAgents
from tests.helpers.gateway import make_settings, wait_until
from tests.helpers.postgres import scratch_database

pytestmark = pytest.mark.anyio


@dataclass
class Node:
    name: str
    manager: SessionManager
    agents: FakeAgents
    store: SqlStore


@pytest.fixture
def database() -> Iterator[str]:
    with scratch_database("cluster") as url:
        yield url


@pytest.fixture
async def nodes(database: str, tmp_path: Path) -> AsyncIterator[list[Node]]:
    started: list[Node] = []
    for name in ("node-a", "node-b"):
        settings = make_settings(tmp_path / name, database_url=database, node_id=name,
                                 lease_ttl_seconds=3600, spare_processes=0,
                                 reaper_interval_seconds=3600,
                                 workspace_root=tmp_path / "shared-workspaces")
        settings.data_dir.mkdir(parents=True)
        store = SqlStore(settings.database_url)
        await store.start()
        agents = FakeAgents()
        manager = SessionManager(settings, store, EventLog(store),
                                 cli_path=Path("/fake/claude"), cli_env={},
                                 agent_factory=agents)
        await manager.start()
        started.append(Node(name, manager, agents, store))
    yield started
    for node in started:
        await node.manager.close()
        await node.store.close()
        assert node.agents.live() == []


async def test_one_node_runs_a_session_and_a_frozen_one_is_fenced_off(
    nodes: list[Node],
) -> None:
    a, b = nodes
    record = await a.manager.create(SessionCreate())
    first = await a.manager.send_message(record.id, None, "@reply one")
    with anyio.fail_after(10):
        assert (await first.done).result == "one"
    assert (await b.manager.get(record.id)).node == "node-a"
    with pytest.raises(SessionOnAnotherNode):
        await b.manager.send_message(record.id, None, "@reply not here")

    # A runs a long turn, then freezes past its lease (it renews nothing meanwhile).
    stuck = await a.manager.send_message(record.id, None, "@hang")
    await wait_until(lambda: bool(a.agents.live() and a.agents.live()[0].prompts[-1:]
                                  == ["@hang"]))
    await a.store.claim_lease(record.id, "node-a", -1)  # its lease has run out

    # B takes the session over on the next prompt: the turn A was running is lost.
    taken = await b.manager.send_message(record.id, None, "@reply two")
    with anyio.fail_after(10):
        assert (await taken.done).result == "two"
    events = await b.store.list_events(record.id, limit=1000)
    lost = [e for e in events if e.turn_id == stuck.id and e.type == "turn.failed"]
    assert [e.data["error"]["code"] for e in lost] == ["NODE_LOST"]
    assert (await b.manager.get(record.id)).node == "node-b"

    # A wakes up: its renewal finds the lease gone, so it stops its CLI and tells its
    # waiting client; it writes nothing more for the session.
    seq_before = (await b.store.get_session(record.id)).last_seq  # type: ignore[union-attr]
    await a.manager.supervisor.leases.renew()
    with anyio.fail_after(10):
        outcome = await stuck.done
    assert outcome.error is not None and outcome.error["code"] == "NODE_LOST"
    await wait_until(lambda: not a.agents.live())
    await wait_until(lambda: worker_done(a, record.id))  # A's turn ran to its end
    assert len(b.agents.live()) == 1  # exactly one CLI for the session
    assert (await b.store.get_session(record.id)).last_seq == seq_before  # type: ignore[union-attr]
    assert [e.seq for e in await b.store.list_events(record.id, limit=1000)] == list(
        range(1, seq_before + 1))

    # The conversation goes on where it is now.
    again = await b.manager.send_message(record.id, None, "@reply three")
    with anyio.fail_after(10):
        assert (await again.done).result == "three"


async def test_a_stopped_process_releases_its_session_to_any_node(nodes: list[Node]) -> None:
    a, b = nodes
    record = await a.manager.create(SessionCreate())
    first = await a.manager.send_message(record.id, None, "@reply one")
    with anyio.fail_after(10):
        await first.done
    live = a.manager.live(record.id)
    assert live is not None
    await a.manager.supervisor.stop_process(live, "idle_timeout")  # as the reaper would
    assert (await b.manager.get(record.id)).node is None
    moved = await b.manager.send_message(record.id, None, "@reply on b")
    with anyio.fail_after(10):
        assert (await moved.done).result == "on b"
    assert (await a.manager.get(record.id)).node == "node-b"


def worker_done(node: Node, session_id: str) -> bool:
    live = node.manager.live(session_id)
    return live is None or live.worker is None or live.worker.done()


async def test_a_permission_answer_for_a_request_waiting_on_another_node_says_where(
    nodes: list[Node],
) -> None:
    a, b = nodes
    record = await a.manager.create(SessionCreate())
    turn = await a.manager.send_message(
        record.id, None, '@ask Write {"file_path": "x.txt"}\n@reply asked')
    async def visible_from_b() -> bool:  # written to the database, not only asked on A
        return bool(await b.store.list_permissions(session_id=record.id,
                                                   statuses=["pending"]))

    await wait_until(visible_from_b)
    (asked,) = a.manager.permissions.waiting(record.id)
    with pytest.raises(SessionOnAnotherNode) as elsewhere:
        await b.manager.permissions.answer(record.id, asked["requestId"], decision="allow")
    assert elsewhere.value.details["node"] == "node-a"
    await a.manager.permissions.answer(record.id, asked["requestId"], decision="allow")
    with anyio.fail_after(10):
        assert (await turn.done).result == "asked"
