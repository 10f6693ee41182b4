"""``/v1/sessions``: thin HTTP over the SessionManager."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Query, Response
from fastapi.responses import JSONResponse

from claude_gateway.api.deps import Caller, Owner, Sessions, SettingsDep
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
from claude_gateway.api.sse import event_stream_response
from claude_gateway.errors import InvalidCursor
from claude_gateway.services.sessions import (
    CURSOR_PATTERN,
    DuplicateClientId,
    SessionCreate,
    SessionManager,
    TurnOutcome,
)
from claude_gateway.services.sessions.state import ENDED_TURN_STATUSES
from claude_gateway.settings import Settings
from claude_gateway.wire import envelope, message_page_to_api, turn_result_to_api

router = APIRouter(prefix="/v1/sessions", tags=["sessions"],
                   responses=error_responses(ErrorOut))

ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "Invalid request (`INVALID_REQUEST`, `INVALID_CURSOR`)"},
    404: {"description": "`SESSION_NOT_FOUND`"},
}


@router.post("", status_code=201, response_model=SessionOut,
             responses={**ERRORS, 429: {"description": "`MAX_SESSIONS_REACHED`"}})
async def create_session(sessions: Sessions, caller: Caller,
                         body: Annotated[CreateSessionBody | None, Body()] = None
                         ) -> dict[str, Any]:
    """Create a session; its CLI process starts now, before the first message."""
    body = body or CreateSessionBody()
    record = await sessions.create(SessionCreate(
        model=body.model, workspace=body.workspace, permission_mode=body.permission_mode,
        agent=body.agent_options(), metadata=body.metadata, resume=body.resume,
        fork_from=body.fork_from, share_workspace=body.share_workspace,
    ), caller)
    return sessions.to_api(record)


@router.get("", response_model=SessionListOut, responses=ERRORS)
async def list_sessions(
    sessions: Sessions, owner: Owner,
    status: Annotated[SessionStatusName | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(pattern=CURSOR_PATTERN, description=(
        "`nextCursor` of the previous page."))] = None,
) -> dict[str, Any]:
    page, next_cursor = await sessions.list_sessions(
        owner=owner, status=status, limit=limit, cursor=cursor)
    return {"sessions": [await sessions.view(r) for r in page], "nextCursor": next_cursor}


@router.get("/{session_id}", response_model=SessionOut, responses=ERRORS)
async def get_session(sessions: Sessions, owner: Owner, session_id: str) -> dict[str, Any]:
    return await sessions.view(await sessions.get(session_id, owner))


@router.patch("/{session_id}", response_model=SessionOut,
              responses={**ERRORS, 409: {"description": "`SESSION_ENDED`"}})
async def patch_session(sessions: Sessions, owner: Owner, session_id: str,
                        body: PatchSessionBody) -> dict[str, Any]:
    """Change model, permission mode or metadata; applied to the live process."""
    record = await sessions.patch(session_id, owner, model=body.model,
                                  permission_mode=body.permission_mode,
                                  metadata=body.metadata)
    return await sessions.view(record)


@router.delete("/{session_id}", status_code=204, responses=ERRORS)
async def delete_session(sessions: Sessions, owner: Owner, session_id: str,
                         purge: Annotated[bool, Query()] = False) -> Response:
    """End the session and stop its process; ``purge=true`` also deletes its history."""
    await sessions.delete(session_id, owner, purge=purge)
    return Response(status_code=204)


@router.post("/{session_id}/messages", response_model=TurnResultOut,
             responses={**ERRORS, 202: {"description": "Still running after `timeoutMs`"},
                        200: {"content": {"text/event-stream": {}},
                              "description": "The result, or the turn's events with stream"},
                        409: {"description": "`SESSION_ENDED`, `SESSION_EXPIRED`"}})
async def send_message(sessions: Sessions, owner: Owner, settings: SettingsDep,
                       session_id: str, body: MessageBody) -> Any:
    """Send a prompt; queued behind a running turn. Waits for the result, or streams it."""
    try:
        pending = await sessions.send_message(session_id, owner, body.prompt,
                                              client_id=body.client_id)
    except DuplicateClientId as duplicate:
        return await replay_turn(sessions, settings, session_id, duplicate.turn_id,
                                 stream=body.stream)
    if body.stream:
        return event_stream_response(
            sessions.turn_events(session_id, pending.id, pending.queued_seq - 1),
            settings.sse_ping_seconds)
    timeout = (body.timeout_ms / 1000 if body.timeout_ms is not None
               else settings.message_timeout_seconds)
    try:
        return turn_result_to_api(await asyncio.wait_for(asyncio.shield(pending.done), timeout))
    except TimeoutError:
        # A turn that waits for a permission answer is not a hang: say what it waits for.
        return JSONResponse({"turnId": pending.id,
                             "status": await sessions.turn_status(session_id, pending),
                             "waitingForPermission": await sessions.waiting_for(
                                 session_id, pending.id)}, status_code=202)


async def replay_turn(sessions: SessionManager, settings: Settings, session_id: str,
                      turn_id: str, *, stream: bool) -> Any:
    """What a resent prompt gets: the turn the first one started, not a new one."""
    if stream:
        return event_stream_response(sessions.turn_events(session_id, turn_id, 0),
                                     settings.sse_ping_seconds)
    turn = await sessions.turn(session_id, turn_id)
    if turn.outcome is not None and turn.status in ENDED_TURN_STATUSES:
        return turn_result_to_api(TurnOutcome.of_record(turn))
    return JSONResponse({"turnId": turn_id, "status": turn.status,
                         "waitingForPermission": await sessions.waiting_for(session_id,
                                                                            turn_id)},
                        status_code=202)


@router.get("/{session_id}/messages", response_model=MessageListOut, responses=ERRORS)
async def list_messages(
    sessions: Sessions, owner: Owner, session_id: str,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> dict[str, Any]:
    page, total = await sessions.messages(session_id, owner, limit=limit, offset=offset)
    return message_page_to_api(page, total, limit=limit, offset=offset)


@router.get("/{session_id}/events", response_model=EventPageOut,
            responses={**ERRORS, 200: {"content": {"text/event-stream": {}},
                                       "description": "SSE, or a JSON page with follow=false"}})
async def session_events(
    sessions: Sessions, owner: Owner, settings: SettingsDep, session_id: str,
    after: Annotated[int | None, Query(ge=0, le=MAX_SEQ)] = None,
    follow: Annotated[bool, Query()] = True,
    limit: Annotated[int, Query(ge=1, le=5000)] = 1000,
    last_event_id: Annotated[str, Header(
        alias="Last-Event-ID", pattern=r"^ *[0-9]{0,15} *$",
        description="The `id` of the last event received (wins over `after`).")] = "",
) -> Any:
    """Replay the event log after a sequence number, then follow it live (SSE)."""
    record = await sessions.get(session_id, owner)
    cursor = after or 0
    if last_event_id.strip():
        cursor = int(last_event_id)  # wins over ?after=, as a reconnecting EventSource sends it
    if cursor > record.last_seq:
        raise InvalidCursor(f"Cursor {cursor} is beyond the last event ({record.last_seq})",
                            details={"after": cursor, "lastSeq": record.last_seq})
    if not follow:
        page = await sessions.events_page(session_id, after=cursor, limit=limit)
        return {"events": [envelope(e) for e in page], "lastSeq": record.last_seq}
    return event_stream_response(sessions.event_stream(session_id, cursor),
                                 settings.sse_ping_seconds)


@router.post("/{session_id}/interrupt", response_model=InterruptOut, responses=ERRORS)
async def interrupt(sessions: Sessions, owner: Owner, session_id: str,
                    clear_queue: Annotated[bool, Query(alias="clearQueue")] = False
                    ) -> dict[str, bool]:
    """Interrupt the running turn (idempotent); queued prompts stay unless clearQueue."""
    interrupted = await sessions.interrupt(session_id, owner, clear_queue=clear_queue)
    return {"interrupted": interrupted}
