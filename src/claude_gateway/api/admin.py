"""``/v1/admin``: what an admin key manages over HTTP (the web console's admin pages use
it): API keys (create, showing the key once; list; revoke) and each key's usage against
its daily budget. Any other key gets ``403 FORBIDDEN``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel, ConfigDict, Field

from claude_gateway.api.deps import Caller, Keys, SettingsDep
from claude_gateway.api.models import ErrorOut, error_responses
from claude_gateway.errors import Forbidden
from claude_gateway.services.auth import Principal, create_key, revoke_key
from claude_gateway.storage.records import ACTIVE_SESSION_STATUSES
from claude_gateway.wire import rfc3339, rfc3339_or_none


def _admin(caller: Caller) -> Principal:
    if not caller.admin:
        raise Forbidden("Only an admin key may do this")
    return caller


Admin = Annotated[Principal, Depends(_admin)]
router = APIRouter(prefix="/v1/admin", tags=["admin"], responses={
    **error_responses(ErrorOut), 403: {"model": ErrorOut, "description": "`FORBIDDEN`"}})


_ONE_LIMIT = r"[1-9][0-9]{0,8}/(second|minute|hour|day)"
RATE_LIMIT = rf"^{_ONE_LIMIT}(;{_ONE_LIMIT})*$"


class NewKeyBody(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    name: str = Field(max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.@-]*$",
                      description="Names the key's holder and their workspace directory; "
                      "never reused.")
    admin: bool = False
    rate_limit: str | None = Field(None, alias="rateLimit", max_length=200,
                                   pattern=RATE_LIMIT, examples=["60/minute;5/second"])


@router.get("/keys")
async def list_keys(_: Admin, keys: Keys, settings: SettingsDep) -> dict[str, Any]:
    """Every key: those made here (database) and those in the settings; never a key
    itself, only its first characters."""
    stored = await keys.store.list_api_keys(include_revoked=True)
    return {"keys": [
        *({"name": k.name, "prefix": None, "admin": k.admin, "rateLimit": k.rate_limit,
           "createdAt": None, "revokedAt": None, "source": "settings"}
          for k in settings.api_keys),
        *({"name": k.name, "prefix": k.prefix, "admin": k.admin, "rateLimit": k.rate_limit,
           "createdAt": rfc3339(k.created_at), "revokedAt": rfc3339_or_none(k.revoked_at),
           "source": "database"} for k in stored)]}


@router.post("/keys", status_code=201)
async def new_key(_: Admin, keys: Keys, body: NewKeyBody) -> dict[str, Any]:
    """Make a key; the answer holds the key, the only time it is shown."""
    key = await create_key(keys.store, body.name, admin=body.admin,
                           rate_limit=body.rate_limit)
    await keys.refresh(force=True)
    return {"name": body.name, "key": key, "prefix": key[:8], "admin": body.admin,
            "rateLimit": body.rate_limit}


@router.delete("/keys/{name}", status_code=204)
async def delete_key(_: Admin, keys: Keys, name: str) -> Response:
    """Revoke a key made here (keys in the settings are changed in the settings)."""
    await revoke_key(keys.store, name)
    await keys.refresh(force=True)
    return Response(status_code=204)


@router.get("/usage")
async def usage(_: Admin, keys: Keys, settings: SettingsDep) -> dict[str, Any]:
    """Each key's spending today (UTC) against the daily budget, and its open sessions."""
    midnight = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    names = [k.name for k in settings.api_keys] + [
        k.name for k in await keys.store.list_api_keys(include_revoked=False)]
    open_sessions = await keys.store.count_sessions_by_owner(ACTIVE_SESSION_STATUSES)
    return {"dailyBudgetUsd": settings.daily_budget_usd or None, "keys": [
        {"name": name, "spentTodayUsd": round(await keys.store.spent_since(name, midnight), 6),
         "openSessions": open_sessions.get(name, 0)} for name in dict.fromkeys(names)]}
