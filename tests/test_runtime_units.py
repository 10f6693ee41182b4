"""Pure parts of the runtime and services: options mapping, stderr tail, paths, cursors."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from claude_gateway.errors import InvalidCursor, InvalidPath, PathOutsideWorkspace
from claude_gateway.runtime.options import AgentOptions, AgentSpec, Launch, build_options
from claude_gateway.runtime.stderr_tail import StderrTail
from claude_gateway.services.sessions import decode_cursor, encode_cursor
from claude_gateway.services.workspaces import (
    Placement,
    normalize_workspace_name,
    place_workspace,
    resolve_inside,
    workspace_dir,
)


def test_default_options_use_the_claude_code_preset(tmp_path: Path) -> None:
    stored = {
        "appendSystemPrompt": "Be brief.", "allowedTools": ["Read"], "disallowedTools": ["Bash"],
        "maxTurns": 4, "effort": "low", "addDirs": ["/srv/shared"], "env": {"FOO": "1"}}
    agent = AgentOptions.from_json(stored)
    assert {k: v for k, v in agent.to_json().items() if v} == stored  # round trip
    spec = AgentSpec("sonnet", "acceptEdits", agent)
    options = build_options(spec, cwd=tmp_path, cli_path=Path("/bin/claude"),
                            base_env={"CLAUDE_CONFIG_DIR": "/cfg", "FOO": "0"},
                            launch=Launch(session_id="abc"))
    assert options.system_prompt == {"type": "preset", "preset": "claude_code",
                                     "append": "Be brief."}
    assert (options.model, options.permission_mode) == ("sonnet", "acceptEdits")
    assert options.allowed_tools == ["Read"] and options.disallowed_tools == ["Bash"]
    assert (options.max_turns, options.effort) == (4, "low")
    assert options.add_dirs == [Path("/srv/shared")]
    # The operator's environment wins over the session's.
    assert options.env == {"CLAUDE_CONFIG_DIR": "/cfg", "FOO": "0"}
    assert options.cwd == tmp_path and options.include_partial_messages
    assert (options.session_id, options.resume, options.fork_session) == ("abc", None, False)
    assert "allow-dangerously-skip-permissions" not in options.extra_args


def test_full_system_prompt_resume_fork_and_bypass(tmp_path: Path) -> None:
    spec = AgentSpec(permission_mode="bypassPermissions",
                     options=AgentOptions(system_prompt="You are terse."))
    options = build_options(spec, cwd=tmp_path, cli_path=Path("/bin/claude"), base_env={},
                            launch=Launch(resume="old", fork=True), allow_bypass=True,
                            running_as_root=True)
    assert options.system_prompt == "You are terse."
    assert (options.resume, options.fork_session) == ("old", True)
    # Spawned so that a later switch to bypassPermissions works; as root, sandboxed.
    assert options.extra_args == {"allow-dangerously-skip-permissions": None}
    assert options.env["IS_SANDBOX"] == "1"
    plain = build_options(AgentSpec(), cwd=tmp_path, cli_path=Path("/bin/claude"),
                          base_env={}, launch=Launch(), running_as_root=True)
    assert plain.extra_args == {} and "IS_SANDBOX" not in plain.env


def test_stderr_tail_keeps_the_last_bytes() -> None:
    tail = StderrTail(limit=100)
    for i in range(50):
        tail.append(f"line {i:03d}")
    text = tail.text()
    assert text.endswith("line 049") and "line 000" not in text
    assert len(tail) <= 100
    tail.append("x" * 500)
    assert tail.text() == "x" * 99
    assert tail.text(max_bytes=10) == "x" * 10


def test_cursor_round_trip_and_garbage() -> None:
    moment = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
    assert decode_cursor(encode_cursor(moment, "ses_1")) == (moment, "ses_1")
    for bad in ("!!!", "bm90IGEgY3Vyc29y", "", "12.", ".ses_1", "123456789012345678.ses_1"):
        with pytest.raises(InvalidCursor):
            decode_cursor(bad)


def test_workspace_names_and_paths(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    (tmp_path / "ws2").mkdir()
    assert normalize_workspace_name("a//b/./c/") == "a/b/c"
    assert workspace_dir(root, Placement("", "team/a")) == (root / "team" / "a").resolve()
    for hostile, error in [("../ws2", PathOutsideWorkspace), ("/etc", PathOutsideWorkspace),
                           ("a/../../ws2", PathOutsideWorkspace), ("a\x00b", InvalidPath),
                           ("x" * 300, InvalidPath), ("", InvalidPath), (".", InvalidPath)]:
        with pytest.raises(error):
            place_workspace(root, "", hostile)
    os.symlink(tmp_path / "ws2", root / "link")
    with pytest.raises(PathOutsideWorkspace):
        resolve_inside(root, "link/file")
    assert not (tmp_path / "ws2" / "file").exists()
