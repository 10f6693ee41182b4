"""API keys and principals.

A key is ``cgw_`` + 43 random URL-safe characters. Only its SHA-256 is stored; a
presented key is hashed and compared with every known hash in constant time, so
neither the comparison nor the key's position leaks through timing.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from claude_gateway.errors import Conflict, InvalidRequest, NotFound
from claude_gateway.settings import Settings
from claude_gateway.storage.base import Store
from claude_gateway.storage.records import ApiKeyRecord

KEY_PREFIX = "cgw_"
KEY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,127}$")
_REFRESH_SECONDS = 2.0
"""How old the list of keys may get (a revocation is checked on every request anyway)."""



def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class Principal:
    """Who is calling: a key's name, whether it is an admin, its own rate limit.

    A key reaches only what it owns: its sessions, runs and conversations, and the files
    under its own directory of the workspace root (``home``). An admin key, and every
    caller while no keys exist (``ANONYMOUS``), reaches everything: its home is the root.
    """

    name: str
    admin: bool = False
    rate_limit: str | None = None

    @property
    def owner_filter(self) -> str | None:
        """The owner to filter by: admins see everything."""
        return None if self.admin else self.name

    @property
    def home(self) -> str:
        """The caller's directory, relative to the workspace root ("" is the root)."""
        return "" if self.admin else self.name


ANONYMOUS = Principal("", admin=True)
"""The caller while authentication is off: it owns what it creates as "" and sees all."""


class KeyRing:
    """The keys in force: those in the database and those in the settings."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self._configured = [
            (hash_key(k.key.get_secret_value()), Principal(k.name, k.admin, k.rate_limit))
            for k in settings.api_keys
        ]
        self._stored: list[tuple[str, Principal]] = []
        self._ever_made = False
        self._loaded_at = 0.0

    async def refresh(self, *, force: bool = False) -> None:
        if not force and time.monotonic() - self._loaded_at < _REFRESH_SECONDS:
            return
        keys = await self.store.list_api_keys(include_revoked=True)
        self._stored = [(k.key_hash, Principal(k.name, k.admin, k.rate_limit))
                        for k in keys if k.revoked_at is None]
        # Revoking the last key must not open the gateway: once made, keys stay required.
        self._ever_made = bool(keys)
        self._loaded_at = time.monotonic()

    async def enabled(self) -> bool:
        """Whether authentication is on: some key exists, or existed and was revoked.

        Until the first key exists the database is asked on every request, so the first
        key made with ``claude-gateway keys create`` is enforced from the next request on.
        """
        if self._configured or self._ever_made:
            return True
        await self.refresh(force=True)
        return self._ever_made

    async def authenticate(self, token: str | None) -> Principal | None:
        """The principal of ``token``, or None."""
        if not token:
            return None
        await self.refresh()
        presented = hash_key(token)
        found = self._match(presented)
        if found is None:
            # Made a moment ago? (Wrong keys are limited per address before they get here.)
            await self.refresh(force=True)
            found = self._match(presented)
        if found is None or any(found is p for _, p in self._configured):
            return found
        # A key from the database: revoked a moment ago (by `claude-gateway keys revoke`,
        # in another process) means refused now, not at the next reload.
        record = await self.store.api_key(found.name)
        if record is None or record.revoked_at is not None or record.key_hash != presented:
            return None
        return found

    def _match(self, presented: str) -> Principal | None:
        found: Principal | None = None
        for stored_hash, principal in [*self._configured, *self._stored]:
            # No early exit: every candidate is compared, each in constant time.
            if hmac.compare_digest(stored_hash, presented):
                found = principal
        return found


async def create_key(store: Store, name: str, *, admin: bool = False,
                     rate_limit: str | None = None) -> str:
    """Make a key, store its hash, and return the key (the only time it is seen)."""
    if not KEY_NAME.match(name):
        raise InvalidRequest("A key name is 1-128 letters, digits, '_', '.', '@' or '-', "
                             "starting with a letter or digit (it names a directory)")
    if rate_limit is not None:
        parse_rate_limit(rate_limit)
    existing = {k.name for k in await store.list_api_keys(include_revoked=True)}
    if name in existing:
        raise Conflict(f"A key named {name!r} exists (names are never reused)")
    key = generate_key()
    await store.create_api_key(ApiKeyRecord(
        name=name, key_hash=hash_key(key), prefix=key[:8], created_at=datetime.now(UTC),
        admin=admin, rate_limit=rate_limit))
    return key


async def revoke_key(store: Store, name: str) -> None:
    if not await store.revoke_api_key(name, datetime.now(UTC)):
        raise NotFound(f"No active key named {name!r}")


def parse_rate_limit(text: str) -> list[object]:
    """Rate limit items from ``60/minute;5/second``; InvalidRequest if malformed."""
    from limits import parse_many

    try:
        items = parse_many(text)
    except ValueError:
        raise InvalidRequest(f"Not a rate limit: {text!r} (e.g. '60/minute;5/second')"
                             ) from None
    if not items:
        raise InvalidRequest(f"Not a rate limit: {text!r}")
    return list(items)
