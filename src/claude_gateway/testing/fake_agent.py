"""An in-memory :class:`~claude_gateway.runtime.agent.AgentProcess`: no CLI, no model.

It answers each prompt with the SDK's own message types, following directive lines in
the prompt (like the scripted mock model, a step at a time):

======================  ==================================================================
``@reply TEXT``         stream TEXT, then an assistant message and a successful result
``@ask TOOL {json}``    ask the session's ``can_use_tool`` callback, then go on
``@hang``               wait until interrupted (the result is ``aborted_streaming``)
``@hold``               wait until the test calls ``release()``, then go on
``@crash [CODE]``       die mid-turn (exit code CODE, -9 by default)
``@fail TEXT``          end the turn with an error result (``is_error``)
``@cost USD``           report this cost for the turn
======================  ==================================================================

A prompt with no directives is answered with its own text. ``FakeAgents`` is the
factory: it records every process it made and can make starts fail, so the logic around
processes (the turn state machine, eviction, spares, crashes, permissions, reaping) is
tested in milliseconds, and a benchmark can drive ten thousand runs through the gateway.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import uuid
from pathlib import Path
from typing import Any

from claude_agent_sdk import ClaudeAgentOptions
from claude_agent_sdk.types import (
    AssistantMessage,
    Message,
    PermissionResultAllow,
    ResultMessage,
    StreamEvent,
    TextBlock,
    ToolPermissionContext,
)

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

_pids = itertools.count(4_000_000)


def prompt_text(prompt: Prompt) -> str:
    if isinstance(prompt, str):
        return prompt
    return "\n".join(str(b.get("text", "")) for b in prompt if b.get("type") == "text")


class FakeAgentProcess:
    """A scripted process (see the module docstring for its directives)."""

    def __init__(self, options: ClaudeAgentOptions, *, stderr_tail: StderrTail,
                 on_exit: OnExit | None, binding: ProcessBinding,
                 fail_start: bool = False) -> None:
        self.options = options
        self.binding = binding
        self.stderr_tail = stderr_tail
        self.on_exit = on_exit
        self.exit: ProcessExit | None = None
        self.last_used = time.monotonic()
        self.cost_reported = 0.0
        self.session_id = options.resume or options.session_id or str(uuid.uuid4())
        self.model = options.model or "fake-model"
        self.permission_mode = str(options.permission_mode or "default")
        self.prompts: list[str] = []
        self.started = False
        self._released = asyncio.Event()
        self.refuse_controls = False
        """Answer interrupts and live changes as a CLI that does not take them would."""
        self._pid = next(_pids)
        self._fail_start = fail_start
        self._inbox: Inbox = Inbox()
        self._turns: asyncio.Queue[str] = asyncio.Queue()
        self._runner: asyncio.Task[None] | None = None
        self._interrupted = asyncio.Event()
        self._total_cost = 0.0
        self._ending: asyncio.Future[None] | None = None

    @property
    def alive(self) -> bool:
        return self.exit is None

    @property
    def pid(self) -> int | None:
        return self._pid if self.started else None

    @property
    def cwd(self) -> Path:
        return Path(str(self.options.cwd))

    async def start(self) -> None:
        await asyncio.sleep(0)
        if self._fail_start:
            self.stderr_tail.append("Error: the fake was told not to start")
            raise AgentStartFailed("ProcessError: the fake was told not to start")
        self.started = True
        self._runner = asyncio.create_task(self._run(), name="fake-agent")

    async def send(self, prompt: Prompt) -> None:
        if not self.alive or not self.started:
            raise AgentUnavailable("CLIConnectionError: the process is gone")
        self.last_used = time.monotonic()
        text = prompt_text(prompt)
        self.prompts.append(text)
        await self._turns.put(text)

    async def next_message(self) -> Message | ProcessExit:
        return await self._inbox.next()

    def drain(self, until: type | None = None) -> list[Message]:
        return self._inbox.drain(until)

    def _check_control(self) -> None:
        if not self.alive:
            raise AgentUnavailable("CLIConnectionError: the process is gone")
        if self.refuse_controls:
            raise AgentUnavailable("Exception: the fake refuses control requests")

    async def interrupt(self) -> None:
        self._check_control()
        self._interrupted.set()

    async def set_model(self, model: str | None) -> None:
        self._check_control()
        self.model = model or "fake-model"

    async def set_permission_mode(self, mode: str) -> None:
        self._check_control()
        self.permission_mode = mode

    async def stop(self) -> None:
        if self._runner is not None:
            self._runner.cancel()
            await asyncio.gather(self._runner, return_exceptions=True)
        await self._end(ProcessExit(expected=True, reason="stopped"))

    def release(self) -> None:
        """Let a turn waiting at ``@hold`` go on."""
        self._released.set()

    def crash(self, code: int = -9) -> None:
        """Die now, as a CLI killed from outside would."""
        if self._runner is not None:
            self._runner.cancel()
        self._ending = asyncio.ensure_future(self._end(ProcessExit(
            expected=False, reason=f"ProcessError: exit code {code}", exit_code=code,
            stderr=self.stderr_tail.text())))

    async def _end(self, exit_: ProcessExit) -> None:
        if self.exit is not None:
            return
        self.exit = exit_
        self._inbox.put(exit_)
        if self.on_exit is not None:
            await self.on_exit(self, exit_)

    # -- the script --------------------------------------------------------------------
    async def _run(self) -> None:
        while True:
            text = await self._turns.get()
            self._interrupted.clear()
            outcome = await self._turn(text)
            if outcome is not None:
                await self._end(outcome)
                return

    async def _turn(self, text: str) -> ProcessExit | None:
        lines = [line.strip() for line in text.splitlines()]
        directives = [line for line in lines if line.startswith("@")]
        reply, cost, failure = text, 0.0001, None
        for line in directives:
            name, _, rest = line.partition(" ")
            if name == "@reply":
                reply = rest.replace("\\n", "\n")
            elif name == "@cost":
                cost = float(rest)
            elif name == "@fail":
                failure = rest or "the fake failed"
            elif name == "@crash":
                code = int(rest) if rest else -9
                self.stderr_tail.append(f"fake crash {code}")
                return ProcessExit(expected=False, reason=f"ProcessError: exit code {code}",
                                   exit_code=code, stderr=self.stderr_tail.text())
            elif name == "@hold":
                await self._released.wait()
            elif name == "@hang":
                await self._interrupted.wait()
                self._result(None, cost=0.0, terminal="aborted_streaming", error=False)
                return None
            elif name == "@ask":
                tool, _, raw = rest.partition(" ")
                await self._ask(tool, json.loads(raw or "{}"))
        if failure is not None:
            self._result(failure, cost=cost, terminal="completed", error=True)
            return None
        self._inbox.put(StreamEvent(uuid=str(uuid.uuid4()), session_id=self.session_id,
                                           event={"type": "content_block_delta", "index": 0,
                                                  "delta": {"type": "text_delta",
                                                            "text": reply}}))
        self._inbox.put(AssistantMessage(
            content=[TextBlock(text=reply)], model=self.model,
            usage={"input_tokens": 10, "output_tokens": 5}))
        self._result(reply, cost=cost, terminal="completed", error=False)
        return None

    async def _ask(self, tool: str, tool_input: dict[str, Any]) -> None:
        callback = self.options.can_use_tool
        if callback is None:
            return
        answer = await callback(tool, tool_input, ToolPermissionContext(
            tool_use_id=f"toolu_{uuid.uuid4().hex[:12]}"))
        verdict = "allowed" if isinstance(answer, PermissionResultAllow) else "denied"
        self._inbox.put(AssistantMessage(
            content=[TextBlock(text=f"{tool} {verdict}")], model=self.model))

    def _result(self, text: str | None, *, cost: float, terminal: str, error: bool) -> None:
        self._total_cost += cost
        self._inbox.put(ResultMessage(
            subtype="success", duration_ms=1, duration_api_ms=1, is_error=error, num_turns=1,
            session_id=self.session_id, stop_reason="end_turn", result=text,
            total_cost_usd=round(self._total_cost, 10), terminal_reason=terminal,
            usage={"input_tokens": 10, "output_tokens": 5},
            errors=[text] if error and text else None))


class FakeAgents:
    """An AgentFactory of fake processes; remembers them (unless ``remember`` is false,
    for a long-running gateway), and can refuse to start some."""

    def __init__(self, *, remember: bool = True) -> None:
        self.remember = remember
        self.made: list[FakeAgentProcess] = []
        self.fail_starts = 0
        """How many of the next starts fail."""

    def __call__(self, options: ClaudeAgentOptions, *, stderr_tail: StderrTail,
                 on_exit: OnExit | None, binding: ProcessBinding) -> FakeAgentProcess:
        fail = self.fail_starts > 0
        self.fail_starts = max(0, self.fail_starts - 1)
        process = FakeAgentProcess(options, stderr_tail=stderr_tail, on_exit=on_exit,
                                   binding=binding, fail_start=fail)
        if self.remember:
            self.made.append(process)
        return process

    def live(self) -> list[FakeAgentProcess]:
        return [p for p in self.made if p.started and p.alive]
