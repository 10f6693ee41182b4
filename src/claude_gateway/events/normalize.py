"""SDK messages to event types and data: pure functions, unit-tested on recorded messages."""

from __future__ import annotations

from dataclasses import asdict, is_dataclass
from typing import Any

from claude_agent_sdk import (
    AssistantMessage,
    ConversationResetMessage,
    RateLimitEvent,
    ResultMessage,
    StreamEvent,
    SystemMessage,
    TextBlock,
    ThinkingBlock,
    ToolResultBlock,
    ToolUseBlock,
    UserMessage,
)

from claude_gateway.errors import ErrorCode
from claude_gateway.events.envelope import EventType
from claude_gateway.storage.records import Usage
from claude_gateway.wire import usage_to_api

EventSpec = tuple[str, dict[str, Any]]
ABORTED = frozenset({"aborted_streaming", "aborted_tools"})
_DELTA_KINDS = {
    "text_delta": ("text", "text"),
    "thinking_delta": ("thinking", "thinking"),
    "input_json_delta": ("toolInput", "partial_json"),
}
_HIDDEN_SYSTEM_FIELDS = {"type", "subtype", "session_id", "uuid"}
_SILENT_SYSTEM_SUBTYPES = frozenset({
    "init",  # the turn runner reads it (session id, model); clients see turn.started
    "thinking_tokens",  # a running counter, once per thinking delta: noise in the log
})


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def camel_keys(data: dict[str, Any]) -> dict[str, Any]:
    return {_camel(k): v for k, v in data.items()}


def content_block(block: Any) -> dict[str, Any]:
    """An SDK content block in the Anthropic Messages format."""
    if isinstance(block, TextBlock):
        return {"type": "text", "text": block.text}
    if isinstance(block, ThinkingBlock):
        return {"type": "thinking", "thinking": block.thinking}
    if isinstance(block, ToolUseBlock):
        return {"type": "tool_use", "id": block.id, "name": block.name, "input": block.input}
    if isinstance(block, ToolResultBlock):
        result: dict[str, Any] = {"type": "tool_result", "tool_use_id": block.tool_use_id,
                                  "content": block.content}
        if block.is_error:
            result["is_error"] = True
        return result
    if is_dataclass(block) and not isinstance(block, type):
        return {"type": type(block).__name__, **asdict(block)}
    return {"type": "unknown", "value": repr(block)}


