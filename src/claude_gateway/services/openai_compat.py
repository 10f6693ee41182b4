"""OpenAI chat completions, mapped onto gateway sessions and runs (pure functions).

Field by field, see the README's table: what is supported, mapped or ignored.
"""

from __future__ import annotations

import fnmatch
import time
import uuid
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from claude_gateway.errors import ModelNotFound
from claude_gateway.services.json_limits import json_integer, shallow
from claude_gateway.services.prompts import DATA_URL
from claude_gateway.services.sessions.state import TurnOutcome

PROVIDER_PREFIX = "claude-gateway/"
OPENAI_PATHS = ("/v1/models", "/v1/chat/completions")
EFFORTS = {"minimal": "low", "low": "low", "medium": "medium", "high": "high",
           "xhigh": "xhigh", "max": "max"}


class TextPart(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)
    type: Literal["text"]
    text: str


class ImageUrl(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)
    url: str = Field(min_length=1, pattern=f"^(?:https?://.+|{DATA_URL})$", description=(
        "A base64 data: URL of a PNG, JPEG, GIF or WebP image, or an http(s) URL when "
        "the gateway is allowed to fetch images."))
    detail: str | None = None


class ImagePart(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)
    type: Literal["image_url"]
    image_url: ImageUrl


Parts = list[Annotated[TextPart | ImagePart, Field(discriminator="type")]]


class UserMessage(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)
    role: Literal["user"]
    content: Annotated[str, Field(min_length=1)] | Annotated[Parts, Field(min_length=1)]
    name: str | None = None


class InstructionMessage(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)
    role: Literal["system", "developer"]
    content: str | list[TextPart]
    name: str | None = None


class AssistantMessage(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)
    role: Literal["assistant"]
    content: str | list[TextPart] | None = None
    name: str | None = None


class ToolMessage(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)
    role: Literal["tool", "function"]
    content: str | list[TextPart] | None = None
    name: str | None = None
    tool_call_id: str | None = None


ChatMessage = Annotated[UserMessage | InstructionMessage | AssistantMessage | ToolMessage,
                        Field(discriminator="role")]
DialogueMessage = UserMessage | AssistantMessage | ToolMessage


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)
    include_usage: bool = False


JsonInteger = Annotated[int, Field(strict=False), BeforeValidator(json_integer)]


class TextFormat(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)
    type: Literal["text"]


class JsonObjectFormat(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)
    type: Literal["json_object"]


class JsonSchemaSpec(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)
    name: str | None = None
    schema_: dict[str, Any] = Field(alias="schema")
    strict: bool | None = None


class JsonSchemaFormat(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)
    type: Literal["json_schema"]
    json_schema: JsonSchemaSpec


class ChatRequest(BaseModel):
    """The fields we read; everything else is accepted and ignored."""

    model_config = ConfigDict(extra="allow", strict=True)
    model: str = Field(min_length=1, max_length=256)
    messages: list[ChatMessage] = Field(min_length=1, max_length=10_000)
    stream: bool = False
    stream_options: StreamOptions | None = None
    reasoning_effort: Literal["none", "minimal", "low", "medium", "high", "xhigh",
                              "max"] | None = None
    response_format: Annotated[TextFormat | JsonObjectFormat | JsonSchemaFormat,
                               Field(discriminator="type")] | None = None
    n: Annotated[int, Field(strict=False, ge=1, le=1), BeforeValidator(json_integer)] | None = None
    max_tokens: JsonInteger | None = None
    max_completion_tokens: JsonInteger | None = None
    temperature: float | None = None

    @model_validator(mode="before")
    @classmethod
    def _not_too_deep(cls, data: Any) -> Any:
        # Unknown fields are accepted and ignored, but not nested without end.
        return shallow(data)


def is_openai_path(path: str) -> bool:
    """Paths whose errors use OpenAI's format."""
    return path in OPENAI_PATHS or path.startswith("/v1/models/")


