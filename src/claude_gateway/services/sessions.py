"""``SessionManager``: durable sessions, each with at most one warm CLI process.

Statuses::

    starting -> idle <-> running          (a process is attached)
    idle -> stopped                       (idle timeout or LRU eviction; resumes later)
    stopped/failed -> starting            (a message arrives: spawn with resume)
    starting -> failed                    (the CLI could not start)
    any -> expired                        (TTL passed; history stays readable)
    any -> ended                          (DELETE; history stays unless purged)

Turns run one at a time per session, in the order they were sent. Every change is an
event appended to the session's log before anyone sees it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
import uuid
from collections import Counter
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from claude_agent_sdk import AssistantMessage, ResultMessage, project_key_for_directory

from claude_gateway.errors import (
    ConversationNotFound,
    ConversationNotStarted,
    InvalidCursor,
    InvalidRequest,
    MaxSessionsReached,
    PaymentRequired,
    PermissionModeNotAllowed,
    SessionEnded,
    SessionNotFound,
    TooManyTurns,
)
from claude_gateway.events.envelope import TERMINAL_TURN_EVENTS, rfc3339
from claude_gateway.events.log import EventLog
from claude_gateway.events.normalize import (
    context_tokens_of,
    context_window_of,
    normalize,
    turn_outcome,
    usage_of,
)
from claude_gateway.runtime.agent import (
    AgentFactory,
    AgentProcess,
    ProcessBinding,
    ProcessExit,
)
from claude_gateway.runtime.options import (
    PERMISSION_MODES,
    AgentSpec,
    Launch,
    build_options,
    spawn_options,
)
from claude_gateway.runtime.path_fence import PathFence
from claude_gateway.runtime.process_pool import ProcessPool
from claude_gateway.runtime.sdk_agent import sdk_agent_factory
from claude_gateway.runtime.spares import SparePool, SpareProfile
from claude_gateway.runtime.stderr_tail import StderrTail
from claude_gateway.services.auth import ANONYMOUS, Principal
from claude_gateway.services.env_policy import check_env
from claude_gateway.services.permissions import PermissionBroker
from claude_gateway.services.prompts import prompt_blocks
from claude_gateway.services.structured_output import check_json_schema
from claude_gateway.services.workspace_locks import WorkspaceLocks
from claude_gateway.services.workspaces import (
    Placement,
    added_dirs,
    home_dir,
    name_from,
    normalize_workspace_name,
    place_workspace,
    resolve_added_dir,
    resolve_inside,
    workspace_dir,
)
from claude_gateway.settings import Settings
from claude_gateway.storage.base import Store
from claude_gateway.storage.records import (
    ACTIVE_SESSION_STATUSES,
    EventRecord,
    NewEvent,
    SessionRecord,
    StateChange,
    TurnRecord,
)
from claude_gateway.storage.transcripts import TranscriptStore

logger = logging.getLogger("claude_gateway.sessions")

CLOSED_STATUSES = ("ended", "expired")
CONTROL_TIMEOUT_SECONDS = 10.0
"""How long a live change (model, permission mode) may take before the process is
restarted with it instead."""


def now() -> datetime:
    return datetime.now(UTC)


def start_failure(error: dict[str, Any]) -> dict[str, Any]:
    """A turn's error when its CLI could not start: the CLI refusing the structured-output
    schema is the client's mistake (INVALID_JSON_SCHEMA), anything else the gateway's."""
    stderr = str(error.get("stderr", ""))
    for line in stderr.splitlines():
        if "is not a valid JSON Schema" in line:
            return {"code": "INVALID_JSON_SCHEMA", "message": line.removeprefix("Error: "),
                    **error}
    return {"code": "PROCESS_START_FAILED",
            "message": "The Claude Code CLI could not be started.", **error}


def cli_line_limit(max_body_bytes: int) -> int:
    """The longest line the SDK may read from the CLI: the CLI echoes a prompt back as
    one JSON line, escaped (up to six bytes for one), so the largest body the gateway
    accepts must fit several times over. (The SDK's default, 1 MiB, failed prompts of
    500 KB as PROCESS_EXITED.)"""
    return 6 * max_body_bytes + (1 << 20)


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


class DuplicateClientId(Exception):
    """A prompt with this ``clientId`` was accepted before: its turn id is ``turn_id``."""

    def __init__(self, turn_id: str) -> None:
        super().__init__(turn_id)
        self.turn_id = turn_id


class TurnNotRecorded(Exception):
    """The turn's ``turn.queued`` event could not be written (its session is gone)."""


@dataclass
class PendingTurn:
    id: str
    prompt: str | list[Any]
    done: asyncio.Future[dict[str, Any]]
    interrupt_requested: bool = False
    queued_seq: int = 0
    """Sequence number of this turn's ``turn.queued`` event."""
    recorded: asyncio.Future[None] | None = None
    """Done once ``turn.queued`` is in the store."""


@dataclass
class LiveSession:
    """In-memory state of a session that has had activity since the gateway started."""

    id: str
    queue: asyncio.Queue[PendingTurn | None] = field(default_factory=asyncio.Queue)
    queued: list[PendingTurn] = field(default_factory=list)
    worker: asyncio.Task[None] | None = None
    process: AgentProcess | None = None
    spawning: asyncio.Task[AgentProcess | None] | None = None
    current: PendingTurn | None = None
    closed: bool = False
    closed_status: str = "ended"
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    """Held while the process starts."""
    control: asyncio.Lock = field(default_factory=asyncio.Lock)
    """Held by a change of the session (PATCH) and by its closing."""
    owner: str = ""
    owner_known: bool = False
    workspace: str = ""
    share_workspace: bool = False
    client_turns: dict[str, str] = field(default_factory=dict)
    """``clientId`` -> turn id of prompts accepted since the gateway started."""
    model: str | None = None
    model_known: bool = False
    """Whether ``model`` mirrors the stored one (PATCH keeps it current)."""


