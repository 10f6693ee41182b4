"""What the scripted model says: steps, prompt directives, and how a request picks its step.

Pure functions only; the HTTP server lives in ``server.py``.

A prompt can script the model with one directive per line::

    @thinking Let me write the file.
    @tool Write {"file_path": "hello.txt", "content": "hi"}
    @slow 0.2
    @reply All done.

``@reply`` and ``@tool`` end a step (one model response); ``@text``, ``@thinking`` and
``@tool+`` add to the step being built; ``@slow``, ``@delay``, ``@fail``, ``@usage`` and
``@stop`` modify it. Request *n* after the prompt (counted by the assistant messages
that follow it) gets step *n*. ``\\n`` in a text argument is a newline.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any, Literal

CLI_INJECTED_PREFIXES = (
    "<system-reminder>",
    "<local-command-",
    "<command-name>",
    "<command-message>",
    "<command-args>",
)
"""Text blocks the CLI adds to user messages (reminders, local command echoes)."""

DIRECTIVES = frozenset(
    {"reply", "text", "thinking", "tool", "tool+", "slow", "delay", "fail", "usage", "stop"}
)
_DIRECTIVE_LINE = re.compile(r"^@(?P<verb>[a-z]+\+?)(?:[ \t]+(?P<arg>.*))?$")


class ScriptError(ValueError):
    """A directive or a scripted step that cannot be understood."""


@dataclass(frozen=True)
class ToolCall:
    """A ``tool_use`` block the model emits."""

    name: str
    input: dict[str, Any]
    id: str | None = None


@dataclass(frozen=True)
class Block:
    """One content block of a scripted response."""

    type: Literal["text", "thinking", "tool_use"]
    text: str = ""
    tool: ToolCall | None = None


@dataclass
class Step:
    """One scripted model response, with how it is delivered."""

    blocks: list[Block] = field(default_factory=list)
    delay: float = 0.0
    """Seconds to wait before answering."""
    chunk_delay: float = 0.0
    """Seconds between streamed chunks (a slow stream)."""
    fail_status: int | None = None
    fail_times: int | None = None
    """How many requests fail with ``fail_status`` before the step answers; None = all."""
    input_tokens: int | None = None
    output_tokens: int | None = None
    stop_reason: str | None = None

    @property
    def tool_calls(self) -> list[ToolCall]:
        return [b.tool for b in self.blocks if b.tool is not None]

    @property
    def effective_stop_reason(self) -> str:
        if self.stop_reason:
            return self.stop_reason
        return "tool_use" if self.tool_calls else "end_turn"

    @classmethod
    def reply(cls, text: str, **kwargs: Any) -> Step:
        return cls(blocks=[Block("text", text=text)], **kwargs)

    @classmethod
    def tool(cls, name: str, input: dict[str, Any], **kwargs: Any) -> Step:
        return cls(blocks=[Block("tool_use", tool=ToolCall(name, input))], **kwargs)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Step:
        """Build a step from its JSON form (the admin endpoint and ``enqueue`` accept it).

        Keys: ``reply``/``text`` (str), ``thinking`` (str), ``tool`` ({name, input}),
        ``tools`` (list of them), ``delay``, ``chunkDelay``, ``fail`` ({status, times}),
        ``usage`` ({inputTokens, outputTokens}), ``stopReason``.
        """
        known = {
            "reply", "text", "thinking", "tool", "tools", "delay", "chunkDelay", "fail",
            "usage", "stopReason",
        }
        unknown = set(data) - known
        if unknown:
            raise ScriptError(f"unknown step keys: {sorted(unknown)}")
        step = cls()
        if "thinking" in data:
            step.blocks.append(Block("thinking", text=str(data["thinking"])))
        for key in ("text", "reply"):
            if key in data:
                step.blocks.append(Block("text", text=str(data[key])))
        tools = list(data.get("tools", []))
        if "tool" in data:
            tools.append(data["tool"])
        for tool in tools:
            if not isinstance(tool, dict) or "name" not in tool:
                raise ScriptError(f"a tool needs a name and an input: {tool!r}")
            step.blocks.append(
                Block("tool_use", tool=ToolCall(str(tool["name"]), dict(tool.get("input", {}))))
            )
        step.delay = float(data.get("delay", 0.0))
        step.chunk_delay = float(data.get("chunkDelay", 0.0))
        if "fail" in data:
            fail = data["fail"]
            step.fail_status = int(fail["status"])
            step.fail_times = None if fail.get("times") is None else int(fail["times"])
        if "usage" in data:
            step.input_tokens = data["usage"].get("inputTokens")
            step.output_tokens = data["usage"].get("outputTokens")
        step.stop_reason = data.get("stopReason")
        return step


def _text_arg(verb: str, arg: str | None) -> str:
    if arg is None:
        raise ScriptError(f"@{verb} needs text")
    return arg.replace("\\n", "\n")


def _float_arg(verb: str, arg: str | None) -> float:
    try:
        value = float(arg or "")
    except ValueError:
        raise ScriptError(f"@{verb} needs a number of seconds, got {arg!r}") from None
    if value < 0:
        raise ScriptError(f"@{verb} needs a non-negative number, got {arg!r}")
    return value


def _tool_arg(verb: str, arg: str | None) -> ToolCall:
    name, _, raw = (arg or "").partition(" ")
    if not name:
        raise ScriptError(f"@{verb} needs a tool name and a JSON input")
    try:
        value = json.loads(raw) if raw.strip() else {}
    except json.JSONDecodeError as exc:
        raise ScriptError(f"@{verb} {name}: input is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ScriptError(f"@{verb} {name}: input must be a JSON object")
    return ToolCall(name, value)


def parse_directives(text: str) -> list[Step]:
    """Parse the directive lines of a prompt into steps; [] when it has none."""
    steps: list[Step] = []
    current: Step | None = None
    for raw_line in text.splitlines():
        match = _DIRECTIVE_LINE.match(raw_line.strip())
        if not match or match["verb"] not in DIRECTIVES:
            continue
        verb, arg = match["verb"], match["arg"]
        if current is None:
            current = Step()
        ends_step = False
        if verb in ("reply", "text"):
            current.blocks.append(Block("text", text=_text_arg(verb, arg)))
            ends_step = verb == "reply"
        elif verb == "thinking":
            current.blocks.append(Block("thinking", text=_text_arg(verb, arg)))
        elif verb in ("tool", "tool+"):
            current.blocks.append(Block("tool_use", tool=_tool_arg(verb, arg)))
            ends_step = verb == "tool"
        elif verb == "slow":
            current.chunk_delay = _float_arg(verb, arg)
        elif verb == "delay":
            current.delay = _float_arg(verb, arg)
        elif verb == "fail":
            parts = (arg or "").split()
            if not parts or not parts[0].isdigit() or (len(parts) > 1 and not parts[1].isdigit()):
                raise ScriptError(f"@fail needs a status and optionally a count, got {arg!r}")
            current.fail_status = int(parts[0])
            current.fail_times = int(parts[1]) if len(parts) > 1 else None
        elif verb == "usage":
            parts = (arg or "").split()
            if len(parts) != 2 or not all(p.isdigit() for p in parts):
                raise ScriptError(f"@usage needs input and output token counts, got {arg!r}")
            current.input_tokens, current.output_tokens = int(parts[0]), int(parts[1])
        elif verb == "stop":
            current.stop_reason = _text_arg(verb, arg)
        if ends_step:
            steps.append(current)
            current = None
    if current is not None:
        if not current.blocks:
            # Modifiers alone (e.g. "@fail 500") still make a response: say something.
            current.blocks.append(Block("text", text="(mock model)"))
        steps.append(current)
    return steps


def _text_blocks(content: Any) -> list[str]:
    if isinstance(content, str):
        return [content]
    if isinstance(content, list):
        return [
            str(b.get("text", ""))
            for b in content
            if isinstance(b, dict) and b.get("type") == "text"
        ]
    return []


def human_text(content: Any) -> str:
    """The text a person wrote in a message's content, without what the CLI injected."""
    parts = [t for t in _text_blocks(content)
             if not t.lstrip().startswith(CLI_INJECTED_PREFIXES)]
    return "\n".join(parts)


@dataclass(frozen=True)
class PromptPosition:
    """Where the latest human prompt sits in a request and which step it is at."""

    index: int
    text: str
    step: int

    @property
    def key(self) -> str:
        digest = hashlib.sha256(self.text.encode()).hexdigest()[:16]
        return f"{self.index}:{digest}"


def locate_prompt(messages: list[dict[str, Any]]) -> PromptPosition | None:
    """Find the latest user message with human text and count the responses since."""
    for index in range(len(messages) - 1, -1, -1):
        message = messages[index]
        if message.get("role") != "user":
            continue
        text = human_text(message.get("content"))
        if text.strip():
            step = sum(1 for m in messages[index + 1 :] if m.get("role") == "assistant")
            return PromptPosition(index=index, text=text, step=step)
    return None
