"""The ``Store`` protocol: everything the gateway keeps, behind one interface.

Every implementation runs ``tests/storage_conformance.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Protocol

from claude_gateway.storage.records import (
    ApiKeyRecord,
    AttemptResult,
    CommandRecord,
    DeliveryRecord,
    EventRecord,
    Fence,
    LeaseRecord,
    MessageRecord,
    NewEvent,
    NodeRecord,
    PermissionRecord,
    SessionCaps,
    SessionRecord,
    StateChange,
    TurnRecord,
    Usage,
    WebhookRecord,
)


class StoreError(Exception):
    """What a store raises: the gateway's own errors, never its database library's."""


class RecordNotFound(StoreError, KeyError):
    """A write named a row that does not exist (e.g. events for an unknown session)."""


class FencedOut(StoreError):
    """A write for a session whose lease this node no longer holds (another node took
    the session over): the node must stop the session's process and never write for it
    again."""


class CapReached(StoreError):
    """A new session would pass a session cap (``which``: ``total`` or ``per_owner``)."""

    def __init__(self, which: str, limit: int) -> None:
        super().__init__(f"session cap {which} = {limit} reached")
        self.which = which
        self.limit = limit


class DuplicateRecord(StoreError):
    """A write would duplicate a unique value (an id, a turn's ``clientId``)."""


class Listener(Protocol):
    def start(self) -> None: ...
    async def stop(self) -> None: ...


class Store(Protocol):
    """Durable sessions, turns, event logs, messages, usage and CLI transcripts."""

    async def start(self) -> None:
        """Connect and migrate the schema to the newest version."""

    async def close(self) -> None: ...
    async def readiness(self) -> str | None:
        """None if the store answers and its schema is current; else why not."""
        ...

    # sessions
    async def create_session(self, session: SessionRecord,
                             caps: SessionCaps | None = None) -> None:
        """Store a new session; with ``caps`` (a session of kind ``session``), only if it
        passes them, counted in the store (CapReached), so they hold across nodes."""
    async def get_session(self, session_id: str) -> SessionRecord | None: ...
    async def list_sessions(
        self, *, owner: str | None = None, status: str | None = None, limit: int = 50,
        after: tuple[datetime, str] | None = None,
    ) -> list[SessionRecord]:
        """Newest first; ``after`` is the (created_at, id) of the last row already seen."""
        ...

    async def list_runs(
        self, *, owner: str | None = None, status: str | None = None, limit: int = 50,
        after: tuple[datetime, str] | None = None,
    ) -> list[tuple[SessionRecord, TurnRecord | None]]:
        """Runs (sessions of kind ``run``) with their turn, newest first; ``status`` is the
        turn's (a run with no turn yet counts as ``queued``)."""
        ...

    async def session_by_external_id(self, owner: str, external_id: str
                                     ) -> SessionRecord | None: ...

    async def latest_conversation(self, workspace_path: str, owner: str | None = None
                                  ) -> SessionRecord | None:
        """The session (or run) working in ``workspace_path`` (relative to the workspace
        root) most recently active with a conversation; only ``owner``'s if given."""
        ...

    async def conversation(self, claude_session_id: str, owner: str | None = None
                           ) -> SessionRecord | None:
        """The session (or run) most recently active on that Claude conversation; only
        ``owner``'s if given."""
        ...

    async def sessions_expired_by(self, moment: datetime, statuses: Sequence[str],
                                  limit: int = 500) -> list[SessionRecord]:
        """Sessions in ``statuses`` whose ``expires_at`` is at or before ``moment``."""
        ...

    async def update_session(self, session_id: str, *, fence: Fence | None = None,
                             **fields: Any) -> None:
        """Set columns; with ``fence``, only while that node holds the session's lease at
        that generation (FencedOut otherwise)."""
        ...
    async def add_session_usage(self, session_id: str, usage: Usage, *, turn_id: str | None,
                                model: str | None) -> None:
        """Add a turn's usage to the session totals and the usage ledger."""
        ...

    async def delete_session(self, session_id: str) -> bool:
        """Delete the session and everything it owns; False if it did not exist."""
        ...

    async def count_sessions(self, statuses: Sequence[str]) -> int: ...
    async def count_sessions_by_status(self, owner: str | None = None) -> dict[str, int]:
        """Sessions (not runs) per status; only ``owner``'s if given."""
        ...
    async def count_sessions_by_owner(self, statuses: Sequence[str]) -> dict[str, int]: ...

    # turns
    async def create_turn(self, turn: TurnRecord) -> None: ...
    async def get_turn(self, turn_id: str) -> TurnRecord | None: ...
    async def update_turn(self, turn_id: str, **fields: Any) -> None: ...
    async def list_turns(self, session_id: str, statuses: Sequence[str] | None = None
                         ) -> list[TurnRecord]: ...
    async def turns_with_status(self, statuses: Sequence[str]) -> list[TurnRecord]: ...
    async def turn_by_client_id(self, session_id: str, client_id: str
                                ) -> TurnRecord | None: ...

    # permission requests (created and resolved through append_events' StateChange)
    async def get_permission(self, permission_id: str) -> PermissionRecord | None: ...
    async def list_permissions(self, *, session_id: str | None = None,
                               statuses: Sequence[str] | None = None,
                               owner: str | None = None) -> list[PermissionRecord]:
        """Oldest first; ``owner``: only the requests of that owner's sessions."""
        ...

    # event log
    async def append_events(self, session_id: str, events: Sequence[NewEvent],
                            change: StateChange | None = None) -> list[EventRecord]:
        """Give the events the next sequence numbers of the session and apply ``change``,
        all in one transaction. Raises RecordNotFound for an unknown session."""
        ...

    async def list_events(self, session_id: str, *, after: int = 0, limit: int = 1000
                          ) -> list[EventRecord]: ...

    # messages
    async def add_message(self, session_id: str, role: str, content: Any,
                          turn_id: str | None) -> MessageRecord: ...
    async def list_messages(self, session_id: str, *, limit: int, offset: int
                            ) -> tuple[list[MessageRecord], int]:
        """A page of messages oldest first, and the total count."""
        ...

    # API keys (hashed) and spend
    async def create_api_key(self, record: ApiKeyRecord) -> None: ...
    async def list_api_keys(self, *, include_revoked: bool = False) -> list[ApiKeyRecord]: ...
    async def api_key(self, name: str) -> ApiKeyRecord | None: ...
    async def revoke_api_key(self, name: str, when: datetime) -> bool: ...
    async def spent_since(self, owner: str, since: datetime) -> float:
        """USD the owner's turns cost since ``since`` (from the usage ledger)."""
        ...

    # transcripts mirrored from the CLI (see transcripts.py)
    async def transcript_append(
        self, project_key: str, session_id: str, subpath: str, entries: Sequence[str],
        summarize: Callable[[tuple[int, dict[str, Any]] | None], dict[str, Any]] | None = None,
    ) -> None:
        """Append transcript lines; with ``summarize``, also replace the session's summary
        with ``summarize((mtime, data) of the previous one, or None)``, atomically."""
        ...
    async def transcript_load(self, project_key: str, session_id: str, subpath: str
                              ) -> list[str] | None: ...
    async def transcript_sessions(self, project_key: str) -> list[tuple[str, int]]: ...
    async def transcript_delete(self, project_key: str, session_id: str,
                                subpath: str | None) -> None: ...
    async def transcript_subkeys(self, project_key: str, session_id: str) -> list[str]: ...
    async def transcript_summary_get_all(self, project_key: str
                                         ) -> list[tuple[str, int, dict[str, Any]]]: ...
    async def transcript_summary_put(self, project_key: str, session_id: str, mtime: int,
                                     data: dict[str, Any]) -> None: ...

    def listen_events(self, on_event: Callable[[str, str, int, int], None],
                      on_gap: Callable[[], None]) -> Listener | None:
        """Wake-ups ``(node, session_id, first_seq, last_seq)`` when another node appends
        events; ``on_gap`` after a lost connection came back. None where only one node
        writes (SQLite)."""
        ...

    # nodes and session leases (see storage/sql/leases.py)
    async def claim_lease(self, session_id: str, node_id: str, ttl: float
                          ) -> LeaseRecord | None:
        """Keep, take or take over the session's lease; None while another node's is live."""
        ...
    async def renew_leases(self, node_id: str, session_ids: Sequence[str], ttl: float
                           ) -> list[str]:
        """Renew the node's leases on these sessions; those it no longer holds."""
        ...
    async def release_lease(self, fence: Fence, session_id: str) -> None: ...
    async def lease(self, session_id: str) -> LeaseRecord | None:
        """The session's lease while a node holds it (None: free, or run out)."""
        ...
    async def touch_node(self, node_id: str, *, draining: bool = False) -> None: ...
    async def live_nodes(self, ttl: float) -> list[tuple[NodeRecord, int]]:
        """Nodes seen within ``ttl`` seconds, with how many leases each holds."""
        ...
    async def forget_node(self, node_id: str) -> None: ...
    async def forget_gone_nodes(self, unseen_for: float) -> int:
        """Drop the rows of nodes not seen for this many seconds; how many."""
        ...

    # the inbox between nodes, workspace holds (see storage/sql/cluster.py)
    async def send_command(self, command: CommandRecord) -> int:
        """Queue a command for ``command.target_node``; its id."""
        ...
    async def take_commands(self, node_id: str) -> list[CommandRecord]:
        """This node's pending commands, oldest first, now ``taken``."""
        ...
    async def answer_command(self, command_id: int, answer: dict[str, Any]) -> None: ...
    async def command(self, command_id: int) -> CommandRecord | None: ...
    async def withdraw_command(self, command_id: int) -> bool:
        """Take back a command nobody took yet; False if it was taken."""
        ...
    async def forget_commands(self, before: datetime) -> int:
        """Drop commands created before ``before``; how many."""
        ...
    def listen_commands(self, node_id: str, on_wake: Callable[[str], None],
                        on_gap: Callable[[], None]) -> Listener | None:
        """Wake-ups for commands to ``node_id`` (``"c"``) and answers to its commands
        (``"a <id>"``); None on SQLite (one node)."""
        ...
    async def hold_workspace(self, workspace_path: str, session_id: str, node_id: str,
                             token: str, ttl: float) -> str | None:
        """Hold a workspace for a session (kept if that session holds it; taken from a
        node not seen for ``ttl`` seconds); None, or the session holding it."""
        ...
    async def release_workspace(self, workspace_path: str, token: str) -> None: ...
    async def workspace_holds(self) -> dict[str, str]:
        """Every held workspace and the session holding it."""
        ...
    async def sessions_left_behind(self, node_id: str, limit: int = 100) -> list[str]:
        """Sessions whose lease another node let run out (or gave up) with work left: a
        turn queued or running, or a live status."""
        ...
    async def count_busy_turns(self, owner: str) -> int:
        """The owner's turns queued or running, on every node."""
        ...

    # webhooks
    on_deliveries: Callable[[], None] | None
    """Called after a write queued webhook deliveries (the worker wakes)."""

    async def create_webhook(self, webhook: WebhookRecord) -> None: ...
    async def get_webhook(self, webhook_id: str) -> WebhookRecord | None: ...
    async def list_webhooks(self, owner: str | None = None) -> list[WebhookRecord]: ...
    async def update_webhook(self, webhook_id: str, **fields: Any) -> WebhookRecord | None:
        """Set columns (enabling clears the disabled and failing marks)."""
        ...
    async def delete_webhook(self, webhook_id: str) -> bool: ...
    async def add_delivery(self, webhook: WebhookRecord, event_type: str,
                           data: dict[str, Any], *, node_id: str, claim_seconds: float
                           ) -> DeliveryRecord:
        """A delivery of no stored event, claimed by ``node_id`` for its first attempt."""
        ...
    async def get_delivery(self, delivery_id: str) -> DeliveryRecord | None: ...
    async def list_deliveries(self, webhook_id: str, *, limit: int,
                              before: tuple[datetime, str] | None = None,
                              status: str | None = None) -> list[DeliveryRecord]: ...
    async def claim_deliveries(self, node_id: str, limit: int, claim_seconds: float
                               ) -> list[tuple[DeliveryRecord, WebhookRecord]]:
        """Claim due deliveries for one attempt each; no two nodes claim one."""
        ...
    async def finish_attempt(self, delivery: DeliveryRecord, node_id: str,
                             result: AttemptResult, *, retry_in: float | None,
                             disable_after: float) -> tuple[DeliveryRecord, bool] | None:
        """Record an attempt (None if the claim was lost); disables on 410 or after
        ``disable_after`` seconds of failures."""
        ...
    async def retry_delivery(self, delivery_id: str) -> DeliveryRecord | None: ...
    async def next_delivery_due(self) -> datetime | None: ...
    async def release_claims(self, node_id: str | None) -> int:
        """Drop this node's claims (None: every node's, for the only node)."""
        ...
    async def prune_deliveries(self, finished_before: datetime) -> int: ...
