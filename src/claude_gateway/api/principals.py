"""Who a request acts for, as the authentication middleware left it in the scope state."""

from __future__ import annotations

from typing import Any

from claude_gateway.services.auth import Principal


def principal_of(state: Any) -> Principal | None:
    principal = getattr(state, "principal", None)
    return principal if isinstance(principal, Principal) else None


def owner_filter(state: Any) -> str | None:
    """Whose resources the caller may see: its own, or all (admins, or no keys at all)."""
    principal = principal_of(state)
    return principal.owner_filter if principal is not None else None


def creator(state: Any) -> str:
    """The owner of what the caller creates ("" when authentication is off)."""
    principal = principal_of(state)
    return principal.name if principal is not None else ""
