"""The SDK's ``SessionStore`` on top of our store: the CLI's transcript mirrored to the database.

Passed as ``session_store`` to every CLI process, so a session can be resumed even when
the CLI's local files are gone (another node, a wiped config dir).
"""

from __future__ import annotations

import json
from typing import Any, cast

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

    async def append(self, key: SessionKey, entries: list[SessionStoreEntry]) -> None:
        subpath = key.get("subpath") or ""
        lines = [json.dumps(e, separators=(",", ":")) for e in entries]

        def summarize(previous: tuple[int, dict[str, Any]] | None) -> dict[str, Any]:
            prior: SessionSummaryEntry | None = None
            if previous is not None:
                prior = {"session_id": key["session_id"], "mtime": previous[0],
                         "data": previous[1]}
            return dict(fold_session_summary(prior, key, entries)["data"])

        # Subagent transcripts must not feed the main session's summary.
        await self.store.transcript_append(key["project_key"], key["session_id"], subpath,
                                           lines, None if subpath else summarize)

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


