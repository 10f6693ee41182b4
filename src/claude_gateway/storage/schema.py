"""Tables of the store (SQLAlchemy Core). Migrations in ``migrations/`` create them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given to the store")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        moment: datetime = datetime.fromisoformat(value) if isinstance(value, str) else value
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


metadata = MetaData()

sessions = Table(
    "sessions",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("owner", String(128), nullable=False, default=""),
    Column("kind", String(16), nullable=False, default="session"),
    Column("status", String(16), nullable=False),
    Column("model", String(128)),
    Column("workspace", String(512), nullable=False),
    Column("permission_mode", String(32), nullable=False),
    Column("options", JSON, nullable=False),
    Column("metadata", JSON, nullable=False),
    Column("claude_session_id", String(64)),
    Column("created_at", UTCDateTime, nullable=False),
    Column("last_activity_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime),
    Column("ended_at", UTCDateTime),
    Column("last_seq", BigInteger, nullable=False, default=0),
    Column("message_count", Integer, nullable=False, default=0),
    Column("input_tokens", BigInteger, nullable=False, default=0),
    Column("output_tokens", BigInteger, nullable=False, default=0),
    Column("cache_read_input_tokens", BigInteger, nullable=False, default=0),
    Column("cache_creation_input_tokens", BigInteger, nullable=False, default=0),
    Column("total_cost_usd", Float, nullable=False, default=0.0),
    Column("context_window", BigInteger),
    Column("context_tokens", BigInteger),
    Column("external_id", String(256)),
    Column("home", String(128), nullable=False, default=""),
    Column("workspace_path", String(1024), nullable=False, default=""),
    Index("ix_sessions_owner_created", "owner", "created_at", "id"),
    Index("ux_sessions_external_id", "owner", "external_id", unique=True),
    Index("ix_sessions_status", "status"),
    Index("ix_sessions_expires", "expires_at"),
    Index("ix_sessions_workspace_path", "workspace_path", "last_activity_at"),
    Index("ix_sessions_claude_session_id", "claude_session_id"),
)

turns = Table(
    "turns",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("session_id", String(64), ForeignKey("sessions.id", ondelete="CASCADE"),
           nullable=False),
    Column("status", String(16), nullable=False),
    Column("prompt", JSON, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("started_at", UTCDateTime),
    Column("ended_at", UTCDateTime),
    Column("outcome", JSON),
    Column("client_id", String(128)),
    Index("ix_turns_session", "session_id", "created_at"),
    Index("ux_turns_client_id", "session_id", "client_id", unique=True),
    Index("ix_turns_status", "status"),
)

permissions = Table(
    "permissions",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("session_id", String(64), ForeignKey("sessions.id", ondelete="CASCADE"),
           nullable=False),
    Column("turn_id", String(64)),
    Column("tool_name", String(256), nullable=False),
    Column("input", JSON, nullable=False),
    Column("details", JSON, nullable=False),
    Column("status", String(16), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime),
    Column("resolved_at", UTCDateTime),
    Column("resolution", JSON),
    Index("ix_permissions_session_status", "session_id", "status"),
)

events = Table(
    "events",
    metadata,
    Column("session_id", String(64), ForeignKey("sessions.id", ondelete="CASCADE"),
           primary_key=True),
    Column("seq", BigInteger, primary_key=True),
    Column("turn_id", String(64)),
    Column("type", String(64), nullable=False),
    Column("ts", UTCDateTime, nullable=False),
    Column("data", JSON, nullable=False),
)

messages = Table(
    "messages",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("session_id", String(64), ForeignKey("sessions.id", ondelete="CASCADE"),
           nullable=False),
    Column("turn_id", String(64)),
    Column("role", String(16), nullable=False),
    Column("content", JSON, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Index("ix_messages_session", "session_id", "id"),
)

usage = Table(
    "usage",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("session_id", String(64), ForeignKey("sessions.id", ondelete="CASCADE"),
           nullable=False),
    Column("turn_id", String(64)),
    Column("owner", String(128), nullable=False, default=""),
    Column("model", String(128)),
    Column("input_tokens", BigInteger, nullable=False, default=0),
    Column("output_tokens", BigInteger, nullable=False, default=0),
    Column("cache_read_input_tokens", BigInteger, nullable=False, default=0),
    Column("cache_creation_input_tokens", BigInteger, nullable=False, default=0),
    Column("cost_usd", Float, nullable=False, default=0.0),
    Column("created_at", UTCDateTime, nullable=False),
    Index("ix_usage_owner_created", "owner", "created_at"),
)

transcript_entries = Table(
    "transcript_entries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("project_key", String(512), nullable=False),
    Column("session_id", String(64), nullable=False),
    Column("subpath", String(512), nullable=False, default=""),
    Column("entry", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Index("ix_transcript_key", "project_key", "session_id", "subpath", "id"),
)

transcript_summaries = Table(
    "transcript_summaries",
    metadata,
    Column("project_key", String(512), primary_key=True),
    Column("session_id", String(64), primary_key=True),
    Column("mtime", BigInteger, nullable=False),
    Column("data", JSON, nullable=False),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("key_hash", String(64), nullable=False),
    Column("prefix", String(16), nullable=False),
    Column("admin", Boolean, nullable=False, default=False),
    Column("rate_limit", String(64)),
    Column("created_at", UTCDateTime, nullable=False),
    Column("revoked_at", UTCDateTime),
)

nodes = Table(
    "nodes",
    metadata,
    Column("id", String(128), primary_key=True),
    Column("started_at", UTCDateTime, nullable=False),
    Column("last_seen_at", UTCDateTime, nullable=False),
    Column("draining", Boolean, nullable=False, default=False),
)
"""Gateway nodes on this database; a node not seen for one lease TTL is gone."""

session_leases = Table(
    "session_leases",
    metadata,
    Column("session_id", String(64), ForeignKey("sessions.id", ondelete="CASCADE"),
           primary_key=True),
    Column("node_id", String(128), nullable=False),
    Column("generation", BigInteger, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Index("ix_session_leases_node", "node_id"),
)
"""Which node runs a session's CLI: a row while a process is attached. ``generation``
grows on every takeover; the owner's writes for the session are conditional on it."""

