"""``/mcp``: the gateway's runs, sessions and workspace files as MCP tools.

Built on the official ``mcp`` SDK (``MCPServer``) over streamable HTTP, with the SDK's
DNS-rebinding protection checking ``Host`` and ``Origin``. The tools are thin: each
calls the same service as its REST route, so ownership, workspace locks and path
confinement are the same. A gateway error becomes a tool error (``isError``) whose
text starts with its code, e.g. ``PATH_OUTSIDE_WORKSPACE: ...``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
import math
import stat
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Annotated, Any, Literal

import anyio
import mcp.types as types
from fastapi import FastAPI
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from pydantic import BaseModel, Field
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from claude_gateway import __version__
from claude_gateway.api.files import DirectoryOut, WrittenOut
from claude_gateway.api.models import (
    MessageListOut,
    PermissionModeName,
    SessionOut,
    TurnResultOut,
)
from claude_gateway.api.principals import owner_filter
from claude_gateway.api.principals import principal_of as request_principal
from claude_gateway.api.runs import RunOut, cancel_quietly
from claude_gateway.errors import GatewayError, InvalidRequest, IsADirectory, PayloadTooLarge
from claude_gateway.services.auth import Principal
from claude_gateway.services.files import FileService
from claude_gateway.services.runs import RunRequest, RunService
from claude_gateway.services.sessions import (
    PendingTurn,
    SessionCreate,
    SessionManager,
    TurnOutcome,
    TurnStatus,
)
from claude_gateway.settings import Settings
from claude_gateway.storage.records import EventRecord
from claude_gateway.wire import file_entry_to_api, rfc3339, run_to_api, turn_result_to_api

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


class ReadFileOut(BaseModel):
    path: str
    size: int
    encoding: Literal["text", "base64"]
    content: str


class DeletedOut(BaseModel):
    path: str
    deleted: bool


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
    if event.type == "message.delta":
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
                if event.type in ("message", "message.delta"):
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


def build_server(sessions: SessionManager, runs: RunService, files: FileService,
                 settings: Settings) -> MCPServer:
    """An MCP server whose tools drive these services."""
    with _no_root_logging_setup():
        server: MCPServer = MCPServer("claude-gateway", version=__version__,
                                      instructions=INSTRUCTIONS)

    @server.tool(annotations=types.ToolAnnotations(open_world_hint=True))
    async def claude_run(
        ctx: Context,
        prompt: Annotated[str, Field(min_length=1, description="What Claude Code should do.")],
        workspace: Annotated[str | None, Field(
            description="Workspace to run in: a relative directory under the workspace root "
            "(created if missing); empty: the default run workspace.")] = None,
        model: Model = None,
        system_prompt: SystemPrompt = None,
        append_system_prompt: AppendSystemPrompt = None,
        permission_mode: PermissionMode = None,
        json_schema: Annotated[dict[str, Any] | None, Field(
            description="A JSON schema the answer must match; it comes back as "
            "structuredOutput.")] = None,
        continue_conversation: Annotated[bool, Field(
            description="Continue the latest conversation in this workspace.")] = False,
        resume: Annotated[str | None, Field(
            description="A claudeSessionId from an earlier run to continue.")] = None,
    ) -> Annotated[types.CallToolResult, RunOut]:
        """Run one prompt with Claude Code in a workspace and wait for the result.

        Answers with the result text; the structured result adds runId, sessionId,
        claudeSessionId (to resume later), status, usage and totalCostUsd. Sends progress
        notifications while the agent works when asked to. Cancelling the call stops the
        run. Fails with WORKSPACE_BUSY while another agent works in the workspace.
        """
        owner = principal_of(ctx)
        with tool_errors():
            record, pending = await runs.start(RunRequest(
                prompt=prompt, workspace=workspace, model=model, system_prompt=system_prompt,
                append_system_prompt=append_system_prompt, json_schema=json_schema,
                permission_mode=permission_mode or settings.non_interactive_permission_mode,
                continue_conversation=continue_conversation, resume=resume,
                non_interactive=True), caller_of(ctx))
        try:
            outcome = await wait_for_turn(ctx, sessions, record.id, pending)
        except BaseException:
            if not pending.done.done():
                # Nobody will read this run's answer: stop the agent.
                with anyio.CancelScope(shield=True):
                    await cancel_quietly(runs, record.id, owner)
            raise
        if outcome is None:  # wait_for_turn without a time limit returns the outcome
            raise RuntimeError("a run's turn ended without an outcome")
        with tool_errors():
            record = await sessions.get(record.id)
        return turn_result(outcome, run_to_api(record, outcome))

    @server.tool()
    async def create_session(
        ctx: Context,
        workspace: Workspace = None,
        model: Model = None,
        permission_mode: PermissionMode = None,
        system_prompt: SystemPrompt = None,
        append_system_prompt: AppendSystemPrompt = None,
    ) -> SessionOut:
        """Create a durable Claude Code session (a conversation with one agent).

        Its process starts now, so the first send_message finds it warm. Without a
        workspace the session gets a fresh directory named after its id.
        """
        with tool_errors():
            record = await sessions.create(SessionCreate(
                workspace=workspace, model=model,
                permission_mode=permission_mode or settings.non_interactive_permission_mode,
                system_prompt=system_prompt, append_system_prompt=append_system_prompt,
                non_interactive=True,
            ), caller_of(ctx))
        return SessionOut.model_validate(sessions.to_api(record))

    @server.tool(annotations=types.ToolAnnotations(open_world_hint=True))
    async def send_message(
        ctx: Context,
        session_id: SessionId,
        prompt: Annotated[str, Field(min_length=1, description="The next prompt.")],
        timeout_seconds: Annotated[float | None, Field(
            ge=0, le=24 * 3600, description="How long to wait for the turn; after that the "
            "answer is status 'running' (or 'queued') and the turn goes on. Empty: the "
            "gateway's default.")] = None,
    ) -> Annotated[types.CallToolResult, TurnResultOut]:
        """Send a prompt to a session and wait for the turn's result.

        A prompt sent while a turn runs is queued behind it. Answers with the result
        text; the structured result adds turnId, status, usage and totalCostUsd. The turn
        goes on if the call is cancelled or times out (read it with get_messages).
        """
        with tool_errors():
            pending = await sessions.send_message(session_id, principal_of(ctx), prompt)
        timeout = (settings.message_timeout_seconds if timeout_seconds is None
                   else timeout_seconds)
        outcome = await wait_for_turn(ctx, sessions, session_id, pending, timeout)
        if outcome is None:
            live = sessions.live(session_id)
            status = "running" if live is not None and live.current is pending else "queued"
            waiting = {"turnId": pending.id, "status": status}
            return types.CallToolResult(
                content=[types.TextContent(type="text", text=json.dumps(waiting))],
                structured_content=waiting)
        return turn_result(outcome, turn_result_to_api(outcome))

    @server.tool(annotations=types.ToolAnnotations(read_only_hint=True))
    async def get_messages(
        ctx: Context,
        session_id: SessionId,
        limit: Annotated[int, Field(ge=1, le=1000, description="Messages per page.")] = 100,
        offset: Annotated[int, Field(ge=0, description="Messages to skip, oldest first.")
                          ] = 0,
    ) -> MessageListOut:
        """A page of a session's (or a run's) message history, oldest first."""
        with tool_errors():
            await sessions.get(session_id, principal_of(ctx))
            page, total = await sessions.store.list_messages(session_id, limit=limit,
                                                             offset=offset)
        return MessageListOut.model_validate({
            "messages": [{"id": m.id, "role": m.role, "content": m.content,
                          "turnId": m.turn_id, "createdAt": rfc3339(m.created_at)}
                         for m in page],
            "pagination": {"limit": limit, "offset": offset, "total": total,
                           "hasMore": offset + len(page) < total},
        })

    @server.tool(annotations=types.ToolAnnotations(read_only_hint=True))
    async def list_files(
        ctx: Context,
        path: Annotated[str, Field(
            max_length=4096, description="Directory relative to the workspace root; empty: "
            "the root, whose entries are the workspaces.")] = "",
    ) -> DirectoryOut:
        """List a directory under the workspace root: name, type (file|dir), size, modifiedAt."""
        files_ = files.for_owner(principal_of(ctx))
        with tool_errors():
            target, info = files_.stat(path)
            if not stat.S_ISDIR(info.st_mode):
                raise InvalidRequest(f"{path!r} is a file: read it with read_file",
                                     code="NOT_A_DIRECTORY", details={"path": path})
            entries = files_.list_dir(target)
        return DirectoryOut.model_validate({"path": files_.relative(target),
                                            "entries": [file_entry_to_api(e) for e in entries]})

    @server.tool(annotations=types.ToolAnnotations(read_only_hint=True))
    async def read_file(
        ctx: Context,
        path: FilePath,
        encoding: Annotated[Literal["text", "base64"], Field(
            description="'text' for UTF-8 text; 'base64' for any file.")] = "text",
    ) -> ReadFileOut:
        """Read a file under the workspace root (at most 1 MiB).

        A file that is not UTF-8 text fails with BINARY_FILE unless read with
        encoding 'base64'; a larger one fails with PAYLOAD_TOO_LARGE.
        """
        files_ = files.for_owner(principal_of(ctx))
        with tool_errors():
            target, info = files_.stat(path)
            if stat.S_ISDIR(info.st_mode):
                raise IsADirectory(f"{path!r} is a directory: use list_files",
                                   details={"path": path})
            if not stat.S_ISREG(info.st_mode):
                raise InvalidRequest(f"{path!r} is not a regular file", details={"path": path})
            if info.st_size > MAX_READ_BYTES:
                raise PayloadTooLarge(
                    f"{path!r} has {info.st_size} bytes; read_file returns at most "
                    f"{MAX_READ_BYTES} (use GET /v1/files/{{path}} for larger files)",
                    details={"path": path, "size": info.st_size})
            async with await anyio.open_file(target, "rb") as handle:
                data = await handle.read(MAX_READ_BYTES + 1)
            if len(data) > MAX_READ_BYTES:  # it grew after stat
                raise PayloadTooLarge(f"{path!r} is larger than {MAX_READ_BYTES} bytes",
                                      details={"path": path})
            if encoding == "base64":
                content = base64.b64encode(data).decode("ascii")
            else:
                try:
                    content = data.decode("utf-8")
                except UnicodeDecodeError:
                    raise InvalidRequest(
                        f"{path!r} is not UTF-8 text: read it with encoding 'base64'",
                        code="BINARY_FILE", details={"path": path}) from None
        return ReadFileOut(path=files_.relative(target), size=len(data), encoding=encoding,
                           content=content)

    @server.tool(annotations=types.ToolAnnotations(idempotent_hint=True))
    async def write_file(
        ctx: Context,
        path: FilePath,
        content: Annotated[str, Field(description="The file's new content.")],
        encoding: Annotated[Literal["text", "base64"], Field(
            description="How content is given: 'text' (written as UTF-8) or 'base64' "
            "(decoded to bytes).")] = "text",
    ) -> WrittenOut:
        """Create or replace a file under the workspace root (parent directories created)."""
        files_ = files.for_owner(principal_of(ctx))
        with tool_errors():
            if encoding == "base64":
                try:
                    data = base64.b64decode(content, validate=True)
                except (binascii.Error, ValueError):
                    raise InvalidRequest("content is not valid base64",
                                         details={"path": path}) from None
            else:
                data = content.encode("utf-8")

            async def chunks() -> AsyncIterator[bytes]:
                yield data

            written, size = await files_.write(path, chunks(), len(data))
        return WrittenOut(path=written, size=size)

    @server.tool(annotations=types.ToolAnnotations(destructive_hint=True))
    async def delete_file(
        ctx: Context,
        path: FilePath,
        recursive: Annotated[bool, Field(
            description="Needed to delete a directory with everything in it.")] = False,
    ) -> DeletedOut:
        """Delete a file, or a directory with recursive=true, under the workspace root."""
        files_ = files.for_owner(principal_of(ctx))
        with tool_errors():
            files_.delete(path, recursive=recursive)
        return DeletedOut(path=path, deleted=True)

    return server


@contextlib.contextmanager
def _no_root_logging_setup() -> Iterator[None]:
    # MCPServer() calls logging.basicConfig, which would give a root logger without
    # handlers a handler of its own; the gateway configures logging itself.
    root = logging.getLogger()
    placeholder = logging.NullHandler()
    root.addHandler(placeholder)
    try:
        yield
    finally:
        root.removeHandler(placeholder)


def transport_security(settings: Settings) -> TransportSecuritySettings:
    """DNS-rebinding protection: only the configured ``Host`` and ``Origin`` values pass."""
    return TransportSecuritySettings(enable_dns_rebinding_protection=True,
                                     allowed_hosts=list(settings.mcp_allowed_hosts),
                                     allowed_origins=list(settings.mcp_allowed_origins))


class McpEndpoint:
    """The ASGI app at ``/mcp``: hands each request to the running session manager."""

    def __init__(self) -> None:
        self.manager: StreamableHTTPSessionManager | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        manager = self.manager
        if manager is None:
            await Response("The MCP server is not running", status_code=503)(scope, receive,
                                                                               send)
            return
        await manager.handle_request(scope, receive, send)


def mount(app: FastAPI) -> McpEndpoint:
    """Route ``/mcp`` (exactly: no redirect to a trailing slash) to the MCP endpoint."""
    endpoint = McpEndpoint()
    app.router.routes.append(Route(PATH, endpoint=endpoint, include_in_schema=False))
    app.state.mcp = endpoint
    return endpoint


@asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[None]:
    """Serve ``/mcp`` with tools over the app's services until the block ends.

    Needs the services in ``app.state``; in-flight tool calls are cancelled on the way
    out, before the services close.
    """
    endpoint: McpEndpoint = app.state.mcp
    settings: Settings = app.state.settings
    server = build_server(app.state.sessions, app.state.runs, app.state.files, settings)
    # Stateful: a client's notifications/cancelled reaches the call it cancels (and so
    # stops its run) only within the session that carries the call.
    server.streamable_http_app(streamable_http_path=PATH, stateless_http=False,
                               json_response=False,
                               transport_security=transport_security(settings))
    manager = server.session_manager
    async with manager.run():
        endpoint.manager = manager
        try:
            yield
        finally:
            endpoint.manager = None
