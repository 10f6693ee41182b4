"""``GET /v1/status``: what the gateway is doing right now."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from claude_gateway.api.models import ErrorOut, error_responses
from claude_gateway.services.sessions import SessionManager

router = APIRouter(tags=["status"],
                   responses=error_responses(ErrorOut))


@router.get("/v1/status")
async def status(request: Request) -> dict[str, Any]:
    sessions: SessionManager = request.app.state.sessions
    by_status: dict[str, int] = {}
    for name in ("starting", "idle", "running", "stopped", "failed", "expired", "ended"):
        by_status[name] = await sessions.store.count_sessions([name])
    live = sessions.pool.live
    return {
        "processes": {"live": len(live), "max": sessions.pool.max_processes,
                      "sessions": [{"sessionId": sid, "pid": p.pid} for sid, p in live.items()]},
        "sessions": by_status,
        "queues": {sid: len(s.queued) + (1 if s.current else 0)
                   for sid, s in sessions._live.items() if s.queued or s.current},
        "subscribers": sessions.events.subscriber_count(),
        "busyWorkspaces": sessions.locks.busy(),
        "spares": {w: sessions.spares.ready(w) for w in sessions.spares.workspaces},
    }
