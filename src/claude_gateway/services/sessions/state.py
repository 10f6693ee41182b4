"""What the gateway holds in memory for a session while it is live, and the shapes its
turns end in.

A session has a :class:`LiveSession` only while something of it is live (a process, a
queued or running turn, a change under way); :class:`LiveSessions` drops it as soon as
nothing is, so a server that runs for weeks holds state for its busy sessions only. The
store stays the truth: a session without a LiveSession is read from it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from claude_gateway.errors import ErrorCode
from claude_gateway.runtime.agent import AgentProcess, Prompt
from claude_gateway.runtime.process_pool import ProcessPool
from claude_gateway.storage.records import EventRecord, Fence, TurnRecord


class SessionStatus(StrEnum):
    """A session's ``status`` (see the manager's docstring for the transitions)."""

    STARTING = "starting"
    IDLE = "idle"
    RUNNING = "running"
    STOPPED = "stopped"
    FAILED = "failed"
    EXPIRED = "expired"
    ENDED = "ended"


CLOSED_STATUSES = (SessionStatus.ENDED, SessionStatus.EXPIRED)
"""A closed session takes no more prompts; its history stays readable."""


class TurnStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    INTERRUPTED = "interrupted"


ENDED_TURN_STATUSES = (TurnStatus.COMPLETED, TurnStatus.FAILED, TurnStatus.INTERRUPTED)


@dataclass(frozen=True)
class TurnOutcome:
    """How a turn ended: its status and the data of its terminal event (``result``,
    ``usage``, ``totalCostUsd``, ``error``... as API.md describes ``turn.completed``)."""

    turn_id: str
    status: TurnStatus
    data: dict[str, Any]

    @classmethod
    def of_event(cls, event: EventRecord) -> TurnOutcome:
        """From a turn's terminal event (``turn.completed``, ``.failed``, ``.interrupted``)."""
        return cls(event.turn_id or "", TurnStatus(event.type.removeprefix("turn.")),
                   event.data)

    @classmethod
    def of_record(cls, turn: TurnRecord) -> TurnOutcome:
        """As far as the store knows (a turn not ended yet has no data)."""
        return cls(turn.id, TurnStatus(turn.status), dict(turn.outcome or {}))

    @property
    def failed(self) -> bool:
        return self.status is TurnStatus.FAILED

    @property
    def result(self) -> str | None:
        value = self.data.get("result")
        return value if isinstance(value, str) else None

    @property
    def structured_output(self) -> Any:
        return self.data.get("structuredOutput")

    @property
    def answer(self) -> str:
        """The answer as text: the structured output as JSON when there is one."""
        if self.structured_output is not None:
            return json.dumps(self.structured_output)
        return self.result or ""

    @property
    def error(self) -> dict[str, Any] | None:
        error = self.data.get("error")
        return error if isinstance(error, dict) else None


def failure(code: ErrorCode, message: str, **details: Any) -> dict[str, Any]:
    """The ``data`` of a ``turn.failed`` event."""
    return {"error": {"code": code.value, "message": message, **details}}


def start_failure(error: dict[str, Any]) -> dict[str, Any]:
    """A turn's failure when its CLI could not start: the CLI refusing the structured-
    output schema is the client's mistake (INVALID_JSON_SCHEMA), anything else the
    gateway's."""
    if error.get("code") == ErrorCode.SESSION_ON_ANOTHER_NODE:
        return failure(ErrorCode.SESSION_ON_ANOTHER_NODE, str(error.get("detail")),
                       node=error.get("node"))
    stderr = str(error.get("stderr", ""))
    for line in stderr.splitlines():
        if "is not a valid JSON Schema" in line:
            return failure(ErrorCode.INVALID_JSON_SCHEMA, line.removeprefix("Error: "),
                           **error)
    return failure(ErrorCode.PROCESS_START_FAILED, "The Claude Code CLI could not be started.",
                   **error)


class DuplicateClientId(Exception):
    """A prompt with this ``clientId`` was accepted before: its turn id is ``turn_id``."""

    def __init__(self, turn_id: str) -> None:
        super().__init__(turn_id)
        self.turn_id = turn_id


class TurnNotRecorded(Exception):
    """The turn's ``turn.queued`` event could not be written (its session is gone)."""


@dataclass
class PendingTurn:
    """A prompt accepted for a session: queued, then run by the session's worker.

    The request that sent it waits on ``done``; the worker waits on ``recorded`` before
    it announces the turn, so ``turn.started`` never precedes ``turn.queued``."""

    id: str
    prompt: Prompt
    done: asyncio.Future[TurnOutcome]
    interrupt_requested: bool = False
    queued_seq: int = 0
    """Sequence number of this turn's ``turn.queued`` event."""
    recorded: asyncio.Future[None] | None = None
    """Done once ``turn.queued`` is in the store (failed if it could not be written)."""
    remote: bool = False
    """Run by another node (watched here through the event log)."""
    trace: Any = None
    """The trace context of the request that sent it (its ``turn`` span's parent)."""


