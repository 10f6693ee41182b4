"""``ProcessPool``: the cap on live CLI processes, LRU eviction, and leftover clean-up."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path

from claude_gateway.runtime.agent import AgentProcess
from claude_gateway.runtime.instance_lock import owner_alive

logger = logging.getLogger("claude_gateway.runtime")

Evict = Callable[[str], Awaitable[bool]]
"""Stops the idle process of a session; False when it turned out to be busy."""


class ProcessPool:
    """Tracks live processes by session id and keeps their count under ``max_processes``."""

    def __init__(self, max_processes: int, pid_dir: Path, *, binary: Path) -> None:
        self.max_processes = max_processes
        self.pid_dir = pid_dir
        self.binary = binary
        """The CLI binary the processes run (what a live leftover's command line shows)."""
        self._live: dict[str, AgentProcess] = {}
        self._reserved: set[str] = set()
        self._changed = asyncio.Condition()

    @property
    def live(self) -> dict[str, AgentProcess]:
        return dict(self._live)

    def get(self, session_id: str) -> AgentProcess | None:
        return self._live.get(session_id)

    def try_reserve(self, session_id: str) -> bool:
        """Take a free slot without waiting or evicting anyone; False when there is none."""
        if len(self._live) + len(self._reserved) < self.max_processes:
            self._reserved.add(session_id)
            return True
        return False

    async def reserve(self, session_id: str, is_idle: Callable[[str], bool],
                      evict: Evict) -> None:
        """Wait for a free slot for ``session_id``, evicting the LRU idle process if needed."""
        async with self._changed:
            tried: set[str] = set()
            while True:
                if self.try_reserve(session_id):
                    return
                victims = sorted(
                    (p.last_used, sid) for sid, p in self._live.items()
                    if sid not in tried and is_idle(sid)
                )
                if victims:
                    _, victim = victims[0]
                    # Each victim once per wake-up: an eviction that freed nothing must
                    # not turn this into a loop that never lets anything else run.
                    tried.add(victim)
                    self._changed.release()
                    try:
                        await evict(victim)
                    finally:
                        await self._changed.acquire()
                    continue
                tried.clear()
                await self._changed.wait()

    async def attach(self, session_id: str, process: AgentProcess) -> None:
        async with self._changed:
            self._reserved.discard(session_id)
            self._live[session_id] = process
            self.track_pid(process)
            self._changed.notify_all()

    async def release(self, session_id: str, process: AgentProcess | None = None) -> None:
        """Forget a session's process (or its reservation) and wake waiters."""
        async with self._changed:
            self._reserved.discard(session_id)
            current = self._live.get(session_id)
            if current is not None and (process is None or current is process):
                del self._live[session_id]
                self.forget_pid(current)
            self._changed.notify_all()

    async def notify(self) -> None:
        """A process may have become idle: let waiters look for a victim again."""
        async with self._changed:
            self._changed.notify_all()

    # -- pid files: a crashed gateway's CLIs must not outlive it ---------------------
    def track_pid(self, process: AgentProcess) -> None:
        pid = process.pid
        if pid is not None:
            self.pid_dir.mkdir(parents=True, exist_ok=True)
            (self.pid_dir / str(pid)).write_text(json.dumps(
                {"binary": str(self.binary), "gateway": os.getpid()}))

    def forget_pid(self, process: AgentProcess) -> None:
        pid = process.pid
        if pid is not None:
            with contextlib.suppress(FileNotFoundError):
                (self.pid_dir / str(pid)).unlink()

    def reap_leftovers(self) -> list[int]:
        """Kill CLI processes recorded by a previous gateway that did not stop them."""
        killed: list[int] = []
        if not self.pid_dir.is_dir():
            return killed
        for entry in self.pid_dir.iterdir():
            if not entry.name.isdigit():
                continue
            pid = int(entry.name)
            try:
                recorded = json.loads(entry.read_text())
            except ValueError:  # written by an older gateway: the binary path alone
                recorded = {"binary": entry.read_text().strip()}
            owner = recorded.get("gateway")
            if isinstance(owner, int) and owner_alive(owner):
                continue  # its gateway still runs: not a leftover
            expected = str(recorded.get("binary", ""))
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except OSError:
                cmdline = []
            # Only a process still running our CLI binary: the pid may have been reused.
            if cmdline and expected and os.fsencode(expected) in cmdline[:2]:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
                    logger.warning("killed a CLI process left by a previous gateway",
                                   extra={"pid": pid})
            entry.unlink(missing_ok=True)
        return killed
