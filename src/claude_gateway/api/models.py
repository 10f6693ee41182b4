"""Request and response bodies of the native API (camelCase on the wire)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from claude_gateway.services.prompts import Prompt

PermissionModeName = Literal["default", "acceptEdits", "plan", "dontAsk", "bypassPermissions"]
EffortName = Literal["low", "medium", "high", "xhigh", "max"]


MAX_JSON_DEPTH = 32


def json_depth(value: Any, depth: int = 0) -> int:
    """How deeply lists and objects nest in ``value``."""
    if depth > MAX_JSON_DEPTH:
        return depth
    if isinstance(value, dict):
        return max((json_depth(v, depth + 1) for v in value.values()), default=depth + 1)
    if isinstance(value, list):
        return max((json_depth(v, depth + 1) for v in value), default=depth + 1)
    return depth


def shallow(value: Any) -> Any:
    """Refuse JSON nested deeper than MAX_JSON_DEPTH (it only serves to exhaust parsers)."""
    if json_depth(value) > MAX_JSON_DEPTH:
        raise ValueError(f"nested deeper than {MAX_JSON_DEPTH} levels")
    return value


ShallowJson = Annotated[dict[str, Any], AfterValidator(shallow)]


class ApiModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class CreateSessionBody(ApiModel):
    model: str | None = Field(None, description="Model alias or name; empty: the default.")
    workspace: str | None = Field(
        None, description="Relative directory under the workspace root (created if missing); "
        "empty: a fresh directory named after the session.")
    permission_mode: PermissionModeName | None = None
    system_prompt: str | None = Field(None, description="Replaces Claude Code's system prompt.")
    append_system_prompt: str | None = Field(
        None, description="Appended to Claude Code's own system prompt.")
    allowed_tools: list[str] = Field(default_factory=list)
    disallowed_tools: list[str] = Field(default_factory=list)
    max_turns: int | None = Field(None, ge=1, le=1000)
    effort: EffortName | None = None
    add_dirs: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    metadata: ShallowJson = Field(default_factory=dict)
    resume: str | None = Field(None, description="A Claude session id to continue.")
    fork_from: str | None = Field(None, description="A gateway session id to fork.")
    share_workspace: bool = Field(
        False, description="Let turns run while another agent works in the workspace "
        "(otherwise 409 WORKSPACE_BUSY).")


class PatchSessionBody(ApiModel):
    model: str | None = None
    permission_mode: PermissionModeName | None = None
    metadata: ShallowJson | None = None


class MessageBody(ApiModel):
    prompt: Prompt
    stream: bool = False
    timeout_ms: int | None = Field(None, ge=0, le=24 * 3600 * 1000)
    client_id: str | None = Field(
        None, min_length=1, max_length=128,
        description="Makes the request idempotent: a second prompt with the same clientId "
        "gets the first one's turn instead of running again.")


class UsageOut(BaseModel):
    inputTokens: int
    outputTokens: int
    cacheReadInputTokens: int
    cacheCreationInputTokens: int
    totalCostUsd: float


class SessionOut(BaseModel):
    """The session object."""

    model_config = ConfigDict(extra="allow")
    id: str
    status: str
    model: str | None
    workspace: str
    permissionMode: str
    claudeSessionId: str | None
    createdAt: str
    lastActivityAt: str
    expiresAt: str | None
    metadata: dict[str, Any]
    usage: UsageOut
    messageCount: int


class SessionListOut(BaseModel):
    sessions: list[SessionOut]
    nextCursor: str | None


class TurnResultOut(BaseModel):
    model_config = ConfigDict(extra="allow")
    turnId: str
    status: str
    result: str | None = None
    structuredOutput: Any = None
    usage: UsageOut | None = None
    totalCostUsd: float | None = None
    durationMs: int | None = None
    numTurns: int | None = None
    error: dict[str, Any] | None = None


class MessageOut(BaseModel):
    id: int
    role: str
    content: Any
    turnId: str | None
    createdAt: str


class PaginationOut(BaseModel):
    limit: int
    offset: int
    total: int
    hasMore: bool


class MessageListOut(BaseModel):
    messages: list[MessageOut]
    pagination: PaginationOut


class EventOut(BaseModel):
    seq: int
    sessionId: str
    turnId: str | None
    type: str
    ts: str
    data: dict[str, Any]


class EventPageOut(BaseModel):
    events: list[EventOut]
    lastSeq: int


class InterruptOut(BaseModel):
    interrupted: bool


class PermissionAnswerBody(ApiModel):
    decision: Literal["allow", "deny"]
    updated_input: ShallowJson | None = Field(
        None, description="With allow: the tool runs with this input instead.")
    message: str | None = Field(
        None, max_length=10_000, description="With deny: what the model is told.")
    interrupt: bool = Field(False, description="With deny: also end the turn.")
    apply_suggestions: bool = Field(
        False, description="With allow: apply the CLI's suggested permission updates "
        "(e.g. allow this tool for the rest of the session).")


class PermissionOut(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str
    requestId: str
    toolName: str
    input: dict[str, Any]
    status: str
    createdAt: str
    expiresAt: str | None


class PermissionListOut(BaseModel):
    permissions: list[PermissionOut]


class ErrorDetailOut(BaseModel):
    code: str
    message: str
    details: dict[str, Any]


class ErrorOut(BaseModel):
    """The native API's error body."""

    error: ErrorDetailOut
    requestId: str
    timestamp: str


class OpenAIErrorDetailOut(BaseModel):
    message: str
    type: str
    code: str | None = None
    param: str | None = None


class OpenAIErrorOut(BaseModel):
    """OpenAI's error body (the OpenAI-compatible paths)."""

    error: OpenAIErrorDetailOut


def error_responses(model: type[BaseModel] = ErrorOut) -> dict[int | str, dict[str, Any]]:
    """What any route may answer besides success: documented, so clients and schema
    checkers know every status the gateway sends."""
    reasons = {
        400: "Invalid request", 401: "Missing or wrong API key",
        402: "Daily budget exceeded", 403: "Forbidden (mode, origin)",
        404: "Not found, or not yours", 405: "Method not allowed", 408: "Body too slow",
        409: "Conflict (ended session, busy workspace, answered permission)",
        413: "Body too large", 421: "Host not served", 429: "Rate or capacity limit",
    }
    return {status: {"model": model, "description": text} for status, text in reasons.items()}
