"""OpenAI chat completions, mapped onto gateway sessions and runs (pure functions).

Field by field, see the README's table: what is supported, mapped or ignored.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from claude_gateway.errors import InvalidRequest

PROVIDER_PREFIX = "claude-gateway/"
OPENAI_PATHS = ("/v1/models", "/v1/chat/completions")
EFFORTS = {"minimal": "low", "low": "low", "medium": "medium", "high": "high",
           "xhigh": "xhigh", "max": "max"}


class TextPart(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: Literal["text"]
    text: str


class ImageUrl(BaseModel):
    model_config = ConfigDict(extra="allow")
    url: str = Field(min_length=1)
    detail: str | None = None


class ImagePart(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: Literal["image_url"]
    image_url: ImageUrl


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[TextPart | ImagePart] | None = None
    name: str | None = None


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")
    include_usage: bool = False


class ChatRequest(BaseModel):
    """The fields we read; everything else is accepted and ignored."""

    model_config = ConfigDict(extra="allow")
    model: str = Field(min_length=1)
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    reasoning_effort: str | None = None
    response_format: dict[str, Any] | None = None
    n: int | None = Field(None, ge=1, le=1)
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    temperature: float | None = None


def is_openai_path(path: str) -> bool:
    """Paths whose errors use OpenAI's format."""
    return path in OPENAI_PATHS or path.startswith("/v1/models/")


def model_name(requested: str) -> str:
    """``claude-gateway/sonnet`` and ``sonnet`` both mean ``sonnet``."""
    return requested.removeprefix(PROVIDER_PREFIX)


def effort_of(reasoning_effort: str | None) -> str | None:
    if reasoning_effort is None:
        return None
    if reasoning_effort not in EFFORTS:
        raise InvalidRequest(f"Unknown reasoning_effort {reasoning_effort!r}",
                             details={"param": "reasoning_effort"})
    return EFFORTS[reasoning_effort]


def schema_of(response_format: dict[str, Any] | None) -> tuple[dict[str, Any] | None, str]:
    """(JSON schema for structured output, extra system instruction)."""
    if not response_format:
        return None, ""
    kind = response_format.get("type")
    if kind == "json_schema":
        spec = response_format.get("json_schema") or {}
        schema = spec.get("schema")
        if not isinstance(schema, dict):
            raise InvalidRequest("response_format.json_schema.schema must be an object",
                                 details={"param": "response_format"})
        return schema, ""
    if kind == "json_object":
        return None, "Answer with a single JSON object and nothing else."
    return None, ""


def text_of(content: str | list[TextPart | ImagePart] | None) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "\n".join(p.text for p in content if isinstance(p, TextPart))


def split_conversation(messages: list[ChatMessage]) -> tuple[str, list[ChatMessage],
                                                              ChatMessage]:
    """(system text, earlier turns, the new user message)."""
    system = "\n\n".join(text_of(m.content) for m in messages
                         if m.role in ("system", "developer") and text_of(m.content))
    dialogue = [m for m in messages if m.role not in ("system", "developer")]
    if not dialogue or dialogue[-1].role != "user":
        raise InvalidRequest("The last message must come from the user",
                             details={"param": "messages"})
    return system, dialogue[:-1], dialogue[-1]


def context_preamble(history: list[ChatMessage]) -> str:
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


def finish_reason(outcome: dict[str, Any]) -> str:
    if outcome.get("stopReason") == "max_tokens":
        return "length"
    return "stop"


def answer_text(outcome: dict[str, Any]) -> str:
    if outcome.get("structuredOutput") is not None:
        return json.dumps(outcome["structuredOutput"])
    return str(outcome.get("result") or "")


def completion(cid: str, model: str, outcome: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": cid,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": answer_text(outcome), "refusal": None},
            "finish_reason": finish_reason(outcome),
            "logprobs": None,
        }],
        "usage": openai_usage(outcome.get("usage")),
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
