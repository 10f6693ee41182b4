"""The SDK's ``SessionStore`` on top of our store: the CLI's transcript mirrored to the database.

Passed as ``session_store`` to every CLI process, so a session can be resumed even when
the CLI's local files are gone (another node, a wiped config dir).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import defaultdict
from typing import cast

from claude_agent_sdk import (
    SessionKey,
    SessionListSubkeysKey,
    SessionStoreEntry,
    SessionStoreListEntry,
    SessionSummaryEntry,
    fold_session_summary,
)

from claude_gateway.storage.base import Store


class TranscriptStore:
    """A ``claude_agent_sdk.SessionStore`` whose entries live in a :class:`Store`."""

    def __init__(self, store: Store) -> None:
        self.store = store
        # The summary is read, folded and written back; one lock per session keeps
        # concurrent appends from losing each other's fold.
        self._summary_locks: defaultdict[tuple[str, str], asyncio.Lock] = defaultdict(
            asyncio.Lock)

    async def append(self, key: SessionKey, entries: list[SessionStoreEntry]) -> None:
        subpath = key.get("subpath") or ""
        await self.store.transcript_append(
            key["project_key"], key["session_id"], subpath,
            [json.dumps(e, separators=(",", ":")) for e in entries],
        )
        if subpath or not entries:
            return
        lock_key = (key["project_key"], key["session_id"])
        async with self._summary_locks[lock_key]:
            previous = await self._summary(key["project_key"], key["session_id"])
            folded = fold_session_summary(previous, key, entries)
            mtime = int(time.time() * 1000)
            await self.store.transcript_summary_put(
                key["project_key"], key["session_id"], mtime, dict(folded["data"]))

    async def _summary(self, project_key: str, session_id: str) -> SessionSummaryEntry | None:
        for sid, mtime, data in await self.store.transcript_summary_get_all(project_key):
            if sid == session_id:
                return {"session_id": sid, "mtime": mtime, "data": data}
        return None

    async def load(self, key: SessionKey) -> list[SessionStoreEntry] | None:
        rows = await self.store.transcript_load(
            key["project_key"], key["session_id"], key.get("subpath") or "")
        if rows is None:
            return None
        return [cast(SessionStoreEntry, json.loads(r)) for r in rows]

    async def list_sessions(self, project_key: str) -> list[SessionStoreListEntry]:
        return [{"session_id": sid, "mtime": mtime}
                for sid, mtime in await self.store.transcript_sessions(project_key)]

    async def list_session_summaries(self, project_key: str) -> list[SessionSummaryEntry]:
        return [{"session_id": sid, "mtime": mtime, "data": data}
                for sid, mtime, data in await self.store.transcript_summary_get_all(project_key)]

    async def delete(self, key: SessionKey) -> None:
        await self.store.transcript_delete(key["project_key"], key["session_id"],
                                           key.get("subpath"))

    async def list_subkeys(self, key: SessionListSubkeysKey) -> list[str]:
        return await self.store.transcript_subkeys(key["project_key"], key["session_id"])