def session_to_api(record: SessionRecord, live: LiveSession | None = None,
                   waiting: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The session object of API.md."""
    options = record.options
    return {
        "id": record.id,
        "kind": record.kind,
        "status": record.status,
        "model": record.model,
        "workspace": record.workspace,
        "permissionMode": record.permission_mode,
        "claudeSessionId": record.claude_session_id,
        "createdAt": rfc3339(record.created_at),
        "lastActivityAt": rfc3339(record.last_activity_at),
        "expiresAt": rfc3339(record.expires_at) if record.expires_at else None,
        "endedAt": rfc3339(record.ended_at) if record.ended_at else None,
        "metadata": record.metadata,
        "usage": record.usage.to_api(),
        "tokenBudget": {
            "inputTokens": record.usage.input_tokens,
            "outputTokens": record.usage.output_tokens,
            "cacheReadInputTokens": record.usage.cache_read_input_tokens,
            "contextWindow": record.context_window,
            "contextTokens": record.context_tokens,
            "contextRemaining": (record.context_window - record.context_tokens
                                 if record.context_window and record.context_tokens is not None
                                 else None),
        },
        "messageCount": record.message_count,
        "lastSeq": record.last_seq,
        "queueDepth": len(live.queued) if live else 0,
        "waitingForPermission": waiting or [],
        "systemPrompt": options.get("systemPrompt"),
        "appendSystemPrompt": options.get("appendSystemPrompt"),
        "allowedTools": options.get("allowedTools", []),
        "disallowedTools": options.get("disallowedTools", []),
        "maxTurns": options.get("maxTurns"),
        "effort": options.get("effort"),
        "addDirs": options.get("addDirs", []),
    }


class SessionManager:
    """Creates sessions, runs their turns, and keeps their processes within bounds."""

    def __init__(self, settings: Settings, store: Store, events: EventLog, *,
                 cli_path: Path, cli_env: dict[str, str],
                 cli_binary: Path | None = None,
                 agent_factory: AgentFactory = sdk_agent_factory) -> None:
        self.settings = settings
        self.store = store
        self.events = events
        self.cli_path = cli_path
        self.agent_factory = agent_factory
        self.cli_env = cli_env
        self.transcripts = TranscriptStore(store)
        self.permissions = PermissionBroker(store, events,
                                            timeout_seconds=settings.permission_timeout_seconds)
        self.locks = WorkspaceLocks()
        configured = [self._spare_profile(Placement("", normalize_workspace_name(name)),
                                          AgentSpec(model=settings.default_model))
                      for name in dict.fromkeys([settings.default_run_workspace,
                                                 settings.openai_workspace,
                                                 *settings.spare_workspaces])]
        self.spares = SparePool(self._start_spare, size=settings.spare_processes,
                                max_total=settings.max_spare_processes, configured=configured)
        self.pool = ProcessPool(settings.max_processes, settings.data_dir / "pids",
                                binary=cli_binary or cli_path)
        self._live: dict[str, LiveSession] = {}
        self._reaper: asyncio.Task[None] | None = None
        self._stopping: set[asyncio.Future[None]] = set()
        self._closing = False
        self._last_spawn_error: dict[str, dict[str, Any]] = {}
        self._naming: dict[tuple[str, str], tuple[asyncio.Lock, int]] = {}
        """Per (owner, X-Session-Id) name: the lock that serializes its creation, and how
        many requests hold or wait for it."""
        self._sessions_by_owner: Counter[str] = Counter()
        """Sessions that count against the caps, per owner (reserved before any await)."""

    # -- lifecycle -----------------------------------------------------------------
    async def start(self) -> None:
        """Recover from a previous run, then start the reaper."""
        self.pool.reap_leftovers()
        await self.permissions.recover()
        for turn in await self.store.turns_with_status(["queued", "running"]):
            await self._finish_turn_record(turn.session_id, turn.id, "turn.failed", {
                "error": {"code": "GATEWAY_RESTARTED",
                          "message": "The gateway restarted before this turn finished."}})
        for status in ("starting", "idle", "running"):
            for record in await self._all_sessions(status):
                await self.store.update_session(record.id, status="stopped")
                await self.events.emit(record.id, "process.stopped",
                                       {"reason": "gateway_restarted"})
        self._sessions_by_owner = Counter(
            await self.store.count_sessions_by_owner(ACTIVE_SESSION_STATUSES))
        self._reaper = asyncio.create_task(self._reap_forever(), name="session-reaper")
        self.spares.fill()

    async def _all_sessions(self, status: str) -> list[SessionRecord]:
        found: list[SessionRecord] = []
        after: tuple[datetime, str] | None = None
        while True:
            page = await self.store.list_sessions(status=status, limit=500, after=after)
            found.extend(page)
            if len(page) < 500:
                return found
            after = (page[-1].created_at, page[-1].id)

    async def close(self) -> None:
        """Stop every process and worker (no orphans)."""
        self._closing = True
        await self.spares.close()
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
        spawns = [live.spawning for live in self._live.values()
                  if live.spawning is not None and not live.spawning.done()]
        for spawn in spawns:
            spawn.cancel()
        await asyncio.gather(*spawns, return_exceptions=True)
        for live in list(self._live.values()):
            live.closed = True
            live.queue.put_nowait(None)
        await asyncio.gather(*(self._stop_process(live, "gateway_shutdown")
                               for live in list(self._live.values())),
                             return_exceptions=True)
        workers = [live.worker for live in self._live.values() if live.worker]
        for worker in workers:
            worker.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        await asyncio.gather(*self._stopping, return_exceptions=True)
        # Whatever a cancelled step left in the pool is stopped too: no CLI outlives us.
        for session_id, process in self.pool.live.items():
            await process.stop()
            await self.pool.release(session_id, process)

    # -- reading -------------------------------------------------------------------
    async def get(self, session_id: str, owner: str | None = None) -> SessionRecord:
        record = await self.store.get_session(session_id)
        if record is None or (owner is not None and record.owner != owner):
            raise SessionNotFound(session_id)
        return record

    def live(self, session_id: str) -> LiveSession | None:
        return self._live.get(session_id)

    def live_sessions(self) -> dict[str, LiveSession]:
        """Sessions with in-memory state (a process, a queue or a running turn)."""
        return dict(self._live)

    def to_api(self, record: SessionRecord) -> dict[str, Any]:
        return session_to_api(record, self._live.get(record.id),
                              self.permissions.waiting(record.id))

    async def list_sessions(self, *, owner: str | None, status: str | None, limit: int,
                   cursor: str | None) -> tuple[list[SessionRecord], str | None]:
        after = decode_cursor(cursor) if cursor else None
        page = await self.store.list_sessions(owner=owner, status=status, limit=limit + 1,
                                              after=after)
        next_cursor = None
        if len(page) > limit:
            page = page[:limit]
            next_cursor = encode_cursor(page[-1].created_at, page[-1].id)
        return page, next_cursor

    # -- create / patch / delete -----------------------------------------------------
    async def conversation(self, claude_session_id: str, principal: Principal
                           ) -> SessionRecord:
        """The latest session on a Claude conversation the caller owns (admins: any);
        an unknown id and another key's get the same 404."""
        record = await self.store.conversation(claude_session_id, principal.owner_filter)
        if record is None:
            raise ConversationNotFound(claude_session_id)
        return record

    async def create(self, request: SessionCreate, principal: Principal = ANONYMOUS
                     ) -> SessionRecord:
        owner = principal.name
        mode = request.permission_mode or "default"
        self._check_mode(mode)
        env = check_env(request.env, self.settings.session_env_allowlist)
        if request.json_schema is not None:
            check_json_schema(request.json_schema)
        root = self.settings.workspace_root
        fork_of: str | None = None
        # Transcripts are keyed by the working directory: a fork or a resume works in the
        # directory of the conversation it carries on, unless told otherwise.
        continued: str | None = None
        if request.fork_from:
            source = await self.get(request.fork_from, principal.owner_filter)
            if not source.claude_session_id:
                raise ConversationNotStarted("That session has no conversation to fork yet",
                                             details={"forkFrom": request.fork_from})
            fork_of = source.claude_session_id
            continued = source.workspace_path
        if request.resume:
            resumed = await self.conversation(request.resume, principal)
            continued = continued or resumed.workspace_path
        is_run = request.kind == "run"
        session_id = f"{'run' if is_run else 'ses'}_{uuid.uuid4().hex}"
        workspace_name = request.workspace or (
            name_from(principal.home, continued) if continued else None) or session_id
        placement = place_workspace(root, principal.home, workspace_name)
        dirs = added_dirs(root, principal.home, request.add_dirs)
        place = placement.path
        if is_run and not request.share_workspace:
            self.locks.acquire(place, session_id)  # 409 while another agent works
        elif self._sessions_by_owner.total() >= self.settings.max_sessions:
            raise MaxSessionsReached(
                f"At most {self.settings.max_sessions} sessions may exist at once",
                details={"maxSessions": self.settings.max_sessions})
        elif owner and 0 < self.settings.max_sessions_per_principal <= (
                self._sessions_by_owner[owner]):
            raise MaxSessionsReached(
                f"A key may have at most {self.settings.max_sessions_per_principal} sessions",
                details={"maxSessionsPerPrincipal": self.settings.max_sessions_per_principal})
        # Reserve a place under the caps before any await, so parallel creates can't
        # overshoot them.
        if not is_run:
            self._sessions_by_owner[owner] += 1
        try:
            workspace_dir(root, placement)  # created now that every check has passed
            moment = now()
            options = {
                "systemPrompt": request.system_prompt,
                "appendSystemPrompt": request.append_system_prompt,
                "allowedTools": request.allowed_tools,
                "disallowedTools": request.disallowed_tools,
                "maxTurns": request.max_turns,
                "effort": request.effort,
                "addDirs": dirs,
                "env": env,
                "forkOf": fork_of,
                "jsonSchema": request.json_schema,
                "shareWorkspace": request.share_workspace,
                "nonInteractive": request.non_interactive,
            }
            record = SessionRecord(
                id=session_id, status="starting", workspace=placement.name,
                home=placement.home, workspace_path=place, kind=request.kind,
                permission_mode=mode, created_at=moment, last_activity_at=moment,
                owner=owner, model=request.model or self.settings.default_model,
                options=options, metadata=request.metadata,
                claude_session_id=request.resume, expires_at=self._expiry(moment),
                external_id=request.external_id,
            )
            await self.store.create_session(record)
        except BaseException:
            if is_run:
                self.locks.release(place, session_id)  # no-op unless it took it
            else:
                self._sessions_by_owner[owner] -= 1
            raise
        await self.events.emit(session_id, "session.created",
                               {"session": session_to_api(record)})
        live = self._live_session(session_id)
        live.owner, live.owner_known = owner, True
        live.model, live.model_known = record.model, True
        live.workspace, live.share_workspace = place, request.share_workspace
        # Start the process now so the first message finds it warm, but only into a free
        # slot: a session nobody has written to yet must not evict a warm one.
        live.spawning = asyncio.create_task(self._spawn(live, prestart=True))
        return record

    def _check_mode(self, mode: str) -> None:
        if mode not in PERMISSION_MODES:
            raise InvalidRequest(f"Unknown permissionMode {mode!r}",
                                 details={"allowed": list(PERMISSION_MODES)})
        if mode == "bypassPermissions" and not self.settings.allow_bypass_permissions:
            raise PermissionModeNotAllowed(
                "bypassPermissions lets every tool run unasked; the operator has not "
                "enabled it (CLAUDE_GATEWAY_ALLOW_BYPASS_PERMISSIONS)",
                details={"permissionMode": mode})

    def _expiry(self, moment: datetime) -> datetime | None:
        ttl = self.settings.session_ttl_seconds
        return moment + timedelta(seconds=ttl) if ttl > 0 else None

    async def patch(self, session_id: str, owner: str | None, *, model: str | None = None,
                    permission_mode: str | None = None,
                    metadata: dict[str, Any] | None = None) -> SessionRecord:
        record = await self.get(session_id, owner)
        if permission_mode is not None:
            self._check_mode(permission_mode)
        live = self._live_session(session_id)
        # One change at a time per session: a PATCH racing a DELETE either lands before
        # the session ends or gets 409, never an update after session.ended.
        async with live.control:
            record = await self.get(session_id, owner)
            if live.closed or record.status in CLOSED_STATUSES:
                raise SessionEnded(session_id, live.closed_status if live.closed
                                   else record.status)
            changes: dict[str, Any] = {}
            if permission_mode is not None:
                changes["permission_mode"] = permission_mode
            if model is not None:
                changes["model"] = model
            if metadata is not None:
                changes["metadata"] = metadata
            if not changes:
                return record
            await self.store.update_session(session_id, **changes)
            if model is not None:
                live.model, live.model_known = model, True
            process = self.pool.get(session_id)
            if process is not None and process.alive:
                # Live where the CLI allows it; a later spawn reads the stored values anyway.
                try:
                    async with asyncio.timeout(CONTROL_TIMEOUT_SECONDS):
                        if model is not None:
                            await process.set_model(model)
                        if permission_mode is not None:
                            await process.set_permission_mode(permission_mode)
                except Exception:
                    logger.warning("the live process refused a change; it restarts with it",
                                   exc_info=True, extra={"session_id": session_id})
                    if self._is_idle(session_id):
                        await self._stop_process(live, "settings_changed")
                        await self.store.update_session(session_id, status="stopped")
            await self.events.emit(session_id, "session.updated", {
                "model": model, "permissionMode": permission_mode, "metadata": metadata})
            updated = await self.get(session_id, owner)
        self._forget_if_idle(live)
        return updated

    async def delete(self, session_id: str, owner: str | None, *, purge: bool = False) -> None:
        record = await self.get(session_id, owner)
        if record.status not in CLOSED_STATUSES:
            await self._close_session(record, "ended", "deleted")
        if purge:
            live = self._live.pop(session_id, None)
            if live is not None and live.worker is not None:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await asyncio.wait_for(asyncio.shield(live.worker), 10)
            self.events.close_session(session_id)
            if record.claude_session_id:
                with contextlib.suppress(Exception):
                    cwd = resolve_inside(home_dir(self.settings.workspace_root, record.home),
                                         record.workspace)
                    await self.transcripts.delete({
                        "project_key": project_key_for_directory(str(cwd)),
                        "session_id": record.claude_session_id})
            await self.store.delete_session(session_id)

    async def session_named(self, principal: Principal, external_id: str,
                            create: SessionCreate) -> SessionRecord:
        """The caller's session called ``external_id``; created (from ``create``) if new."""
        key = (principal.name, external_id)
        # One creator per name at a time; the lock lives only while someone needs it.
        lock, users = self._naming.get(key, (asyncio.Lock(), 0))
        self._naming[key] = (lock, users + 1)
        try:
            async with lock:
                record = await self.store.session_by_external_id(*key)
                if record is None:
                    create.external_id = external_id
                    record = await self.create(create, principal)
                return record
        finally:
            lock, users = self._naming[key]
            if users == 1:
                del self._naming[key]
            else:
                self._naming[key] = (lock, users - 1)

    async def end(self, record: SessionRecord, reason: str) -> None:
        """End a session (status ``ended``) and stop its process."""
        await self._close_session(record, "ended", reason)

    async def _close_session(self, record: SessionRecord, status: str, reason: str) -> None:
        live = self._live_session(record.id)
        async with live.control:
            if live.closed:
                return  # closed meanwhile (two DELETEs, or a DELETE and the reaper)
            await self._close_locked(live, record, status, reason)
        self._forget_if_idle(live)

    async def _close_locked(self, live: LiveSession, record: SessionRecord, status: str,
                            reason: str) -> None:
        live.closed, live.closed_status = True, status
        await self.store.update_session(record.id, status=status, ended_at=now())
        if record.kind == "session":
            self._sessions_by_owner[record.owner] = max(
                0, self._sessions_by_owner[record.owner] - 1)
        for pending in list(live.queued):
            live.queued.remove(pending)
            await self._finish_turn_record(record.id, pending.id, "turn.failed", {
                "error": {"code": "SESSION_ENDED", "message": f"The session was {reason}."}},
                pending)
        live.queue.put_nowait(None)
        current = live.current
        if current is not None:
            current.interrupt_requested = True
        await self.permissions.cancel_session(record.id, "session_ended",
                                              f"The session was {reason}.")
        await self._stop_process(live, reason)
        if current is not None:
            # Let the running turn record how it ended before the session's last word.
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(current.done), 10)
        self.locks.release(record.workspace_path, record.id)
        await self.events.emit(record.id, "session.ended", {"reason": reason,
                                                            "status": status})

    # -- messages ------------------------------------------------------------------
    async def send_message(self, session_id: str, owner: str | None,
                           prompt: str | list[Any], *, client_id: str | None = None
                           ) -> PendingTurn:
        live = self._live.get(session_id)
        if live is None or not live.owner_known or (owner is not None and live.owner != owner):
            record = await self.get(session_id, owner)
            if record.status in CLOSED_STATUSES:
                raise SessionEnded(session_id, record.status)
            live = self._live_session(session_id)
            live.owner, live.owner_known = record.owner, True
            live.workspace = record.workspace_path
            live.share_workspace = bool(record.options.get("shareWorkspace"))
        if live.closed:
            raise SessionEnded(session_id, live.closed_status)
        await self._check_principal_limits(live.owner)
        # Everything that can refuse the prompt comes before the workspace lock, so a
        # refused prompt never holds the workspace.
        blocks = prompt_blocks(prompt, self.settings.max_image_bytes)
        if not isinstance(prompt, str):
            prompt = blocks  # images normalized to base64 sources
        turn_id = f"turn_{uuid.uuid4().hex}"
        if client_id is not None:
            if client_id in live.client_turns:
                raise DuplicateClientId(live.client_turns[client_id])
            live.client_turns[client_id] = turn_id  # claimed before any await
            existing = await self.store.turn_by_client_id(session_id, client_id)
            if existing is not None:
                live.client_turns[client_id] = existing.id
                raise DuplicateClientId(existing.id)
        if not live.share_workspace:
            try:
                self.locks.acquire(live.workspace, session_id)
            except BaseException:
                if client_id is not None:
                    live.client_turns.pop(client_id, None)
                raise
        loop = asyncio.get_running_loop()
        recorded: asyncio.Future[None] = loop.create_future()
        pending = PendingTurn(turn_id, prompt, loop.create_future(), recorded=recorded)
        position = len(live.queued) + (1 if live.current else 0)
        # The worker may hand the prompt to a warm CLI while turn.queued is being written;
        # it announces the turn only once that write is done, so the log stays in order.
        live.queued.append(pending)
        live.queue.put_nowait(pending)
        if live.worker is None or live.worker.done():
            live.worker = asyncio.create_task(self._work(live), name=f"turns-{session_id}")
        try:
            queued = await self.events.emit(
                session_id, "turn.queued", {"prompt": blocks, "position": position}, turn_id,
                StateChange(new_turn=TurnRecord(id=turn_id, session_id=session_id,
                                                status="queued", prompt=blocks,
                                                created_at=now(), client_id=client_id)))
        except BaseException as exc:
            if client_id is not None:
                live.client_turns.pop(client_id, None)
            if pending in live.queued:
                live.queued.remove(pending)
            if not live.queued and live.current is None:
                self.locks.release(live.workspace, session_id)
            recorded.set_exception(RuntimeError(f"turn not recorded: {exc!r}"))
            raise
        pending.queued_seq = queued.seq
        recorded.set_result(None)
        return pending

    async def _check_principal_limits(self, owner: str) -> None:
        """A key's turn cap and daily budget (the session's owner pays)."""
        if not owner:
            return
        cap = self.settings.max_turns_per_principal
        if cap > 0:
            busy = sum(len(s.queued) + (1 if s.current else 0)
                       for s in self._live.values() if s.owner == owner and not s.closed)
            if busy >= cap:
                raise TooManyTurns(f"A key may have at most {cap} turns running or queued",
                                   details={"maxTurnsPerPrincipal": cap})
        budget = self.settings.daily_budget_usd
        if budget > 0:
            midnight = now().replace(hour=0, minute=0, second=0, microsecond=0)
            spent = await self.store.spent_since(owner, midnight)
            if spent >= budget:
                raise PaymentRequired(
                    f"This key has spent ${spent:.4f} of its ${budget:.2f} daily budget",
                    details={"spentUsd": round(spent, 6), "dailyBudgetUsd": budget})

    async def interrupt(self, session_id: str, owner: str | None, *,
                        clear_queue: bool = False) -> bool:
        await self.get(session_id, owner)
        live = self._live.get(session_id)
        if live is None:
            return False
        if clear_queue:
            for pending in list(live.queued):
                live.queued.remove(pending)
                await self._finish_turn_record(session_id, pending.id, "turn.interrupted", {
                    "reason": "queue_cleared"}, pending)
        current = live.current
        if current is None or current.interrupt_requested:
            return False
        current.interrupt_requested = True
        await self.permissions.cancel_session(session_id, "interrupt",
                                              "The turn was interrupted.")
        process = live.process
        if process is not None and process.alive:
            with contextlib.suppress(Exception):
                await process.interrupt()
        return True

    async def turn_events(self, session_id: str, turn_id: str, after: int
                          ) -> AsyncGenerator[EventRecord, None]:
        """The events of one turn, from ``after`` until it completes, fails or is interrupted."""
        async for event in self.events.stream(session_id, after):
            if event.turn_id != turn_id:
                continue
            yield event
            if event.type in TERMINAL_TURN_EVENTS:
                return

    # -- the turn runner -------------------------------------------------------------
    def _live_session(self, session_id: str) -> LiveSession:
        live = self._live.get(session_id)
        if live is None:
            live = self._live[session_id] = LiveSession(session_id)
        return live

    async def _work(self, live: LiveSession) -> None:
        """Run the session's queued turns in order, then end: a session with nothing to do
        keeps no task (send_message starts a worker again)."""
        while not live.queue.empty():
            pending = live.queue.get_nowait()
            if pending is None or pending not in live.queued:
                continue  # a wake-up, or cleared from the queue meanwhile
            live.queued.remove(pending)
            live.current = pending
            try:
                await self._run_turn(live, pending)
            except TurnNotRecorded:
                # Its session vanished while the prompt was on its way: stop the CLI's work.
                if live.process is not None and live.process.alive:
                    with contextlib.suppress(Exception):
                        await live.process.interrupt()
            except Exception as exc:
                logger.exception("turn runner failed", extra={"session_id": live.id})
                with contextlib.suppress(Exception):
                    await self._finish_turn_record(live.id, pending.id, "turn.failed", {
                        "error": {"code": "INTERNAL_ERROR", "message": str(exc)}}, pending)
            finally:
                live.current = None
                if not live.queued:
                    self.locks.release(live.workspace, live.id)
                await self.pool.notify()
        # No await from the emptiness check on: a prompt queued after it finds this task
        # done and starts a new worker.
        self._forget_if_idle(live, worker_ending=True)

    def _forget_if_idle(self, live: LiveSession, *, worker_ending: bool = False) -> None:
        """Drop a session's in-memory state once nothing of it is live (no process, turn,
        queue, task or change under way); its next message reads the store again."""
        worker_done = live.worker is None or live.worker.done() or worker_ending
        busy = (live.process is not None or live.current is not None or live.queued
                or (live.spawning is not None and not live.spawning.done())
                or not worker_done or live.control.locked() or live.lock.locked()
                or self.pool.get(live.id) is not None)
        if not busy and self._live.get(live.id) is live:
            del self._live[live.id]
            self._last_spawn_error.pop(live.id, None)

    def _resting_status(self, live: LiveSession) -> str:
        if live.process is not None and live.process.alive:
            return "idle"
        if live.spawning is not None and not live.spawning.done():
            return "starting"
        return "failed" if live.id in self._last_spawn_error else "stopped"

    def _respawn_soon(self, live: LiveSession) -> None:
        """After a crash, bring a warm process back (into a free slot only)."""
        if live.closed or self._closing:
            return
        if live.spawning is None or live.spawning.done():
            live.spawning = asyncio.create_task(self._spawn(live, prestart=True))

    def _activity(self, **fields: Any) -> dict[str, Any]:
        """Session columns for "something happened now" (it also pushes the expiry back)."""
        moment = now()
        return {"last_activity_at": moment, "expires_at": self._expiry(moment), **fields}

    async def _run_turn(self, live: LiveSession, pending: PendingTurn) -> None:
        if live.closed:
            await self._finish_turn_record(live.id, pending.id, "turn.failed", {
                "error": {"code": "SESSION_ENDED", "message": "The session has ended."}},
                pending)
            return
        if not live.model_known:
            live.model, live.model_known = (await self.get(live.id)).model, True

        announced = False

        async def announce_start() -> None:
            """turn.started, once: before the process starts, or once the prompt is sent."""
            nonlocal announced
            if announced:
                return
            announced = True
            if pending.recorded is not None:
                try:
                    await pending.recorded
                except RuntimeError as exc:
                    raise TurnNotRecorded(pending.id) from exc
            await self.events.append(live.id, [NewEvent(
                "turn.started", {}, pending.id, message_role="user",
                message_content=prompt_blocks(pending.prompt))], StateChange(
                    session=self._activity(status="running"), turn_id=pending.id,
                    turn={"status": "running", "started_at": now()}))

        warm = live.process is not None and live.process.alive and (
            live.spawning is None or live.spawning.done())
        if not warm:
            await announce_start()  # clients see the turn begin while the process starts
        process = await self._ensure_process(live)
        if process is None and not live.closed:
            await announce_start()
            await self._finish_turn_record(live.id, pending.id, "turn.failed", {
                "error": start_failure(self._last_spawn_error.get(live.id, {}))}, pending)
            return
        if live.closed or process is None:
            await announce_start()
            await self._finish_turn_record(live.id, pending.id, "turn.failed", {
                "error": {"code": "SESSION_ENDED", "message": "The session has ended."}},
                pending)
            return
        if pending.interrupt_requested:
            await announce_start()
            await self._finish_turn_record(live.id, pending.id, "turn.interrupted",
                                           {"reason": "interrupted_before_start"}, pending)
            return
        process.drain()
        try:
            await process.send(pending.prompt)
        except Exception as exc:
            await announce_start()
            await self._process_died(live, process, pending, ProcessExit(
                expected=False, reason=f"{exc.__class__.__name__}: {exc}",
                stderr=process.stderr_tail.text(8192)))
            return
        # Written while the CLI works on the prompt; still before any of its output.
        await announce_start()
        # The CLI's output is written by a helper task, so reading the next message never
        # waits for the database; the turn's outcome is written after all of it.
        outbox: asyncio.Queue[list[NewEvent] | None] = asyncio.Queue()
        writer = asyncio.create_task(self._write_turn_events(live.id, outbox))
        context_tokens: int | None = None
        answered_by: str | None = None
        try:
            while True:
                batch = [await process.next_message()]
                if not isinstance(batch[0], ProcessExit | ResultMessage):
                    batch.extend(process.drain(until=ResultMessage))
                process.last_used = time.monotonic()
                events: list[NewEvent] = []
                for message in batch:
                    if isinstance(message, ProcessExit | ResultMessage):
                        break
                    if isinstance(message, AssistantMessage) and not message.parent_tool_use_id:
                        context_tokens = context_tokens_of(message) or context_tokens
                        answered_by = message.model or answered_by
                    for type_, data in normalize(message):
                        role = data["role"] if type_ == "message" else None
                        events.append(NewEvent(type_, data, pending.id, message_role=role,
                                               message_content=data.get("content")))
                if events:
                    outbox.put_nowait(events)
                if isinstance(message, ProcessExit | ResultMessage):
                    break
        finally:
            outbox.put_nowait(None)
            await writer
        if isinstance(message, ProcessExit):
            await self._process_died(live, process, pending, message)
        else:
            await self._complete(live, process, pending, message, live.model, context_tokens,
                                 answered_by)

    async def _write_turn_events(self, session_id: str,
                                 outbox: asyncio.Queue[list[NewEvent] | None]) -> None:
        """Append queued events in order, merging whatever piled up into one write."""
        while True:
            item = await outbox.get()
            if item is None:
                return
            chunk, finished = list(item), False
            while not outbox.empty():
                more = outbox.get_nowait()
                if more is None:
                    finished = True
                    break
                chunk.extend(more)
            await self.events.append(session_id, chunk)
            if finished:
                return

    async def _complete(self, live: LiveSession, process: AgentProcess, pending: PendingTurn,
                        result: ResultMessage, model: str | None,
                        context_tokens: int | None = None,
                        answered_by: str | None = None) -> None:
        total = result.total_cost_usd or 0.0
        turn_cost = total - process.cost_reported
        if turn_cost < 0:  # the CLI reset its running total (a new conversation)
            turn_cost = total
        process.cost_reported = total
        type_, data = turn_outcome(result, turn_cost)
        data["model"] = answered_by  # the model that wrote the turn's main answer
        session: dict[str, Any] = {}
        if result.session_id:
            session["claude_session_id"] = result.session_id
        if (window := context_window_of(result)) is not None:
            session["context_window"] = window
        if context_tokens is not None:
            session["context_tokens"] = context_tokens
        await self._finish_turn_record(live.id, pending.id, type_, data, pending, StateChange(
            session=session, usage=usage_of(result, turn_cost), usage_model=model))

    async def _process_died(self, live: LiveSession, process: AgentProcess,
                            pending: PendingTurn, exit_: ProcessExit) -> None:
        await self._drop_process(live, process, exit_)
        if not exit_.expected:
            self._respawn_soon(live)
        if exit_.expected and pending.interrupt_requested:
            code, message = "SESSION_ENDED", "The session ended during this turn."
            if self._closing:
                code, message = "GATEWAY_SHUTDOWN", "The gateway stopped during this turn."
        else:
            code, message = "PROCESS_EXITED", f"The Claude Code process exited: {exit_.reason}"
        await self._finish_turn_record(live.id, pending.id, "turn.failed", {"error": {
            "code": code, "message": message, "exitCode": exit_.exit_code,
            "stderr": exit_.stderr}}, pending)

    async def _finish_turn_record(self, session_id: str, turn_id: str, type_: str,
                                  data: dict[str, Any], pending: PendingTurn | None = None,
                                  change: StateChange | None = None) -> None:
        """End a turn: its record, the session's status and the event, in one write."""
        status = type_.removeprefix("turn.")
        change = change or StateChange()
        change.turn_id = turn_id
        change.turn = {"status": status, "ended_at": now(), "outcome": data}
        live = self._live.get(session_id)
        if live is not None and pending is not None and live.current is pending and (
                not live.closed):
            # Whoever learns that the turn ended must find the session at rest already.
            change.session = {**self._activity(status=self._resting_status(live)),
                              **change.session}
        await self.events.emit(session_id, type_, data, turn_id, change)
        if pending is not None and not pending.done.done():
            pending.done.set_result({"turnId": turn_id, "status": status, **data})

    # -- processes -----------------------------------------------------------------

    async def _ensure_process(self, live: LiveSession) -> AgentProcess | None:
        if live.spawning is not None:
            spawning = live.spawning
            process = await spawning
            if live.spawning is spawning:
                live.spawning = None
            if process is not None and process.alive:
                return process
        if live.process is not None:
            if live.process.alive:
                return live.process
            # It died between turns, before anyone read its exit: record and release it.
            dead = live.process
            await self._drop_process(live, dead, dead.exit or ProcessExit(False, "exited"))
        return await self._spawn(live)

    def _is_idle(self, session_id: str) -> bool:
        live = self._live.get(session_id)
        return live is not None and live.current is None and not live.queued

    async def _evict(self, session_id: str) -> bool:
        live = self._live.get(session_id)
        if live is None or not self._is_idle(session_id):
            return False
        held = self.pool.get(session_id)
        if held is not None and live.process is not held:
            # The pool holds a process its session has let go of (it is being stopped,
            # or the session was purged and named again): free the slot all the same.
            logger.debug("evicting a process its session no longer holds",
                           extra={"session_id": session_id})
            await held.stop()
            await self.pool.release(session_id, held)
            return True
        await self._stop_process(live, "evicted")
        if not live.closed:
            await self.store.update_session(session_id, status="stopped")
        return True

    async def _spawn(self, live: LiveSession, *, prestart: bool = False
                     ) -> AgentProcess | None:
        async with live.lock:
            if live.process is not None and live.process.alive:
                return live.process
            record = await self.get(live.id)
            if live.closed or record.status in CLOSED_STATUSES:
                return None
            if prestart:
                if not self.pool.try_reserve(live.id):
                    await self.store.update_session(live.id, status="stopped")
                    return None
            else:
                await self.store.update_session(live.id, status="starting")
                await self.pool.reserve(live.id, self._is_idle, self._evict)
            spec = AgentSpec.from_options(record.model, record.permission_mode, record.options)
            if record.claude_session_id:
                launch = Launch(resume=record.claude_session_id)
            elif record.options.get("forkOf"):
                launch = Launch(resume=record.options["forkOf"], fork=True)
            else:
                launch = Launch(session_id=str(uuid.uuid4()))
            binding = ProcessBinding(live.id, lambda: live.current.id if live.current else None,
                                     non_interactive=bool(record.options.get("nonInteractive")))
            process = await self._adopt_spare(record, spec, launch, binding)
            adopted = process is not None
            if process is None:
                starting: AgentProcess | None = None
                try:
                    # Checked again at every start: the agent may have replaced its
                    # workspace with a link since the session was created.
                    starting = self._new_process(
                        spec, Placement(record.home, record.workspace), launch, binding)
                    await asyncio.wait_for(starting.start(),
                                           self.settings.spawn_timeout_seconds)
                except BaseException as exc:
                    await self.pool.release(live.id)
                    if starting is not None:
                        with contextlib.suppress(Exception):
                            await starting.stop()
                    if not isinstance(exc, Exception):
                        raise
                    error = {"detail": f"{exc.__class__.__name__}: {exc}",
                             "stderr": starting.stderr_tail.text(8192) if starting else ""}
                    self._last_spawn_error[live.id] = error
                    logger.warning("CLI process failed to start: %s", error["detail"],
                                   extra={"session_id": live.id,
                                          "stderr": error["stderr"][-2000:]})
                    await self.store.update_session(live.id, status="failed")
                    await self.events.emit(live.id, "process.stopped",
                                           {"reason": "start_failed", **error})
                    return None
                process = starting
            if live.closed:  # deleted while it started
                await self.pool.release(live.id)
                await process.stop()
                return None
            live.process = process
            self._last_spawn_error.pop(live.id, None)
            await self.pool.attach(live.id, process)
            await self.store.update_session(live.id, status="running" if live.current
                                            else "idle")
            await self.events.emit(live.id, "process.started", {
                "pid": process.pid, "resumed": launch.resume is not None,
                "forked": launch.fork, "spare": adopted})
            return process

    def _new_process(self, spec: AgentSpec, placement: Placement, launch: Launch,
                     binding: ProcessBinding) -> AgentProcess:
        """A process for ``spec`` in its workspace, every client-named value confined."""
        tail = StderrTail()
        root = self.settings.workspace_root
        cwd = workspace_dir(root, placement)
        binding.fence = self._fence(placement.home, cwd)
        spec = replace(
            spec, env=check_env(spec.env, self.settings.session_env_allowlist),
            add_dirs=[str(resolve_added_dir(root, placement.home, name))
                      for name in spec.add_dirs])
        options = build_options(
            spec, cwd=cwd, cli_path=self.cli_path, base_env=self.cli_env, launch=launch,
            stderr=tail.append, session_store=self.transcripts,
            can_use_tool=self.permissions.callback(binding),
            allow_bypass=self.settings.allow_bypass_permissions,
            running_as_root=os.geteuid() == 0,
            max_buffer_size=cli_line_limit(self.settings.max_body_bytes))
        return self.agent_factory(options, stderr_tail=tail, on_exit=self._on_exit,
                                  binding=binding)

    def _fence(self, home: str, cwd: Path) -> PathFence:
        root = self.settings.workspace_root
        return PathFence.build(cwd, home_dir(root, home), root,
                               [self.settings.data_dir, self.settings.cli_config_dir])

    @staticmethod
    def _spare_profile(placement: Placement, spec: AgentSpec) -> SpareProfile:
        """The spare profile a session's first process would fit: its workspace and every
        option fixed at spawn (model and permission mode are set live on adoption)."""
        fixed = {"workspace": placement.path, "home": placement.home,
                 **spawn_options(spec)}
        return SpareProfile(key=json.dumps(fixed, sort_keys=True, default=str),
                            workspace=placement.path, how=(placement, spec))

    async def _start_spare(self, profile: SpareProfile) -> AgentProcess | None:
        """A process for a spare profile, serving nobody yet (for the SparePool)."""
        placement, spec = profile.how
        spec = replace(spec, model=self.settings.default_model, permission_mode="default")
        process: AgentProcess | None = None
        try:
            process = self._new_process(spec, placement, Launch(session_id=str(uuid.uuid4())),
                                        ProcessBinding())
            await asyncio.wait_for(process.start(), self.settings.spawn_timeout_seconds)
        except Exception:
            logger.warning("spare CLI process failed to start", exc_info=True,
                           extra={"workspace": profile.workspace})
            if process is not None:
                with contextlib.suppress(Exception):
                    await process.stop()
            return None
        self.pool.track_pid(process)
        return process

    async def _adopt_spare(self, record: SessionRecord, spec: AgentSpec, launch: Launch,
                           binding: ProcessBinding) -> AgentProcess | None:
        """A spare started with this session's spawn-time options can serve its first
        conversation (model and mode are set live)."""
        if launch.resume is not None:
            return None
        process = self.spares.take(self._spare_profile(
            Placement(record.home, record.workspace), spec))
        if process is None:
            return None
        try:
            if spec.model != self.settings.default_model:
                await process.set_model(spec.model)
            if spec.permission_mode != "default":
                await process.set_permission_mode(spec.permission_mode)
        except Exception:
            logger.warning("could not adapt a spare process", exc_info=True)
            self.pool.forget_pid(process)
            with contextlib.suppress(Exception):
                await process.stop()
            return None
        process.binding.session_id = binding.session_id
        process.binding.current_turn = binding.current_turn
        process.binding.non_interactive = binding.non_interactive
        process.binding.fence = self._fence(record.home, process.cwd)
        self.pool.forget_pid(process)  # attach() tracks it again under the session
        return process

    async def _on_exit(self, process: AgentProcess, exit_: ProcessExit) -> None:
        """A process ended; if nobody is waiting on it (an idle death), record it."""
        if not exit_.expected and self.spares.owns(process):
            self.pool.forget_pid(process)
            self.spares.died(process)
            return
        for live in self._live.values():
            if live.process is process and live.current is None and not exit_.expected:
                await self._drop_process(live, process, exit_)
                if not live.closed:
                    await self.store.update_session(live.id, status="stopped")
                    self._respawn_soon(live)
                return

    async def _drop_process(self, live: LiveSession, process: AgentProcess,
                            exit_: ProcessExit) -> None:
        if live.process is not process:
            return
        live.process = None
        await self.pool.release(live.id, process)
        if not exit_.expected:
            with contextlib.suppress(Exception):
                await process.stop()  # release the SDK's resources
        await self.events.emit(live.id, "process.stopped", {
            "reason": "stopped" if exit_.expected else "exited",
            "detail": exit_.reason, "exitCode": exit_.exit_code,
            "stderr": "" if exit_.expected else exit_.stderr})

    async def _stop_process(self, live: LiveSession, reason: str) -> None:
        if live.spawning is not None and not live.spawning.done():
            with contextlib.suppress(Exception):
                await live.spawning
        process = live.process
        if process is None:
            return
        live.process = None
        # A caller cancelled mid-stop (a shutdown, a client gone) must not leave the CLI
        # half stopped: the stop runs to its end on its own, and close() waits for it.
        stopping = asyncio.ensure_future(self._stop_and_release(live.id, process))
        self._stopping.add(stopping)
        stopping.add_done_callback(self._stopping.discard)
        await asyncio.shield(stopping)
        await self.events.emit(live.id, "process.stopped", {"reason": reason})

    async def _stop_and_release(self, session_id: str, process: AgentProcess) -> None:
        await process.stop()
        await self.pool.release(session_id, process)

    # -- the reaper: idle processes and expired sessions ---------------------------------
    async def _reap_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.reaper_interval_seconds)
            try:
                await self.reap()
            except Exception:
                logger.exception("reaper failed")

    async def reap(self) -> None:
        """Stop processes idle too long; expire sessions past their TTL."""
        idle_limit = self.settings.idle_timeout_seconds
        if idle_limit > 0:
            for session_id, process in self.pool.live.items():
                live = self._live.get(session_id)
                if (live is not None and self._is_idle(session_id)
                        and time.monotonic() - process.last_used > idle_limit):
                    await self._stop_process(live, "idle_timeout")
                    if not live.closed:
                        await self.store.update_session(session_id, status="stopped")
        if self.settings.session_ttl_seconds > 0:
            for record in await self.store.sessions_expired_by(now(), ACTIVE_SESSION_STATUSES):
                if self._is_idle(record.id) or record.id not in self._live:
                    await self._close_session(record, "expired", "expired")
        for live in list(self._live.values()):
            self._forget_if_idle(live)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
CURSOR_PATTERN = r"^[0-9]{1,17}\.[A-Za-z0-9_-]{1,64}$"
"""A page cursor is a position in the list (creation time in microseconds, then the id),
not a reference to a row: any cursor of this form is valid, even if that row is gone."""


def encode_cursor(created_at: datetime, session_id: str) -> str:
    return f"{(created_at - _EPOCH) // timedelta(microseconds=1)}.{session_id}"


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    micros, _, session_id = cursor.partition(".")
    if not (micros.isdigit() and len(micros) <= 17 and session_id):
        raise InvalidCursor("The cursor is not one this server gave out",
                            details={"cursor": cursor[:100]})
    return _EPOCH + timedelta(microseconds=int(micros)), session_id
