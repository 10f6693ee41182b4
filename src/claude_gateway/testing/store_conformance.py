"""The ``Store`` conformance suite, for any implementation of
:class:`~claude_gateway.storage.base.Store`.

Call :func:`run_store_conformance` with a factory of fresh, empty, started stores (it
closes each one it gets); it runs every contract, each on a store of its own, and then
the SDK's ``SessionStore`` conformance suite on the transcript store built on top. It
speaks only through the ``Store`` protocol, and expects only the gateway's own store
errors (``RecordNotFound``, ``DuplicateRecord``). Like the SDK's
``run_session_store_conformance``, on which it is modelled.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta

from claude_agent_sdk.testing import run_session_store_conformance

from claude_gateway.storage.base import (
    CapReached,
    DuplicateRecord,
    FencedOut,
    RecordNotFound,
    Store,
)
from claude_gateway.storage.records import (
    ACTIVE_SESSION_STATUSES,
    Announcement,
    AttemptResult,
    CommandRecord,
    Fence,
    NewEvent,
    PermissionRecord,
    SessionCaps,
    SessionRecord,
    StateChange,
    TurnRecord,
    Usage,
    WebhookRecord,
)
from claude_gateway.storage.transcripts import TranscriptStore

MakeStore = Callable[[], Awaitable[Store]]


class ContractFailed(AssertionError):
    """A store broke a contract (the message names it)."""


def _equal(actual: object, expected: object, what: str) -> None:
    if actual != expected:
        raise ContractFailed(f"{what}: expected {expected!r}, got {actual!r}")


async def _session(store: Store, session_id: str) -> SessionRecord:
    loaded = await store.get_session(session_id)
    if loaded is None:
        raise ContractFailed(f"session {session_id} is gone")
    return loaded


@contextlib.contextmanager
def _raises(expected: type[Exception]) -> Iterator[None]:
    try:
        yield
    except expected:
        return
    raise ContractFailed(f"expected {expected.__name__}")


def session(session_id: str, *, created: datetime | None = None, owner: str = "",
            status: str = "idle") -> SessionRecord:
    moment = created or datetime.now(UTC)
    return SessionRecord(id=session_id, status=status, workspace=session_id,
                         permission_mode="default", created_at=moment,
                         last_activity_at=moment, owner=owner, options={"maxTurns": 3},
                         metadata={"k": "v"})


async def session_round_trip_and_update(store: Store) -> None:
    record = session("s1")
    await store.create_session(record)
    loaded = await _session(store, "s1")
    _equal(loaded, record, "a session read back")
    _equal(loaded.created_at.tzinfo is not None, True, "timestamps keep their time zone")
    await store.update_session("s1", status="running", model="opus", metadata={"a": 1})
    loaded = await _session(store, "s1")
    _equal((loaded.status, loaded.model, loaded.metadata), ("running", "opus", {"a": 1}),
           "an updated session")


async def list_sessions_pages_newest_first(store: Store) -> None:
    base = datetime(2026, 1, 1, tzinfo=UTC)
    for i in range(5):
        await store.create_session(session(f"s{i}", created=base + timedelta(seconds=i),
                                           owner="alice" if i % 2 else "bob"))
    first = await store.list_sessions(limit=2)
    _equal([s.id for s in first], ["s4", "s3"], "the first page")
    rest = await store.list_sessions(limit=10, after=(first[-1].created_at, first[-1].id))
    _equal([s.id for s in rest], ["s2", "s1", "s0"], "the page after it")
    _equal([s.id for s in await store.list_sessions(owner="alice")], ["s3", "s1"],
           "one owner's sessions")
    await store.update_session("s2", status="stopped")
    _equal([s.id for s in await store.list_sessions(status="stopped")], ["s2"],
           "sessions by status")
    _equal(await store.count_sessions(["idle"]), 4, "the count by status")


async def events_get_gapless_sequence_numbers_under_concurrency(store: Store) -> None:
    await store.create_session(session("s1"))
    await store.create_session(session("s2"))

    async def writer(session_id: str, n: int) -> None:
        for i in range(n):
            await store.append_events(session_id, [NewEvent("a", {"i": i}),
                                                   NewEvent("b", {"i": i}, turn_id="t")])

    await asyncio.gather(*(writer("s1", 10) for _ in range(5)), writer("s2", 3))
    _equal([e.seq for e in await store.list_events("s1")], list(range(1, 101)),
           "sequence numbers written by five concurrent writers")
    _equal([e.seq for e in await store.list_events("s2")], list(range(1, 7)),
           "another session's sequence")
    _equal([e.seq for e in await store.list_events("s1", after=97)], [98, 99, 100],
           "events after a cursor")
    _equal([e.seq for e in await store.list_events("s1", after=10, limit=2)], [11, 12],
           "a limited page of events")
    _equal((await _session(store, "s1")).last_seq, 100, "the session's last sequence")


async def append_to_unknown_session_fails(store: Store) -> None:
    with _raises(RecordNotFound):
        await store.append_events("nope", [NewEvent("x", {})])


async def turns(store: Store) -> None:
    await store.create_session(session("s1"))
    now = datetime.now(UTC)
    for i, status in enumerate(["completed", "running", "queued"]):
        await store.create_turn(TurnRecord(id=f"t{i}", session_id="s1", status=status,
                                           prompt=[{"type": "text", "text": str(i)}],
                                           created_at=now + timedelta(milliseconds=i)))
    await store.update_turn("t1", status="failed", outcome={"error": {"code": "X"}},
                            ended_at=now)
    turn = await store.get_turn("t1")
    _equal(turn.outcome if turn else None, {"error": {"code": "X"}}, "a turn's outcome")
    _equal([t.id for t in await store.list_turns("s1")], ["t0", "t1", "t2"],
           "a session's turns, oldest first")
    _equal([t.id for t in await store.list_turns("s1", ["queued"])], ["t2"],
           "turns by status")
    _equal([t.id for t in await store.turns_with_status(["queued", "running"])], ["t2"],
           "every session's turns by status")


async def messages_page_and_count(store: Store) -> None:
    await store.create_session(session("s1"))
    for i in range(5):
        await store.add_message("s1", "user" if i % 2 == 0 else "assistant",
                                [{"type": "text", "text": str(i)}], turn_id="t")
    page, total = await store.list_messages("s1", limit=2, offset=3)
    _equal(total, 5, "the message count")
    _equal([m.content[0]["text"] for m in page], ["3", "4"], "a page of messages")
    _equal((await _session(store, "s1")).message_count, 5, "the session's message count")


async def usage_accumulates(store: Store) -> None:
    await store.create_session(session("s1"))
    await store.add_session_usage("s1", Usage(10, 2, 1, 0, 0.5), turn_id="t1", model="m")
    await store.add_session_usage("s1", Usage(5, 1, 0, 3, 0.25), turn_id="t2", model="m")
    _equal((await _session(store, "s1")).usage, Usage(15, 3, 1, 3, 0.75),
           "a session's accumulated usage")


async def purge_removes_everything(store: Store) -> None:
    await store.create_session(session("s1"))
    await store.append_events("s1", [NewEvent("x", {})])
    await store.add_message("s1", "user", "hi", None)
    _equal(await store.delete_session("s1"), True, "deleting a session")
    _equal(await store.get_session("s1"), None, "a deleted session")
    _equal(await store.list_events("s1"), [], "a deleted session's events")
    _equal(await store.list_messages("s1", limit=10, offset=0), ([], 0),
           "a deleted session's messages")
    _equal(await store.delete_session("s1"), False, "deleting it again")


async def permissions_live_and_resolve_with_their_events(store: Store) -> None:
    await store.create_session(session("s1"))
    moment = datetime.now(UTC)
    request = PermissionRecord(id="perm_1", session_id="s1", tool_name="Write",
                               input={"file_path": "a"}, status="pending", created_at=moment,
                               turn_id="t1", details={"description": "Write a"},
                               expires_at=moment + timedelta(minutes=15))
    (requested,) = await store.append_events(
        "s1", [NewEvent("permission.requested", {"requestId": "perm_1"}, "t1")],
        StateChange(new_permission=request))
    _equal(requested.seq, 1, "the request's event")
    _equal(await store.get_permission("perm_1"), request, "a permission request read back")
    _equal([p.id for p in await store.list_permissions(statuses=["pending"])], ["perm_1"],
           "pending requests")
    await store.create_session(session("s2", owner="bob"))
    await store.append_events("s2", [NewEvent("permission.requested", {}, "t2")], StateChange(
        new_permission=PermissionRecord(id="perm_2", session_id="s2", tool_name="Bash",
                                        input={}, status="pending",
                                        created_at=moment + timedelta(seconds=1))))
    _equal([p.id for p in await store.list_permissions(statuses=["pending"])],
           ["perm_1", "perm_2"], "pending requests of every session, oldest first")
    _equal([p.id for p in await store.list_permissions(statuses=["pending"], owner="bob")],
           ["perm_2"], "pending requests of one owner's sessions")
    await store.append_events("s1", [NewEvent("permission.resolved", {}, "t1")], StateChange(
        permission_id="perm_1", permission={"status": "allowed", "resolved_at": moment,
                                            "resolution": {"decision": "allow"}}))
    resolved = await store.get_permission("perm_1")
    _equal((resolved.status, resolved.resolution) if resolved else None,
           ("allowed", {"decision": "allow"}), "a resolved request")
    _equal(await store.list_permissions(session_id="s1", statuses=["pending"]), [],
           "pending requests once it is resolved")


async def turns_are_found_by_client_id_and_it_is_unique(store: Store) -> None:
    await store.create_session(session("s1"))
    await store.create_turn(TurnRecord(id="t1", session_id="s1", status="queued", prompt="x",
                                       created_at=datetime.now(UTC), client_id="c-1"))
    found = await store.turn_by_client_id("s1", "c-1")
    _equal(found.id if found else None, "t1", "a turn by its client id")
    _equal(await store.turn_by_client_id("s1", "c-2"), None, "an unknown client id")
    with _raises(DuplicateRecord):
        await store.create_turn(TurnRecord(id="t2", session_id="s1", status="queued",
                                           prompt="x", created_at=datetime.now(UTC),
                                           client_id="c-1"))


async def sessions_expired_by(store: Store) -> None:
    base = datetime(2026, 1, 1, tzinfo=UTC)
    for i in range(3):
        record = session(f"s{i}", created=base)
        record.expires_at = base + timedelta(hours=i)
        await store.create_session(record)
    await store.update_session("s0", status="ended")
    found = await store.sessions_expired_by(base + timedelta(hours=1), ["idle"])
    _equal([s.id for s in found], ["s1"], "open sessions past their expiry")


async def leases_fence_the_writes_of_a_node_that_lost_its_session(store: Store) -> None:
    await store.create_session(session("s1"))
    a = await store.claim_lease("s1", "node-a", 30)
    _equal((a.node_id, a.generation) if a else None, ("node-a", 1), "a first claim")
    again = await store.claim_lease("s1", "node-a", 30)
    _equal(again.generation if again else None, 1, "its holder's claim keeps the generation")
    _equal(await store.claim_lease("s1", "node-b", 30), None,
           "a claim while another node's lease is live")
    fence_a = Fence("node-a", 1)
    await store.append_events("s1", [NewEvent("x", {})], StateChange(fence=fence_a))
    await store.claim_lease("s1", "node-a", -1)  # its lease runs out
    b = await store.claim_lease("s1", "node-b", 30)
    _equal((b.node_id, b.generation) if b else None, ("node-b", 2), "a takeover")
    with _raises(FencedOut):
        await store.append_events("s1", [NewEvent("y", {})], StateChange(fence=fence_a))
    with _raises(FencedOut):
        await store.update_session("s1", fence=fence_a, status="stopped")
    _equal(await store.renew_leases("node-a", ["s1"], 30), ["s1"], "what the old owner lost")
    _equal(await store.renew_leases("node-b", ["s1"], 30), [], "what the new owner keeps")
    written = await store.append_events("s1", [NewEvent("z", {})],
                                        StateChange(fence=Fence("node-b", 2)))
    _equal([e.seq for e in written], [2], "the new owner's write after the fenced one")
    _equal((await _session(store, "s1")).status, "idle", "a fenced update changed nothing")
    await store.release_lease(fence_a, "s1")  # a stale release is a no-op
    lease = await store.lease("s1")
    _equal(lease.node_id if lease else None, "node-b", "the lease after a stale release")
    await store.release_lease(Fence("node-b", 2), "s1")
    _equal(await store.lease("s1"), None, "a released lease")
    with _raises(RecordNotFound):
        await store.append_events("gone", [NewEvent("x", {})],
                                  StateChange(fence=Fence("node-b", 2)))


async def nodes_are_seen_until_they_go(store: Store) -> None:
    await store.create_session(session("s1"))
    await store.touch_node("node-a")
    await store.touch_node("node-b", draining=True)
    await store.claim_lease("s1", "node-a", 30)
    seen = {node.id: (node.draining, leases) for node, leases in await store.live_nodes(30)}
    _equal(seen, {"node-a": (False, 1), "node-b": (True, 0)}, "live nodes and their leases")
    await store.forget_node("node-a")
    _equal([node.id for node, _ in await store.live_nodes(30)], ["node-b"],
           "nodes after one went")
    _equal(await store.lease("s1"), None, "the leases of a node that went")
    _equal(await store.live_nodes(-1), [], "nodes not seen within the time given")
    _equal(await store.forget_gone_nodes(3600), 0, "no node is gone for an hour")
    _equal(await store.forget_gone_nodes(-1), 1, "nodes not seen within the time given go")
    _equal(await store.live_nodes(3600), [], "nodes after the gone ones went")


async def session_caps_are_counted_in_the_store(store: Store) -> None:
    caps = SessionCaps(total=3, per_owner=2)
    created = await asyncio.gather(*(
        store.create_session(session(f"s{i}", owner=f"k{i % 2}"), caps) for i in range(6)),
        return_exceptions=True)
    refused = [r for r in created if isinstance(r, CapReached)]
    _equal(len(refused), 3, "parallel creates refused over a total cap of 3")
    run = session("run1", owner="k0")
    run.kind = "run"
    await store.create_session(run, caps)  # a run is not counted
    counts = await store.count_sessions_by_owner(ACTIVE_SESSION_STATUSES)
    _equal(sum(counts.values()), 3, "sessions that passed the cap")
    owner = next(o for o, n in counts.items() if n == 2)
    with _raises(CapReached):
        await store.create_session(session("over", owner=owner),
                                   SessionCaps(total=0, per_owner=2))
    ended = next(s.id for s in await store.list_sessions(limit=10) if s.kind == "session")
    await store.update_session(ended, status="ended")
    await store.create_session(session("fits", owner="k9"), caps)  # an ended one is free


async def commands_go_to_their_node_and_come_back_answered(store: Store) -> None:
    await store.create_session(session("s1"))
    first = await store.send_command(CommandRecord("s1", "node-a", "node-b", "prompt",
                                                   {"n": 1}))
    second = await store.send_command(CommandRecord("s1", "node-a", "node-b", "prompt",
                                                    {"n": 2}))
    other = await store.send_command(CommandRecord("s1", "node-c", "node-b", "interrupt", {}))
    taken = await store.take_commands("node-a")
    _equal([(c.id, c.payload["n"], c.status) for c in taken],
           [(first, 1, "taken"), (second, 2, "taken")], "node-a's commands, in order")
    _equal(await store.take_commands("node-a"), [], "commands are taken once")
    await store.answer_command(first, {"turnId": "t1"})
    answered = await store.command(first)
    _equal((answered.status, answered.answer) if answered else None,
           ("answered", {"turnId": "t1"}), "an answered command")
    _equal(await store.withdraw_command(second), False, "withdrawing a taken command")
    _equal(await store.withdraw_command(other), True, "withdrawing a pending one")
    _equal(await store.take_commands("node-c"), [], "a withdrawn command is not taken")
    _equal(await store.forget_commands(datetime.now(UTC) + timedelta(seconds=60)), 3,
           "old commands forgotten")
    _equal(await store.command(first), None, "a forgotten command")


async def workspaces_are_held_by_one_session_on_every_node(store: Store) -> None:
    await store.touch_node("node-a")
    _equal(await store.hold_workspace("k/w", "s1", "node-a", "t1", 30), None, "a first hold")
    _equal(await store.hold_workspace("k/w", "s1", "node-a", "t2", 30), None,
           "its holder holds it again")
    _equal(await store.hold_workspace("k/w", "s2", "node-b", "t3", 30), "s1",
           "another session's hold while its node lives")
    await store.release_workspace("k/w", "t1")  # a stale token: a no-op
    _equal(await store.workspace_holds(), {"k/w": "s1"}, "holds after a stale release")
    await store.release_workspace("k/w", "t2")
    _equal(await store.workspace_holds(), {}, "holds after the release")
    await store.hold_workspace("k/w", "s1", "node-a", "t4", 30)
    _equal(await store.hold_workspace("k/w", "s2", "node-b", "t5", -1), None,
           "a hold taken from a node not seen within the time given")
    _equal(await store.workspace_holds(), {"k/w": "s2"}, "holds after the takeover")


async def busy_turns_are_counted_per_owner(store: Store) -> None:
    await store.create_session(session("s1", owner="k1"))
    await store.create_session(session("s2", owner="k2"))
    moment = datetime.now(UTC)
    for i, (sid, status) in enumerate([("s1", "queued"), ("s1", "running"),
                                       ("s1", "completed"), ("s2", "queued")]):
        await store.create_turn(TurnRecord(id=f"t{i}", session_id=sid, status=status,
                                           prompt="p", created_at=moment))
    _equal(await store.count_busy_turns("k1"), 2, "k1's turns queued or running")
    _equal(await store.count_busy_turns("k3"), 0, "a key without turns")


async def sessions_left_behind_by_gone_nodes_are_found(store: Store) -> None:
    moment = datetime.now(UTC)
    for sid, status in [("busy", "stopped"), ("live", "idle"), ("held", "idle"),
                        ("rest", "stopped"), ("mine", "idle")]:
        await store.create_session(session(sid, status=status))
    await store.create_turn(TurnRecord(id="t1", session_id="busy", status="queued",
                                       prompt="p", created_at=moment))
    for sid in ("busy", "live", "rest"):
        await store.claim_lease(sid, "node-a", -1)  # run out
    await store.claim_lease("held", "node-a", 60)  # still held
    await store.claim_lease("mine", "node-b", -1)
    _equal(sorted(await store.sessions_left_behind("node-b")), ["busy", "live"],
           "sessions a gone node left with work (a queued turn, a live status)")
    _equal(sorted(await store.sessions_left_behind("node-a")), ["mine"],
           "what another node sees")


async def transcripts_pass_the_sdk_suite(make_store: MakeStore) -> None:
    """The SDK's SessionStore contracts, each on a fresh store."""
    made: list[Store] = []

    async def fresh() -> TranscriptStore:
        made.append(await make_store())
        return TranscriptStore(made[-1])

    try:
        await run_session_store_conformance(fresh)
    finally:
        for store in made:
            await store.close()


