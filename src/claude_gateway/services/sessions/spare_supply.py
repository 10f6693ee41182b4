"""Spare processes for sessions and runs: CLIs started ahead of need, per profile of
spawn-time options, and adopted by a session whose first process would be the same."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from dataclasses import replace

from claude_gateway.runtime.agent import AgentProcess, ProcessBinding, stop_quietly
from claude_gateway.runtime.options import AgentSpec, Launch, spawn_options
from claude_gateway.runtime.process_pool import ProcessPool
from claude_gateway.runtime.spares import SparePool, SpareProfile
from claude_gateway.services.sessions.launcher import ProcessLauncher
from claude_gateway.services.workspaces import Placement, normalize_workspace_name
from claude_gateway.settings import Settings
from claude_gateway.storage.records import SessionRecord

logger = logging.getLogger("claude_gateway.sessions")


class SpareSupply:
    """Keeps the :class:`SparePool` (``.pool``) filled and hands its processes over."""

    def __init__(self, settings: Settings, launcher: ProcessLauncher,
                 processes: ProcessPool) -> None:
        self.settings = settings
        self.launcher = launcher
        self.processes = processes
        configured = [self._spare_profile(Placement("", normalize_workspace_name(name)),
                                          AgentSpec(model=settings.default_model))
                      for name in dict.fromkeys([settings.default_run_workspace,
                                                 settings.openai_workspace,
                                                 *settings.spare_workspaces])]
        self.pool = SparePool(self._start_spare, size=settings.spare_processes,
                              max_total=settings.max_spare_processes, configured=configured)

    @staticmethod
    def _spare_profile(placement: Placement, spec: AgentSpec) -> SpareProfile:
        """The spare profile a session's first process would fit: its workspace and every
        option fixed at spawn (model and permission mode are set live on adoption)."""
        fixed = {"workspace": placement.path, "home": placement.home,
                 **spawn_options(spec)}
        return SpareProfile(key=json.dumps(fixed, sort_keys=True, default=str),
                            workspace=placement.path, how=(placement, spec))

    async def _start_spare(self, profile: SpareProfile) -> AgentProcess | None:
        """A process for a spare profile, serving nobody yet (for the SparePool)."""
        placement, spec = profile.how
        spec = replace(spec, model=self.settings.default_model, permission_mode="default")
        process: AgentProcess | None = None
        try:
            process = self.launcher.new_process(
                spec, placement, Launch(session_id=str(uuid.uuid4())), ProcessBinding())
            await asyncio.wait_for(process.start(), self.settings.spawn_timeout_seconds)
        except Exception:
            logger.warning("spare CLI process failed to start", exc_info=True,
                           extra={"workspace": profile.workspace})
            if process is not None:
                await stop_quietly(process, "a spare that failed to start")
            return None
        self.processes.track_pid(process)
        return process

    async def adopt(self, record: SessionRecord, spec: AgentSpec, launch: Launch,
                           binding: ProcessBinding) -> AgentProcess | None:
        """A spare started with this session's spawn-time options can serve its first
        conversation (model and mode are set live)."""
        if launch.resume is not None:
            return None
        process = self.pool.take(self._spare_profile(
            Placement(record.home, record.workspace), spec))
        if process is None:
            return None
        try:
            if spec.model != self.settings.default_model:
                await process.set_model(spec.model)
            if spec.permission_mode != "default":
                await process.set_permission_mode(spec.permission_mode)
        except Exception:
            logger.warning("could not adapt a spare process; starting a new one",
                           exc_info=True, extra={"session_id": binding.session_id})
            self.processes.forget_pid(process)
            await stop_quietly(process, "a spare that could not be adapted")
            return None
        process.binding.session_id = binding.session_id
        process.binding.current_turn = binding.current_turn
        process.binding.non_interactive = binding.non_interactive
        process.binding.fence = self.launcher.fence(record.home, process.cwd)
        self.processes.forget_pid(process)  # attach() tracks it again under the session
        return process
