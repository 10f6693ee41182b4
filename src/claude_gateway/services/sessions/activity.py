"""What the gateway is doing right now (``GET /v1/status``), as one caller may see it:
an admin everything, any other key its own sessions and only counts of the rest."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from claude_gateway.events.log import EventLog
from claude_gateway.services.auth import Principal
from claude_gateway.services.permissions import PermissionBroker
from claude_gateway.services.sessions.state import LiveSessions
from claude_gateway.services.sessions.supervisor import ProcessSupervisor
from claude_gateway.services.workspace_locks import WorkspaceLocks
from claude_gateway.services.workspaces import name_from
from claude_gateway.storage.base import Store
from claude_gateway.storage.records import NodeRecord


@dataclass
class Activity:
    processes: dict[str, int | None]
    """Session id -> pid of the live processes the caller may see."""
    process_count: int
    max_processes: int
    sessions_by_status: dict[str, int]
    queues: dict[str, int]
    """Session id -> turns running or queued (the caller's sessions)."""
    busy_workspaces: dict[str, str]
    """Workspace name -> the session or run working in it."""
    waiting: dict[str, list[dict[str, Any]]]
    subscribers: int
    spares: dict[str, int]
    """Workspace path -> spare processes ready for it (admins only)."""
    node: str
    """This node's id."""
    nodes: list[tuple[NodeRecord, int]]
    """Every live node on the database, with how many sessions' CLIs it runs."""


async def describe_activity(principal: Principal, *, live: LiveSessions,
                            supervisor: ProcessSupervisor, locks: WorkspaceLocks,
                            permissions: PermissionBroker, store: Store,
                            events: EventLog) -> Activity:
    mine = principal.owner_filter
    pool = supervisor.pool
    processes = pool.live
    visible = {sid: s for sid, s in live.snapshot().items()
               if mine is None or s.owner == mine}
    busy = {}
    for path, holder in locks.busy().items():
        name = name_from(principal.home, path)
        if name is not None and (principal.admin or holder in visible):
            busy[name] = holder
    spares: dict[str, int] = {}
    if principal.admin:
        for profile in supervisor.spares.profiles:
            spares[profile.workspace] = (spares.get(profile.workspace, 0)
                                         + supervisor.spares.ready(profile.key))
    return Activity(
        processes={sid: p.pid for sid, p in processes.items()
                   if principal.admin or sid in visible},
        process_count=len(processes), max_processes=pool.max_processes,
        sessions_by_status=await store.count_sessions_by_status(mine),
        queues={sid: s.busy_turns() for sid, s in visible.items() if s.busy_turns()},
        busy_workspaces=busy,
        waiting={sid: waiting for sid in visible if (waiting := permissions.waiting(sid))},
        subscribers=events.subscriber_count(), spares=spares,
        node=supervisor.leases.node_id,
        nodes=await store.live_nodes(supervisor.leases.ttl))
