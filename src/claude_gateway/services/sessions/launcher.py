"""Making a CLI process for a session: its options built from the session's spec, with
everything a client named confined again (environment, added directories, the fence of
its file tools), the permission callback and the transcript store wired in."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from claude_gateway.runtime.agent import AgentFactory, AgentProcess, OnExit, ProcessBinding
from claude_gateway.runtime.options import AgentSpec, Launch, build_options
from claude_gateway.runtime.path_fence import PathFence
from claude_gateway.runtime.stderr_tail import StderrTail
from claude_gateway.services.env_policy import check_env
from claude_gateway.services.permissions import PermissionBroker
from claude_gateway.services.workspaces import (
    Placement,
    home_dir,
    resolve_added_dir,
    workspace_dir,
)
from claude_gateway.settings import Settings
from claude_gateway.storage.transcripts import TranscriptStore


def cli_line_limit(max_body_bytes: int) -> int:
    """The longest line the SDK may read from the CLI: the CLI echoes a prompt back as
    one JSON line, escaped (up to six bytes for one), so the largest body the gateway
    accepts must fit several times over. (The SDK's default, 1 MiB, failed prompts of
    500 KB as PROCESS_EXITED.)"""
    return 6 * max_body_bytes + (1 << 20)


class ProcessLauncher:
    def __init__(self, settings: Settings, *, permissions: PermissionBroker,
                 transcripts: TranscriptStore, cli_path: Path, cli_env: dict[str, str],
                 agent_factory: AgentFactory, on_exit: OnExit) -> None:
        self.settings = settings
        self.permissions = permissions
        self.transcripts = transcripts
        self.cli_path = cli_path
        self.cli_env = cli_env
        self.agent_factory = agent_factory
        self.on_exit = on_exit

    def new_process(self, spec: AgentSpec, placement: Placement, launch: Launch,
                     binding: ProcessBinding) -> AgentProcess:
        """A process for ``spec`` in its workspace, every client-named value confined."""
        tail = StderrTail()
        root = self.settings.workspace_root
        cwd = workspace_dir(root, placement)
        binding.fence = self.fence(placement.home, cwd)
        spec = replace(spec, options=replace(
            spec.options, env=check_env(spec.options.env, self.settings.session_env_allowlist),
            add_dirs=[str(resolve_added_dir(root, placement.home, name))
                      for name in spec.options.add_dirs]))
        options = build_options(
            spec, cwd=cwd, cli_path=self.cli_path, base_env=self.cli_env, launch=launch,
            stderr=tail.append, session_store=self.transcripts,
            can_use_tool=self.permissions.callback(binding),
            allow_bypass=self.settings.allow_bypass_permissions,
            running_as_root=os.geteuid() == 0,
            max_buffer_size=cli_line_limit(self.settings.max_body_bytes))
        return self.agent_factory(options, stderr_tail=tail, on_exit=self.on_exit,
                                  binding=binding)

    def fence(self, home: str, cwd: Path) -> PathFence:
        root = self.settings.workspace_root
        return PathFence.build(cwd, home_dir(root, home), root,
                               [self.settings.data_dir, self.settings.cli_config_dir])
