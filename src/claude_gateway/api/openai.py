"""The OpenAI-compatible surface: ``GET /v1/models`` and ``POST /v1/chat/completions``.

Without ``X-Session-Id`` a request is stateless: a one-shot run, given the earlier
messages as quoted context. With it, the named session (created on first use, owned by
the caller) keeps its warm process and only the new user message is sent. Its clients
cannot answer permission prompts, so these agents run non-interactively.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Any

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sse_starlette.sse import EventSourceResponse

from claude_gateway.api.deps import Caller, Chats, Runs, SettingsDep
from claude_gateway.api.models import OpenAIErrorOut, error_responses
from claude_gateway.api.runs import outcome_of
from claude_gateway.errors import (
    ErrorCode,
)
from claude_gateway.events.envelope import TERMINAL_TURN_EVENTS, EventType
from claude_gateway.services import openai_compat as oa
from claude_gateway.services.sessions import (
    PendingTurn,
    TurnOutcome,
)
from claude_gateway.storage.records import EventRecord

router = APIRouter(tags=["openai"],
                   responses=error_responses(OpenAIErrorOut))

@router.get("/v1/models")
async def list_models(settings: SettingsDep) -> dict[str, Any]:
    """The models the CLI accepts, as OpenAI lists them."""
    return {"object": "list", "data": [
        {"id": name, "object": "model", "created": 0, "owned_by": "anthropic"}
        for name in settings.openai_models]}


@router.post("/v1/chat/completions", responses={200: {
    "content": {"application/json": {}, "text/event-stream": {}},
    "description": "A chat.completion, or chat.completion.chunk events with stream"},
    502: {"model": OpenAIErrorOut, "description": "The agent's turn failed upstream"}})
async def chat_completions(request: Request, chats: Chats, runs: Runs, settings: SettingsDep,
                           caller: Caller, body: oa.ChatRequest) -> Any:
    """OpenAI chat completions, streamed or not, answered by a Claude Code agent."""
    chat = await chats.start(body, caller, session_name=request.headers.get("x-session-id"),
                             workspace=request.headers.get("x-workspace"))
    session_id, pending, model = chat.session_id, chat.pending, chat.model
    owner = caller.owner_filter
    run_id = chat.run_id
    cid = oa.completion_id()
    headers = {"X-Gateway-Session-Id": session_id}
    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        events = chats.sessions.turn_events(session_id, pending.id, pending.queued_seq - 1)
        # The status line is sent once the agent answers (or fails), so that a turn that
        # fails at once (no credentials, a bad schema) gets a real HTTP status.
        early = await first_answer(events, FIRST_ANSWER_SECONDS)
        if early and early[-1].type == EventType.TURN_FAILED:
            await events.aclose()
            return failure_response(early[-1].data.get("error") or {}, headers)
        return EventSourceResponse(
            stream_chunks(replayed(early, events), pending, cid, model, include_usage,
                          structured=chat.structured,
                          cancel=(functools.partial(runs.cancel_soon, run_id, owner)
                                  if run_id else None)),
            ping=max(1, int(settings.sse_ping_seconds)), headers=headers)
    outcome = await outcome_of(request, pending, functools.partial(
        runs.cancel_quietly, run_id, owner) if run_id else None)
    if outcome.failed:
        return failure_response(outcome.error or {}, headers)
    # The model that answered: the CLI's full name for it when the turn reported one.
    used = outcome.data.get("model") or model
    return JSONResponse(oa.completion(cid, used, outcome), headers=headers)


FIRST_ANSWER_SECONDS = 30.0
"""How long a streamed completion may wait for the agent's first output before it
commits to 200 and streams whatever comes (keep-alives included)."""
ANSWERS = (EventType.MESSAGE_DELTA, *TERMINAL_TURN_EVENTS)
"""Output the model streams (a failure's synthetic message streams nothing), or the end."""


async def first_answer(events: AsyncGenerator[EventRecord, None], within: float
                       ) -> list[EventRecord]:
    """The turn's events up to its first output or its end (all of them, in order)."""
    seen: list[EventRecord] = []
    with anyio.move_on_after(within):
        async for event in events:
            seen.append(event)
            if event.type in ANSWERS:
                break
    return seen


async def replayed(first: list[EventRecord], rest: AsyncGenerator[EventRecord, None]
                   ) -> AsyncGenerator[EventRecord, None]:
    try:
        for event in first:
            yield event
        if first and first[-1].type in TERMINAL_TURN_EVENTS:
            return
        async for event in rest:
            yield event
    finally:
        await rest.aclose()


def failure_response(error: dict[str, Any], headers: dict[str, str]) -> JSONResponse:
    """A failed turn in OpenAI's terms: the client's mistake, missing upstream
    credentials, or the agent failing upstream."""
    code = error.get("code")
    message = error.get("message", "The agent's turn failed")
    if code == ErrorCode.INVALID_JSON_SCHEMA:
        return JSONResponse(oa.error_body(message, "invalid_request_error", code,
                                          "response_format"), status_code=400, headers=headers)
    if code == ErrorCode.UPSTREAM_AUTH_FAILED:
        return JSONResponse(oa.error_body(message, "authentication_error", code),
                            status_code=401, headers=headers)
    return JSONResponse(oa.error_body(message, "api_error", code), status_code=502,
                        headers=headers)


async def stream_chunks(events: AsyncIterator[EventRecord], pending: PendingTurn,
                        cid: str, model: str, include_usage: bool, *, structured: bool,
                        cancel: Callable[[], None] | None) -> AsyncIterator[dict[str, str]]:
    """The turn's events as ``chat.completion.chunk`` data, then ``[DONE]``."""
    created = int(time.time())

    def data(payload: dict[str, Any]) -> dict[str, str]:
        return {"data": json.dumps(payload, separators=(",", ":"))}

    finished = False
    try:
        yield data(oa.chunk(cid, model, created, {"role": "assistant", "content": ""}))
        separate = False
        streamed = False
        async for event in events:
            payload = event.data
            if event.type == EventType.MESSAGE_DELTA and payload.get("kind") == "text" and (
                    not payload.get("parentToolUseId")) and not structured:
                text = ("\n\n" if separate and streamed else "") + payload.get("text", "")
                separate = False
                streamed = True
                yield data(oa.chunk(cid, model, created, {"content": text}))
            elif event.type == "message" and payload.get("role") == "assistant":
                separate = True
            elif event.type == EventType.TURN_FAILED:
                error = payload.get("error") or {}
                yield data(oa.error_body(error.get("message", "The agent's turn failed"),
                                         "api_error", error.get("code")))
                finished = True
                return
            elif event.type in (EventType.TURN_COMPLETED, EventType.TURN_INTERRUPTED):
                outcome = TurnOutcome.of_event(event)
                if structured and outcome.structured_output is not None:
                    yield data(oa.chunk(cid, model, created, {"content": outcome.answer}))
                yield data(oa.chunk(cid, model, created, {}, oa.finish_reason(outcome)))
                if include_usage:
                    yield data(oa.usage_chunk(cid, model, created, payload.get("usage")))
                yield {"data": "[DONE]"}
                finished = True
                return
    finally:
        if not finished and cancel is not None and not pending.done.done():
            cancel()  # the client went away: nobody will read this run's answer
