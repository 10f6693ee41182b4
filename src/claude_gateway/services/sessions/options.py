"""What a client may ask of a new session (:class:`SessionCreate`), and the options a
session keeps for its whole life (:class:`SessionOptions`, stored with it as JSON)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from claude_gateway.runtime.options import AgentOptions


@dataclass(frozen=True)
class SessionOptions:
    """Fixed at a session's creation: its agent's spawn-time options and how the
    gateway treats it."""

    agent: AgentOptions = field(default_factory=AgentOptions)
    fork_of: str | None = None
    """The Claude conversation its first process forks."""
    share_workspace: bool = False
    """Its turns may run while another agent works in its workspace."""
    non_interactive: bool = False
    """Permission prompts are denied at once: its client cannot answer them."""

    def to_json(self) -> dict[str, Any]:
        return {**self.agent.to_json(), "forkOf": self.fork_of,
                "shareWorkspace": self.share_workspace,
                "nonInteractive": self.non_interactive}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SessionOptions:
        return cls(agent=AgentOptions.from_json(data), fork_of=data.get("forkOf"),
                   share_workspace=bool(data.get("shareWorkspace")),
                   non_interactive=bool(data.get("nonInteractive")))


@dataclass
class SessionCreate:
    """What a client may set when it creates a session (or a run)."""

    model: str | None = None
    workspace: str | None = None
    permission_mode: str | None = None
    agent: AgentOptions = field(default_factory=AgentOptions)
    metadata: dict[str, Any] = field(default_factory=dict)
    resume: str | None = None
    """A Claude conversation id of the caller's to carry on."""
    fork_from: str | None = None
    """A session id of the caller's whose conversation to fork."""
    share_workspace: bool = False
    kind: str = "session"
    """``session``, or ``run`` (a one-shot run: ended after its turn, not listed)."""
    external_id: str | None = None
    """A name the client gives the session (unique per owner), e.g. X-Session-Id."""
    non_interactive: bool = False
