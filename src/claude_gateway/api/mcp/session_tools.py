"""MCP tools over runs and sessions: ``claude_run``, ``create_session``,
``send_message`` and ``get_messages``."""

from __future__ import annotations

import json
from typing import Annotated, Any

import anyio
import mcp.types as types
from mcp.server.mcpserver import Context, MCPServer
from pydantic import Field

from claude_gateway.api.mcp.common import (
    AppendSystemPrompt,
    Model,
    PermissionMode,
    SessionId,
    SystemPrompt,
    Workspace,
    caller_of,
    principal_of,
    tool_errors,
    turn_result,
    wait_for_turn,
)
from claude_gateway.api.models import (
    MessageListOut,
    SessionOut,
    TurnResultOut,
)
from claude_gateway.api.runs import RunOut
from claude_gateway.runtime.options import AgentOptions
from claude_gateway.services.runs import RunRequest, RunService
from claude_gateway.services.sessions import (
    SessionCreate,
    SessionManager,
)
from claude_gateway.settings import Settings
from claude_gateway.wire import message_page_to_api, run_to_api, turn_result_to_api


def register_session_tools(server: MCPServer, sessions: SessionManager, runs: RunService,
                           settings: Settings) -> None:
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
                prompt=prompt, continue_conversation=continue_conversation,
                session=SessionCreate(
                    workspace=workspace, model=model, resume=resume, non_interactive=True,
                    permission_mode=permission_mode or settings.non_interactive_permission_mode,
                    agent=AgentOptions(system_prompt=system_prompt,
                                       append_system_prompt=append_system_prompt,
                                       json_schema=json_schema))), caller_of(ctx))
        try:
            outcome = await wait_for_turn(ctx, sessions, record.id, pending)
        except BaseException:
            if not pending.done.done():
                # Nobody will read this run's answer: stop the agent.
                with anyio.CancelScope(shield=True):
                    await runs.cancel_quietly(record.id, owner)
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
                agent=AgentOptions(system_prompt=system_prompt,
                                   append_system_prompt=append_system_prompt),
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
            page, total = await sessions.messages(session_id, principal_of(ctx), limit=limit,
                                                  offset=offset)
        return MessageListOut.model_validate(message_page_to_api(page, total, limit=limit,
                                                                 offset=offset))

