"""The Anthropic Messages API wire format for a scripted step (pure functions)."""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from typing import Any

from claude_gateway.mock_model.script import Step

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


def error_body(status: int, message: str) -> dict[str, Any]:
    """An Anthropic error response body."""
    return {
        "type": "error",
        "error": {"type": _ERROR_TYPES.get(status, "api_error"), "message": message},
    }


def estimate_tokens(value: Any) -> int:
    """A deterministic stand-in for a tokenizer: about four characters a token."""
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    return max(1, len(text) // 4)


@dataclass(frozen=True)
class Rendered:
    """A step turned into concrete content blocks and usage."""

    message_id: str
    content: list[dict[str, Any]]
    usage: dict[str, int]
    stop_reason: str


def render_step(step: Step, model: str, request_body: dict[str, Any]) -> Rendered:
    """Give each block its ids and compute usage."""
    content: list[dict[str, Any]] = []
    for block in step.blocks:
        if block.type == "text":
            content.append({"type": "text", "text": block.text})
        elif block.type == "thinking":
            content.append(
                {"type": "thinking", "thinking": block.text, "signature": "mock-signature"}
            )
        else:
            assert block.tool is not None
            content.append(
                {
                    "type": "tool_use",
                    "id": block.tool.id or f"toolu_{uuid.uuid4().hex[:24]}",
                    "name": block.tool.name,
                    "input": block.tool.input,
                }
            )
    input_tokens = step.input_tokens
    if input_tokens is None:
        input_tokens = estimate_tokens(request_body.get("messages", []))
    output_tokens = step.output_tokens
    if output_tokens is None:
        output_tokens = sum(estimate_tokens(c) for c in content)
    return Rendered(
        message_id=f"msg_mock_{uuid.uuid4().hex[:20]}",
        content=content,
        usage={
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        },
        stop_reason=step.effective_stop_reason,
    )


def message_json(rendered: Rendered, model: str) -> dict[str, Any]:
    """The non-streaming response body."""
    return {
        "id": rendered.message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": rendered.content,
        "stop_reason": rendered.stop_reason,
        "stop_sequence": None,
        "usage": rendered.usage,
    }


def _chunks(text: str) -> list[str]:
    """Split text into word-sized deltas that join back to the text."""
    return re.findall(r"\s*\S+\s*|\s+", text) or [text]


def stream_events(rendered: Rendered, model: str) -> list[tuple[str, dict[str, Any]]]:
    """The server-sent events of a streamed response, as (event name, data) pairs.

    The first and the last event are ``message_start`` and ``message_stop``; every
    delta in between is a separate event so a slow stream can pace them.
    """
    start_usage = dict(rendered.usage, output_tokens=1)
    events: list[tuple[str, dict[str, Any]]] = [
        (
            "message_start",
            {
                "type": "message_start",
                "message": dict(
                    message_json(rendered, model), content=[], stop_reason=None,
                    usage=start_usage,
                ),
            },
        )
    ]
    for index, block in enumerate(rendered.content):
        kind = block["type"]
        if kind == "text":
            start: dict[str, Any] = {"type": "text", "text": ""}
            deltas = [{"type": "text_delta", "text": c} for c in _chunks(block["text"])]
        elif kind == "thinking":
            start = {"type": "thinking", "thinking": "", "signature": ""}
            deltas = [{"type": "thinking_delta", "thinking": c} for c in _chunks(block["thinking"])]
            deltas.append({"type": "signature_delta", "signature": block["signature"]})
        else:
            start = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
            raw = json.dumps(block["input"])
            deltas = [
                {"type": "input_json_delta", "partial_json": raw[i : i + 64]}
                for i in range(0, len(raw), 64)
            ] or [{"type": "input_json_delta", "partial_json": "{}"}]
        events.append(
            ("content_block_start", {"type": "content_block_start", "index": index,
                                     "content_block": start})
        )
        events.extend(
            ("content_block_delta", {"type": "content_block_delta", "index": index, "delta": d})
            for d in deltas
        )
        events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
    events.append(
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": rendered.stop_reason, "stop_sequence": None},
                "usage": {"output_tokens": rendered.usage["output_tokens"]},
            },
        )
    )
    events.append(("message_stop", {"type": "message_stop"}))
    return events


def sse_frame(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()
