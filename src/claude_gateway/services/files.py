"""``FileService``: the workspace file API, confined to the workspace root.

Every path goes through :func:`resolve_inside` (symlinks resolved, then the result must
be the root or inside it). Uploads stream to a temporary file beside the target and
replace it atomically with a rename.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import anyio

from claude_gateway.errors import (
    FileNotFound,
    InvalidPath,
    IsADirectory,
    PathOutsideWorkspace,
    PayloadTooLarge,
)
from claude_gateway.services.workspaces import resolve_inside


@dataclass(frozen=True)
class Entry:
    name: str
    type: str
    size: int
    modified_at: datetime


class FileService:
    """Reads, writes and deletes files under one root."""

    def __init__(self, root: Path, *, max_upload_bytes: int) -> None:
        self.root = root
        self.max_upload_bytes = max_upload_bytes

    def for_owner(self, owner: str | None) -> FileService:
        """The service confined to one principal's directory (None: the whole root)."""
        if not owner:
            return self
        root = self.root / owner
        root.mkdir(parents=True, exist_ok=True)
        return FileService(root, max_upload_bytes=self.max_upload_bytes)

    def resolve(self, path: str) -> Path:
        """The real path of ``path`` (relative to the root), refused if it leaves the root."""
        if path in ("", "/"):
            return self.root.resolve()
        return resolve_inside(self.root, path)

    def relative(self, target: Path) -> str:
        rel = target.relative_to(self.root.resolve()).as_posix()
        return "" if rel == "." else rel

    def stat(self, path: str) -> tuple[Path, os.stat_result]:
        target = self.resolve(path)
        try:
            return target, target.stat()
        except FileNotFoundError:
            raise FileNotFound(f"No file or directory at {path!r}",
                               details={"path": path}) from None

    def list_dir(self, target: Path) -> list[Entry]:
        entries = []
        for child in sorted(target.iterdir(), key=lambda p: p.name):
            try:
                info = child.lstat()
                if stat.S_ISLNK(info.st_mode):
                    # A link is listed as what it points to, and only if that is inside.
                    resolve_inside(self.root, f"{self.relative(target)}/{child.name}"
                                   .lstrip("/"))
                    info = child.stat()
            except (OSError, PathOutsideWorkspace, InvalidPath):
                continue
            kind = "dir" if stat.S_ISDIR(info.st_mode) else "file"
            entries.append(Entry(child.name, kind, 0 if kind == "dir" else info.st_size,
                                 datetime.fromtimestamp(info.st_mtime, UTC)))
        return entries

    async def write(self, path: str, chunks: AsyncIterator[bytes],
                    declared_size: int | None = None) -> tuple[str, int]:
        """Stream ``chunks`` into ``path`` (parents created), replacing it atomically."""
        if not path.strip("/"):
            raise InvalidPath("A file path is needed", details={"path": path})
        if declared_size is not None and declared_size > self.max_upload_bytes:
            raise PayloadTooLarge(f"Uploads may be at most {self.max_upload_bytes} bytes",
                                  details={"maxUploadBytes": self.max_upload_bytes})
        parent, name, handle, temporary = await anyio.to_thread.run_sync(
            self._open_upload, path)
        size = 0
        try:
            async with await anyio.open_file(handle, "wb", closefd=True) as out:
                async for chunk in chunks:
                    size += len(chunk)
                    if size > self.max_upload_bytes:
                        raise PayloadTooLarge(
                            f"Uploads may be at most {self.max_upload_bytes} bytes",
                            details={"maxUploadBytes": self.max_upload_bytes})
                    await out.write(chunk)
            await anyio.to_thread.run_sync(self._commit_upload, temporary, parent / name)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
            raise
        return self.relative(parent / name), size

    def _open_upload(self, path: str) -> tuple[Path, str, int, str]:
        """The confined parent directory (made if missing), the file's name, and an open
        temporary file beside it (blocking: run in a thread)."""
        target = self.resolve(path)
        if target.is_dir():
            raise IsADirectory(f"{path!r} is a directory", details={"path": path})
        target.parent.mkdir(parents=True, exist_ok=True)
        # mkdir may have followed a link planted meanwhile: check the parent again.
        parent = self.resolve(self.relative(target.parent))
        handle, temporary = tempfile.mkstemp(dir=parent, prefix=".upload-", suffix=".part")
        return parent, target.name, handle, temporary

    @staticmethod
    def _commit_upload(temporary: str, destination: Path) -> None:
        os.chmod(temporary, 0o644)
        os.replace(temporary, destination)

    def delete(self, path: str, *, recursive: bool) -> None:
        target = self.resolve(path)  # refuses anything that resolves outside
        if target == self.root.resolve():
            raise InvalidPath("The workspace root itself cannot be deleted",
                              details={"path": path})
        lexical = Path(path.strip("/"))
        if lexical.name not in ("", ".", ".."):
            # A link is removed itself, never what it points to.
            candidate = self.resolve(lexical.parent.as_posix()) / lexical.name
            if candidate.is_symlink():
                candidate.unlink()
                return
        if not target.exists():
            raise FileNotFound(f"No file or directory at {path!r}", details={"path": path})
        if target.is_dir():
            if not recursive:
                raise IsADirectory(f"{path!r} is a directory: add ?recursive=true",
                                   details={"path": path})
            shutil.rmtree(target)
        else:
            target.unlink()
