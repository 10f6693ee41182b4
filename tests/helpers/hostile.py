"""Hostile names for anything a client may call a path: workspaces, ``addDirs``, files.

Every name is relative to a caller's home (``bob``'s directory under the workspace
root) in the tree :func:`hostile_tree` builds; each must be refused with its code and
must touch nothing outside that home.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

OUTSIDE = "PATH_OUTSIDE_WORKSPACE"
INVALID = "INVALID_PATH"

HOSTILE_NAMES: list[tuple[str, str]] = [
    ("../outside/secret.txt", OUTSIDE),
    ("../../../../etc/passwd", OUTSIDE),
    ("a/../../alice/secret.txt", OUTSIDE),
    ("a/b/../../../alice/secret.txt", OUTSIDE),
    ("/etc/passwd", OUTSIDE),
    ("//etc/passwd", OUTSIDE),
    ("../alice/secret.txt", OUTSIDE),  # another key's home
    ("../alice", OUTSIDE),
    ("../bob2/sibling.txt", OUTSIDE),  # a sibling that shares the name's prefix
    ("../bob2", OUTSIDE),
    ("..", OUTSIDE),
    ("a/../..", OUTSIDE),
    ("to-alice/secret.txt", OUTSIDE),  # a link into another key's home
    ("to-alice", OUTSIDE),
    ("link-out/secret.txt", OUTSIDE),  # a link out of the root
    ("link-out", OUTSIDE),
    ("file-link", OUTSIDE),
    ("a/parent-link/secret.txt", OUTSIDE),
    ("a/parent-link/new.txt", OUTSIDE),
    ("loop-link/x", INVALID),
    ("a\x00.txt", INVALID),
    ("a/\x00/../../outside/secret.txt", INVALID),
    ("x" * 300, INVALID),
    ("/".join(["abcdefgh"] * 150), INVALID),
    ("%2e%2e/not-a-traversal/../../../alice/secret.txt", OUTSIDE),
]

WORKSPACE_ONLY: list[tuple[str, str]] = [
    # '..' is refused in a workspace name even where it would resolve inside the home.
    ("a/../b", OUTSIDE),
    ("./..", OUTSIDE),
]

FRIENDLY_NAMES = ["proj", "~proj", "a/b", "./c", "with space", "ünïcode", "a//d/"]
"""Names that are odd but harmless: accepted, and inside the home."""


@dataclass
class HostileTree:
    root: Path
    """The workspace root."""
    home: str
    """The attacker's home under the root (``bob``)."""
    secrets: list[Path]
    """Files an attacker must not reach: another key's, one beside the root, one out."""

    def snapshot(self) -> dict[str, bytes]:
        return {str(p): p.read_bytes() for p in self.secrets}


def hostile_tree(base: Path) -> HostileTree:
    """A workspace root with homes ``bob`` (the caller) and ``alice``, a sibling ``bob2``,
    a directory outside the root, and bob's links pointing out."""
    root = base / "workspaces"
    bob = root / "bob"
    (bob / "a" / "b").mkdir(parents=True)
    (root / "alice").mkdir()
    (root / "alice" / "secret.txt").write_text("alice's secret")
    (root / "bob2").mkdir()
    (root / "bob2" / "sibling.txt").write_text("sibling secret")
    outside = base / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("top secret")
    os.symlink(outside, bob / "link-out")
    os.symlink(outside / "secret.txt", bob / "file-link")
    os.symlink(outside, bob / "a" / "parent-link")
    os.symlink(bob / "loop-link", bob / "loop-link")
    os.symlink(root / "alice", bob / "to-alice")
    return HostileTree(root=root, home="bob", secrets=[
        root / "alice" / "secret.txt", root / "bob2" / "sibling.txt", outside / "secret.txt"])
