"""Admission: what may start. Session caps (global and per key), a key's turn cap and
daily budget, the permission-mode policy, and session expiry.

The counts of open sessions per key are reserved synchronously, before any await, so
parallel creates can never overshoot a cap.
"""

from __future__ import annotations

from collections import Counter
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
from claude_gateway.storage.base import Store
from claude_gateway.storage.records import ACTIVE_SESSION_STATUSES


def now() -> datetime:
    return datetime.now(UTC)


class Admission:
    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store
        self._sessions_by_owner: Counter[str] = Counter()
        """Sessions that count against the caps, per owner."""

    async def start(self) -> None:
        self._sessions_by_owner = Counter(
            await self.store.count_sessions_by_owner(ACTIVE_SESSION_STATUSES))

    # -- sessions ------------------------------------------------------------------
    def reserve_session(self, owner: str) -> None:
        """Count a new session of ``owner`` against the caps; MaxSessionsReached if full.
        Undo with :meth:`release_session` (also when the session closes)."""
        limit, per_key = self.settings.max_sessions, self.settings.max_sessions_per_principal
        if self._sessions_by_owner.total() >= limit:
            raise MaxSessionsReached(f"At most {limit} sessions may exist at once",
                                     details={"maxSessions": limit})
        if owner and 0 < per_key <= self._sessions_by_owner[owner]:
            raise MaxSessionsReached(f"A key may have at most {per_key} sessions",
                                     details={"maxSessionsPerPrincipal": per_key})
        self._sessions_by_owner[owner] += 1

    def release_session(self, owner: str) -> None:
        self._sessions_by_owner[owner] = max(0, self._sessions_by_owner[owner] - 1)

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
