"""Workspace names to directories under the workspace root, safely (pure apart from the fs)."""

from __future__ import annotations

import os
from pathlib import Path

from claude_gateway.errors import InvalidPath, PathOutsideWorkspace

MAX_NAME_BYTES = 255
MAX_PATH_BYTES = 1024


def resolve_inside(root: Path, relative: str) -> Path:
    """``root / relative`` with symlinks resolved, refused unless it stays inside ``root``.

    A string-prefix check would be wrong (``/srv/ws2`` starts with ``/srv/ws``); the
    resolved path must be the root itself or have it as a parent.
    """
    if "\x00" in relative:
        raise InvalidPath("Path contains a NUL byte", details={"path": relative[:200]})
    if len(relative.encode()) > MAX_PATH_BYTES or any(
        len(part.encode()) > MAX_NAME_BYTES for part in relative.split("/")
    ):
        raise InvalidPath("Path or one of its names is too long",
                          details={"path": relative[:200]})
    if os.path.isabs(relative) or relative.startswith("~"):
        raise PathOutsideWorkspace("Absolute paths are not allowed",
                                   details={"path": relative})
    real_root = root.resolve()
    try:
        target = (real_root / relative).resolve()
    except (RuntimeError, OSError) as exc:  # a symlink loop, a name the OS refuses
        raise InvalidPath("Path cannot be resolved (a symlink loop?)",
                          details={"path": relative[:200]}) from exc
    if target != real_root and real_root not in target.parents:
        raise PathOutsideWorkspace("Path resolves outside the workspace root",
                                   details={"path": relative})
    return target


def normalize_workspace_name(name: str) -> str:
    """A workspace name in canonical form (``a/b``); absolute names are refused."""
    if os.path.isabs(name) or name.startswith("~"):
        raise PathOutsideWorkspace("A workspace is a relative name under the workspace root",
                                   details={"workspace": name})
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if not parts:
        raise InvalidPath("Workspace name is empty", details={"workspace": name})
    return "/".join(parts)


def workspace_dir(root: Path, name: str) -> Path:
    """The directory of workspace ``name`` (a relative name), created if missing."""
    name = normalize_workspace_name(name)
    path = resolve_inside(root, name)
    if path == root.resolve():
        raise InvalidPath("A workspace cannot be the workspace root itself",
                          details={"workspace": name})
    path.mkdir(parents=True, exist_ok=True)
    # Creating it may have followed a symlink planted meanwhile: check again.
    return resolve_inside(root, name)
