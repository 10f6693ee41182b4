"""``/v1/sessions/{id}/permissions``: pending tool calls and the answers to them;
``/v1/permissions``: every pending one of the caller's sessions."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from claude_gateway.api.deps import Owner, Permissions, Sessions
from claude_gateway.api.models import (
    ErrorOut,
    PermissionAnswerBody,
    PermissionListOut,
    PermissionOut,
    error_responses,
)
from claude_gateway.wire import permission_to_api

router = APIRouter(prefix="/v1/sessions", tags=["permissions"],
                   responses=error_responses(ErrorOut))
pending_router = APIRouter(prefix="/v1/permissions", tags=["permissions"],
                           responses=error_responses(ErrorOut))


@pending_router.get("", response_model=PermissionListOut)
async def pending_permissions(permissions: Permissions, owner: Owner) -> dict[str, Any]:
    """Requests waiting for an answer across the caller's sessions (an admin key: every
    session's), oldest first, each with its `sessionId`: one person keeps many agents
    moving."""
    pending = await permissions.store.list_permissions(statuses=["pending"], owner=owner)
    return {"permissions": [{**permission_to_api(r), "sessionId": r.session_id}
                            for r in pending]}


@router.get("/{session_id}/permissions", response_model=PermissionListOut,
            responses={404: {"description": "`SESSION_NOT_FOUND`"}})
async def list_permissions(sessions: Sessions, permissions: Permissions, owner: Owner,
                           session_id: str) -> dict[str, Any]:
    """Requests waiting for an answer, oldest first."""
    await sessions.get(session_id, owner)
    pending = await permissions.pending(session_id)
    return {"permissions": [permission_to_api(r) for r in pending]}


@router.post("/{session_id}/permissions/{request_id}", response_model=PermissionOut,
             responses={404: {"description": "`SESSION_NOT_FOUND`, `PERMISSION_NOT_FOUND`"},
                        409: {"description": "`PERMISSION_ALREADY_RESOLVED`"}})
async def answer_permission(sessions: Sessions, permissions: Permissions, owner: Owner,
                            session_id: str, request_id: str, body: PermissionAnswerBody
                            ) -> dict[str, Any]:
    """Allow (optionally with a changed input) or deny (with a message for the model)."""
    await sessions.get(session_id, owner)
    record = await sessions.answer_permission(
        session_id, request_id, decision=body.decision, updated_input=body.updated_input,
        message=body.message, interrupt=body.interrupt,
        apply_suggestions=body.apply_suggestions)
    return permission_to_api(record)
