"""``SparePool``: CLI processes started ahead of time for named workspaces.

A run in one of these workspaces, with options a default process can serve (model and
permission mode are set live), adopts a spare instead of waiting for a CLI to start;
the pool refills in the background.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from claude_gateway.runtime.agent_process import AgentProcess

logger = logging.getLogger("claude_gateway.runtime")

StartSpare = Callable[[str], Awaitable[AgentProcess | None]]
"""Starts one unbound process in a workspace (None if it could not start)."""


class SparePool:
    """Keeps ``size`` started processes per workspace."""

    def __init__(self, workspaces: list[str], size: int, start: StartSpare) -> None:
        self.workspaces = list(dict.fromkeys(workspaces))
        self.size = size
        self._start = start
        self._ready: dict[str, list[AgentProcess]] = {w: [] for w in self.workspaces}
        self._filling: dict[str, asyncio.Task[None]] = {}
        self._closed = False
        self.adopted = 0
        """How many spares runs have taken (for status and tests)."""

    def ready(self, workspace: str) -> int:
        return sum(1 for p in self._ready.get(workspace, []) if p.alive)

    def fill(self) -> None:
        """Start filling every workspace up to ``size`` (in the background)."""
        for workspace in self.workspaces:
            self._refill(workspace)

    def _refill(self, workspace: str) -> None:
        if self._closed or self.size <= 0:
            return
        task = self._filling.get(workspace)
        if task is None or task.done():
            self._filling[workspace] = asyncio.create_task(self._fill_one(workspace),
                                                           name=f"spares-{workspace}")

    async def _fill_one(self, workspace: str) -> None:
        ready = self._ready[workspace]
        failures = 0
        while not self._closed and failures < 3:
            ready[:] = [p for p in ready if p.alive]
            if len(ready) >= self.size:
                return
            process = await self._start(workspace)
            if process is None:
                failures += 1  # a broken CLI must not be restarted in a tight loop
                await asyncio.sleep(1.0 * failures)
                continue
            if self._closed:
                await process.stop()
                return
            ready.append(process)

    def take(self, workspace: str) -> AgentProcess | None:
        """A live spare for ``workspace`` (the pool refills behind it), or None."""
        ready = self._ready.get(workspace)
        if not ready:
            return None
        while ready:
            process = ready.pop(0)
            if process.alive:
                self.adopted += 1
                self._refill(workspace)
                return process
        self._refill(workspace)
        return None

    async def close(self) -> None:
        self._closed = True
        for task in self._filling.values():
            task.cancel()
        await asyncio.gather(*self._filling.values(), return_exceptions=True)
        processes = [p for ready in self._ready.values() for p in ready]
        for ready in self._ready.values():
            ready.clear()
        for process in processes:
            with contextlib.suppress(Exception):
                await process.stop()
