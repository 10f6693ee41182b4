"""Two gateway nodes on one PostgreSQL database, in this process, with fake agents:
leases decide which node runs a session's CLI, and fencing stops a node that lost one.

(The TTL is long, so no lease runs out unless a test says so: it expires a lease the way
a node frozen past its TTL would see it, then lets the nodes renew when it chooses.)
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import anyio
import pytest

from claude_gateway.errors import ApiError
from claude_gateway.events.log import EventLog
from claude_gateway.services.sessions import SessionCreate, SessionManager
from claude_gateway.services.sessions.state import DuplicateClientId
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
                                 lease_ttl_seconds=3600, spare_processes=0, max_sessions=10,
                                 reaper_interval_seconds=3600,
                                 workspace_root=tmp_path / "shared-workspaces")
        settings.data_dir.mkdir(parents=True)
        store = SqlStore(settings.database_url)
        await store.start()
        agents = FakeAgents()
        events = EventLog(store, node_id=name, poll_seconds=settings.poll_seconds)
        await events.start()
        manager = SessionManager(settings, store, events,
                                 cli_path=Path("/fake/claude"), cli_env={},
                                 agent_factory=agents)
        await manager.start()
        started.append(Node(name, manager, agents, store))
    yield started
    for node in started:
        await node.manager.close()
        await node.manager.events.close()
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
    # A prompt sent to B runs on A (B forwards it and answers as A did).
    via_b = await b.manager.send_message(record.id, None, "@reply via b")
    with anyio.fail_after(10):
        assert (await via_b.done).result == "via b"
    assert [p for agent in a.agents.made for p in agent.prompts][-1] == "@reply via b"
    assert b.agents.made == []

    # A runs a long turn, then freezes past its lease (it renews nothing meanwhile).
    stuck = await a.manager.send_message(record.id, None, "@hang")
    await wait_until(lambda: turn_status(a, stuck.id, "running"))
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


async def turn_status(node: Node, turn_id: str, status: str) -> bool:
    turn = await node.store.get_turn(turn_id)
    return turn is not None and turn.status == status


def worker_done(node: Node, session_id: str) -> bool:
    live = node.manager.live(session_id)
    return live is None or live.worker is None or live.worker.done()


async def test_a_permission_answer_given_to_another_node_reaches_the_waiting_agent(
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
    # B, which runs nothing of the session, shows what its agent waits on (from the
    # database), as a client polling B sees it.
    queued = await b.manager.send_message(record.id, None, "@reply next")
    shown = await b.manager.view(await b.manager.get(record.id))
    assert shown["node"] == "node-a"
    assert [w["requestId"] for w in shown["waitingForPermission"]] == [asked["requestId"]]
    assert shown["queueDepth"] == 1
    assert await b.manager.turn_status(record.id, queued) == "queued"
    assert [w["requestId"] for w in await b.manager.waiting_for(record.id, turn.id)] == [
        asked["requestId"]]
    answered = await b.manager.answer_permission(record.id, asked["requestId"],
                                                 decision="allow")
    assert answered.status == "allowed"
    with anyio.fail_after(10):
        assert (await turn.done).result == "asked"
        assert (await queued.done).result == "next"
    with pytest.raises(ApiError) as again:  # the owner's answer, as if local
        await b.manager.answer_permission(record.id, asked["requestId"], decision="deny")
    assert (again.value.status, again.value.code) == (409, "PERMISSION_ALREADY_RESOLVED")


async def test_interrupt_change_and_delete_sent_to_another_node_act_where_the_cli_runs(
    nodes: list[Node],
) -> None:
    a, b = nodes
    record = await a.manager.create(SessionCreate())
    hanging = await a.manager.send_message(record.id, None, "@hang")
    await wait_until(lambda: bool(a.agents.live() and a.agents.live()[0].prompts[-1:]
                                  == ["@hang"]))
    changed = await b.manager.patch(record.id, None, model="claude-other",
                                    metadata={"via": "b"})
    assert (changed.model, changed.metadata) == ("claude-other", {"via": "b"})
    assert a.agents.live()[0].model == "claude-other"  # the live CLI took it, on A
    assert await b.manager.interrupt(record.id, None) is True
    with anyio.fail_after(10):
        assert (await hanging.done).status == "interrupted"
    with pytest.raises(ApiError) as wrong_key:  # B checks the key before it forwards
        await b.manager.interrupt(record.id, "someone-else")
    assert wrong_key.value.code == "SESSION_NOT_FOUND"
    await b.manager.delete(record.id, None)
    await wait_until(lambda: not a.agents.live())  # A stopped its CLI
    assert (await b.manager.get(record.id)).status == "ended"


async def test_a_client_id_names_one_turn_on_every_node(nodes: list[Node]) -> None:
    a, b = nodes
    record = await a.manager.create(SessionCreate())
    first = await a.manager.send_message(record.id, None, "@reply once", client_id="c-1")
    with pytest.raises(DuplicateClientId) as again:
        await b.manager.send_message(record.id, None, "@reply once", client_id="c-1")
    assert again.value.turn_id == first.id
    with anyio.fail_after(10):
        await first.done
    assert [p for agent in a.agents.made for p in agent.prompts] == ["@reply once"]


async def test_a_gone_nodes_session_is_taken_over_by_the_sweep(nodes: list[Node]) -> None:
    a, b = nodes
    record = await a.manager.create(SessionCreate())
    stuck = await a.manager.send_message(record.id, None, "@hang")
    await wait_until(lambda: turn_status(a, stuck.id, "running"))
    waiting = await b.manager.send_message(record.id, None, "@reply after")  # queued on A
    await a.store.claim_lease(record.id, "node-a", -1)  # A froze past its lease

    assert await b.manager.sweeper.sweep() == 1  # no request needed
    with anyio.fail_after(10):
        assert (await waiting.done).result == "after"  # the queued turn ran on B
    assert [p for agent in b.agents.made for p in agent.prompts] == ["@reply after"]
    events = await b.store.list_events(record.id, limit=1000)
    assert [e.data["error"]["code"] for e in events
            if e.turn_id == stuck.id and e.type == "turn.failed"] == ["NODE_LOST"]
    assert await b.manager.sweeper.sweep() == 0  # nothing left behind now

    await a.manager.supervisor.leases.renew()  # A wakes: fenced off, its CLI stopped
    with anyio.fail_after(10):
        assert (await stuck.done).error["code"] == "NODE_LOST"  # type: ignore[index]
    await wait_until(lambda: not a.agents.live())


async def test_a_stopping_node_hands_its_queued_turns_over(nodes: list[Node]) -> None:
    a, b = nodes
    record = await a.manager.create(SessionCreate())
    running = await a.manager.send_message(record.id, None, "@hold\n@reply first")
    await wait_until(lambda: bool(a.agents.live() and a.agents.live()[0].prompts))
    queued = await b.manager.send_message(record.id, None, "@reply second")
    closing = asyncio.create_task(a.manager.close())  # drains for up to 0 s
    with anyio.fail_after(10):
        outcome = await running.done
        await closing
    assert outcome.error is not None and outcome.error["code"] == "GATEWAY_SHUTDOWN"
    with anyio.fail_after(10):  # B's sweep is woken by A's going: no TTL to wait out
        assert (await queued.done).result == "second"
    assert [p for agent in b.agents.made for p in agent.prompts] == ["@reply second"]
    await a.manager.start()  # so that the fixture's close has something to close


async def test_session_caps_hold_across_nodes(nodes: list[Node]) -> None:
    a, b = nodes
    made = await asyncio.gather(*(
        (a if i % 2 else b).manager.create(SessionCreate()) for i in range(20)),
        return_exceptions=True)
    refused = [r for r in made if isinstance(r, ApiError)]
    assert len(made) - len(refused) == 10
    assert {(r.status, r.code) for r in refused} == {(429, "MAX_SESSIONS_REACHED")}


async def test_a_busy_workspace_is_busy_on_every_node(nodes: list[Node]) -> None:
    a, b = nodes
    first = await a.manager.create(SessionCreate(workspace="shared"))
    second = await b.manager.create(SessionCreate(workspace="shared"))
    running = await a.manager.send_message(first.id, None, "@hold\n@reply done")
    await wait_until(lambda: bool(a.agents.live() and any(p.prompts
                                                          for p in a.agents.live())))
    with pytest.raises(ApiError) as busy:
        await b.manager.send_message(second.id, None, "@reply not now")
    assert (busy.value.status, busy.value.code) == (409, "WORKSPACE_BUSY")
    assert busy.value.details["heldBy"] == first.id
    for agent in a.agents.live():
        agent.release()
    with anyio.fail_after(10):
        await running.done
    async def free() -> bool:
        return not await b.store.workspace_holds()
    await wait_until(free)
    later = await b.manager.send_message(second.id, None, "@reply now")
    with anyio.fail_after(10):
        assert (await later.done).result == "now"


async def test_a_draining_node_lets_its_idle_sessions_go_at_once(nodes: list[Node]) -> None:
    a, b = nodes
    busy = await a.manager.create(SessionCreate())
    idle = await a.manager.create(SessionCreate())
    warm = await a.manager.send_message(idle.id, None, "@reply warm")
    with anyio.fail_after(10):
        await warm.done
    running = await a.manager.send_message(busy.id, None, "@hold\n@reply finished")
    await wait_until(lambda: turn_status(a, running.id, "running"))
    a.manager.settings.drain_timeout_seconds = 60  # the running turn may take its time
    closing = asyncio.create_task(a.manager.close())
    await wait_until(lambda: a.manager.live(idle.id) is None
                     or a.manager.live(idle.id).process is None)  # type: ignore[union-attr]
    moved = await b.manager.send_message(idle.id, None, "@reply on b")
    with anyio.fail_after(10):  # not held back until the drain ends
        assert (await moved.done).result == "on b"
    assert not closing.done()  # A still finishes its running turn
    for agent in a.agents.live():
        agent.release()
    with anyio.fail_after(10):
        assert (await running.done).result == "finished"
        await closing
    await a.manager.start()  # so that the fixture's close has something to close
