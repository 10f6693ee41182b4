"""The real Claude Code CLI, driven through the SDK, against the scripted model."""

from __future__ import annotations

import anyio
import pytest
from claude_agent_sdk import (
    AssistantMessage,
    ClaudeAgentOptions,
    ClaudeSDKClient,
    ResultMessage,
    SystemMessage,
)

from claude_gateway.mock_model import MockModelServer
from claude_gateway.runtime.cli_binary import find_cli
from claude_gateway.settings import Settings

pytestmark = [pytest.mark.cli, pytest.mark.anyio]


def options(settings: Settings, cli_env: dict[str, str], stderr: list[str]) -> ClaudeAgentOptions:
    workspace = settings.workspace_root / "w1"
    workspace.mkdir(parents=True, exist_ok=True)
    return ClaudeAgentOptions(
        cwd=workspace,
        cli_path=find_cli(),
        env=cli_env,
        permission_mode="acceptEdits",
        system_prompt={"type": "preset", "preset": "claude_code"},
        stderr=stderr.append,
    )


async def test_model_calls_write_and_the_file_appears(
    settings: Settings, cli_env: dict[str, str], mock_model: MockModelServer
) -> None:
    stderr: list[str] = []
    prompt = (
        "Create hello.txt please.\n"
        '@tool Write {"file_path": "hello.txt", "content": "hi from the mock"}\n'
        "@reply I wrote hello.txt."
    )
    with anyio.fail_after(60):
        async with ClaudeSDKClient(options(settings, cli_env, stderr)) as client:
            await client.query(prompt)
            first = [m async for m in client.receive_response()]
            await client.query("And now?\n@reply Nothing else to do.")
            second = [m async for m in client.receive_response()]

    result = first[-1]
    assert isinstance(result, ResultMessage), stderr[-20:]
    assert not result.is_error
    assert result.result == "I wrote hello.txt."
    assert result.num_turns == 2
    assert (settings.workspace_root / "w1" / "hello.txt").read_text() == "hi from the mock"
    tool_uses = [b for m in first if isinstance(m, AssistantMessage) for b in m.content
                 if type(b).__name__ == "ToolUseBlock"]
    assert [t.name for t in tool_uses] == ["Write"]
    assert isinstance(second[-1], ResultMessage) and second[-1].result == "Nothing else to do."

    calls = mock_model.model.requests
    assert len(calls) == 3
    assert "Write" in calls[0].tool_names
    assert "Claude" in calls[0].system_text, "the claude_code preset system prompt was sent"
    (tool_result,) = calls[1].tool_results()
    assert tool_result["tool_use_id"] == tool_uses[0].id
    # The second turn carries the first one: the same process kept the history.
    assert calls[2].user_texts()[0].startswith("Create hello.txt please.")
    assert calls[2].prompt.startswith("And now?")


async def test_upstream_failure_ends_the_turn_quickly_with_an_error(
    settings: Settings, cli_env: dict[str, str], mock_model: MockModelServer
) -> None:
    stderr: list[str] = []
    with anyio.fail_after(60):
        async with ClaudeSDKClient(options(settings, cli_env, stderr)) as client:
            await client.query("@fail 500\n@reply unreachable")
            messages = [m async for m in client.receive_response()]
    retries = [m for m in messages if isinstance(m, SystemMessage) and m.subtype == "api_retry"]
    assert len(retries) == 1, "CLAUDE_CODE_MAX_RETRIES=1 allows one retry"
    result = messages[-1]
    assert isinstance(result, ResultMessage)
    assert result.is_error
    assert [r.status for r in mock_model.model.requests] == [500, 500]
