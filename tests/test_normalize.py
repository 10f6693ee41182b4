"""Event normalization on messages recorded from the real CLI (tests/fixtures)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from claude_agent_sdk import ResultMessage
from claude_agent_sdk._internal.message_parser import parse_message

from claude_gateway.events.normalize import normalize, turn_outcome

RECORDED = Path(__file__).parent / "fixtures" / "sdk_messages.jsonl"


def scenario(name: str) -> list[Any]:
    messages = []
    for line in RECORDED.read_text().splitlines():
        record = json.loads(line)
        if record["scenario"] == name:
            parsed = parse_message(record["raw"])
            if parsed is not None:
                messages.append(parsed)
    assert messages, f"no recorded messages for {name!r}"
    return messages


def events(messages: list[Any]) -> list[tuple[str, dict[str, Any]]]:
    return [spec for m in messages for spec in normalize(m)]


def test_tool_call_turn() -> None:
    specs = events(scenario("tool call"))
    types = [t for t, _ in specs]
    assert "status" in types
    deltas = [d for t, d in specs if t == "message.delta"]
    assert {d["kind"] for d in deltas} == {"thinking", "toolInput", "text"}
    assert "".join(d["text"] for d in deltas if d["kind"] == "text") == "Wrote a.txt."
    tool_input = "".join(d["text"] for d in deltas if d["kind"] == "toolInput")
    assert json.loads(tool_input) == {"file_path": "a.txt", "content": "x"}
    messages = [d for t, d in specs if t == "message"]
    assistant_blocks = [b for m in messages if m["role"] == "assistant" for b in m["content"]]
    assert [b["type"] for b in assistant_blocks] == ["thinking", "tool_use", "text"]
    assert assistant_blocks[1]["name"] == "Write"
    tool_result = next(m for m in messages if m["role"] == "user")["content"][0]
    assert tool_result["type"] == "tool_result"
    assert tool_result["tool_use_id"] == assistant_blocks[1]["id"]
    assert all(t != "status" or d["kind"] != "thinking_tokens" for t, d in specs)
    assert not any(t == "status" and d["kind"] == "init" for t, d in specs)


def test_api_retry_becomes_a_status_event() -> None:
    specs = events(scenario("retry"))
    (retry,) = [d for t, d in specs if t == "status" and d["kind"] == "api_retry"]
    assert retry["errorStatus"] == 500
    assert retry["attempt"] == 1
    assert "sessionId" not in retry and "uuid" not in retry


@pytest.mark.parametrize(
    ("name", "expected"),
    [("tool call", "turn.completed"), ("retry", "turn.completed"),
     ("interrupt", "turn.interrupted")],
)
def test_results_become_turn_outcomes(name: str, expected: str) -> None:
    result = scenario(name)[-1]
    assert isinstance(result, ResultMessage)
    assert normalize(result) == []  # the turn runner owns the outcome
    type_, data = turn_outcome(result, 0.25)
    assert type_ == expected
    assert data["totalCostUsd"] == 0.25
    assert data["usage"]["totalCostUsd"] == 0.25
    assert data["claudeSessionId"] == result.session_id
    assert data["durationMs"] == result.duration_ms
    if expected == "turn.completed":
        assert data["result"] and data["numTurns"] >= 1


def test_interrupt_marker_is_a_user_message() -> None:
    specs = events(scenario("interrupt"))
    users = [d for t, d in specs if t == "message" and d["role"] == "user"]
    assert users[-1]["content"] == [{"type": "text", "text": "[Request interrupted by user]"}]


def test_error_results_carry_a_code() -> None:
    result = ResultMessage(subtype="error_max_turns", duration_ms=1, duration_api_ms=1,
                           is_error=True, num_turns=3, session_id="s", errors=["max turns"])
    type_, data = turn_outcome(result, 0.0)
    assert type_ == "turn.failed"
    assert data["error"]["code"] == "MAX_TURNS_REACHED"
    assert data["error"]["message"] == "max turns"
    upstream = ResultMessage(subtype="success", duration_ms=1, duration_api_ms=1, is_error=True,
                             num_turns=1, session_id="s", result="API Error: 500",
                             api_error_status=500)
    type_, data = turn_outcome(upstream, 0.0)
    assert (type_, data["error"]["code"], data["error"]["apiErrorStatus"]) == (
        "turn.failed", "UPSTREAM_ERROR", 500)
