"""The scripted model over HTTP: directives, queue, strict mode, record, failures, pacing."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from claude_gateway.mock_model import MockModel, MockModelServer, Step


@pytest.fixture
def server() -> Iterator[MockModelServer]:
    with MockModelServer(MockModel(strict=True)) as running:
        yield running


def body(prompt: str, *, stream: bool = False, **extra: Any) -> dict[str, Any]:
    return {
        "model": "claude-test",
        "max_tokens": 100,
        "stream": stream,
        "tools": [{"name": "Write", "input_schema": {"type": "object"}}],
        "messages": [{"role": "user", "content": [{"type": "text", "text": prompt}]}],
        **extra,
    }


def post(server: MockModelServer, payload: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{server.url}/v1/messages?beta=true", json=payload, timeout=10,
                      headers={"x-api-key": "k"})


def sse_events(response: httpx.Response) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for frame in response.text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in frame.splitlines())
        events.append((lines["event"], json.loads(lines["data"])))
    return events


def test_reply_directive_non_streaming(server: MockModelServer) -> None:
    response = post(server, body("say it\n@reply Hello there"))
    assert response.status_code == 200
    message = response.json()
    assert message["content"] == [{"type": "text", "text": "Hello there"}]
    assert message["stop_reason"] == "end_turn"
    assert message["model"] == "claude-test"
    (recorded,) = server.model.requests
    assert recorded.prompt == "say it\n@reply Hello there"
    assert recorded.tool_names == ["Write"]
    assert recorded.source == "directive"
    assert "x-api-key" not in recorded.headers, "credentials are not recorded"


def test_tool_directive_streams_tool_use_then_answers_the_result(server: MockModelServer) -> None:
    prompt = '@tool Write {"file_path": "a.txt", "content": "x"}\n@reply written'
    first = post(server, body(prompt, stream=True))
    assert first.headers["content-type"].startswith("text/event-stream")
    events = sse_events(first)
    start = next(d for e, d in events if e == "content_block_start")
    assert start["content_block"]["name"] == "Write"
    tool_id = start["content_block"]["id"]
    followup = body(prompt, stream=True)
    followup["messages"] += [
        {"role": "assistant", "content": [{"type": "tool_use", "id": tool_id, "name": "Write",
                                           "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool_id,
                                      "content": "ok"}]},
    ]
    events = sse_events(post(server, followup))
    text = "".join(d["delta"].get("text", "") for e, d in events if e == "content_block_delta")
    assert text == "written"
    assert server.model.requests[1].tool_results()[0]["tool_use_id"] == tool_id


def test_queue_answers_prompts_without_directives(server: MockModelServer) -> None:
    server.model.enqueue(Step.reply("from the queue"), {"reply": "second"})
    assert post(server, body("hello")).json()["content"][0]["text"] == "from the queue"
    assert post(server, body("hello")).json()["content"][0]["text"] == "second"
    assert server.model.pending == 0
    assert [r.source for r in server.model.requests] == ["queue", "queue"]
    server.model.check()


def test_strict_mode_refuses_and_reports_unscripted_requests(server: MockModelServer) -> None:
    response = post(server, body("nobody scripted this"))
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"
    with pytest.raises(AssertionError, match="unscripted request"):
        server.model.check()


def test_strict_mode_reports_unused_steps(server: MockModelServer) -> None:
    server.model.enqueue(Step.reply("never asked"))
    with pytest.raises(AssertionError, match="1 queued step"):
        server.model.check()


def test_strict_mode_reports_an_exhausted_script(server: MockModelServer) -> None:
    payload = body("@reply only one")
    payload["messages"].append({"role": "assistant", "content": [{"type": "text", "text": "x"}]})
    payload["messages"].append({"role": "user", "content": [{"type": "tool_result",
                                                             "tool_use_id": "t", "content": ""}]})
    assert post(server, payload).status_code == 400
    with pytest.raises(AssertionError, match="script exhausted"):
        server.model.check()


def test_bad_directive_is_reported(server: MockModelServer) -> None:
    assert post(server, body("@tool Write {oops")).status_code == 400
    with pytest.raises(AssertionError, match="bad directive"):
        server.model.check()


def test_lenient_mode_echoes_the_prompt() -> None:
    with MockModelServer(MockModel(strict=False)) as server:
        text = post(server, body("hello mock")).json()["content"][0]["text"]
    assert "You said: hello mock" in text


def test_fail_directive_fails_n_times_then_answers(server: MockModelServer) -> None:
    payload = body("@fail 529 2\n@reply finally")
    statuses = [post(server, payload).status_code for _ in range(3)]
    assert statuses == [529, 529, 200]
    error = post(server, body("@fail 500\n@reply never")).json()
    assert error == {"type": "error",
                     "error": {"type": "api_error", "message": "scripted failure 500"}}
    assert [r.status for r in server.model.requests] == [529, 529, 200, 500]


def test_queued_step_can_fail_before_answering(server: MockModelServer) -> None:
    server.model.enqueue({"reply": "after a 429", "fail": {"status": 429, "times": 1}})
    assert post(server, body("q")).status_code == 429
    assert server.model.pending == 1
    assert post(server, body("q")).json()["content"][0]["text"] == "after a 429"
    assert server.model.pending == 0


def test_slow_stream_paces_its_deltas(server: MockModelServer) -> None:
    words = "one two three four five"
    arrivals = []
    with httpx.stream("POST", f"{server.url}/v1/messages",
                      json=body(f"@slow 0.15\n@reply {words}", stream=True), timeout=10) as resp:
        for line in resp.iter_lines():
            if line.startswith("data:") and "text_delta" in line:
                arrivals.append(time.monotonic())
    assert len(arrivals) == 5
    # Four gaps of at least 0.15 s each: a lower bound, so it cannot flake on a busy machine.
    assert arrivals[-1] - arrivals[0] >= 4 * 0.15 * 0.95


def test_delay_holds_the_answer(server: MockModelServer) -> None:
    started = time.monotonic()
    assert post(server, body("@delay 0.3\n@reply late")).status_code == 200
    assert time.monotonic() - started >= 0.3


def test_count_tokens_and_side_requests_leave_the_script_alone(server: MockModelServer) -> None:
    counted = httpx.post(f"{server.url}/v1/messages/count_tokens",
                         json={"model": "m", "messages": [{"role": "user", "content": "x" * 400}]})
    assert counted.json()["input_tokens"] > 50
    server.model.enqueue(Step.reply("kept for the agent"))
    title = post(server, {
        "model": "claude-haiku", "max_tokens": 50,
        "messages": [{"role": "user", "content": "title this"}],
        "output_config": {"format": {"type": "json_schema",
                                     "schema": {"properties": {"title": {"type": "string"}}}}},
    })
    assert json.loads(title.json()["content"][0]["text"]) == {"title": "Mock session"}
    assert server.model.pending == 1
    probe = post(server, {"model": "claude-new", "max_tokens": 1,
                          "messages": [{"role": "user", "content": "Hi"}]})
    assert probe.status_code == 200  # the CLI checks a model this way after set_model
    assert post(server, body("agent turn")).json()["content"][0]["text"] == "kept for the agent"
    kinds = [r.kind for r in server.model.all_requests]
    assert kinds == ["count_tokens", "side", "side", "messages"]


def test_admin_endpoints_script_and_inspect(server: MockModelServer) -> None:
    scripted = httpx.post(f"{server.url}/_mock/script", json={"steps": [{"reply": "over http"}]})
    assert scripted.json() == {"pending": 1}
    bad = httpx.post(f"{server.url}/_mock/script", json={"steps": [{"bogus": 1}]})
    assert bad.status_code == 400
    assert post(server, body("x")).json()["content"][0]["text"] == "over http"
    recorded = httpx.get(f"{server.url}/_mock/requests").json()["requests"]
    assert recorded[0]["prompt"] == "x" and recorded[0]["source"] == "queue"
    state = httpx.get(f"{server.url}/_mock/state").json()
    assert state == {"pending": 0, "errors": [], "strict": True, "requests": 1}
    httpx.post(f"{server.url}/_mock/reset")
    assert server.model.all_requests == []


def test_api_key_is_enforced_when_set() -> None:
    with MockModelServer(MockModel(api_key="right")) as server:
        refused = post(server, body("@reply x"))
        allowed = httpx.post(f"{server.url}/v1/messages", json=body("@reply x"),
                             headers={"authorization": "Bearer right"})
    assert refused.status_code == 401
    assert refused.json()["error"]["type"] == "authentication_error"
    assert allowed.status_code == 200


def test_wait_for_requests_times_out(server: MockModelServer) -> None:
    with pytest.raises(TimeoutError):
        server.model.wait_for_requests(1, timeout=0.05)
