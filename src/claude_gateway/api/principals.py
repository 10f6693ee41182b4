"""Who a request acts for, as the authentication middleware left it in the scope state."""

from __future__ import annotations

from typing import Any

from claude_gateway.services.auth import ANONYMOUS, Principal


def principal_of(state: Any) -> Principal:
    """The caller: its key's principal, or ANONYMOUS while authentication is off."""
    principal = getattr(state, "principal", None)
    if principal is None and isinstance(state, dict):
        principal = state.get("principal")
    return principal if isinstance(principal, Principal) else ANONYMOUS


def owner_filter(state: Any) -> str | None:
    """Whose resources the caller may see: its own, or all (admins, or no keys at all)."""
    return principal_of(state).owner_filter
