"""The scripted model's pure parts: directives, prompt location, wire format."""

from __future__ import annotations

import json

import pytest

from claude_gateway.mock_model import ScriptError, Step, locate_prompt, parse_directives
from claude_gateway.mock_model.wire import render_step, stream_events


def test_directives_make_one_step_per_response() -> None:
    steps = parse_directives(
        "Please write the file.\n"
        "@thinking Planning.\n"
        '@tool Write {"file_path": "a.txt", "content": "hi"}\n'
        "@slow 0.25\n"
        "@reply Done.\\nBye."
    )
    assert len(steps) == 2
    assert [b.type for b in steps[0].blocks] == ["thinking", "tool_use"]
    assert steps[0].tool_calls[0].name == "Write"
    assert steps[0].tool_calls[0].input == {"file_path": "a.txt", "content": "hi"}
    assert steps[0].effective_stop_reason == "tool_use"
    assert steps[1].blocks[0].text == "Done.\nBye."
    assert steps[1].chunk_delay == 0.25
    assert steps[1].effective_stop_reason == "end_turn"


def test_text_and_parallel_tools_stay_in_one_step() -> None:
    steps = parse_directives(
        "@text Two at once.\n@tool+ Read {\"file_path\": \"a\"}\n@tool Read {\"file_path\": \"b\"}"
    )
    assert len(steps) == 1
    assert [c.input["file_path"] for c in steps[0].tool_calls] == ["a", "b"]


def test_modifiers_alone_still_answer() -> None:
    (step,) = parse_directives("@fail 529 2\n@delay 0.5\n@usage 100 7")
    assert (step.fail_status, step.fail_times, step.delay) == (529, 2, 0.5)
    assert (step.input_tokens, step.output_tokens) == (100, 7)
    assert step.blocks, "a step with modifiers only still says something"


def test_prompt_without_directives_has_no_steps() -> None:
    assert parse_directives("just a question, mail me @ home\n@unknown thing") == []


@pytest.mark.parametrize(
    "line",
    ["@tool", "@tool Write {not json}", "@tool Write [1]", "@slow fast", "@delay -1",
     "@fail abc", "@fail 500 x", "@usage 1", "@reply"],
)
def test_bad_directives_are_errors(line: str) -> None:
    with pytest.raises(ScriptError):
        parse_directives(line)


def test_locate_prompt_skips_reminders_and_counts_responses() -> None:
    messages = [
        {"role": "user", "content": [
            {"type": "text", "text": "<system-reminder>\nnoise\n</system-reminder>"},
            {"type": "text", "text": "first"},
        ]},
        {"role": "system", "content": [{"type": "text", "text": "env"}]},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "X",
                                           "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1",
                                      "content": "ok"}]},
    ]
    position = locate_prompt(messages)
    assert position is not None
    assert (position.index, position.text, position.step) == (0, "first", 1)
    messages.append({"role": "assistant", "content": [{"type": "text", "text": "hi"}]})
    messages.append({"role": "user", "content": "second"})
    position = locate_prompt(messages)
    assert position is not None
    assert (position.index, position.text, position.step) == (5, "second", 0)


def test_step_from_dict_round_trip_and_unknown_keys() -> None:
    step = Step.from_dict({"text": "hi", "tool": {"name": "Bash", "input": {"command": "ls"}},
                           "chunkDelay": 0.1, "fail": {"status": 500, "times": 1}})
    assert [b.type for b in step.blocks] == ["text", "tool_use"]
    assert (step.chunk_delay, step.fail_status, step.fail_times) == (0.1, 500, 1)
    with pytest.raises(ScriptError, match="unknown step keys"):
        Step.from_dict({"replly": "typo"})


def test_stream_events_rebuild_the_message() -> None:
    step = parse_directives('@thinking hmm\n@text Hello big world\n@tool Bash {"command": "ls"}')[0]
    rendered = render_step(step, "m", {"messages": []})
    events = stream_events(rendered, "m")
    assert events[0][0] == "message_start" and events[-1][0] == "message_stop"
    text = "".join(d["delta"]["text"] for e, d in events
                   if e == "content_block_delta" and d["delta"]["type"] == "text_delta")
    assert text == "Hello big world"
    raw = "".join(d["delta"]["partial_json"] for e, d in events
                  if e == "content_block_delta" and d["delta"]["type"] == "input_json_delta")
    assert json.loads(raw) == {"command": "ls"}
    delta = next(d for e, d in events if e == "message_delta")
    assert delta["delta"]["stop_reason"] == "tool_use"
