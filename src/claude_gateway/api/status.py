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
from claude_gateway.services.sessions import SessionManager, SessionStatus
from claude_gateway.wire import rfc3339

router = APIRouter(tags=["status"],
                   responses=error_responses(ErrorOut))


@router.get("/v1/status")
async def status(request: Request) -> dict[str, Any]:
    sessions: SessionManager = request.app.state.sessions
    principal = principal_of(request.state)
    now = await sessions.activity(principal)
    processes: dict[str, Any] = {"live": now.process_count, "max": now.max_processes}
    processes["sessions"] = [{"sessionId": sid, "pid": pid} if principal.admin
                             else {"sessionId": sid} for sid, pid in now.processes.items()]
    body: dict[str, Any] = {
        "processes": processes,
        "sessions": {str(name): now.sessions_by_status.get(name, 0) for name in SessionStatus},
        "queues": now.queues,
        "busyWorkspaces": now.busy_workspaces,
        "waitingForPermission": now.waiting,
        "node": now.node,
        "caller": {"name": principal.name, "admin": principal.admin},
        "nodes": [{"id": node.id, "lastSeenAt": rfc3339(node.last_seen_at),
                   "sessions": sessions_there, "draining": node.draining}
                  for node, sessions_there in now.nodes],
    }
    if principal.admin:
        body["subscribers"] = now.subscribers
        body["spares"] = now.spares
    return body
