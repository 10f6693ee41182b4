"""A session's settings to ``ClaudeAgentOptions`` (pure)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, cast

from claude_agent_sdk import ClaudeAgentOptions, SessionStore
from claude_agent_sdk.types import (
    CanUseTool,
    EffortLevel,
    PermissionMode,
    SystemPromptPreset,
)

PERMISSION_MODES = ("default", "acceptEdits", "plan", "dontAsk", "bypassPermissions")
EFFORT_LEVELS = ("low", "medium", "high", "xhigh", "max")


@dataclass(frozen=True)
class AgentOptions:
    """What a session asks of its agent that is fixed once the CLI has started (the
    one typed form of these options, from the API models to ``ClaudeAgentOptions``)."""

    system_prompt: str | None = None
    """Replaces Claude Code's system prompt."""
    append_system_prompt: str | None = None
    allowed_tools: list[str] = field(default_factory=list)
    disallowed_tools: list[str] = field(default_factory=list)
    max_turns: int | None = None
    effort: str | None = None
    add_dirs: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    json_schema: dict[str, Any] | None = None
    """Structured output: the final answer must match this JSON schema."""

    def to_json(self) -> dict[str, Any]:
        """As stored with a session (camelCase keys)."""
        return {_CAMEL[name]: value for name, value in asdict(self).items()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AgentOptions:
        return cls(
            system_prompt=data.get("systemPrompt"),
            append_system_prompt=data.get("appendSystemPrompt"),
            allowed_tools=list(data.get("allowedTools") or []),
            disallowed_tools=list(data.get("disallowedTools") or []),
            max_turns=data.get("maxTurns"),
            effort=data.get("effort"),
            add_dirs=list(data.get("addDirs") or []),
            env=dict(data.get("env") or {}),
            json_schema=data.get("jsonSchema"),
        )


_CAMEL = {f.name: f.name.split("_")[0] + "".join(w.title() for w in f.name.split("_")[1:])
          for f in fields(AgentOptions)}


@dataclass(frozen=True)
class AgentSpec:
    """Everything a process is started with: the model and permission mode (which can
    change on a live process) and the options fixed at spawn."""

    model: str | None = None
    permission_mode: str = "default"
    options: AgentOptions = field(default_factory=AgentOptions)


def spawn_options(spec: AgentSpec) -> dict[str, Any]:
    """What of a spec is fixed once the CLI has started (everything but the model and the
    permission mode, which change on a live process)."""
    return asdict(spec.options)


@dataclass(frozen=True)
class Launch:
    """How this particular process starts: a new conversation, a resume or a fork."""

    session_id: str | None = None
    resume: str | None = None
    fork: bool = False


def system_prompt_of(options: AgentOptions) -> str | SystemPromptPreset:
    # Without the preset the SDK sends an empty system prompt, not Claude Code's own.
    if options.system_prompt is not None:
        return options.system_prompt
    preset: SystemPromptPreset = {"type": "preset", "preset": "claude_code"}
    if options.append_system_prompt:
        preset["append"] = options.append_system_prompt
    return preset


def build_options(
    spec: AgentSpec,
    *,
    cwd: Path,
    cli_path: Path,
    base_env: dict[str, str],
    launch: Launch,
    stderr: Callable[[str], None] | None = None,
    session_store: SessionStore | None = None,
    include_partial_messages: bool = True,
    can_use_tool: CanUseTool | None = None,
    allow_bypass: bool = False,
    running_as_root: bool = False,
    max_buffer_size: int | None = None,
) -> ClaudeAgentOptions:
    """Everything the CLI needs to start for this session.

    With ``allow_bypass`` every process is started so that it can be switched to
    ``bypassPermissions`` later (that is fixed at spawn); as root the CLI also needs
    ``IS_SANDBOX=1`` to accept it.
    """
    # The operator's variables win over the session's (which are checked besides).
    options = spec.options
    env = {**options.env, **base_env}
    mode = cast(PermissionMode, spec.permission_mode)
    effort = cast(EffortLevel, options.effort) if options.effort else None
    extra_args: dict[str, str | None] = {}
    if allow_bypass:
        extra_args["allow-dangerously-skip-permissions"] = None
        if running_as_root:
            env["IS_SANDBOX"] = "1"
    return ClaudeAgentOptions(
        cwd=cwd,
        cli_path=cli_path,
        env=env,
        model=spec.model,
        permission_mode=mode,
        system_prompt=system_prompt_of(options),
        allowed_tools=list(options.allowed_tools),
        disallowed_tools=list(options.disallowed_tools),
        max_turns=options.max_turns,
        effort=effort,
        add_dirs=[Path(d) for d in options.add_dirs],
        include_partial_messages=include_partial_messages,
        session_id=launch.session_id,
        resume=launch.resume,
        fork_session=launch.fork,
        stderr=stderr,
        session_store=session_store,
        extra_args=extra_args,
        can_use_tool=can_use_tool,
        max_buffer_size=max_buffer_size,
        output_format=({"type": "json_schema", "schema": options.json_schema}
                       if options.json_schema is not None else None),
    )