def resolve_model(requested: str, *, known: list[str], aliases: dict[str, str],
                  default: str, strict: bool) -> str:
    """The Claude model an OpenAI request's ``model`` means.

    ``claude-gateway/`` is stripped; an alias (exact name, then glob pattern) maps to its
    model; a listed model or a full ``claude-*`` name is itself; any other name (OpenAI
    clients send ``gpt-4o`` and the like by default) is the default model, or, with
    ``strict``, refused with OpenAI's ``model_not_found``.
    """
    name = requested.removeprefix(PROVIDER_PREFIX)
    if name in aliases:
        return aliases[name]
    for pattern, target in aliases.items():
        if fnmatch.fnmatchcase(name, pattern):
            return target
    if name in known or name.startswith("claude-"):
        return name
    if strict:
        raise ModelNotFound(f"The model `{requested}` does not exist on this gateway (known: "
                            f"{', '.join(known)})", details={"param": "model"})
    return default


def effort_of(reasoning_effort: str | None) -> str | None:
    """The CLI's effort for OpenAI's ``reasoning_effort`` (``none``: the default)."""
    return EFFORTS.get(reasoning_effort) if reasoning_effort else None


ResponseFormat = TextFormat | JsonObjectFormat | JsonSchemaFormat


def schema_of(response_format: ResponseFormat | None) -> tuple[dict[str, Any] | None, str]:
    """(JSON schema for structured output, extra system instruction)."""
    if isinstance(response_format, JsonSchemaFormat):
        return response_format.json_schema.schema_, ""
    if isinstance(response_format, JsonObjectFormat):
        return None, "Answer with a single JSON object and nothing else."
    return None, ""


def text_of(content: str | list[TextPart] | list[TextPart | ImagePart] | None) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "\n".join(p.text for p in content if isinstance(p, TextPart))


def split_conversation(messages: list[ChatMessage]
                       ) -> tuple[str, list[DialogueMessage], list[DialogueMessage]]:
    """(system text, earlier turns, the new messages).

    The new messages are what follows the last assistant message: usually the user's
    next message, or tool results. After a final assistant message there are none, and
    the agent is asked to go on.
    """
    system = "\n\n".join(text_of(m.content) for m in messages
                         if isinstance(m, InstructionMessage) and text_of(m.content))
    dialogue = [m for m in messages if not isinstance(m, InstructionMessage)]
    start = len(dialogue)
    while start > 0 and not isinstance(dialogue[start - 1], AssistantMessage):
        start -= 1
    return system, dialogue[:start], dialogue[start:]


def context_preamble(history: list[DialogueMessage]) -> str:
    """Earlier turns, given to a stateless agent as quoted context."""
    if not history:
        return ""
    lines = ["The conversation so far (quoted; answer the new message that follows):"]
    for message in history:
        text = text_of(message.content) or ("[image]" if message.content else "")
        lines.append(f"{message.role}:")
        lines.extend(f"| {line}" for line in text.splitlines() or [""])
    return "\n".join(lines) + "\n\nNew message:\n"


def completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"


def openai_usage(usage: dict[str, Any] | None) -> dict[str, int]:
    usage = usage or {}
    prompt = int(usage.get("inputTokens", 0) + usage.get("cacheReadInputTokens", 0)
                 + usage.get("cacheCreationInputTokens", 0))
    completion = int(usage.get("outputTokens", 0))
    return {"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion}


def finish_reason(outcome: TurnOutcome) -> str:
    if outcome.data.get("stopReason") == "max_tokens":
        return "length"
    return "stop"


def completion(cid: str, model: str, outcome: TurnOutcome) -> dict[str, Any]:
    return {
        "id": cid,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": outcome.answer, "refusal": None},
            "finish_reason": finish_reason(outcome),
            "logprobs": None,
        }],
        "usage": openai_usage(outcome.data.get("usage")),
    }


def chunk(cid: str, model: str, created: int, delta: dict[str, Any],
          finish: str | None = None) -> dict[str, Any]:
    return {
        "id": cid,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
    }


def usage_chunk(cid: str, model: str, created: int, usage: dict[str, Any] | None
                ) -> dict[str, Any]:
    return {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
            "choices": [], "usage": openai_usage(usage)}


def error_body(message: str, type_: str, code: str | None = None,
               param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "code": code, "param": param}}


def error_type(status: int) -> str:
    return {401: "authentication_error", 403: "permission_error", 404: "not_found_error",
            409: "conflict_error", 413: "invalid_request_error",
            429: "rate_limit_error"}.get(status, "invalid_request_error" if status < 500
                                         else "api_error")
