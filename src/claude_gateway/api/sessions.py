"""``/v1/sessions``: thin HTTP over the SessionManager."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Query, Request, Response
from fastapi.responses import JSONResponse

from claude_gateway.api.models import (
    MAX_OFFSET,
    MAX_SEQ,
    CreateSessionBody,
    ErrorOut,
    EventPageOut,
    InterruptOut,
    MessageBody,
    MessageListOut,
    PatchSessionBody,
    SessionListOut,
    SessionOut,
    SessionStatusName,
    TurnResultOut,
    error_responses,
)
from claude_gateway.api.principals import owner_filter, principal_of
from claude_gateway.api.sse import event_stream_response
from claude_gateway.errors import InvalidCursor
from claude_gateway.services.auth import Principal
from claude_gateway.services.sessions import (
    CURSOR_PATTERN,
    DuplicateClientId,
    SessionCreate,
    SessionManager,
)
from claude_gateway.wire import envelope, rfc3339, turn_result_to_api

router = APIRouter(prefix="/v1/sessions", tags=["sessions"],
                   responses=error_responses(ErrorOut))

ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "Invalid request (`INVALID_REQUEST`, `INVALID_CURSOR`)"},
    404: {"description": "`SESSION_NOT_FOUND`"},
}


def manager(request: Request) -> SessionManager:
    sessions: SessionManager = request.app.state.sessions
    return sessions


def owner_of(request: Request) -> str | None:
    """Whose sessions this request may see (None: all)."""
    return owner_filter(request.state)


def caller_of(request: Request) -> Principal:
    """Who the request acts for: it owns what it creates, within its own directory."""
    return principal_of(request.state)


@router.post("", status_code=201, response_model=SessionOut,
             responses={**ERRORS, 429: {"description": "`MAX_SESSIONS_REACHED`"}})
async def create_session(request: Request,
                         body: Annotated[CreateSessionBody | None, Body()] = None
                         ) -> dict[str, Any]:
    """Create a session; its CLI process starts now, before the first message."""
    body = body or CreateSessionBody()
    sessions = manager(request)
    record = await sessions.create(SessionCreate(
        model=body.model, workspace=body.workspace, permission_mode=body.permission_mode,
        system_prompt=body.system_prompt, append_system_prompt=body.append_system_prompt,
        allowed_tools=body.allowed_tools, disallowed_tools=body.disallowed_tools,
        max_turns=body.max_turns, effort=body.effort, add_dirs=body.add_dirs, env=body.env,
        metadata=body.metadata, resume=body.resume, fork_from=body.fork_from,
        share_workspace=body.share_workspace,
    ), caller_of(request))
    return sessions.to_api(record)


@router.get("", response_model=SessionListOut, responses=ERRORS)
async def list_sessions(
    request: Request,
    status: Annotated[SessionStatusName | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(pattern=CURSOR_PATTERN, description=(
        "`nextCursor` of the previous page."))] = None,
) -> dict[str, Any]:
    sessions = manager(request)
    page, next_cursor = await sessions.list_sessions(
        owner=owner_of(request), status=status, limit=limit, cursor=cursor)
    return {"sessions": [sessions.to_api(r) for r in page], "nextCursor": next_cursor}


@router.get("/{session_id}", response_model=SessionOut, responses=ERRORS)
async def get_session(request: Request, session_id: str) -> dict[str, Any]:
    sessions = manager(request)
    return sessions.to_api(await sessions.get(session_id, owner_of(request)))


@router.patch("/{session_id}", response_model=SessionOut,
              responses={**ERRORS, 409: {"description": "`SESSION_ENDED`"}})
async def patch_session(request: Request, session_id: str, body: PatchSessionBody
                        ) -> dict[str, Any]:
    """Change model, permission mode or metadata; applied to the live process."""
    sessions = manager(request)
    record = await sessions.patch(session_id, owner_of(request), model=body.model,
                                  permission_mode=body.permission_mode,
                                  metadata=body.metadata)
    return sessions.to_api(record)


@router.delete("/{session_id}", status_code=204, responses=ERRORS)
async def delete_session(request: Request, session_id: str,
                         purge: Annotated[bool, Query()] = False) -> Response:
    """End the session and stop its process; ``purge=true`` also deletes its history."""
    await manager(request).delete(session_id, owner_of(request), purge=purge)
    return Response(status_code=204)


@router.post("/{session_id}/messages", response_model=TurnResultOut,
             responses={**ERRORS, 202: {"description": "Still running after `timeoutMs`"},
                        200: {"content": {"text/event-stream": {}},
                              "description": "The result, or the turn's events with stream"},
                        409: {"description": "`SESSION_ENDED`, `SESSION_EXPIRED`"}})
async def send_message(request: Request, session_id: str, body: MessageBody) -> Any:
    """Send a prompt; queued behind a running turn. Waits for the result, or streams it."""
    sessions = manager(request)
    try:
        pending = await sessions.send_message(session_id, owner_of(request), body.prompt,
                                              client_id=body.client_id)
    except DuplicateClientId as duplicate:
        return await replay_turn(request, sessions, session_id, duplicate.turn_id,
                                 stream=body.stream)
    if body.stream:
        settings = request.app.state.settings
        return event_stream_response(
            sessions.turn_events(session_id, pending.id, pending.queued_seq - 1),
            settings.sse_ping_seconds)
    timeout = (body.timeout_ms / 1000 if body.timeout_ms is not None
               else request.app.state.settings.message_timeout_seconds)
    try:
        return turn_result_to_api(await asyncio.wait_for(asyncio.shield(pending.done), timeout))
    except TimeoutError:
        live = sessions.live(session_id)
        running = live is not None and live.current is pending
        # A turn that waits for a permission answer is not a hang: say what it waits for.
        return JSONResponse({"turnId": pending.id, "status": "running" if running else "queued",
                             "waitingForPermission": sessions.permissions.waiting(
                                 session_id, pending.id)}, status_code=202)


async def replay_turn(request: Request, sessions: SessionManager, session_id: str,
                      turn_id: str, *, stream: bool) -> Any:
    """What a resent prompt gets: the turn the first one started, not a new one."""
    if stream:
        return event_stream_response(sessions.turn_events(session_id, turn_id, 0),
                                     request.app.state.settings.sse_ping_seconds)
    turn = await sessions.store.get_turn(turn_id)
    assert turn is not None
    if turn.outcome is not None and turn.status in ("completed", "failed", "interrupted"):
        return {"turnId": turn_id, "status": turn.status, **turn.outcome}
    return JSONResponse({"turnId": turn_id, "status": turn.status,
                         "waitingForPermission": sessions.permissions.waiting(
                             session_id, turn_id)}, status_code=202)


@router.get("/{session_id}/messages", response_model=MessageListOut, responses=ERRORS)
async def list_messages(
    request: Request, session_id: str,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> dict[str, Any]:
    sessions = manager(request)
    await sessions.get(session_id, owner_of(request))
    page, total = await sessions.store.list_messages(session_id, limit=limit, offset=offset)
    return {
        "messages": [{"id": m.id, "role": m.role, "content": m.content, "turnId": m.turn_id,
                      "createdAt": rfc3339(m.created_at)} for m in page],
        "pagination": {"limit": limit, "offset": offset, "total": total,
                       "hasMore": offset + len(page) < total},
    }


@router.get("/{session_id}/events", response_model=EventPageOut,
            responses={**ERRORS, 200: {"content": {"text/event-stream": {}},
                                       "description": "SSE, or a JSON page with follow=false"}})
async def session_events(
    request: Request, session_id: str,
    after: Annotated[int | None, Query(ge=0, le=MAX_SEQ)] = None,
    follow: Annotated[bool, Query()] = True,
    limit: Annotated[int, Query(ge=1, le=5000)] = 1000,
    last_event_id: Annotated[str, Header(
        alias="Last-Event-ID", pattern=r"^ *[0-9]{0,15} *$",
        description="The `id` of the last event received (wins over `after`).")] = "",
) -> Any:
    """Replay the event log after a sequence number, then follow it live (SSE)."""
    sessions = manager(request)
    record = await sessions.get(session_id, owner_of(request))
    cursor = after or 0
    if last_event_id.strip():
        cursor = int(last_event_id)  # wins over ?after=, as a reconnecting EventSource sends it
    if cursor > record.last_seq:
        raise InvalidCursor(f"Cursor {cursor} is beyond the last event ({record.last_seq})",
                            details={"after": cursor, "lastSeq": record.last_seq})
    if not follow:
        page = await sessions.store.list_events(session_id, after=cursor, limit=limit)
        return {"events": [envelope(e) for e in page], "lastSeq": record.last_seq}
    settings = request.app.state.settings
    return event_stream_response(sessions.events.stream(session_id, cursor),
                                 settings.sse_ping_seconds)


@router.post("/{session_id}/interrupt", response_model=InterruptOut, responses=ERRORS)
async def interrupt(request: Request, session_id: str,
                    clear_queue: Annotated[bool, Query(alias="clearQueue")] = False
                    ) -> dict[str, bool]:
    """Interrupt the running turn (idempotent); queued prompts stay unless clearQueue."""
    interrupted = await manager(request).interrupt(session_id, owner_of(request),
                                                   clear_queue=clear_queue)
    return {"interrupted": interrupted}
