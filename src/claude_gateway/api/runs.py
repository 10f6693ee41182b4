"""``/v1/runs``: one prompt in a workspace, answered as JSON or streamed."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from claude_gateway.api.deps import Caller, Owner, Runs, Sessions, SettingsDep
from claude_gateway.api.models import (
    ApiModel,
    EffortName,
    ErrorOut,
    Identifier,
    JsonSchema,
    ModelName,
    OutcomeOut,
    PermissionModeName,
    PromptText,
    RelativeName,
    error_responses,
)
from claude_gateway.api.sse import event_stream_response
from claude_gateway.runtime.options import AgentOptions
from claude_gateway.services.prompts import Prompt
from claude_gateway.services.runs import RunRequest
from claude_gateway.services.sessions import (
    CURSOR_PATTERN,
    PendingTurn,
    SessionCreate,
    TurnOutcome,
    TurnStatus,
)
from claude_gateway.storage.records import EventRecord
from claude_gateway.wire import run_to_api

router = APIRouter(prefix="/v1/runs", tags=["runs"],
                   responses=error_responses(ErrorOut))


class RunBody(ApiModel):
    prompt: Prompt
    workspace: RelativeName | None = Field(
        None, description="Relative directory under your workspace directory; empty: the "
        "default run workspace (or, with resume, the conversation's own).")
    model: ModelName | None = None
    system_prompt: PromptText | None = None
    append_system_prompt: PromptText | None = None
    json_schema: JsonSchema | None = Field(
        None, description="The answer must match this JSON schema (`structuredOutput`).")
    effort: EffortName | None = None
    permission_mode: PermissionModeName | None = None
    continue_: bool = Field(False, alias="continue",
                            description="Continue your latest conversation in the workspace.")
    resume: Identifier | None = Field(
        None, description="A Claude conversation id (`claudeSessionId`) of yours to continue.")
    stream: bool = False
    detach: bool = Field(False, description="Keep running if the client disconnects.")


class RunOut(OutcomeOut):
    runId: str
    sessionId: str
    claudeSessionId: str | None


class RunListOut(BaseModel):
    runs: list[RunOut]
    nextCursor: str | None


RunStatusName = Literal["queued", "running", "completed", "failed", "interrupted"]


class CancelOut(BaseModel):
    runId: str
    cancelled: bool


@router.post("", response_model=RunOut, responses={
    400: {"description": "`INVALID_REQUEST`, `PATH_OUTSIDE_WORKSPACE`"},
    409: {"description": "`WORKSPACE_BUSY`"},
    200: {"content": {"text/event-stream": {}}, "description": "JSON, or SSE with stream"},
    202: {"model": RunOut, "description": "With detach (and no stream): the run's id at once; "
          "its result later from `GET /v1/runs/{runId}`"}})
async def create_run(request: Request, service: Runs, sessions: Sessions, owner: Owner,
                     caller: Caller, settings: SettingsDep, body: Annotated[RunBody, Body()]
                     ) -> Any:
    """Run one prompt in a workspace and answer with its result (or stream its events)."""
    record, pending = await service.start(RunRequest(
        prompt=body.prompt, continue_conversation=body.continue_, session=SessionCreate(
            workspace=body.workspace, model=body.model, permission_mode=body.permission_mode,
            resume=body.resume, agent=AgentOptions(
                system_prompt=body.system_prompt,
                append_system_prompt=body.append_system_prompt,
                json_schema=body.json_schema, effort=body.effort))), caller)
    if body.stream:
        events = sessions.turn_events(record.id, pending.id, pending.queued_seq - 1)

        async def guarded() -> AsyncIterator[EventRecord]:
            finished = False
            try:
                async for event in events:
                    yield event
                finished = pending.done.done()
            finally:
                if not finished and not body.detach and not pending.done.done():
                    # The client went away: nobody will read this run's answer.
                    service.cancel_soon(record.id, owner)

        return event_stream_response(guarded(), settings.sse_ping_seconds,
                                     headers={"X-Run-Id": record.id})
    headers = {"X-Run-Id": record.id}
    if body.detach:
        # Nobody waits: the id now, the result later from GET /v1/runs/{runId}.
        started = run_to_api(record, TurnOutcome(pending.id, TurnStatus.QUEUED, {}))
        return JSONResponse({**started, "statusUrl": f"/v1/runs/{record.id}",
                             "eventsUrl": f"/v1/sessions/{record.id}/events"},
                            status_code=202, headers=headers)
    outcome = await outcome_of(request, pending, functools.partial(
        service.cancel_quietly, record.id, owner))
    record = await sessions.get(record.id)
    return JSONResponse(run_to_api(record, outcome), headers=headers)


async def outcome_of(request: Request, pending: PendingTurn,
                     cancel: Callable[[], Awaitable[None]] | None) -> TurnOutcome:
    """Wait for a turn's outcome; if the client goes away first, ``cancel`` (when given)
    and then wait for the outcome the cancellation brings."""
    while True:
        try:
            return await asyncio.wait_for(asyncio.shield(pending.done), 0.25)
        except TimeoutError:
            if cancel is not None and await request.is_disconnected():
                await cancel()
                return await asyncio.shield(pending.done)


@router.get("", response_model=RunListOut, responses={
    400: {"description": "`INVALID_REQUEST`, `INVALID_CURSOR`"}})
async def list_runs(
    service: Runs, owner: Owner,
    status: Annotated[RunStatusName | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(pattern=CURSOR_PATTERN, description=(
        "`nextCursor` of the previous page."))] = None,
) -> dict[str, Any]:
    """Your runs, newest first (``status``: the run's turn)."""
    page, next_cursor = await service.list(owner, status=status,
                                                 limit=limit, cursor=cursor)
    return {"runs": [run_to_api(record, outcome) for record, outcome in page],
            "nextCursor": next_cursor}


@router.get("/{run_id}", response_model=RunOut, responses={404: {"description":
                                                                 "`RUN_NOT_FOUND`"}})
async def get_run(service: Runs, owner: Owner, run_id: str) -> JSONResponse:
    """A run's state and, once it has finished, its result."""
    return JSONResponse(run_to_api(*await service.get(run_id, owner)),
                        headers={"X-Run-Id": run_id})


@router.post("/{run_id}/cancel", response_model=CancelOut,
             responses={404: {"description": "`RUN_NOT_FOUND` (unknown or not running)"}})
async def cancel_run(service: Runs, owner: Owner, run_id: str) -> dict[str, Any]:
    """Stop a running run."""
    await service.cancel(run_id, owner)
    return {"runId": run_id, "cancelled": True}
