"""The inbox: commands for a session whose CLI runs on another node go to that node,
which acts on them and answers.

The node a client talks to writes the command (a prompt, an interrupt, a permission
answer, a change, a deletion) to the store for the node holding the session's lease,
and waits for the answer; the owner takes its commands, runs each as if a client had
sent it there, and writes the answer back. So a client may talk to any node and gets
the same answers as from the owner. A notification wakes both sides at once (on
PostgreSQL); both also poll every ``poll_seconds``.

If the owner is gone (not seen for a lease TTL) before it answers, :meth:`Inbox.send`
returns None and the caller acts on the command itself: a command nobody took is
withdrawn; one the dead node took may have had an effect, which the caller finds
after it has taken the session over (a prompt's turn id is chosen by the sender).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from claude_gateway.errors import ApiError, ErrorCode, Unavailable
from claude_gateway.storage.base import Listener, Store
from claude_gateway.storage.records import CommandRecord

logger = logging.getLogger("claude_gateway.cluster")

Execute = Callable[[CommandRecord], Awaitable[dict[str, Any]]]
ANSWER_TIMEOUT_SECONDS = 120.0
"""How long a sender waits for a live owner's answer before it gives up (503)."""
EARLY_ANSWERS = 1000
KEEP_COMMANDS = timedelta(hours=1)
"""Answered (and any other) commands are dropped after this long."""


class RemoteError(ApiError):
    """An error the owner node answered with, raised again where the client waits."""


def remote_error(error: dict[str, Any]) -> RemoteError:
    try:
        code = ErrorCode(str(error.get("code")))
    except ValueError:
        code = ErrorCode.INTERNAL_ERROR
    kind: type[RemoteError] = type("RemoteError", (RemoteError,), {
        "code": code, "status": int(error.get("status", 500))})
    return kind(str(error.get("message", "")), details=error.get("details") or {})


def error_answer(exc: ApiError) -> dict[str, Any]:
    return {"error": {"status": exc.status, "code": str(exc.code), "message": exc.message,
                      "details": exc.details}}


def raise_if_error(answer: dict[str, Any]) -> dict[str, Any]:
    error = answer.get("error")
    if isinstance(error, dict):
        raise remote_error(error)
    return answer


class Inbox:
    def __init__(self, store: Store, *, node_id: str, lease_ttl: float,
                 poll_seconds: float, execute: Execute) -> None:
        self.store = store
        self.node_id = node_id
        self.lease_ttl = lease_ttl
        self.poll_seconds = poll_seconds
        self.execute = execute
        self._answers: dict[int, asyncio.Event] = {}
        self._early: collections.OrderedDict[int, None] = collections.OrderedDict()
        """Answers notified before their sender started waiting (the last few)."""
        self._wake = asyncio.Event()
        self._listener: Listener | None = None
        self._task: asyncio.Task[None] | None = None
        self._running: set[asyncio.Task[None]] = set()
        self.on_sweep: Callable[[], None] = lambda: None
        """Called when a node let sessions go (``s``): the sweep should look now."""

    # -- lifecycle -----------------------------------------------------------------------
    async def start(self) -> None:
        self._listener = self.store.listen_commands(self.node_id, self._woken, self._gap)
        if self._listener is not None:
            self._listener.start()
        self._task = asyncio.create_task(self._serve_forever(), name="inbox")

    async def close(self) -> None:
        """Stop taking commands; the ones being run finish (they are short: a prompt is
        answered once queued)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait({self._task})
            self._task = None
        if self._running:
            await asyncio.wait(self._running, timeout=ANSWER_TIMEOUT_SECONDS)
        if self._listener is not None:
            await self._listener.stop()
            self._listener = None

    def _woken(self, what: str) -> None:
        if what == "c":
            self._wake.set()
        elif what == "s":
            self.on_sweep()
        elif what.startswith("a "):
            with contextlib.suppress(ValueError):
                command_id = int(what[2:])
                waiting = self._answers.get(command_id)
                if waiting is not None:
                    waiting.set()
                else:  # answered before its sender got the id back from the store
                    self._early[command_id] = None
                    while len(self._early) > EARLY_ANSWERS:
                        self._early.popitem(last=False)

    def _gap(self) -> None:
        self._wake.set()
        for waiting in self._answers.values():
            waiting.set()

    # -- sending ---------------------------------------------------------------------------
    async def send(self, session_id: str, target: str, kind: str,
                   payload: dict[str, Any]) -> dict[str, Any] | None:
        """Send a command to ``target`` and wait for its answer (an error answer is
        raised as the owner raised it). None if ``target`` went away first: the
        caller acts on the command itself."""
        command = CommandRecord(session_id, target, self.node_id, kind, payload)
        woken = asyncio.Event()
        command_id = await self.store.send_command(command)
        self._answers[command_id] = woken
        if command_id in self._early:
            del self._early[command_id]
            woken.set()
        try:
            deadline = asyncio.get_running_loop().time() + ANSWER_TIMEOUT_SECONDS
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(woken.wait(), self.poll_seconds)
                woken.clear()
                found = await self.store.command(command_id)
                if found is not None and found.status == "answered" and found.answer is not None:
                    return raise_if_error(found.answer)
                if not await self._alive(target):
                    await self.store.withdraw_command(command_id)
                    logger.warning("node %s went away before it answered a %s command; "
                                   "this node acts on it", target, kind,
                                   extra={"session_id": session_id})
                    return None
                if asyncio.get_running_loop().time() > deadline:
                    await self.store.withdraw_command(command_id)
                    raise Unavailable(f"Gateway node {target}, which runs this session, "
                                      "did not answer in time; try again",
                                      details={"sessionId": session_id, "node": target})
        finally:
            self._answers.pop(command_id, None)

    async def _alive(self, node: str) -> bool:
        return any(n.id == node for n, _ in await self.store.live_nodes(self.lease_ttl))

    # -- serving ---------------------------------------------------------------------------
    async def _serve_forever(self) -> None:
        cleaned = datetime.now(UTC)
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_seconds)
            self._wake.clear()
            try:
                for command in await self.store.take_commands(self.node_id):
                    task = asyncio.create_task(self._run(command),
                                               name=f"command-{command.id}")
                    self._running.add(task)
                    task.add_done_callback(self._running.discard)
                if datetime.now(UTC) - cleaned > KEEP_COMMANDS / 4:
                    cleaned = datetime.now(UTC)
                    await self.store.forget_commands(cleaned - KEEP_COMMANDS)
            except Exception:
                logger.exception("could not read this node's commands; trying again")

    async def _run(self, command: CommandRecord) -> None:
        try:
            answer = await self.execute(command)
        except ApiError as exc:
            answer = error_answer(exc)
        except Exception as exc:
            logger.exception("a command from another node failed",
                             extra={"session_id": command.session_id})
            answer = {"error": {"status": 500, "code": str(ErrorCode.INTERNAL_ERROR),
                                "message": f"{exc.__class__.__name__}: {exc}"}}
        try:
            await self.store.answer_command(command.id, answer)
        except Exception:
            logger.exception("could not answer a command from another node",
                             extra={"session_id": command.session_id})
