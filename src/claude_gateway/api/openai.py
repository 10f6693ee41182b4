"""The OpenAI-compatible surface: ``GET /v1/models`` and ``POST /v1/chat/completions``.

Without ``X-Session-Id`` a request is stateless: a one-shot run, given the earlier
messages as quoted context. With it, the named session (created on first use, owned by
the caller) keeps its warm process and only the new user message is sent. Its clients
cannot answer permission prompts, so these agents run non-interactively.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import json
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Any

import anyio
import httpx
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from sse_starlette.sse import EventSourceResponse

from claude_gateway.api.models import OpenAIErrorOut, error_responses
from claude_gateway.api.runs import cancel_quietly, outcome_of
from claude_gateway.api.sessions import caller_of, owner_of
from claude_gateway.errors import ImageUrlsNotAllowed, InvalidRequest, PayloadTooLarge
from claude_gateway.events.envelope import TERMINAL_TURN_EVENTS
from claude_gateway.services import openai_compat as oa
from claude_gateway.services.prompts import ImageBlockIn, TextBlockIn
from claude_gateway.services.runs import RunRequest, RunService
from claude_gateway.services.sessions import (
    PendingTurn,
    SessionCreate,
    SessionManager,
    TurnOutcome,
)
from claude_gateway.settings import Settings
from claude_gateway.storage.records import EventRecord

router = APIRouter(tags=["openai"],
                   responses=error_responses(OpenAIErrorOut))

@router.get("/v1/models")
async def list_models(request: Request) -> dict[str, Any]:
    """The models the CLI accepts, as OpenAI lists them."""
    settings: Settings = request.app.state.settings
    return {"object": "list", "data": [
        {"id": name, "object": "model", "created": 0, "owned_by": "anthropic"}
        for name in settings.openai_models]}


async def fetch_image(url: str, settings: Settings) -> ImageBlockIn:
    if not settings.openai_fetch_image_urls:
        raise ImageUrlsNotAllowed("This gateway does not fetch images from URLs; send a "
                                  "data: URL (CLAUDE_GATEWAY_OPENAI_FETCH_IMAGE_URLS)",
                                  details={"param": "messages"})
    limit = settings.max_image_bytes
    try:
        async with httpx.AsyncClient(timeout=10, follow_redirects=True) as client, \
                client.stream("GET", url) as response:
            response.raise_for_status()
            media_type = response.headers.get("content-type", "").split(";")[0].strip()
            data = bytearray()
            async for piece in response.aiter_bytes():
                data.extend(piece)
                if len(data) > limit:
                    raise PayloadTooLarge(f"An image may be at most {limit} bytes",
                                          details={"maxImageBytes": limit})
    except httpx.HTTPError as exc:
        raise InvalidRequest(f"Could not fetch the image: {exc.__class__.__name__}",
                             code="IMAGE_FETCH_FAILED", details={"param": "messages"}) from None
    encoded = base64.b64encode(bytes(data)).decode()
    return ImageBlockIn.model_validate({"type": "image", "source": {
        "type": "url", "url": f"data:{media_type};base64,{encoded}"}})


CONTINUE = "Continue."
"""The prompt when a conversation ends with the assistant's own message."""


async def prompt_of(messages: list[oa.DialogueMessage], preamble: str, settings: Settings
                    ) -> str | list[Any]:
    """The new messages as a gateway prompt: text, image blocks for images, and tool
    results labelled as such."""
    if len(messages) == 1 and isinstance(messages[0], oa.UserMessage) and isinstance(
            messages[0].content, str):
        return preamble + messages[0].content
    blocks: list[Any] = [TextBlockIn(type="text", text=preamble)] if preamble else []
    for message in messages:
        if isinstance(message, oa.ToolMessage):
            call = f" {message.tool_call_id}" if message.tool_call_id else ""
            blocks.append(TextBlockIn(type="text", text=f"Result of tool call{call}:\n"
                                      f"{oa.text_of(message.content) or '(empty)'}"))
        elif isinstance(message.content, str):
            blocks.append(TextBlockIn(type="text", text=message.content or " "))
        else:
            for part in message.content or []:
                blocks.append(await block_of(part, settings))
    if not messages:
        blocks.append(TextBlockIn(type="text", text=CONTINUE))
    return blocks


async def block_of(part: oa.TextPart | oa.ImagePart, settings: Settings
                   ) -> TextBlockIn | ImageBlockIn:
    if isinstance(part, oa.TextPart):
        return TextBlockIn(type="text", text=part.text or " ")
    url = part.image_url.url
    if url.startswith("data:"):
        try:
            return ImageBlockIn.model_validate({"type": "image", "source": {
                "type": "url", "url": url}})
        except ValidationError:
            raise InvalidRequest("image_url is not a base64 data: URL of a PNG, JPEG, GIF "
                                 "or WebP image", details={"param": "messages"}) from None
    if url.startswith(("http://", "https://")):
        return await fetch_image(url, settings)
    raise InvalidRequest("image_url must be a data: or http(s) URL",
                         details={"param": "messages"})


@router.post("/v1/chat/completions", responses={200: {
    "content": {"application/json": {}, "text/event-stream": {}},
    "description": "A chat.completion, or chat.completion.chunk events with stream"},
    502: {"model": OpenAIErrorOut, "description": "The agent's turn failed upstream"}})
