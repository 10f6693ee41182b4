"""Plain records the store reads and writes."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

ACTIVE_SESSION_STATUSES = ("starting", "idle", "running", "stopped", "failed")
"""Statuses of sessions that still count against the session cap."""


@dataclass
class Usage:
    """Token and cost totals (per turn or accumulated per session)."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_input_tokens: int = 0
    cache_creation_input_tokens: int = 0
    total_cost_usd: float = 0.0

    def add(self, other: Usage) -> Usage:
        return Usage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.cache_read_input_tokens + other.cache_read_input_tokens,
            self.cache_creation_input_tokens + other.cache_creation_input_tokens,
            round(self.total_cost_usd + other.total_cost_usd, 10),
        )


@dataclass
class SessionRecord:
    id: str
    status: str
    workspace: str
    permission_mode: str
    created_at: datetime
    last_activity_at: datetime
    owner: str = ""
    kind: str = "session"
    model: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    claude_session_id: str | None = None
    expires_at: datetime | None = None
    ended_at: datetime | None = None
    last_seq: int = 0
    message_count: int = 0
    usage: Usage = field(default_factory=Usage)
    context_window: int | None = None
    context_tokens: int | None = None
    external_id: str | None = None
    node: str | None = None
    """The node running its CLI (holding a live lease), if any; read, never written."""
    """A name the client gave the session (unique per owner)."""
    home: str = ""
    """The directory under the workspace root the session is confined to."""
    workspace_path: str = ""
    """The workspace's directory relative to the root (``home/workspace``)."""


@dataclass
class TurnRecord:
    id: str
    session_id: str
    status: str
    prompt: Any
    created_at: datetime
    started_at: datetime | None = None
    ended_at: datetime | None = None
    outcome: dict[str, Any] | None = None
    client_id: str | None = None


@dataclass
class PermissionRecord:
    """A tool call waiting for (or given) a person's decision."""

    id: str
    session_id: str
    tool_name: str
    input: dict[str, Any]
    status: str
    """``pending``, ``allowed``, ``denied``, ``expired`` or ``cancelled``."""
    created_at: datetime
    turn_id: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    """What the CLI said about it: description, title, suggestions, toolUseId, ..."""
    expires_at: datetime | None = None
    resolved_at: datetime | None = None
    resolution: dict[str, Any] | None = None


@dataclass(frozen=True)
class EventRecord:
    session_id: str
    seq: int
    type: str
    ts: datetime
    data: dict[str, Any]
    turn_id: str | None = None


@dataclass(frozen=True)
class NewEvent:
    """An event before the store gives it its sequence number.

    With ``message_role`` set, the store also adds ``message_content`` to the session's
    message history, in the same transaction.
    """

    type: str
    data: dict[str, Any]
    turn_id: str | None = None
    message_role: str | None = None
    message_content: Any = None
    announce: Announcement | None = None
    """Set when webhooks may announce it: the store then queues a delivery for each of
    the session owner's endpoints that subscribe to it, in the same transaction."""


@dataclass(frozen=True)
class Announcement:
    """What a webhook delivery says of an event: its webhook type (``session.expired``
    is a ``session.ended`` of an expired session) and its data, kept thin."""

    type: str
    data: dict[str, Any]


@dataclass(frozen=True)
class Fence:
    """Who may write for a session: the node holding its lease, at this generation."""

    node_id: str
    generation: int


@dataclass(frozen=True)
class LeaseRecord:
    session_id: str
    node_id: str
    generation: int
    expires_at: datetime
    taken_from: str | None = None
    """On a claim: the other node whose (run out) lease this one replaced."""


@dataclass(frozen=True)
class NodeRecord:
    id: str
    started_at: datetime
    last_seen_at: datetime
    draining: bool = False


@dataclass
class StateChange:
    """State written in the same transaction as the events that announce it."""

    session: dict[str, Any] = field(default_factory=dict)
    """Session columns to set."""
    new_turn: TurnRecord | None = None
    turn_id: str | None = None
    turn: dict[str, Any] = field(default_factory=dict)
    """Columns to set on turn ``turn_id``."""
    usage: Usage | None = None
    """Added to the session's totals and to the usage ledger (for ``turn_id``)."""
    usage_model: str | None = None
    new_permission: PermissionRecord | None = None
    permission_id: str | None = None
    permission: dict[str, Any] = field(default_factory=dict)
    """Columns to set on permission ``permission_id``."""
    fence: Fence | None = None
    """Written only if this node still holds the session's lease at this generation
    (FencedOut otherwise)."""


@dataclass(frozen=True)
class MessageRecord:
    id: int
    session_id: str
    role: str
    content: Any
    created_at: datetime
    turn_id: str | None = None


@dataclass
class ApiKeyRecord:
    """An API key as stored: its SHA-256, never the key."""

    name: str
    key_hash: str
    prefix: str
    created_at: datetime
    admin: bool = False
    rate_limit: str | None = None
    revoked_at: datetime | None = None


@dataclass(frozen=True)
class SessionCaps:
    """The session caps a create must pass (0: none)."""

    total: int
    per_owner: int
    statuses: tuple[str, ...] = ACTIVE_SESSION_STATUSES


@dataclass
class CommandRecord:
    """A command sent to the node running a session, and its answer."""

    session_id: str
    target_node: str
    from_node: str
    kind: str
    payload: dict[str, Any]
    status: str = "pending"
    id: int = 0
    answer: dict[str, Any] | None = None
    created_at: datetime | None = None


@dataclass
class WebhookRecord:
    id: str
    owner: str
    url: str
    events: list[str]
    secret: str
    created_at: datetime
    updated_at: datetime
    description: str = ""
    enabled: bool = True
    disabled_at: datetime | None = None
    disabled_reason: str | None = None
    failing_since: datetime | None = None

    def wants(self, event_type: str) -> bool:
        return "*" in self.events or event_type in self.events


@dataclass
class DeliveryRecord:
    id: str
    webhook_id: str
    owner: str
    event_type: str
    data: dict[str, Any]
    status: str
    created_at: datetime
    attempts: int = 0
    session_id: str | None = None
    turn_id: str | None = None
    seq: int | None = None
    next_attempt_at: datetime | None = None
    claimed_by: str | None = None
    claimed_until: datetime | None = None
    last_status_code: int | None = None
    last_error: str | None = None
    last_latency_ms: int | None = None
    last_attempt_at: datetime | None = None


@dataclass(frozen=True)
class AttemptResult:
    """How one attempt of a delivery went."""

    status_code: int | None
    error: str | None
    latency_ms: int
    at: datetime

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300
