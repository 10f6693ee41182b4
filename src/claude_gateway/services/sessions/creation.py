"""Making a session's record: everything a client names is checked and confined first
(permission mode, environment, schema, the conversation it carries on, its workspace
and added directories), then the session is written if it passes the caps.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime

from claude_gateway.errors import ConversationNotFound, ConversationNotStarted, SessionNotFound
from claude_gateway.services.auth import Principal
from claude_gateway.services.env_policy import check_env
from claude_gateway.services.sessions.admission import Admission
from claude_gateway.services.sessions.options import SessionCreate, SessionOptions
from claude_gateway.services.sessions.state import SessionStatus
from claude_gateway.services.structured_output import check_json_schema
from claude_gateway.services.workspace_locks import WorkspaceLocks
from claude_gateway.services.workspaces import (
    added_dirs,
    name_from,
    place_workspace,
    workspace_dir,
)
from claude_gateway.settings import Settings
from claude_gateway.storage.base import Store
from claude_gateway.storage.records import SessionRecord


class SessionRecords:
    def __init__(self, settings: Settings, store: Store, admission: Admission,
                 locks: WorkspaceLocks) -> None:
        self.settings = settings
        self.store = store
        self.admission = admission
        self.locks = locks

    async def conversation(self, claude_session_id: str, principal: Principal
                           ) -> SessionRecord:
        """The latest session on a Claude conversation the caller owns (admins: any);
        an unknown id and another key's get the same 404."""
        record = await self.store.conversation(claude_session_id, principal.owner_filter)
        if record is None:
            raise ConversationNotFound(claude_session_id)
        return record

    async def new(self, request: SessionCreate, principal: Principal) -> SessionRecord:
        """Check the request, reserve its place (the session caps, or for a run its
        workspace) and store the new session; 4xx errors before anything is taken."""
        owner = principal.name
        mode = request.permission_mode or "default"
        self.admission.check_mode(mode)
        agent = request.agent
        env = check_env(agent.env, self.settings.session_env_allowlist)
        if agent.json_schema is not None:
            check_json_schema(agent.json_schema)
        root = self.settings.workspace_root
        fork_of: str | None = None
        # Transcripts are keyed by the working directory: a fork or a resume works in the
        # directory of the conversation it carries on, unless told otherwise.
        continued: str | None = None
        if request.fork_from:
            source = await self.store.get_session(request.fork_from)
            if source is None or (principal.owner_filter is not None
                                  and source.owner != principal.owner_filter):
                raise SessionNotFound(request.fork_from)
            if not source.claude_session_id:
                raise ConversationNotStarted("That session has no conversation to fork yet",
                                             details={"forkFrom": request.fork_from})
            fork_of = source.claude_session_id
            continued = source.workspace_path
        if request.resume:
            resumed = await self.conversation(request.resume, principal)
            continued = continued or resumed.workspace_path
        is_run = request.kind == "run"
        session_id = f"{'run' if is_run else 'ses'}_{uuid.uuid4().hex}"
        workspace_name = request.workspace or (
            name_from(principal.home, continued) if continued else None) or session_id
        placement = place_workspace(root, principal.home, workspace_name)
        dirs = added_dirs(root, principal.home, agent.add_dirs)
        if is_run and not request.share_workspace:
            await self.locks.take(placement.path, session_id)  # 409 while another works
        try:
            moment = datetime.now(UTC)
            record = SessionRecord(
                id=session_id, status=SessionStatus.STARTING, workspace=placement.name,
                home=placement.home, workspace_path=placement.path, kind=request.kind,
                permission_mode=mode, created_at=moment, last_activity_at=moment,
                owner=owner, model=request.model or self.settings.default_model,
                options=SessionOptions(
                    agent=replace(agent, add_dirs=dirs, env=env), fork_of=fork_of,
                    share_workspace=request.share_workspace,
                    non_interactive=request.non_interactive).to_json(),
                metadata=request.metadata, claude_session_id=request.resume,
                expires_at=self.admission.expiry(moment), external_id=request.external_id,
            )
            await self.admission.create(record)  # 429 past a session cap
            try:
                workspace_dir(root, placement)  # created now that every check has passed
            except BaseException:
                await self.store.delete_session(session_id)
                raise
        except BaseException:
            if is_run:
                self.locks.release(placement.path, session_id)  # no-op unless it took it
            raise
        return record