@dataclass
class LiveSession:
    """In-memory state of a session while something of it is live."""

    id: str
    queue: asyncio.Queue[PendingTurn | None] = field(default_factory=asyncio.Queue)
    queued: list[PendingTurn] = field(default_factory=list)
    worker: asyncio.Task[None] | None = None
    users: int = 0
    """Requests working with it now (it is not forgotten meanwhile)."""
    process: AgentProcess | None = None
    spawning: asyncio.Task[AgentProcess | None] | None = None
    current: PendingTurn | None = None
    closed: bool = False
    closed_status: SessionStatus = SessionStatus.ENDED
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    """Held while the process starts."""
    control: asyncio.Lock = field(default_factory=asyncio.Lock)
    """Held by a change of the session (PATCH) and by its closing."""
    owner: str = ""
    owner_known: bool = False
    workspace: str = ""
    share_workspace: bool = False
    client_turns: dict[str, str] = field(default_factory=dict)
    """``clientId`` -> turn id of prompts accepted since the session became live."""
    model: str | None = None
    model_known: bool = False
    """Whether ``model`` mirrors the stored one (PATCH keeps it current)."""
    spawn_error: dict[str, Any] | None = None
    """Why its last process failed to start (its turns fail with it; status ``failed``)."""
    fence: Fence | None = None
    """This node's lease on the session while it runs the session's CLI: every write for
    the session carries it."""

    @property
    def idle(self) -> bool:
        """No turn runs or waits."""
        return self.current is None and not self.queued

    @property
    def starting(self) -> bool:
        return self.spawning is not None and not self.spawning.done()

    @property
    def warm(self) -> bool:
        """A started process is ready for the next prompt."""
        return self.process is not None and self.process.alive and not self.starting

    def busy_turns(self) -> int:
        return len(self.queued) + (1 if self.current else 0)

    @contextlib.contextmanager
    def in_use(self) -> Iterator[LiveSession]:
        """Kept in memory while a request works with it (across its awaits)."""
        self.users += 1
        try:
            yield self
        finally:
            self.users -= 1

    def current_turn_id(self) -> str | None:
        return self.current.id if self.current else None

    def resting_status(self) -> SessionStatus:
        """The status between turns."""
        if self.process is not None and self.process.alive:
            return SessionStatus.IDLE
        if self.starting:
            return SessionStatus.STARTING
        return SessionStatus.FAILED if self.spawn_error is not None else SessionStatus.STOPPED


class LiveSessions:
    """The live sessions by id (one node's; the store knows every session)."""

    def __init__(self, pool: ProcessPool) -> None:
        self._pool = pool
        self._by_id: dict[str, LiveSession] = {}

    def get(self, session_id: str) -> LiveSession | None:
        return self._by_id.get(session_id)

    def open(self, session_id: str) -> LiveSession:
        """The session's live state, made if it had none."""
        live = self._by_id.get(session_id)
        if live is None:
            live = self._by_id[session_id] = LiveSession(session_id)
        return live

    def pop(self, session_id: str) -> LiveSession | None:
        return self._by_id.pop(session_id, None)

    def all(self) -> list[LiveSession]:
        return list(self._by_id.values())

    def snapshot(self) -> dict[str, LiveSession]:
        return dict(self._by_id)

    def __len__(self) -> int:
        return len(self._by_id)

    def __contains__(self, session_id: object) -> bool:
        return session_id in self._by_id

    def is_idle(self, session_id: str) -> bool:
        live = self._by_id.get(session_id)
        return live is not None and live.idle

    def turns_of(self, owner: str) -> int:
        """Turns running or queued in the open sessions of ``owner``."""
        return sum(live.busy_turns() for live in self._by_id.values()
                   if live.owner == owner and not live.closed)

    def forget_if_idle(self, live: LiveSession, *, worker_ending: bool = False) -> None:
        """Drop a session's in-memory state once nothing of it is live (no process, turn,
        queue, task or change under way); its next message reads the store again."""
        worker_done = live.worker is None or live.worker.done() or worker_ending
        busy = (live.process is not None or not live.idle or live.starting
                or not worker_done or live.control.locked() or live.lock.locked()
                or live.users > 0 or self._pool.get(live.id) is not None)
        if not busy and self._by_id.get(live.id) is live:
            del self._by_id[live.id]

    def fence_of(self, session_id: str) -> Fence | None:
        """The fence for a write of this session (None: this node does not own it)."""
        live = self._by_id.get(session_id)
        return live.fence if live is not None else None

    def forget_idle(self) -> None:
        for live in list(self._by_id.values()):
            self.forget_if_idle(live)