async def chat_completions(request: Request, body: oa.ChatRequest) -> Any:
    """OpenAI chat completions, streamed or not, answered by a Claude Code agent."""
    settings: Settings = request.app.state.settings
    sessions: SessionManager = request.app.state.sessions
    runs: RunService = request.app.state.runs
    owner = owner_of(request)
    model = oa.resolve_model(
        body.model, known=settings.openai_models, aliases=settings.openai_model_aliases,
        default=settings.default_model or settings.openai_models[0],
        strict=settings.openai_strict_models)
    system, history, new = oa.split_conversation(body.messages)
    schema, instruction = oa.schema_of(body.response_format)
    append = "\n\n".join(p for p in (system, instruction) if p) or None
    effort = oa.effort_of(body.reasoning_effort)
    session_name = request.headers.get("x-session-id")
    workspace = request.headers.get("x-workspace")
    if session_name:
        if len(session_name) > 256:
            raise InvalidRequest("X-Session-Id is too long", details={"param": "X-Session-Id"})
        record = await sessions.session_named(caller_of(request), session_name, SessionCreate(
            model=model, workspace=workspace,
            permission_mode=settings.non_interactive_permission_mode,
            append_system_prompt=append, effort=effort, json_schema=schema,
            non_interactive=True))
        if record.model != model:
            record = await sessions.patch(record.id, owner, model=model)
        prompt = await prompt_of(new, "", settings)
        pending = await sessions.send_message(record.id, owner, prompt)
        session_id = record.id
        cancel: Callable[[], Awaitable[None]] | None = None
    else:
        prompt = await prompt_of(new, oa.context_preamble(history), settings)
        record, pending = await runs.start(oa_run(body, prompt, model, append, schema, effort,
                                                  workspace, settings), caller_of(request))
        session_id = record.id
        cancel = functools.partial(cancel_quietly, runs, record.id, owner)

    cid = oa.completion_id()
    headers = {"X-Gateway-Session-Id": session_id}
    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        events = sessions.turn_events(session_id, pending.id, pending.queued_seq - 1)
        # The status line is sent once the agent answers (or fails), so that a turn that
        # fails at once (no credentials, a bad schema) gets a real HTTP status.
        early = await first_answer(events, FIRST_ANSWER_SECONDS)
        if early and early[-1].type == "turn.failed":
            await events.aclose()
            return failure_response(early[-1].data.get("error") or {}, headers)
        return EventSourceResponse(
            stream_chunks(replayed(early, events), pending, cid, model, include_usage,
                          structured=schema is not None, cancel=cancel),
            ping=max(1, int(settings.sse_ping_seconds)), headers=headers)
    outcome = await outcome_of(request, pending, cancel)
    if outcome.failed:
        return failure_response(outcome.error or {}, headers)
    # The model that answered: the CLI's full name for it when the turn reported one.
    used = outcome.data.get("model") or model
    return JSONResponse(oa.completion(cid, used, outcome), headers=headers)


FIRST_ANSWER_SECONDS = 30.0
"""How long a streamed completion may wait for the agent's first output before it
commits to 200 and streams whatever comes (keep-alives included)."""
ANSWERS = ("message.delta", *TERMINAL_TURN_EVENTS)
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
    if code == "INVALID_JSON_SCHEMA":
        return JSONResponse(oa.error_body(message, "invalid_request_error", code,
                                          "response_format"), status_code=400, headers=headers)
    if code == "UPSTREAM_AUTH_FAILED":
        return JSONResponse(oa.error_body(message, "authentication_error", code),
                            status_code=401, headers=headers)
    return JSONResponse(oa.error_body(message, "api_error", code), status_code=502,
                        headers=headers)


def oa_run(body: oa.ChatRequest, prompt: str | list[Any], model: str, append: str | None,
           schema: dict[str, Any] | None, effort: str | None, workspace: str | None,
           settings: Settings) -> RunRequest:
    return RunRequest(
        prompt=prompt, workspace=workspace or settings.openai_workspace, model=model,
        append_system_prompt=append, json_schema=schema, effort=effort,
        permission_mode=settings.non_interactive_permission_mode,
        # Stateless chats in the shared default workspace must not queue behind each other.
        share_workspace=workspace is None, non_interactive=True)


async def stream_chunks(events: AsyncIterator[EventRecord], pending: PendingTurn,
                        cid: str, model: str, include_usage: bool, *, structured: bool,
                        cancel: Any) -> AsyncIterator[dict[str, str]]:
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
            if event.type == "message.delta" and payload.get("kind") == "text" and (
                    not payload.get("parentToolUseId")) and not structured:
                text = ("\n\n" if separate and streamed else "") + payload.get("text", "")
                separate = False
                streamed = True
                yield data(oa.chunk(cid, model, created, {"content": text}))
            elif event.type == "message" and payload.get("role") == "assistant":
                separate = True
            elif event.type == "turn.failed":
                error = payload.get("error") or {}
                yield data(oa.error_body(error.get("message", "The agent's turn failed"),
                                         "api_error", error.get("code")))
                finished = True
                return
            elif event.type in ("turn.completed", "turn.interrupted"):
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
            asyncio.get_running_loop().create_task(cancel())
