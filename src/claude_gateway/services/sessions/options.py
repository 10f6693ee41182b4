"""What a client may ask of a new session (:class:`SessionCreate`), and how the options
fixed at its creation are stored with it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class SessionCreate:
    """What a client may set when it creates a session."""

    model: str | None = None
    workspace: str | None = None
    permission_mode: str | None = None
    system_prompt: str | None = None
    append_system_prompt: str | None = None
    allowed_tools: list[str] = field(default_factory=list)
    disallowed_tools: list[str] = field(default_factory=list)
    max_turns: int | None = None
    effort: str | None = None
    add_dirs: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    resume: str | None = None
    fork_from: str | None = None
    json_schema: dict[str, Any] | None = None
    share_workspace: bool = False
    """Let this session's turns run while another agent works in its workspace."""
    kind: str = "session"
    """``session``, or ``run`` (a one-shot run: ended after its turn, not listed)."""
    external_id: str | None = None
    """A name the client gives the session (unique per owner), e.g. X-Session-Id."""
    non_interactive: bool = False
    """Permission prompts are denied at once: the client cannot answer them."""

    def stored_options(self, *, add_dirs: list[str], env: dict[str, str],
                       fork_of: str | None) -> dict[str, Any]:
        """The ``options`` JSON kept with the session (checked values given)."""
        return {
            "systemPrompt": self.system_prompt,
            "appendSystemPrompt": self.append_system_prompt,
            "allowedTools": self.allowed_tools,
            "disallowedTools": self.disallowed_tools,
            "maxTurns": self.max_turns,
            "effort": self.effort,
            "addDirs": add_dirs,
            "env": env,
            "forkOf": fork_of,
            "jsonSchema": self.json_schema,
            "shareWorkspace": self.share_workspace,
            "nonInteractive": self.non_interactive,
        }
