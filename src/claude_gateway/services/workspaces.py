"""Where a caller may work: names under its own directory of the workspace root.

Every surface (REST, WebSocket, OpenAI, MCP) goes through these functions for anything a
client names as a directory: a session's or a run's workspace, ``addDirs``, and the file
API's paths. A name is resolved with symlinks followed, and the result must stay inside
the caller's own directory (its *home*: ``root/<key name>``; an admin's home is the root).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from claude_gateway.errors import InvalidPath, PathOutsideWorkspace

MAX_NAME_BYTES = 255
MAX_PATH_BYTES = 1024


def resolve_inside(root: Path, relative: str) -> Path:
    """``root / relative`` with symlinks resolved, refused unless it stays inside ``root``.

    A string-prefix check would be wrong (``/srv/ws2`` starts with ``/srv/ws``); the
    resolved path must be the root itself or have it as a parent. ``~`` is an ordinary
    character: nothing here expands it.
    """
    if "\x00" in relative:
        raise InvalidPath("Path contains a NUL byte", details={"path": relative[:200]})
    if len(relative.encode()) > MAX_PATH_BYTES or any(
        len(part.encode()) > MAX_NAME_BYTES for part in relative.split("/")
    ):
        raise InvalidPath("Path or one of its names is too long",
                          details={"path": relative[:200]})
    if os.path.isabs(relative):
        raise PathOutsideWorkspace("Absolute paths are not allowed",
                                   details={"path": relative})
    real_root = root.resolve()
    try:
        target = (real_root / relative).resolve()
    except (RuntimeError, OSError) as exc:  # a symlink loop, a name the OS refuses
        raise InvalidPath("Path cannot be resolved (a symlink loop?)",
                          details={"path": relative[:200]}) from exc
    if target != real_root and real_root not in target.parents:
        raise PathOutsideWorkspace("Path resolves outside your workspace directory",
                                   details={"path": relative})
    return target


def normalize_workspace_name(name: str, *, field: str = "workspace") -> str:
    """A directory name in canonical form (``a/b``).

    Absolute names and ``..`` are refused outright, even where they would resolve
    inside: a workspace name says where to work, never how to get out.
    """
    if "\x00" in name:
        raise InvalidPath("Name contains a NUL byte", details={field: name[:200]})
    if os.path.isabs(name):
        raise PathOutsideWorkspace(f"{field} must be a relative name under your workspace "
                                   "directory", details={field: name})
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise PathOutsideWorkspace(f"'..' is not allowed in {field}", details={field: name})
    if not parts:
        raise InvalidPath(f"{field} is empty", details={field: name})
    return "/".join(parts)


@dataclass(frozen=True)
class Placement:
    """A workspace as stored: the owner's home and the name the client gave, relative
    to that home."""

    home: str
    """The caller's directory under the root ("" for an admin: the root itself)."""
    name: str

    @property
    def path(self) -> str:
        """The workspace's directory relative to the root (keys locks, spares, history)."""
        return f"{self.home}/{self.name}" if self.home else self.name


def home_dir(root: Path, home: str) -> Path:
    """The caller's own directory (created if missing); it must itself stay in the root."""
    if not home:
        root.mkdir(parents=True, exist_ok=True)
        return root.resolve()
    (root / home).mkdir(parents=True, exist_ok=True)
    return resolve_inside(root, home)


def place_workspace(root: Path, home: str, name: str) -> Placement:
    """Check a client's workspace name, confined to ``home`` (only the home is created:
    the workspace itself when a process first starts there)."""
    placement = Placement(home, normalize_workspace_name(name))
    base = home_dir(root, home)
    if resolve_inside(base, placement.name) == base:
        raise InvalidPath("A workspace cannot be your whole workspace directory",
                          details={"workspace": placement.name})
    return placement


def workspace_dir(root: Path, placement: Placement) -> Path:
    """The real directory of a workspace (created if missing), refused if it resolves
    outside its home: checked every time a process starts there, since the agent may
    have replaced a directory with a link meanwhile."""
    base = home_dir(root, placement.home)
    path = resolve_inside(base, placement.name)
    if path == base:
        raise InvalidPath("A workspace cannot be your whole workspace directory",
                          details={"workspace": placement.name})
    path.mkdir(parents=True, exist_ok=True)
    # Creating it may have followed a symlink planted meanwhile: check again.
    return resolve_inside(base, placement.name)


def added_dirs(root: Path, home: str, names: list[str]) -> list[str]:
    """Check ``addDirs`` (directories the agent may read besides its workspace): each a
    relative name under the caller's home that exists; returned in canonical form."""
    checked = []
    for name in names:
        canonical = normalize_workspace_name(name, field="addDirs")
        resolve_added_dir(root, home, canonical)
        checked.append(canonical)
    return checked


def resolve_added_dir(root: Path, home: str, name: str) -> Path:
    """The real path of an added directory, refused if it is missing or leaves ``home``."""
    path = resolve_inside(home_dir(root, home), name)
    if not path.is_dir():
        raise InvalidPath(f"addDirs: {name!r} is not a directory under your workspace "
                          "directory", details={"addDirs": name})
    return path


def name_from(home: str, path: str) -> str | None:
    """How a caller whose home is ``home`` names the workspace at ``path`` (relative to
    the root), or None when it lies outside that home."""
    if not home:
        return path
    prefix = home + "/"
    return path[len(prefix):] if path.startswith(prefix) else None
