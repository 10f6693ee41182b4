"""One agent writes in a workspace at a time: runs and session turns take its lock."""

from __future__ import annotations

from claude_gateway.errors import WorkspaceBusy


class WorkspaceLocks:
    """Which session (or run) holds each workspace; held while it has work queued."""

    def __init__(self) -> None:
        self._holders: dict[str, str] = {}

    def holder(self, workspace: str) -> str | None:
        return self._holders.get(workspace)

    def acquire(self, workspace: str, owner: str) -> None:
        """Take the workspace for ``owner`` (re-entrant); 409 WORKSPACE_BUSY if another has it."""
        holder = self._holders.get(workspace)
        if holder is not None and holder != owner:
            raise WorkspaceBusy(
                f"Workspace {workspace!r} is busy with another agent",
                details={"workspace": workspace, "heldBy": holder})
        self._holders[workspace] = owner

    def release(self, workspace: str, owner: str) -> None:
        if self._holders.get(workspace) == owner:
            del self._holders[workspace]

    def busy(self) -> dict[str, str]:
        return dict(self._holders)
