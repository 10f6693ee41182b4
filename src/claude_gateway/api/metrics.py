"""``GET /metrics``: Prometheus metrics, for an admin key or the metrics token only.

Never public while keys exist: a scraper holds an admin key, or the token of
``CLAUDE_GATEWAY_METRICS_TOKEN`` (which reads this and nothing else).
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST

from claude_gateway.api.models import ErrorOut, error_responses
from claude_gateway.api.principals import principal_of
from claude_gateway.errors import Forbidden
from claude_gateway.observability.metrics import Metrics
from claude_gateway.services.sessions import SessionManager

router = APIRouter(tags=["operations"], responses=error_responses(ErrorOut))


@router.get("/metrics", response_class=Response, responses={
    200: {"content": {CONTENT_TYPE_LATEST: {}},
          "description": "The Prometheus text exposition format."},
    403: {"model": ErrorOut, "description": "`FORBIDDEN`: not an admin key"}})
async def metrics(request: Request) -> Response:
    """Counters, gauges and histograms of this node (see the README's list)."""
    if not (getattr(request.state, "metrics_token", False)
            or principal_of(request.state).admin):
        raise Forbidden("Only an admin key (or the metrics token) may read the metrics")
    registry: Metrics = request.app.state.metrics
    sessions: SessionManager = request.app.state.sessions
    registry.set_gauges(await sessions.gauges())
    return Response(registry.exposition(), media_type=CONTENT_TYPE_LATEST)