node_commands = Table(
    "node_commands",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
           autoincrement=True),
    Column("session_id", String(64), nullable=False),
    Column("target_node", String(128), nullable=False),
    Column("from_node", String(128), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("payload", JSON, nullable=False),
    Column("status", String(16), nullable=False),
    Column("answer", JSON),
    Column("created_at", UTCDateTime, nullable=False),
    Column("answered_at", UTCDateTime),
    Index("ix_node_commands_target", "target_node", "status"),
)
"""The inbox: commands a node sends to the node that runs a session (a prompt, an
interrupt, a permission answer, a change, a deletion), and the answers it gets back.
``status``: ``pending`` -> ``taken`` -> ``answered``, or ``withdrawn`` by its sender."""

workspace_holds = Table(
    "workspace_holds",
    metadata,
    Column("workspace_path", String(1024), primary_key=True),
    Column("session_id", String(64), nullable=False),
    Column("node_id", String(128), nullable=False),
    Column("token", String(64), nullable=False),
    Column("acquired_at", UTCDateTime, nullable=False),
)
"""Which session has work in a workspace, cluster-wide (WORKSPACE_BUSY on every node).
A hold whose node is gone may be taken."""

webhooks = Table(
    "webhooks",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("owner", String(128), nullable=False),
    Column("url", String(2048), nullable=False),
    Column("description", String(512), nullable=False, default=""),
    Column("events", JSON, nullable=False),
    Column("secret", String(128), nullable=False),
    Column("enabled", Boolean, nullable=False, default=True),
    Column("disabled_at", UTCDateTime),
    Column("disabled_reason", Text),
    Column("failing_since", UTCDateTime),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Index("ix_webhooks_owner", "owner"),
)
"""A key's webhook endpoints: where to send which events, signed with ``secret``.
``failing_since``: when its deliveries began to fail with no success since."""

webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("webhook_id", String(40), ForeignKey("webhooks.id", ondelete="CASCADE"),
           nullable=False),
    Column("owner", String(128), nullable=False),
    Column("event_type", String(64), nullable=False),
    Column("session_id", String(64)),
    Column("turn_id", String(64)),
    Column("seq", BigInteger),
    Column("payload", JSON, nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", UTCDateTime),
    Column("claimed_by", String(128)),
    Column("claimed_until", UTCDateTime),
    Column("last_status_code", Integer),
    Column("last_error", Text),
    Column("last_latency_ms", Integer),
    Column("last_attempt_at", UTCDateTime),
    Column("created_at", UTCDateTime, nullable=False),
    Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
    Index("ix_webhook_deliveries_webhook", "webhook_id", "created_at"),
)
"""One event for one endpoint, written in the transaction of the event it announces;
``pending`` until a node's worker sends it (a claim, ``claimed_by`` until
``claimed_until``, makes exactly one node send each attempt), then ``succeeded`` or,
once the retry schedule is spent, ``failed``. Its id is the ``webhook-id`` header of
every attempt."""
