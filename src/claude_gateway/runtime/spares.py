"""``SparePool``: CLI processes started ahead of time, so that a run does not wait for one.

A CLI's working directory, environment, system prompt and tool lists are fixed when it
starts; its model and permission mode can change later. So a spare is started for a
*profile*: a workspace directory plus everything fixed at spawn. A run whose profile has
a spare adopts it (model and mode set live) and the pool starts the next one in the
background; a run whose profile has none starts its own CLI, and the pool learns the
profile, so the next such run finds one. That covers every key's default run workspace
and the OpenAI-compatible stateless workspace (with each distinct system prompt an app
sends) without configuring anything. Configured profiles are always kept; learned ones
are dropped least recently used first when the pool is full. A spare that dies is
replaced.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from claude_gateway.runtime.agent import AgentProcess, stop_quietly

logger = logging.getLogger("claude_gateway.runtime")


@dataclass(frozen=True)
class SpareProfile:
    """What a spare is started with: ``key`` identifies it (the workspace's path and every
    spawn-time option, serialized), ``workspace`` is for people (status, logs), and
    ``how`` is what the start function needs (the pool never looks at it)."""

    key: str
    workspace: str
    how: Any = field(default=None, compare=False, hash=False)


StartSpare = Callable[[SpareProfile], Awaitable[AgentProcess | None]]
"""Starts one unbound process for a profile (None if it could not start)."""


class SparePool:
    """Keeps ``size`` started processes per profile, at most ``max_total`` in all."""

    def __init__(self, start: StartSpare, *, size: int, max_total: int,
                 configured: Sequence[SpareProfile] = ()) -> None:
        self._start = start
        self.size = size
        self.max_total = max(max_total, size * len(configured))
        self._configured = {p.key for p in configured}
        self._profiles: OrderedDict[str, SpareProfile] = OrderedDict(
            (p.key, p) for p in configured)
        self._ready: dict[str, list[AgentProcess]] = {p.key: [] for p in configured}
        self._filling: dict[str, asyncio.Task[None]] = {}
        self._closed = False
        self._stopping: set[asyncio.Future[None]] = set()
        self.adopted = 0
        """How many spares runs have taken (for status and tests)."""

    @property
    def profiles(self) -> list[SpareProfile]:
        return list(self._profiles.values())

    def ready(self, key: str) -> int:
        return sum(1 for p in self._ready.get(key, []) if p.alive)

    def total(self) -> int:
        return sum(len(ready) for ready in self._ready.values())

    def owns(self, process: AgentProcess) -> bool:
        return any(process in ready for ready in self._ready.values())

    def fill(self) -> None:
        """Start filling every profile up to ``size`` (in the background)."""
        for key in list(self._profiles):
            self._refill(key)

    def take(self, profile: SpareProfile) -> AgentProcess | None:
        """A live spare for ``profile`` (the pool refills behind it), or None: then the
        pool learns the profile and starts one for next time."""
        if self._closed or self.size <= 0:
            return None
        if profile.key not in self._profiles:
            self._learn(profile)
        self._profiles.move_to_end(profile.key)
        ready = self._ready[profile.key]
        process = None
        while ready and process is None:
            candidate = ready.pop(0)
            if candidate.alive:
                process = candidate
            else:
                self._stop_later(candidate)  # dead, but its SDK client still holds streams
        if process is not None:
            self.adopted += 1
        self._refill(profile.key)
        return process

    def died(self, process: AgentProcess) -> None:
        """A spare exited on its own: forget it and start another."""
        for key, ready in self._ready.items():
            if process in ready:
                ready.remove(process)
                self._stop_later(process)  # release what its SDK client holds
                self._refill(key)
                return

    def _learn(self, profile: SpareProfile) -> None:
        self._profiles[profile.key] = profile
        self._ready[profile.key] = []
        learned = [k for k in self._profiles if k not in self._configured]
        # Over capacity: forget the learned profiles used least recently (not this one).
        while (len(self._configured) + len(learned)) * self.size > self.max_total and (
                len(learned) > 1):
            self._forget(learned.pop(0))

    def _forget(self, key: str) -> None:
        self._profiles.pop(key, None)
        task = self._filling.pop(key, None)
        if task is not None:
            task.cancel()
        for process in self._ready.pop(key, []):
            self._stop_later(process)

    def _stop_later(self, process: AgentProcess) -> None:
        task = asyncio.ensure_future(process.stop())
        self._stopping.add(task)
        task.add_done_callback(self._stopping.discard)

    def _refill(self, key: str) -> None:
        if self._closed or self.size <= 0 or key not in self._profiles:
            return
        task = self._filling.get(key)
        if task is None or task.done():
            self._filling[key] = asyncio.create_task(self._fill_one(key),
                                                     name=f"spares-{key[:40]}")

    async def _fill_one(self, key: str) -> None:
        failures = 0
        while not self._closed and failures < 3 and key in self._profiles:
            ready = self._ready[key]
            for dead in [p for p in ready if not p.alive]:
                ready.remove(dead)
                self._stop_later(dead)
            if len(ready) >= self.size:
                return
            process = await self._start(self._profiles[key])
            if process is None:
                failures += 1  # a broken CLI must not be restarted in a tight loop
                await asyncio.sleep(1.0 * failures)
                continue
            if self._closed or key not in self._profiles:
                await process.stop()
                return
            ready.append(process)

    async def close(self) -> None:
        self._closed = True
        for task in self._filling.values():
            task.cancel()
        await asyncio.gather(*self._filling.values(), return_exceptions=True)
        processes = [p for ready in self._ready.values() for p in ready]
        for ready in self._ready.values():
            ready.clear()
        for process in processes:
            await stop_quietly(process, "closing the spare pool")
        await asyncio.gather(*self._stopping, return_exceptions=True)
