"""What the MCP tools share: who the caller is, errors as tool errors, and waiting for a
turn while reporting its progress."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
from collections.abc import Iterator
from typing import Annotated, Any

import anyio
import mcp.types as types
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field

from claude_gateway.api.models import (
    PermissionModeName,
)
from claude_gateway.api.principals import owner_filter
from claude_gateway.api.principals import principal_of as request_principal
from claude_gateway.errors import (
    GatewayError,
)
from claude_gateway.events.envelope import EventType
from claude_gateway.services.auth import Principal
from claude_gateway.services.sessions import (
    PendingTurn,
    SessionManager,
    TurnOutcome,
    TurnStatus,
)
from claude_gateway.storage.records import EventRecord

logger = logging.getLogger("claude_gateway.mcp")

PATH = "/mcp"
MAX_READ_BYTES = 1024 * 1024
"""Largest file ``read_file`` returns: its content lands in a model's context."""
PROGRESS_MESSAGE_CHARS = 200
PROGRESS_DRAIN_SECONDS = 5.0
"""How long progress notifications may trail a finished turn before they are dropped."""

INSTRUCTIONS = """\
Claude Code as a service. `claude_run` runs one prompt in a workspace and answers with \
the result. For a conversation, `create_session` once, then `send_message` for each \
prompt and `get_messages` for the history. `list_files`, `read_file`, `write_file` and \
`delete_file` work on files under the workspace root (paths are relative to it; a \
workspace is its top-level directory)."""

Workspace = Annotated[str | None, Field(
    description="Workspace: a relative directory under the workspace root (created if "
    "missing).")]
Model = Annotated[str | None, Field(description="Model alias or name, e.g. 'sonnet'; "
                                                "empty: the gateway's default.")]
PermissionMode = Annotated[PermissionModeName | None, Field(
    description="Which tool calls the agent may make unasked. 'acceptEdits' lets it edit "
    "files; in 'default' a tool call waits for an answer over the REST API.")]
SystemPrompt = Annotated[str | None, Field(description="Replaces Claude Code's system "
                                                       "prompt.")]
AppendSystemPrompt = Annotated[str | None, Field(
    description="Appended to Claude Code's own system prompt.")]
FilePath = Annotated[str, Field(
    max_length=4096, description="Path relative to the workspace root, e.g. "
    "'my-project/src/app.py'. Absolute paths and '..' out of the root are refused.")]
SessionId = Annotated[str, Field(min_length=1, max_length=200,
                                 description="A session id ('ses_...') from create_session.")]



def principal_of(ctx: Context) -> str | None:
    """Whose sessions this MCP request may see (None: all)."""
    return owner_filter(getattr(ctx.request_context.request, "state", None))


def caller_of(ctx: Context) -> Principal:
    """Who this MCP request acts for: it owns what it creates, within its own directory."""
    return request_principal(getattr(ctx.request_context.request, "state", None))


@contextlib.contextmanager
def tool_errors() -> Iterator[None]:
    """Turn a gateway error into an MCP tool error that leads with its code."""
    try:
        yield
    except GatewayError as exc:
        raise ToolError(f"{exc.code}: {exc.message}") from exc


def wants_progress(ctx: Context) -> bool:
    """Whether the client sent a progress token with this request."""
    meta = ctx.request_context.meta
    return meta is not None and meta.get("progress_token") is not None


def progress_message(event: EventRecord) -> str:
    """One line about a ``message`` or ``message.delta`` event, for a progress notification."""
    data = event.data
    if event.type == EventType.MESSAGE_DELTA:
        text = f"{data.get('kind', 'text')}: {data.get('text', '')}"
    else:
        parts = []
        for block in data.get("content") or []:
            kind = block.get("type") if isinstance(block, dict) else None
            if kind == "text":
                parts.append(str(block.get("text", "")))
            elif kind == "tool_use":
                parts.append(f"[tool {block.get('name')}]")
            elif kind == "tool_result":
                parts.append("[tool result]")
        text = f"{data.get('role', 'message')}: {' '.join(parts)}"
    return text[:PROGRESS_MESSAGE_CHARS]


async def report_turn_progress(ctx: Context, sessions: SessionManager, session_id: str,
                               pending: PendingTurn) -> None:
    """Send a progress notification for each message and streamed delta of the turn."""
    count = 0
    # Closed explicitly so that its event-log subscription ends with it.
    events = sessions.turn_events(session_id, pending.id, pending.queued_seq - 1)
    try:
        async with contextlib.aclosing(events):
            async for event in events:
                if event.type in (EventType.MESSAGE, EventType.MESSAGE_DELTA):
                    count += 1
                    await ctx.report_progress(count, None, progress_message(event))
    except Exception:
        # Progress is a courtesy: losing it (say, the client went away) must not fail
        # the call, let alone cancel the run behind it.
        logger.debug("progress notifications stopped", exc_info=True)


async def wait_for_turn(ctx: Context, sessions: SessionManager, session_id: str,
                        pending: PendingTurn, within: float | None = None
                        ) -> TurnOutcome | None:
    """The turn's outcome (None if ``within`` seconds pass first), reporting its progress."""
    outcome: TurnOutcome | None = None
    async with anyio.create_task_group() as group:
        if wants_progress(ctx):
            group.start_soon(report_turn_progress, ctx, sessions, session_id, pending)
        with anyio.move_on_after(math.inf if within is None else within):
            outcome = await asyncio.shield(pending.done)
        if outcome is None:
            group.cancel_scope.cancel()
        else:
            # The reporter ends on the turn's last event, written before `done` is set;
            # let it deliver what it still holds, but never hold up the answer for long.
            group.cancel_scope.deadline = anyio.current_time() + PROGRESS_DRAIN_SECONDS
    return outcome


def turn_result(outcome: TurnOutcome, structured: dict[str, Any]) -> types.CallToolResult:
    """A finished turn as a tool result: its answer as text, every detail as structured content.

    A failed or interrupted turn is a tool error whose text names the reason.
    """
    details = {k: v for k, v in structured.items() if k != "result"}
    details_block = types.TextContent(type="text", text=json.dumps(details, default=str))
    if outcome.status is TurnStatus.COMPLETED:
        return types.CallToolResult(
            content=[types.TextContent(type="text", text=outcome.answer), details_block],
            structured_content=structured)
    error = outcome.error or {}
    if outcome.status is TurnStatus.INTERRUPTED:
        reason = ("INTERRUPTED: the turn was interrupted "
                  f"({outcome.data.get('reason', 'stopped')})")
    else:
        reason = f"{error.get('code', 'TURN_FAILED')}: {error.get('message', 'the turn failed')}"
    return types.CallToolResult(content=[types.TextContent(type="text", text=reason),
                                         details_block],
                                structured_content=structured, is_error=True)