def _hook(hook_id: str, owner: str, events: list[str]) -> WebhookRecord:
    moment = datetime.now(UTC)
    return WebhookRecord(id=hook_id, owner=owner, url=f"https://example.com/{hook_id}",
                         events=events, secret="whsec_c2VjcmV0",  # noqa: S106
                         created_at=moment,
                         updated_at=moment)


async def webhook_deliveries_are_queued_with_their_events_and_claimed_once(
        store: Store) -> None:
    await store.create_session(session("s1", owner="alice"))
    await store.create_session(session("s2", owner="bob"))
    for hook in (_hook("wh_done", "alice", ["turn.completed"]),
                 _hook("wh_all", "alice", ["*"]), _hook("wh_bob", "bob", ["*"])):
        await store.create_webhook(hook)
    announced = NewEvent("turn.completed", {"result": "ok"}, "t1",
                         announce=Announcement("turn.completed", {"result": "ok"}))
    await store.append_events("s1", [NewEvent("message.delta", {}, "t1"), announced])
    await store.append_events("s1", [NewEvent("session.created", {}, None,
                              announce=Announcement("session.created", {}))])
    done = await store.list_deliveries("wh_done", limit=10)
    _equal([(d.event_type, d.seq, d.turn_id, d.status, d.data) for d in done],
           [("turn.completed", 2, "t1", "pending", {"result": "ok"})], "one delivery")
    _equal(len(await store.list_deliveries("wh_all", limit=10)), 2, "deliveries to *")
    _equal(await store.list_deliveries("wh_bob", limit=10), [], "another owner's")
    claimed = await store.claim_deliveries("node-a", 10, 30)
    _equal(sorted(d.webhook_id for d, _ in claimed), ["wh_all", "wh_all", "wh_done"],
           "claimed")
    _equal({d.attempts for d, _ in claimed}, {1}, "attempts counted at the claim")
    _equal(await store.claim_deliveries("node-b", 10, 30), [], "claimed twice")
    moment = datetime.now(UTC)
    first, hook = next((d, h) for d, h in claimed if d.webhook_id == "wh_done")
    _equal(hook.secret, "whsec_c2VjcmV0", "the endpoint comes with its claim")
    lost = await store.finish_attempt(first, "node-b", AttemptResult(200, None, 5, moment),
                                      retry_in=None, disable_after=60)
    _equal(lost, None, "a finish by a node that holds no claim")
    again = await store.finish_attempt(first, "node-a", AttemptResult(500, "answered 500",
                                                                      7, moment),
                                       retry_in=0, disable_after=3600)
    if again is None or again[0].status != "pending" or again[1]:
        raise ContractFailed(f"a failed attempt with retries left: {again}")
    (retry, _), = await store.claim_deliveries("node-b", 10, 30)
    _equal((retry.id, retry.attempts), (first.id, 2), "the retry, claimed by another node")
    gone = await store.finish_attempt(retry, "node-b", AttemptResult(410, "gone", 3, moment),
                                      retry_in=5, disable_after=3600)
    if gone is None or gone[0].status != "failed" or not gone[1]:
        raise ContractFailed(f"410 fails the delivery and disables the endpoint: {gone}")
    endpoint = await store.get_webhook("wh_done")
    if endpoint is None or endpoint.enabled or not endpoint.disabled_reason:
        raise ContractFailed(f"disabled endpoint: {endpoint}")
    told = await store.list_deliveries("wh_all", limit=10, status="pending")
    _equal(told[0].event_type, "webhook.disabled", "its owner is told")
    await store.append_events("s1", [NewEvent("turn.completed", {}, "t2", announce=(
        Announcement("turn.completed", {})))])
    _equal(len(await store.list_deliveries("wh_done", limit=10)), 1,
           "nothing queued for a disabled endpoint")
    page = await store.list_deliveries("wh_all", limit=2)
    rest = await store.list_deliveries("wh_all", limit=2,
                                       before=(page[-1].created_at, page[-1].id))
    _equal(len({d.id for d in page + rest}), 4, "pages of deliveries")
    retried = await store.retry_delivery(retry.id)
    if retried is None or retried.status != "pending":
        raise ContractFailed(f"a retried delivery is pending again: {retried}")
    _equal(await store.release_claims("node-a"), 2, "a node's claims released")
    bob = await store.get_webhook("wh_bob")
    assert bob is not None
    ping = await store.add_delivery(bob, "webhook.test", {}, node_id="node-c",
                                    claim_seconds=30)
    await store.finish_attempt(ping, "node-c", AttemptResult(204, None, 1, moment),
                               retry_in=None, disable_after=60)
    pending = len(await store.list_deliveries("wh_all", limit=10))
    _equal(await store.prune_deliveries(datetime.now(UTC) - timedelta(hours=1)), 0,
           "nothing finished that long ago")
    _equal(await store.prune_deliveries(datetime.now(UTC) + timedelta(seconds=1)), 1,
           "a finished delivery pruned")
    _equal(await store.list_deliveries("wh_bob", limit=10), [], "pruned")
    _equal(len(await store.list_deliveries("wh_all", limit=10)), pending,
           "pending deliveries are never pruned")
    _equal(await store.delete_webhook("wh_all"), True, "deleted")
    _equal(await store.list_deliveries("wh_all", limit=10), [], "with its deliveries")


