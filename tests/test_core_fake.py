"""The session core against fake processes: no CLI, no HTTP, milliseconds per test.

The turn state machine, eviction, spares, crashes, the permission flow, failed starts
and the reaper, through the SessionManager's own API. The real-CLI tests cover what
only the real CLI can show.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from claude_gateway.errors import InterruptFailed, LiveChangeRefused, Unavailable
from claude_gateway.events.log import EventLog
from claude_gateway.services.runs import RunRequest, RunService
from claude_gateway.services.sessions import SessionCreate, SessionManager
from claude_gateway.storage.sql import SqlStore
from claude_gateway.testing.fake_agent import FakeAgents
from claude_gateway.wire import turn_result_to_api
from tests.helpers.gateway import make_settings, wait_until

pytestmark = pytest.mark.anyio


@dataclass
class Core:
    manager: SessionManager
    agents: FakeAgents
    store: SqlStore

    async def types(self, session_id: str) -> list[str]:
        return [e.type for e in await self.store.list_events(session_id)]

    async def outcome(self, session_id: str, prompt: str, **kwargs: Any) -> dict[str, Any]:
        pending = await self.manager.send_message(session_id, None, prompt, **kwargs)
        with anyio.fail_after(10):
            return turn_result_to_api(await pending.done)


@pytest.fixture
async def core_factory(tmp_path: Path) -> AsyncIterator[Any]:
    made: list[Core] = []

    async def make(**overrides: Any) -> Core:
        values: dict[str, Any] = {"spare_processes": 0, "reaper_interval_seconds": 3600}
        values.update(overrides)
        settings = make_settings(tmp_path / str(len(made)), **values)
        settings.data_dir.mkdir(parents=True)
        store = SqlStore(settings.database_url)
        await store.start()
        agents = FakeAgents()
        manager = SessionManager(settings, store, EventLog(store), cli_path=Path("/fake/claude"),
                                 cli_env={}, agent_factory=agents)
        await manager.start()
        core = Core(manager, agents, store)
        made.append(core)
        return core

    yield make
    for core in made:
        await core.manager.close()
        await core.store.close()
        assert core.agents.live() == []  # nothing outlives the manager


async def test_turns_run_in_order_on_one_warm_process(core_factory: Any) -> None:
    core: Core = await core_factory()
    record = await core.manager.create(SessionCreate())
    pendings = [await core.manager.send_message(record.id, None, f"@reply {i}")
                for i in range(3)]
    with anyio.fail_after(10):
        outcomes = [await p.done for p in pendings]
    assert [o.result for o in outcomes] == ["0", "1", "2"]
    assert len(core.agents.made) == 1 and core.agents.made[0].prompts == [
        "@reply 0", "@reply 1", "@reply 2"]
    types = await core.types(record.id)
    assert types.count("turn.completed") == 3
    assert types.index("turn.completed") < types.index("turn.started", types.index(
        "turn.completed"))  # the second turn starts after the first ends


async def test_the_least_recently_used_idle_process_makes_room(core_factory: Any) -> None:
    core: Core = await core_factory(max_processes=1)
    first = await core.manager.create(SessionCreate())
    assert (await core.outcome(first.id, "@reply one"))["status"] == "completed"
    second = await core.manager.create(SessionCreate())
    assert (await core.outcome(second.id, "@reply two"))["status"] == "completed"
    stopped = [e.data for e in await core.store.list_events(first.id)
               if e.type == "process.stopped"]
    assert stopped == [{"reason": "evicted"}]
    assert (await core.manager.get(first.id)).status == "stopped"
    # Its next message resumes the conversation in a new process.
    assert (await core.outcome(first.id, "@reply back"))["result"] == "back"
    assert core.agents.made[-1].options.resume is not None


async def test_a_crash_fails_only_its_turn_and_the_process_comes_back(
    core_factory: Any,
) -> None:
    core: Core = await core_factory()
    record = await core.manager.create(SessionCreate())
    assert (await core.outcome(record.id, "@reply before"))["status"] == "completed"
    outcome = await core.outcome(record.id, "@crash 137")
    assert outcome["status"] == "failed"
    assert outcome["error"]["code"] == "PROCESS_EXITED"
    assert outcome["error"]["exitCode"] == 137 and "fake crash" in outcome["error"]["stderr"]
    assert (await core.outcome(record.id, "@reply after"))["result"] == "after"
    assert len(core.agents.made) == 2


async def test_permission_questions_wait_for_an_answer_or_are_denied_by_policy(
    core_factory: Any,
) -> None:
    core: Core = await core_factory()
    record = await core.manager.create(SessionCreate())
    pending = await core.manager.send_message(record.id, None,
                                              '@ask Write {"file_path": "a"}\n@reply done')
    await wait_until(lambda: core.manager.permissions.waiting(record.id))
    (asked,) = core.manager.permissions.waiting(record.id)
    await core.manager.permissions.answer(record.id, asked["requestId"], decision="allow")
    with anyio.fail_after(10):
        assert (await pending.done).result == "done"
    silent = await core.manager.create(SessionCreate(non_interactive=True))
    assert (await core.outcome(silent.id, '@ask Bash {"command": "ls"}'))["status"] == (
        "completed")
    resolved = [e.data for e in await core.store.list_events(silent.id)
                if e.type == "permission.resolved"]
    assert [(r["status"], r["by"]) for r in resolved] == [("denied", "policy")]


async def test_a_cli_that_cannot_start_fails_the_session_and_its_turn(
    core_factory: Any,
) -> None:
    core: Core = await core_factory()
    core.agents.fail_starts = 2  # the pre-start and the start for the message
    record = await core.manager.create(SessionCreate())
    outcome = await core.outcome(record.id, "@reply never")
    assert outcome["error"]["code"] == "PROCESS_START_FAILED"
    assert "told not to start" in outcome["error"]["stderr"]
    assert (await core.manager.get(record.id)).status == "failed"
    assert (await core.outcome(record.id, "@reply now"))["result"] == "now"


async def test_interrupt_ends_a_hanging_turn(core_factory: Any) -> None:
    core: Core = await core_factory()
    record = await core.manager.create(SessionCreate())
    pending = await core.manager.send_message(record.id, None, "@hang")
    await wait_until(lambda: bool(core.agents.made and core.agents.made[0].prompts))
    assert await core.manager.interrupt(record.id, None) is True
    with anyio.fail_after(10):
        assert (await pending.done).status == "interrupted"
    assert await core.manager.interrupt(record.id, None) is False


async def test_the_reaper_stops_idle_processes_and_expires_old_sessions(
    core_factory: Any,
) -> None:
    core: Core = await core_factory(idle_timeout_seconds=0.001, session_ttl_seconds=3600)
    record = await core.manager.create(SessionCreate())
    assert (await core.outcome(record.id, "@reply hi"))["status"] == "completed"
    await core.manager.reap()  # the reaper's pass, now, instead of waiting for it
    assert (await core.manager.get(record.id)).status == "stopped"
    assert core.agents.live() == []
    from datetime import UTC, datetime, timedelta

    await core.store.update_session(record.id, expires_at=datetime.now(UTC) - timedelta(1))
    await core.manager.reap()
    assert (await core.manager.get(record.id)).status == "expired"
    assert core.manager.live_sessions() == {}


async def test_runs_adopt_spares_and_the_pool_refills(core_factory: Any) -> None:
    core: Core = await core_factory(spare_processes=1)
    runs = RunService(core.manager, core.manager.store)
    spares = core.manager.supervisor.spares
    await wait_until(lambda: spares.ready(spares.profiles[0].key))
    record, pending = await runs.start(RunRequest(prompt="@reply from a spare"))
    with anyio.fail_after(10):
        assert (await pending.done).result == "from a spare"
    started = [e.data for e in await core.store.list_events(record.id)
               if e.type == "process.started"]
    assert started[0]["spare"] is True
    await wait_until(lambda: spares.ready(spares.profiles[0].key))
    await runs.close()


async def test_a_busy_process_that_refuses_a_change_leaves_the_session_unchanged(
    core_factory: Any,
) -> None:
    core: Core = await core_factory()
    record = await core.manager.create(SessionCreate(model="sonnet"))
    pending = await core.manager.send_message(record.id, None, "@hang")
    await wait_until(lambda: bool(core.agents.made and core.agents.made[0].prompts))
    process = core.agents.made[0]
    process.refuse_controls = True
    with pytest.raises(LiveChangeRefused):
        await core.manager.patch(record.id, None, model="opus", permission_mode="plan")
    assert (await core.manager.get(record.id)).model == "sonnet"
    assert (await core.manager.get(record.id)).permission_mode == "default"
    assert "session.updated" not in await core.types(record.id)
    process.refuse_controls = False
    assert await core.manager.interrupt(record.id, None) is True
    with anyio.fail_after(10):
        assert (await pending.done).status == "interrupted"


async def test_an_idle_process_that_refuses_a_change_restarts_with_it(
    core_factory: Any,
) -> None:
    core: Core = await core_factory()
    record = await core.manager.create(SessionCreate(model="sonnet"))
    assert (await core.outcome(record.id, "@reply hi"))["status"] == "completed"
    first = core.agents.made[0]
    first.refuse_controls = True
    updated = await core.manager.patch(record.id, None, model="opus")
    assert updated.model == "opus" and updated.status == "stopped"
    assert not first.alive
    assert (await core.outcome(record.id, "@reply again"))["result"] == "again"
    assert core.agents.made[-1].options.model == "opus"


async def test_a_refused_interrupt_says_so_and_can_be_tried_again(core_factory: Any) -> None:
    core: Core = await core_factory()
    record = await core.manager.create(SessionCreate())
    pending = await core.manager.send_message(record.id, None, "@hang")
    await wait_until(lambda: bool(core.agents.made and core.agents.made[0].prompts))
    core.agents.made[0].refuse_controls = True
    with pytest.raises(InterruptFailed) as refused:
        await core.manager.interrupt(record.id, None)
    assert refused.value.details["turnId"] == pending.id
    assert not pending.done.done()  # the turn goes on
    core.agents.made[0].refuse_controls = False
    assert await core.manager.interrupt(record.id, None) is True
    with anyio.fail_after(10):
        assert (await pending.done).status == "interrupted"


async def test_an_idle_crash_while_the_reaper_forgets_idle_state_leaves_one_process(
    core_factory: Any,
) -> None:
    """The replacement of a process that died idle is started for the session the
    gateway holds: one forgotten meanwhile by the reaper must not keep a process of its
    own that nothing would ever stop."""
    core: Core = await core_factory()
    record = await core.manager.create(SessionCreate())
    for round_ in range(20):
        assert (await core.outcome(record.id, f"@reply {round_}"))["result"] == str(round_)
        dying = core.agents.live()
        assert len(dying) == 1
        dying[0].crash()
        # The reaper drops idle in-memory state while the exit is being recorded.
        while dying[0].exit is None or replacing(core, record.id):
            await core.manager.reap()
            await anyio.lowlevel.checkpoint()
        await wait_until(lambda: len(core.agents.live()) <= 1)
        held = core.manager.supervisor.pool.get(record.id)
        assert all(p is held for p in core.agents.live())


def replacing(core: Core, session_id: str) -> bool:
    live = core.manager.live(session_id)
    return live is not None and live.starting


async def test_one_session_the_reaper_cannot_expire_does_not_spare_the_others(
    core_factory: Any, caplog: pytest.LogCaptureFixture,
) -> None:
    from datetime import UTC, datetime, timedelta

    core: Core = await core_factory(session_ttl_seconds=3600)
    doomed = [await core.manager.create(SessionCreate()) for _ in range(3)]
    for record in doomed:
        await core.store.update_session(record.id, expires_at=datetime.now(UTC) - timedelta(1))
    real = core.manager.reaper.expire

    async def expire(record: Any) -> None:
        if record.id == doomed[1].id:
            raise RuntimeError("the store hiccuped")
        await real(record)

    core.manager.reaper.expire = expire
    await core.manager.reap()
    statuses = [(await core.manager.get(r.id)).status for r in doomed]
    assert statuses[0] == statuses[2] == "expired" and statuses[1] != "expired"
    assert any("could not expire a session" in r.message and r.session_id == doomed[1].id
               for r in caplog.records if hasattr(r, "session_id"))
    core.manager.reaper.expire = real
    await core.manager.reap()  # the next pass gets it
    assert (await core.manager.get(doomed[1].id)).status == "expired"


async def test_a_polite_stop_lets_running_turns_finish_and_takes_no_new_ones(
    core_factory: Any,
) -> None:
    core: Core = await core_factory(drain_timeout_seconds=30)
    record = await core.manager.create(SessionCreate())
    running = await core.manager.send_message(record.id, None, "@hold\n@reply finished")
    queued = await core.manager.send_message(record.id, None, "@reply after it")
    await wait_until(lambda: bool(core.agents.live() and core.agents.live()[0].prompts))
    async with anyio.create_task_group() as group:
        group.start_soon(core.manager.close)
        await wait_until(lambda: core.manager._draining)
        with pytest.raises(Unavailable):
            await core.manager.send_message(record.id, None, "@reply too late")
        core.agents.live()[0].release()
    assert (await running.done).result == "finished"
    assert (await queued.done).result == "after it"
    assert core.agents.live() == []


async def test_a_turn_longer_than_the_drain_is_stopped(core_factory: Any) -> None:
    core: Core = await core_factory(drain_timeout_seconds=0.2)
    record = await core.manager.create(SessionCreate())
    stuck = await core.manager.send_message(record.id, None, "@hold\n@reply never")
    await wait_until(lambda: bool(core.agents.live() and core.agents.live()[0].prompts))
    await core.manager.close()
    outcome = await stuck.done
    assert outcome.error is not None and outcome.error["code"] == "GATEWAY_SHUTDOWN"
