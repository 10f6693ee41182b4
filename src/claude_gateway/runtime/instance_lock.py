"""One gateway per data dir: an exclusive lock on a file in it, held while the gateway runs.

Two gateways on one data dir would share one database and one directory of CLI pid
files: the second would mistake the first one's CLIs for leftovers of a crash, kill
them and fail their turns. The lock is taken before anything else happens, and the
file names its holder, so the second one can say which gateway is in the way.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from claude_gateway.errors import ErrorCode, GatewayError

LOCK_FILE = "gateway.lock"


class DataDirInUse(GatewayError):
    """Another gateway runs on this data dir."""

    code = ErrorCode.DATA_DIR_IN_USE


class InstanceLock:
    """The data dir's lock (``flock``: released by the kernel if the gateway dies)."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / LOCK_FILE
        self._handle: IO[str] | None = None

    def acquire(self, **about: Any) -> None:
        """Take the lock, or raise DataDirInUse naming the gateway that holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.path.open("a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip()
            handle.close()
            raise DataDirInUse(
                f"Another gateway is running on the data dir {self.path.parent} "
                f"({describe(holder)}). Stop it, or give this one its own "
                "CLAUDE_GATEWAY_DATA_DIR.", details={"holder": holder}) from None
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({"pid": os.getpid(),
                                 "startedAt": datetime.now(UTC).isoformat(), **about}))
        handle.flush()
        self._handle = handle

    def release(self) -> None:
        if self._handle is not None:
            with contextlib.suppress(OSError):
                self._handle.truncate(0)
            self._handle.close()  # closing the file releases the lock
            self._handle = None


def describe(holder: str) -> str:
    try:
        about = json.loads(holder)
    except ValueError:
        return "it did not say who it is"
    where = f", serving {about['address']}" if about.get("address") else ""
    return f"pid {about.get('pid')}{where}, since {about.get('startedAt')}"


def owner_alive(pid: int) -> bool:
    """Whether the process ``pid`` still runs (a leftover's gateway, say)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