CONTRACTS: dict[str, Callable[[Store], Awaitable[None]]] = {
    contract.__name__: contract for contract in (
        session_round_trip_and_update, list_sessions_pages_newest_first,
        events_get_gapless_sequence_numbers_under_concurrency,
        append_to_unknown_session_fails, turns, messages_page_and_count, usage_accumulates,
        purge_removes_everything, permissions_live_and_resolve_with_their_events,
        turns_are_found_by_client_id_and_it_is_unique, sessions_expired_by,
        leases_fence_the_writes_of_a_node_that_lost_its_session,
        nodes_are_seen_until_they_go, session_caps_are_counted_in_the_store,
        commands_go_to_their_node_and_come_back_answered,
        workspaces_are_held_by_one_session_on_every_node, busy_turns_are_counted_per_owner,
        sessions_left_behind_by_gone_nodes_are_found,
        webhook_deliveries_are_queued_with_their_events_and_claimed_once)
}
"""Every contract by name (``transcripts`` runs the SDK's suite besides)."""


async def run_store_conformance(make_store: MakeStore, *,
                                contracts: Iterable[str] | None = None) -> None:
    """Run the contracts (all, or those named; ``"transcripts"`` for the SDK's suite),
    each on a fresh store from ``make_store``, which is closed after it."""
    names = [*CONTRACTS, "transcripts"] if contracts is None else list(contracts)
    for name in names:
        if name == "transcripts":
            await transcripts_pass_the_sdk_suite(make_store)
            continue
        store = await make_store()
        try:
            await CONTRACTS[name](store)
        except AssertionError as exc:
            raise ContractFailed(f"{name}: {exc}") from exc
        finally:
            await store.close()
