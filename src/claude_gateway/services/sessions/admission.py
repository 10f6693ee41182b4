"""Admission: what may start. Session caps (global and per key), a key's turn cap and
daily budget, the permission-mode policy, and session expiry.

The session caps are counted by the store as it writes the new session (one create at
a time: SQLite's single writer, PostgreSQL's advisory lock), so parallel creates can
never overshoot a cap, on one node or several. With several nodes a key's turns are
counted in the store too; its budget always is.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from claude_gateway.errors import (
    InvalidRequest,
    MaxSessionsReached,
    PaymentRequired,
    PermissionModeNotAllowed,
    TooManyTurns,
)
from claude_gateway.runtime.options import PERMISSION_MODES
from claude_gateway.settings import Settings
from claude_gateway.storage.base import CapReached, Store
from claude_gateway.storage.records import SessionCaps, SessionRecord


def now() -> datetime:
    return datetime.now(UTC)


class Admission:
    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store

    # -- sessions ------------------------------------------------------------------
    def caps(self) -> SessionCaps:
        return SessionCaps(total=self.settings.max_sessions,
                           per_owner=self.settings.max_sessions_per_principal)

    async def create(self, record: SessionRecord) -> None:
        """Store a new session if it passes the caps; MaxSessionsReached if not."""
        try:
            await self.store.create_session(record, self.caps())
        except CapReached as cap:
            if cap.which == "total":
                raise MaxSessionsReached(
                    f"At most {cap.limit} sessions may exist at once",
                    details={"maxSessions": cap.limit}) from None
            raise MaxSessionsReached(f"A key may have at most {cap.limit} sessions",
                                     details={"maxSessionsPerPrincipal": cap.limit}) from None

    # -- turns -----------------------------------------------------------------------
    async def check_turn(self, owner: str, busy_turns: int) -> None:
        """A key's turn cap (``busy_turns``: its turns running or queued) and its daily
        budget; the session's owner pays."""
        if not owner:
            return
        cap = self.settings.max_turns_per_principal
        if 0 < cap <= busy_turns:
            raise TooManyTurns(f"A key may have at most {cap} turns running or queued",
                               details={"maxTurnsPerPrincipal": cap})
        budget = self.settings.daily_budget_usd
        if budget > 0:
            midnight = now().replace(hour=0, minute=0, second=0, microsecond=0)
            spent = await self.store.spent_since(owner, midnight)
            if spent >= budget:
                raise PaymentRequired(
                    f"This key has spent ${spent:.4f} of its ${budget:.2f} daily budget",
                    details={"spentUsd": round(spent, 6), "dailyBudgetUsd": budget})

    # -- policy ----------------------------------------------------------------------
    def check_mode(self, mode: str) -> None:
        if mode not in PERMISSION_MODES:
            raise InvalidRequest(f"Unknown permissionMode {mode!r}",
                                 details={"allowed": list(PERMISSION_MODES)})
        if mode == "bypassPermissions" and not self.settings.allow_bypass_permissions:
            raise PermissionModeNotAllowed(
                "bypassPermissions lets every tool run unasked; the operator has not "
                "enabled it (CLAUDE_GATEWAY_ALLOW_BYPASS_PERMISSIONS)",
                details={"permissionMode": mode})

    def expiry(self, moment: datetime) -> datetime | None:
        ttl = self.settings.session_ttl_seconds
        return moment + timedelta(seconds=ttl) if ttl > 0 else None

    def activity(self, **fields: Any) -> dict[str, Any]:
        """Session columns for "something happened now" (it also pushes the expiry back)."""
        moment = now()
        return {"last_activity_at": moment, "expires_at": self.expiry(moment), **fields}
