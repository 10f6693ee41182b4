"""``GET /v1/status``: what the gateway is doing right now.

An admin (or anyone while no keys exist) sees everything: every session's process and
pid, busy workspaces and spare processes. Any other key sees its own sessions, queues
and workspaces, and only counts of the rest: no pids, no other key's names.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from claude_gateway.api.models import ErrorOut, error_responses
from claude_gateway.api.principals import principal_of
from claude_gateway.services.sessions import SessionManager
from claude_gateway.services.workspaces import name_from

router = APIRouter(tags=["status"],
                   responses=error_responses(ErrorOut))

STATUSES = ("starting", "idle", "running", "stopped", "failed", "expired", "ended")


@router.get("/v1/status")
async def status(request: Request) -> dict[str, Any]:
    sessions: SessionManager = request.app.state.sessions
    principal = principal_of(request.state)
    mine = principal.owner_filter
    counts = await sessions.store.count_sessions_by_status(mine)
    live = sessions.pool.live
    visible = {sid: s for sid, s in sessions.live_sessions().items()
               if mine is None or s.owner == mine}
    processes: dict[str, Any] = {"live": len(live), "max": sessions.pool.max_processes}
    if principal.admin:
        processes["sessions"] = [{"sessionId": sid, "pid": p.pid} for sid, p in live.items()]
    else:
        processes["sessions"] = [{"sessionId": sid} for sid in live if sid in visible]
    busy = {}
    for path, holder in sessions.locks.busy().items():
        name = name_from(principal.home, path)
        if name is not None and (principal.admin or holder in visible):
            busy[name] = holder
    body: dict[str, Any] = {
        "processes": processes,
        "sessions": {name: counts.get(name, 0) for name in STATUSES},
        "queues": {sid: len(s.queued) + (1 if s.current else 0)
                   for sid, s in visible.items() if s.queued or s.current},
        "busyWorkspaces": busy,
        "waitingForPermission": {sid: waiting for sid in visible
                                 if (waiting := sessions.permissions.waiting(sid))},
    }
    if principal.admin:
        body["subscribers"] = sessions.events.subscriber_count()
        spares: dict[str, int] = {}
        for profile in sessions.spares.profiles:
            spares[profile.workspace] = (spares.get(profile.workspace, 0)
                                         + sessions.spares.ready(profile.key))
        body["spares"] = spares
    return body
