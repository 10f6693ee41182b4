"""Request and response bodies of the native API (camelCase on the wire)."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field
from pydantic.alias_generators import to_camel

from claude_gateway.runtime.options import AgentOptions
from claude_gateway.services.json_limits import json_integer, shallow
from claude_gateway.services.prompts import Prompt

PermissionModeName = Literal["default", "acceptEdits", "plan", "dontAsk", "bypassPermissions"]
SessionStatusName = Literal["starting", "idle", "running", "stopped", "failed", "expired",
                            "ended"]
MAX_OFFSET = 10**12
"""Bound of offset-style query parameters (a larger number overflows the database)."""
MAX_SEQ = 10**15
EffortName = Literal["low", "medium", "high", "xhigh", "max"]


ShallowJson = Annotated[dict[str, Any], AfterValidator(shallow)]

# Limits on free-form fields: every value a client stores or hands to the CLI is bounded
# (the CLI receives prompts, tool lists and schemas as command-line arguments, which the
# kernel caps at 128 KiB each).
MAX_PROMPT_TEXT = 32_000
"""Characters of a system prompt or an appended one (at most 4 bytes each: under the
kernel's 128 KiB limit on one argument)."""
MAX_SCHEMA_BYTES = 32_000
MAX_METADATA_PAIRS = 16
MAX_METADATA_KEY = 64
MAX_METADATA_VALUE = 512

ModelName = Annotated[str, Field(
    min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/@\[\]-]*$",
    description="A model alias (`sonnet`, `opus`, `haiku`) or a full model name.")]
PromptText = Annotated[str, Field(max_length=MAX_PROMPT_TEXT)]
ToolRule = Annotated[str, Field(min_length=1, max_length=256, pattern=r"^[^\x00-\x1f\x7f]+$",
                                description="A tool name or rule, e.g. `Bash(git:*)`.")]
ToolRules = Annotated[list[ToolRule], Field(max_length=128)]
RelativeName = Annotated[str, Field(
    min_length=1, max_length=1024, pattern=r"^[^\x00]+$",
    description="A relative directory name under your workspace directory.")]
EnvName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")]
Metadata = Annotated[
    dict[Annotated[str, Field(min_length=1, max_length=MAX_METADATA_KEY)],
         Annotated[str, Field(max_length=MAX_METADATA_VALUE)]],
    Field(max_length=MAX_METADATA_PAIRS,
          description=f"Up to {MAX_METADATA_PAIRS} string pairs for your own use; keys up to "
          f"{MAX_METADATA_KEY} characters, values up to {MAX_METADATA_VALUE}.")]
Identifier = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_-]+$")]


# An integer between bounds, as JSON Schema means integer (the bounds must sit in the
# same Field as strict=False, or pydantic writes them into the schema unconverted).
MaxTurns = Annotated[int, Field(strict=False, ge=1, le=1000), BeforeValidator(json_integer)]
TimeoutMs = Annotated[int, Field(strict=False, ge=0, le=24 * 3600 * 1000),
                      BeforeValidator(json_integer)]


def small_schema(value: dict[str, Any]) -> dict[str, Any]:
    """A JSON schema the CLI can take on its command line."""
    if len(json.dumps(value)) > MAX_SCHEMA_BYTES:
        raise ValueError(f"larger than {MAX_SCHEMA_BYTES} bytes")
    return value


JsonSchema = Annotated[dict[str, Any], AfterValidator(shallow), AfterValidator(small_schema)]


class ApiModel(BaseModel):
    """A request body: camelCase, no unknown fields, and strict types (``true`` is not
    a number, ``0`` is not a boolean)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid",
                              strict=True)


class CreateSessionBody(ApiModel):
    model: ModelName | None = Field(None, description="Model alias or name; empty: the "
                                                      "default.")
    workspace: RelativeName | None = Field(
        None, description="Relative directory under your workspace directory (created if "
        "missing; absolute names and '..' are refused); empty: a fresh directory named after "
        "the session, or the directory of the conversation given by resume or forkFrom.")
    permission_mode: PermissionModeName | None = None
    system_prompt: PromptText | None = Field(
        None, description="Replaces Claude Code's system prompt.")
    append_system_prompt: PromptText | None = Field(
        None, description="Appended to Claude Code's own system prompt.")
    allowed_tools: ToolRules = Field(default_factory=list)
    disallowed_tools: ToolRules = Field(default_factory=list)
    max_turns: MaxTurns | None = None
    effort: EffortName | None = None
    add_dirs: Annotated[list[RelativeName], Field(max_length=16)] = Field(
        default_factory=list, description="More directories the agent may read: existing "
        "directories under your workspace directory.")
    env: Annotated[dict[EnvName, Annotated[str, Field(max_length=16384,
                                                       pattern=r"^[^\x00]*$")]],
                   Field(max_length=64)] = Field(
        default_factory=dict, json_schema_extra={"additionalProperties": False},
        description="Environment variables for the agent. Variables "
        "that choose the upstream, its credentials, Claude Code's configuration or how "
        "processes behave are refused (400 ENV_NOT_ALLOWED).")
    metadata: Metadata = Field(default_factory=dict)
    resume: Identifier | None = Field(
        None, description="A Claude conversation id (`claudeSessionId`) of yours to continue.")
    fork_from: Identifier | None = Field(None, description="A session id of yours to fork.")
    share_workspace: bool = Field(
        False, description="Let turns run while another agent works in the workspace "
        "(otherwise 409 WORKSPACE_BUSY).")


    def agent_options(self) -> AgentOptions:
        return AgentOptions(
            system_prompt=self.system_prompt, append_system_prompt=self.append_system_prompt,
            allowed_tools=self.allowed_tools, disallowed_tools=self.disallowed_tools,
            max_turns=self.max_turns, effort=self.effort, add_dirs=self.add_dirs,
            env=self.env)


class PatchSessionBody(ApiModel):
    model: ModelName | None = None
    permission_mode: PermissionModeName | None = None
    metadata: Metadata | None = None


class MessageBody(ApiModel):
    prompt: Prompt
    stream: bool = False
    timeout_ms: TimeoutMs | None = None
    client_id: str | None = Field(
        None, min_length=1, max_length=128, pattern=r"^[^\x00-\x1f\x7f]+$",
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
    node: str | None = None
    """The gateway node running its CLI (null when none is attached)."""
    createdAt: str
    lastActivityAt: str
    expiresAt: str | None
    metadata: dict[str, Any]
    usage: UsageOut
    messageCount: int


class SessionListOut(BaseModel):
    sessions: list[SessionOut]
    nextCursor: str | None


class OutcomeOut(BaseModel):
    """How a turn ended (or that it has not yet): the fields a turn result and a run
    share."""

    model_config = ConfigDict(extra="allow")
    status: str
    result: str | None = None
    structuredOutput: Any = None
    usage: UsageOut | None = None
    totalCostUsd: float | None = None
    durationMs: int | None = None


class TurnResultOut(OutcomeOut):
    turnId: str
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
        413: "Body too large", 415: "Body not sent as JSON", 421: "Host not served",
        429: "Rate or capacity limit",
    }
    return {status: {"model": model, "description": text} for status, text in reasons.items()}
