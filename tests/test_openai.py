"""The OpenAI-compatible API, driven by the official ``openai`` client."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from claude_gateway.mock_model import MockModelServer
from tests.helpers.api import events_of
from tests.helpers.gateway import Gateway

pytestmark = [pytest.mark.cli, pytest.mark.anyio]

PNG_1X1 = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAA"
           "AABJRU5ErkJggg==")


def client_for(gateway: Gateway) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{gateway.url}/v1", api_key="not-checked-yet",
                              max_retries=0, timeout=60)


async def test_models_and_a_plain_completion(
    start_gateway: Any, mock_model: MockModelServer
) -> None:
    gateway: Gateway = start_gateway()
    client = client_for(gateway)
    models = await client.models.list()
    assert {m.id for m in models.data} >= {"sonnet", "opus", "haiku"}
    completion = await client.chat.completions.create(
        model="claude-gateway/claude-mock-model",
        messages=[{"role": "system", "content": "Be brief."},
                  {"role": "user", "content": "Say hello.\n@usage 40 8\n@reply Hello there!"}],
        max_tokens=50, temperature=0.2, top_p=0.9, user="someone",
        extra_body={"some_future_field": True})
    assert completion.object == "chat.completion"
    assert completion.model == "claude-mock-model"  # the model that answered
    assert completion.choices[0].message.content == "Hello there!"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (40, 8)
    (request,) = mock_model.model.requests
    assert request.model == "claude-mock-model"  # the provider prefix is stripped
    assert request.system_text.rstrip().endswith("Be brief.")
    await client.close()


async def test_streamed_completion_with_usage(start_gateway: Any) -> None:
    gateway: Gateway = start_gateway()
    client = client_for(gateway)
    stream = await client.chat.completions.create(
        model="sonnet", stream=True, stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "@usage 30 6\n@reply streamed words arrive"}])
    chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "streamed words arrive"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "stop" and set(finishes[:-1]) == {None}
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 6
    assert len({c.id for c in chunks}) == 1
    await client.close()


async def test_a_named_session_keeps_one_warm_process(
    start_gateway: Any, mock_model: MockModelServer
) -> None:
    gateway: Gateway = start_gateway()
    client = client_for(gateway)
    headers = {"X-Session-Id": "chat-42"}
    first = await client.chat.completions.with_raw_response.create(
        model="sonnet", extra_headers=headers,
        messages=[{"role": "user", "content": "My name is Ada.\n@reply Hi Ada."}])
    session_id = first.headers["x-gateway-session-id"]
    assert first.parse().choices[0].message.content == "Hi Ada."
    second = await client.chat.completions.create(
        model="sonnet", extra_headers=headers,
        messages=[{"role": "user", "content": "My name is Ada.\n@reply Hi Ada."},
                  {"role": "assistant", "content": "Hi Ada."},
                  {"role": "user", "content": "Who am I?\n@reply You are Ada."}])
    assert second.choices[0].message.content == "You are Ada."
    async with gateway.client() as http:
        events = await events_of(http, session_id)
        session = (await http.get(f"/v1/sessions/{session_id}")).json()
    assert [e["type"] for e in events].count("process.started") == 1
    assert session["messageCount"] == 4
    # Only the new message was sent; the process kept the first turn.
    assert mock_model.model.requests[1].user_texts() == [
        "My name is Ada.\n@reply Hi Ada.", "Who am I?\n@reply You are Ada."]
    await client.close()


async def test_stateless_history_images_and_the_permission_policy(
    start_gateway: Any, mock_model: MockModelServer
) -> None:
    gateway: Gateway = start_gateway()
    client = client_for(gateway)
    answer = await client.chat.completions.create(model="sonnet", messages=[
        {"role": "user", "content": "The code word is apple."},
        {"role": "assistant", "content": "Noted."},
        {"role": "user", "content": [
            {"type": "text", "text": "What is in the picture?\n@reply A dot."},
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_1X1}"}},
        ]}])
    assert answer.choices[0].message.content == "A dot."
    request = mock_model.model.requests[0]
    prompt_blocks = request.messages[0]["content"]
    assert any(b["type"] == "image" and b["source"]["data"] == PNG_1X1 for b in prompt_blocks)
    assert "| The code word is apple." in request.prompt
    # The client cannot answer permission prompts: Write is allowed (acceptEdits in its
    # workspace), Bash is denied at once instead of waiting.
    edit = await client.chat.completions.create(model="sonnet", messages=[{
        "role": "user", "content": '@tool Write {"file_path": "note.txt", "content": "hi"}\n'
                                   '@tool Bash {"command": "python3 -c \\"open(\'bash.txt\', '
                                   '\'w\').write(\'x\')\\""}\n'
                                   "@reply done"}])
    assert edit.choices[0].message.content == "done"
    workspace = gateway.settings.workspace_root / "openai"
    assert (workspace / "note.txt").read_text() == "hi"
    assert not (workspace / "bash.txt").exists()
    denied = mock_model.model.requests[-1].tool_results()[-1]
    assert denied["is_error"] and "cannot give it" in str(denied["content"])
    await client.close()


async def test_errors_come_back_as_the_clients_own_exceptions(start_gateway: Any) -> None:
    gateway: Gateway = start_gateway()
    client = client_for(gateway)
    with pytest.raises(openai.BadRequestError) as missing:
        await client.chat.completions.create(model="sonnet", messages=[])
    assert missing.value.status_code == 400
    assert missing.value.body is not None and missing.value.type == "invalid_request_error"
    with pytest.raises(openai.BadRequestError):
        await client.chat.completions.create(model="sonnet", messages=[
            {"role": "user", "content": ""}])
    with pytest.raises(openai.PermissionDeniedError, match="does not fetch images"):
        await client.chat.completions.create(model="sonnet", messages=[{"role": "user",
            "content": [{"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]}])
    with pytest.raises(openai.BadRequestError):
        await client.chat.completions.create(model="sonnet", reasoning_effort="enormous",  # type: ignore[arg-type]
                                             messages=[{"role": "user", "content": "hi"}])
    await client.close()


async def test_model_names_map_to_claude_models(
    start_gateway: Any, mock_model: MockModelServer
) -> None:
    gateway: Gateway = start_gateway(openai_model_aliases={"gpt-4o-mini": "haiku",
                                                           "o*": "opus"})
    client = client_for(gateway)
    for requested, runs_on in [("gpt-4o", "sonnet"), ("gpt-4o-mini", "haiku"),
                               ("o3", "opus"), ("claude-gateway/opus", "opus")]:
        reply = await client.chat.completions.create(
            model=requested, messages=[{"role": "user", "content": "@reply hi"}])
        assert runs_on in mock_model.model.requests[-1].model, requested
        assert runs_on in reply.model, (requested, reply.model)  # the model that answered
    await client.close()


async def test_strict_model_names_refuse_the_unknown(start_gateway: Any) -> None:
    gateway: Gateway = start_gateway(openai_strict_models=True)
    client = client_for(gateway)
    with pytest.raises(openai.NotFoundError) as missing:
        await client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "@reply hi"}])
    assert missing.value.code == "model_not_found" and "gpt-4o" in missing.value.message
    reply = await client.chat.completions.create(
        model="sonnet", messages=[{"role": "user", "content": "@reply fine"}])
    assert reply.choices[0].message.content == "fine"
    await client.close()