def message_content(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return [content_block(b) for b in content]


def normalize(message: Any) -> list[EventSpec]:
    """The events one SDK message becomes (a ResultMessage is the turn runner's job)."""
    if isinstance(message, StreamEvent):
        raw = message.event
        if raw.get("type") != "content_block_delta":
            return []
        delta = raw.get("delta", {})
        kind = _DELTA_KINDS.get(delta.get("type", ""))
        if kind is None:
            return []
        data = {"kind": kind[0], "index": raw.get("index", 0), "text": delta.get(kind[1], "")}
        if message.parent_tool_use_id:
            data["parentToolUseId"] = message.parent_tool_use_id
        return [(EventType.MESSAGE_DELTA, data)]
    if isinstance(message, AssistantMessage):
        data = {"role": "assistant", "content": message_content(message.content),
                "model": message.model}
        if message.parent_tool_use_id:
            data["parentToolUseId"] = message.parent_tool_use_id
        if message.error:
            data["error"] = message.error
        return [(EventType.MESSAGE, data)]
    if isinstance(message, UserMessage):
        data = {"role": "user", "content": message_content(message.content)}
        if message.parent_tool_use_id:
            data["parentToolUseId"] = message.parent_tool_use_id
        return [(EventType.MESSAGE, data)]
    if isinstance(message, RateLimitEvent):
        info = message.rate_limit_info
        return [(EventType.STATUS, {"kind": "rate_limit", "status": info.status,
                            "resetsAt": info.resets_at, "rateLimitType": info.rate_limit_type,
                            "utilization": info.utilization})]
    if isinstance(message, ConversationResetMessage):
        return [(EventType.STATUS, {"kind": "conversation_reset"})]
    if isinstance(message, SystemMessage):
        return _system(message)
    return []


def _system(message: SystemMessage) -> list[EventSpec]:
    subtype = message.subtype
    if subtype in _SILENT_SYSTEM_SUBTYPES:
        return []
    fields = camel_keys({k: v for k, v in message.data.items()
                         if k not in _HIDDEN_SYSTEM_FIELDS})
    for kind in ("hook", "task"):
        if subtype.startswith(f"{kind}_"):
            phase = subtype.removeprefix(f"{kind}_")
            return [(EventType.STATUS, {"kind": kind, "phase": phase, **fields})]
    return [(EventType.STATUS, {"kind": subtype, **fields})]


def usage_of(result: ResultMessage, turn_cost: float) -> Usage:
    raw = result.usage or {}
    return Usage(
        input_tokens=int(raw.get("input_tokens") or 0),
        output_tokens=int(raw.get("output_tokens") or 0),
        cache_read_input_tokens=int(raw.get("cache_read_input_tokens") or 0),
        cache_creation_input_tokens=int(raw.get("cache_creation_input_tokens") or 0),
        total_cost_usd=round(turn_cost, 10),
    )


def turn_outcome(result: ResultMessage, turn_cost: float) -> EventSpec:
    """``turn.completed``, ``turn.failed`` or ``turn.interrupted`` for a ResultMessage.

    ``turn_cost`` is this turn's share: the CLI reports a running total per process.
    """
    data: dict[str, Any] = {
        "result": result.result,
        "structuredOutput": result.structured_output,
        "usage": usage_to_api(usage_of(result, turn_cost)),
        "totalCostUsd": round(turn_cost, 10),
        "durationMs": result.duration_ms,
        "durationApiMs": result.duration_api_ms,
        "numTurns": result.num_turns,
        "stopReason": result.stop_reason,
        "terminalReason": result.terminal_reason,
        "claudeSessionId": result.session_id,
    }
    if result.terminal_reason in ABORTED:
        return EventType.TURN_INTERRUPTED, data
    if result.is_error:
        code = {
            "error_max_turns": ErrorCode.MAX_TURNS_REACHED,
            "error_max_budget_usd": ErrorCode.TURN_BUDGET_EXCEEDED,
        }.get(result.subtype, ErrorCode.UPSTREAM_ERROR if result.api_error_status
              else ErrorCode.TURN_FAILED)
        message = "; ".join(result.errors or []) or result.result or result.subtype
        error: dict[str, Any] = {"code": code.value, "message": message,
                                 "apiErrorStatus": result.api_error_status,
                                 "subtype": result.subtype}
        if is_credentials_failure(result.api_error_status, message):
            error.update(code=ErrorCode.UPSTREAM_AUTH_FAILED.value, message=CREDENTIALS_HELP,
                         detail=message)
        data["error"] = error
        return EventType.TURN_FAILED, data
    return EventType.TURN_COMPLETED, data


CREDENTIALS_HELP = (
    "The gateway has no working upstream credentials: the model's API refused them or "
    "none are set. Set CLAUDE_GATEWAY_UPSTREAM_API_KEY (an Anthropic API key), "
    "CLAUDE_GATEWAY_UPSTREAM_OAUTH_TOKEN (from `claude setup-token`), or "
    "CLAUDE_GATEWAY_CLAUDE_CONFIG_DIR=~/.claude (your own `claude login`); "
    "`claude-gateway doctor` says what it finds.")
_LOGIN_TEXTS = ("Not logged in", "Invalid API key", "Please run /login", "OAuth token")


def is_credentials_failure(api_error_status: int | None, message: str) -> bool:
    """Whether a failed turn failed for want of valid upstream credentials."""
    return api_error_status == 401 or any(text in message for text in _LOGIN_TEXTS)


def context_window_of(result: ResultMessage) -> int | None:
    """The largest context window among the models the turn used."""
    windows = [int(u.get("contextWindow") or 0) for u in (result.model_usage or {}).values()
               if isinstance(u, dict)]
    return max(windows) if any(windows) else None


def context_tokens_of(message: AssistantMessage) -> int | None:
    """How full the context was at this model call: the tokens it read.

    (The output count on a streamed assistant message is not final yet.)
    """
    usage = message.usage or {}
    if not usage:
        return None
    return sum(int(usage.get(k) or 0) for k in (
        "input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens"))
