"""What a session's file tools may never touch, whatever its client answers.

A tool call outside the agent's working directory asks for permission, and the client
that answers is the session's own key: left alone, bob could approve his agent reading
alice's files. So before any question is asked, a call whose path lies in another key's
directory, in the gateway's own data dir or in the CLI's config dir (every key's
transcripts) is denied by policy. Shell commands cannot be read for paths reliably: the
operator confines those with an OS sandbox (see the README's threat model).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PATH_ARGUMENTS = ("file_path", "path", "notebook_path")


@dataclass(frozen=True)
class PathFence:
    cwd: Path
    home: Path
    """The key's own directory (an admin's: the workspace root)."""
    root: Path
    """The workspace root."""
    private: tuple[Path, ...]
    """The gateway's data dir and the CLI's config dir (those that do not hold the root)."""

    @classmethod
    def build(cls, cwd: Path, home: Path, root: Path, private: list[Path]) -> PathFence:
        root = root.resolve()
        kept = tuple(p.resolve() for p in private
                     if not _within(root, p.resolve()) and not _within(p.resolve(), root))
        return cls(cwd.resolve(), home.resolve(), root, kept)

    def refusal(self, tool_input: dict[str, Any]) -> str | None:
        """Why the call may not run, or None: the first path argument that is fenced off."""
        for name in PATH_ARGUMENTS:
            value = tool_input.get(name)
            if isinstance(value, str) and value and self._fenced(value):
                return (f"Permission denied by the gateway: {value!r} is outside your "
                        "workspace directory.")
        pattern = tool_input.get("pattern")
        if isinstance(pattern, str) and pattern.startswith(("/", "~")):
            prefix = pattern.split("*", 1)[0].split("?", 1)[0].split("[", 1)[0]
            if self._fenced(prefix or "/"):
                return (f"Permission denied by the gateway: {pattern!r} reaches outside your "
                        "workspace directory.")
        return None

    def _fenced(self, value: str) -> bool:
        target = Path(os.path.expanduser(value))
        if not target.is_absolute():
            target = self.cwd / target
        try:
            resolved = target.resolve()
        except (OSError, RuntimeError):
            return True
        if any(_within(resolved, p) for p in self.private):
            return True
        if self.home == self.root or _within(resolved, self.home):
            return False
        # Inside another key's directory, or above the root (a search from there reaches
        # into every key's directory).
        return _within(resolved, self.root) or _within(self.root, resolved)


def _within(path: Path, directory: Path) -> bool:
    return path == directory or directory in path.parents
