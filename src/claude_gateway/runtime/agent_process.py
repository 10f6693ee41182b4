"""``AgentProcess``: one live Claude Code CLI process (one ``ClaudeSDKClient``).

A reader task drains the client's message stream into an inbox for the session's
turn runner. When the process dies, for any reason, the inbox receives a
:class:`ProcessExit` and ``on_exit`` is called once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from claude_agent_sdk import ClaudeAgentOptions, ClaudeSDKClient, ProcessError
from claude_agent_sdk.types import PermissionMode

from claude_gateway.runtime.path_fence import PathFence
from claude_gateway.runtime.stderr_tail import StderrTail

logger = logging.getLogger("claude_gateway.runtime")

STDERR_REPORT_BYTES = 8 * 1024
"""How much of the stderr tail goes into an event (the full tail stays in memory)."""


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


class AgentProcess:
    """One CLI process serving one session."""

    def __init__(self, options: ClaudeAgentOptions, *, stderr_tail: StderrTail,
                 on_exit: Callable[[AgentProcess, ProcessExit], Awaitable[None]] | None = None,
                 binding: ProcessBinding | None = None) -> None:
        self.options = options
        self.binding = binding or ProcessBinding()
        self.stderr_tail = stderr_tail
        self.on_exit = on_exit
        self.client = ClaudeSDKClient(options)
        self.inbox: asyncio.Queue[Any] = asyncio.Queue()
        self.exit: ProcessExit | None = None
        self.started_at = time.monotonic()
        self.last_used = time.monotonic()
        self.cost_reported = 0.0
        """The running cost total the CLI last reported (it counts per process)."""
        self._reader: asyncio.Task[None] | None = None
        self._stopping = False
        self._exit_task: asyncio.Future[None] | None = None

    @property
    def alive(self) -> bool:
        return self.exit is None

    @property
    def pid(self) -> int | None:
        # The SDK does not expose the pid; it is only used for status and clean-up.
        process = getattr(getattr(self.client, "_transport", None), "_process", None)
        pid = getattr(process, "pid", None)
        return pid if isinstance(pid, int) else None

    async def start(self) -> None:
        """Spawn the CLI and wait until it has initialized (no model request is sent)."""
        await self.client.connect()
        self._reader = asyncio.create_task(self._read(), name="agent-process-reader")

    async def _read(self) -> None:
        error: BaseException | None = None
        code: int | None = None
        try:
            async for message in self.client.receive_messages():
                await self.inbox.put(message)
        except ProcessError as exc:
            error, code = exc, exc.exit_code
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the stream broke: the process is as good as dead
            error = exc
        finally:
            self._finish(self._exit_record(error, code))

    def _finish(self, exit_: ProcessExit) -> None:
        if self.exit is not None:
            return
        self.exit = exit_
        self.inbox.put_nowait(exit_)
        if self.on_exit is not None:
            self._exit_task = asyncio.ensure_future(self.on_exit(self, exit_))

    def _exit_record(self, error: BaseException | None, code: int | None = None) -> ProcessExit:
        if self._stopping:
            return ProcessExit(expected=True, reason="stopped", exit_code=code)
        if code is None:
            code = getattr(getattr(getattr(self.client, "_transport", None), "_process", None),
                           "returncode", None)
        detail = f"{error.__class__.__name__}: {error}" if error else "the CLI process exited"
        return ProcessExit(expected=False, reason=detail, exit_code=code,
                           stderr=self.stderr_tail.text(STDERR_REPORT_BYTES))

    async def send(self, prompt: str | list[dict[str, Any]]) -> None:
        """Send a user message; the CLI queues it if a turn is running."""
        self.last_used = time.monotonic()
        if isinstance(prompt, str):
            await self.client.query(prompt)
            return

        async def one_message() -> AsyncIterator[dict[str, Any]]:
            yield {"type": "user", "uuid": str(uuid.uuid4()), "parent_tool_use_id": None,
                   "message": {"role": "user", "content": prompt}}

        await self.client.query(one_message())

    async def next_message(self) -> Any:
        """The next SDK message, or a :class:`ProcessExit` when the process is gone."""
        item = await self.inbox.get()
        if isinstance(item, ProcessExit):
            self.inbox.put_nowait(item)  # every later reader sees it too
        return item

    def drain(self, until: type | None = None) -> list[Any]:
        """Messages already waiting in the inbox, up to and including one of type ``until``.

        A :class:`ProcessExit` stays in the inbox for the next reader.
        """
        items = []
        while not self.inbox.empty():
            item = self.inbox.get_nowait()
            if isinstance(item, ProcessExit):
                self.inbox.put_nowait(item)
                break
            items.append(item)
            if until is not None and isinstance(item, until):
                break
        return items

    async def interrupt(self) -> None:
        await self.client.interrupt()

    async def set_model(self, model: str | None) -> None:
        await self.client.set_model(model)

    async def set_permission_mode(self, mode: str) -> None:
        mode_: PermissionMode = mode  # type: ignore[assignment]
        await self.client.set_permission_mode(mode_)

    async def stop(self) -> None:
        """Stop the CLI (terminate, then kill) and wait for the reader to finish."""
        self._stopping = True
        # The SDK closes its message stream only when disconnect() gets that far; a
        # process that died, or a stop that was cancelled, would leave it open.
        query = getattr(self.client, "_query", None)
        try:
            await self.client.disconnect()
        except Exception:  # a dead process may fail to close cleanly; it is gone either way
            logger.debug("disconnect failed", exc_info=True)
        finally:
            if query is not None:
                with contextlib.suppress(Exception):
                    query.close_receive_stream()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
        self._finish(ProcessExit(expected=True, reason="stopped"))
