"""The seam between the gateway and a Claude Code CLI process.

Services speak to an :class:`AgentProcess`: start it, send it prompts, read its
messages (the SDK's own message types) until a :class:`ProcessExit`, steer it live and
stop it. :mod:`claude_gateway.runtime.sdk_agent` is the real one (one
``ClaudeSDKClient``, the only place that touches the SDK's process API);
:mod:`claude_gateway.testing.fake_agent` is an in-memory one that scripts messages,
exits and crashes, so the logic around processes gets fast tests. Like the SDK's own
``Transport``, the seam is small on purpose.

Errors a process raises are the gateway's own (:class:`AgentError` and below): the SDK's
exceptions are mapped inside the real implementation and nowhere else.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from claude_agent_sdk import ClaudeAgentOptions
from claude_agent_sdk.types import Message

from claude_gateway.runtime.path_fence import PathFence
from claude_gateway.runtime.stderr_tail import StderrTail

logger = logging.getLogger("claude_gateway.runtime")

Prompt = str | list[dict[str, Any]]
"""Text, or Anthropic content blocks (text and images)."""


@dataclass
class ProcessBinding:
    """Which session a process serves. Spare processes start unbound and are bound when
    a run adopts them; callbacks given to the CLI at spawn read it when they are called."""

    session_id: str | None = None
    current_turn: Callable[[], str | None] = lambda: None
    non_interactive: bool = False
    """Nobody can answer permission prompts (an OpenAI client): deny them at once."""
    fence: PathFence | None = None
    """Paths the session's file tools may not touch, whatever its client answers."""


@dataclass(frozen=True)
class ProcessExit:
    """The process is gone: stopped on purpose, or it died."""

    expected: bool
    reason: str
    exit_code: int | None = None
    stderr: str = ""


class AgentError(Exception):
    """Something a CLI process could not do."""


class AgentStartFailed(AgentError):
    """The CLI did not start (or did not finish initializing)."""


class AgentUnavailable(AgentError):
    """The process cannot take a prompt or a control request (it is gone or broken)."""


class Inbox:
    """Messages a process has produced and not yet read; the ProcessExit, once put,
    stays at the end for every later reader."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[Message | ProcessExit] = asyncio.Queue()

    def put(self, item: Message | ProcessExit) -> None:
        self._queue.put_nowait(item)

    async def next(self) -> Message | ProcessExit:
        item = await self._queue.get()
        if isinstance(item, ProcessExit):
            self._queue.put_nowait(item)
        return item

    def drain(self, until: type | None = None) -> list[Message]:
        items: list[Message] = []
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if isinstance(item, ProcessExit):
                self._queue.put_nowait(item)
                break
            items.append(item)
            if until is not None and isinstance(item, until):
                break
        return items


OnExit = Callable[["AgentProcess", ProcessExit], Awaitable[None]]


class AgentProcess(Protocol):
    """One live CLI process serving one session (or waiting as a spare)."""

    binding: ProcessBinding
    stderr_tail: StderrTail
    exit: ProcessExit | None
    """Set once, when the process is gone."""
    last_used: float
    """``time.monotonic()`` of the last prompt or message (idle timeout, LRU eviction)."""
    cost_reported: float
    """The running cost total the CLI last reported (it counts per process)."""

    @property
    def alive(self) -> bool: ...

    @property
    def pid(self) -> int | None: ...

    @property
    def cwd(self) -> Path: ...

    async def start(self) -> None:
        """Spawn the CLI and wait until it has initialized. AgentStartFailed otherwise."""

    async def send(self, prompt: Prompt) -> None:
        """Send a user message (the CLI queues it if a turn runs). AgentUnavailable if the
        process cannot take it."""

    async def next_message(self) -> Message | ProcessExit:
        """The next message, or the ProcessExit once the process is gone (every reader
        after that gets it too)."""

    def drain(self, until: type | None = None) -> list[Message]:
        """Messages already waiting, up to and including one of type ``until``."""

    async def interrupt(self) -> None:
        """Stop the running turn. AgentUnavailable if the CLI did not take the request."""

    async def set_model(self, model: str | None) -> None: ...

    async def set_permission_mode(self, mode: str) -> None: ...

    async def stop(self) -> None:
        """Stop the CLI (terminate, then kill) and release everything it holds."""


async def stop_quietly(process: AgentProcess, why: str) -> None:
    """Stop a process while cleaning up after another failure: a failure to stop is
    logged, not raised, so the failure that matters is the one the caller reports."""
    try:
        await process.stop()
    except Exception:
        logger.warning("could not stop a CLI process (%s)", why, exc_info=True)


class AgentFactory(Protocol):
    """Makes a process for the options of a session (not started yet)."""

    def __call__(self, options: ClaudeAgentOptions, *, stderr_tail: StderrTail,
                 on_exit: OnExit | None, binding: ProcessBinding) -> AgentProcess: ...
