"""``GET /health``: liveness; ``GET /health/ready``: whether this node should get
traffic. Both without authentication (load balancers and orchestrators probe them)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from claude_gateway import __version__

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: Literal["ok"] = "ok"
    version: str


@router.get("/health", response_model=Health, summary="Liveness check (no authentication)")
async def health() -> Health:
    return Health(version=__version__)


class Ready(BaseModel):
    status: Literal["ready", "not ready"]
    node: str
    reasons: list[str]


@router.get("/health/ready", response_model=Ready, summary="Readiness (no authentication)",
            responses={503: {"model": Ready, "description": "Not ready: the database does "
                             "not answer, its schema is not this version's, or the node "
                             "is draining (stopping)"}})
async def ready(request: Request) -> JSONResponse:
    """200 while this node should get traffic; 503 with the reasons while not."""
    state = request.app.state
    reasons: list[str] = []
    if state.sessions.draining:
        reasons.append("the node is draining (stopping)")
    problem = await state.store.readiness()
    if problem is not None:
        reasons.append(problem)
    body = Ready(status="not ready" if reasons else "ready", node=state.settings.node_id,
                 reasons=reasons)
    return JSONResponse(body.model_dump(), status_code=503 if reasons else 200)
