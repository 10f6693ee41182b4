"""``SdkAgentProcess``: the real :class:`~claude_gateway.runtime.agent.AgentProcess`, one
``ClaudeSDKClient`` running the CLI.

A reader task drains the client's message stream into an inbox for the session's turn
runner. When the process dies, for any reason, the inbox receives a ProcessExit and
``on_exit`` is called once. The SDK's exceptions are turned into the gateway's here and
nowhere else; the two places that need the SDK's private parts are marked.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from claude_agent_sdk import ClaudeAgentOptions, ClaudeSDKClient, ClaudeSDKError, ProcessError
from claude_agent_sdk.types import Message, PermissionMode

from claude_gateway.runtime.agent import (
    AgentStartFailed,
    AgentUnavailable,
    Inbox,
    OnExit,
    ProcessBinding,
    ProcessExit,
    Prompt,
)
from claude_gateway.runtime.stderr_tail import StderrTail

logger = logging.getLogger("claude_gateway.runtime")

STDERR_REPORT_BYTES = 8 * 1024
"""How much of the stderr tail goes into an event (the full tail stays in memory)."""


class SdkAgentProcess:
    """One CLI process, run by the claude-agent-sdk."""

    def __init__(self, options: ClaudeAgentOptions, *, stderr_tail: StderrTail,
                 on_exit: OnExit | None = None, binding: ProcessBinding | None = None) -> None:
        self.options = options
        self.binding = binding or ProcessBinding()
        self.stderr_tail = stderr_tail
        self.on_exit = on_exit
        self.client = ClaudeSDKClient(options)
        self.inbox: Inbox = Inbox()
        self.exit: ProcessExit | None = None
        self.last_used = time.monotonic()
        self.cost_reported = 0.0
        self._reader: asyncio.Task[None] | None = None
        self._stopping = False
        self._exit_task: asyncio.Future[None] | None = None

    @property
    def alive(self) -> bool:
        return self.exit is None

    @property
    def cwd(self) -> Path:
        return Path(str(self.options.cwd))

    # -- the SDK's private parts, in one place --------------------------------------
    # The SDK exposes neither the CLI's pid (needed for status, pid files and clean-up)
    # nor, when disconnect() fails half way, a way to close the message stream it
    # leaves open. Both read the client's internals; an SDK upgrade may move them.

    def _sdk_process(self) -> Any:
        return getattr(getattr(self.client, "_transport", None), "_process", None)

    def _sdk_query(self) -> Any:
        return getattr(self.client, "_query", None)

    @property
    def pid(self) -> int | None:
        pid = getattr(self._sdk_process(), "pid", None)
        return pid if isinstance(pid, int) else None

    # -- life -------------------------------------------------------------------------
    async def start(self) -> None:
        try:
            await self.client.connect()
        except (ClaudeSDKError, OSError) as exc:
            raise AgentStartFailed(f"{exc.__class__.__name__}: {exc}") from exc
        self._reader = asyncio.create_task(self._read(), name="agent-process-reader")

    async def _read(self) -> None:
        error: BaseException | None = None
        code: int | None = None
        try:
            async for message in self.client.receive_messages():
                self.inbox.put(message)
        except ProcessError as exc:
            error, code = exc, exc.exit_code
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            error = exc
        finally:
            self._finish(self._exit_record(error, code))

    def _finish(self, exit_: ProcessExit) -> None:
        if self.exit is not None:
            return
        self.exit = exit_
        self.inbox.put(exit_)
        if self.on_exit is not None:
            self._exit_task = asyncio.ensure_future(self.on_exit(self, exit_))

    def _exit_record(self, error: BaseException | None, code: int | None = None) -> ProcessExit:
        if self._stopping:
            return ProcessExit(expected=True, reason="stopped", exit_code=code)
        if code is None:
            code = getattr(self._sdk_process(), "returncode", None)
        detail = f"{error.__class__.__name__}: {error}" if error else "the CLI process exited"
        return ProcessExit(expected=False, reason=detail, exit_code=code,
                           stderr=self.stderr_tail.text(STDERR_REPORT_BYTES))

    # -- talking to it ------------------------------------------------------------------
    async def send(self, prompt: Prompt) -> None:
        self.last_used = time.monotonic()
        try:
            if isinstance(prompt, str):
                await self.client.query(prompt)
                return

            async def one_message() -> AsyncIterator[dict[str, Any]]:
                yield {"type": "user", "uuid": str(uuid.uuid4()), "parent_tool_use_id": None,
                       "message": {"role": "user", "content": prompt}}

            await self.client.query(one_message())
        except (ClaudeSDKError, OSError) as exc:
            raise AgentUnavailable(f"{exc.__class__.__name__}: {exc}") from exc

    async def next_message(self) -> Message | ProcessExit:
        return await self.inbox.next()

    def drain(self, until: type | None = None) -> list[Message]:
        return self.inbox.drain(until)

    async def interrupt(self) -> None:
        await self._control(self.client.interrupt())

    async def set_model(self, model: str | None) -> None:
        await self._control(self.client.set_model(model))

    async def set_permission_mode(self, mode: str) -> None:
        mode_: PermissionMode = mode  # type: ignore[assignment]
        await self._control(self.client.set_permission_mode(mode_))

    @staticmethod
    async def _control(request: Any) -> None:
        try:
            await request
        except Exception as exc:
            # The SDK answers a refused control request, or one that timed out, with a
            # bare Exception (besides its ClaudeSDKError and OS errors): all of them mean
            # the process did not do it.
            raise AgentUnavailable(f"{exc.__class__.__name__}: {exc}") from exc

    async def stop(self) -> None:
        self._stopping = True
        # The SDK closes its message stream only when disconnect() gets that far; a
        # process that died, or a stop that was cancelled, would leave it open.
        query = self._sdk_query()
        try:
            await self.client.disconnect()
        except Exception:
            logger.debug("disconnect failed", exc_info=True)
        finally:
            if query is not None:
                try:
                    query.close_receive_stream()
                except Exception:
                    logger.debug("closing the SDK's message stream failed", exc_info=True)
        if self._reader is not None:
            self._reader.cancel()
            # wait() neither raises the reader's end nor swallows our own cancellation.
            await asyncio.wait({self._reader})
        self._finish(ProcessExit(expected=True, reason="stopped"))


def sdk_agent_factory(options: ClaudeAgentOptions, *, stderr_tail: StderrTail,
                      on_exit: OnExit | None, binding: ProcessBinding) -> SdkAgentProcess:
    """The default AgentFactory: real CLI processes."""
    return SdkAgentProcess(options, stderr_tail=stderr_tail, on_exit=on_exit, binding=binding)
