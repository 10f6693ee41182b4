"""One agent writes in a workspace at a time: runs and session turns take its lock.

On one node the lock is this process's memory. With several nodes it is also held in
the store (``workspace_holds``), so WORKSPACE_BUSY holds on every node; a hold whose
node is gone (not seen for a lease TTL) may be taken.
"""

from __future__ import annotations

import asyncio
import logging
import uuid

from claude_gateway.errors import WorkspaceBusy
from claude_gateway.storage.base import Store

logger = logging.getLogger("claude_gateway.sessions")


def busy(workspace: str, holder: str) -> WorkspaceBusy:
    return WorkspaceBusy(f"Workspace {workspace!r} is busy with another agent",
                         details={"workspace": workspace, "heldBy": holder})


class WorkspaceLocks:
    """Which session (or run) holds each workspace; held while it has work queued."""

    def __init__(self, store: Store | None = None, *, node_id: str = "",
                 ttl: float = 15.0) -> None:
        self._holders: dict[str, tuple[str, str]] = {}
        """workspace -> (holder, token of its hold in the store)"""
        self.store = store
        self.node_id = node_id
        self.ttl = ttl
        self._releasing: set[asyncio.Task[None]] = set()

    def holder(self, workspace: str) -> str | None:
        held = self._holders.get(workspace)
        return held[0] if held else None

    def acquire(self, workspace: str, owner: str) -> bool:
        """Take the workspace for ``owner`` here (re-entrant); 409 WORKSPACE_BUSY if
        another has it. True if it was not held by ``owner`` already."""
        held = self._holders.get(workspace)
        if held is not None:
            if held[0] != owner:
                raise busy(workspace, held[0])
            return False
        self._holders[workspace] = (owner, uuid.uuid4().hex)
        return True

    async def take(self, workspace: str, owner: str) -> None:
        """:meth:`acquire`, and with several nodes, the hold in the store too."""
        if not self.acquire(workspace, owner) or self.store is None:
            return
        token = self._holders[workspace][1]
        try:
            other = await self.store.hold_workspace(workspace, owner, self.node_id, token,
                                                    self.ttl)
        except BaseException:
            self._drop(workspace, owner)
            raise
        if other is not None:
            self._drop(workspace, owner)
            raise busy(workspace, other)

    def release(self, workspace: str, owner: str) -> None:
        held = self._drop(workspace, owner)
        if held is not None and self.store is not None:
            task = asyncio.get_running_loop().create_task(
                self._release_held(workspace, held[1]))
            self._releasing.add(task)
            task.add_done_callback(self._releasing.discard)

    def _drop(self, workspace: str, owner: str) -> tuple[str, str] | None:
        held = self._holders.get(workspace)
        if held is not None and held[0] == owner:
            del self._holders[workspace]
            return held
        return None

    async def _release_held(self, workspace: str, token: str) -> None:
        assert self.store is not None
        try:
            await self.store.release_workspace(workspace, token)
        except Exception:
            logger.warning("could not release a workspace hold; it goes when this node "
                           "is gone", exc_info=True, extra={"workspace": workspace})

    async def close(self) -> None:
        if self._releasing:
            await asyncio.wait(self._releasing, timeout=10)

    def busy(self) -> dict[str, str]:
        return {workspace: held[0] for workspace, held in self._holders.items()}
