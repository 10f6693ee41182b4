"""The SQL store: a :class:`~claude_gateway.storage.base.Store` on SQLAlchemy Core.

=================  =====================================================================
``engine``         the engine, its writer and reader threads (and why it is not async)
``sessions``       sessions, usage, and counts over them
``turns``          turns
``events``         the event log and its messages, with the state changes they announce
``permissions``    permission requests
``keys``           API keys
``leases``         nodes, and the lease of each live session (fencing)
``cluster``        the inbox of commands between nodes, workspace holds, work counts
``transcripts``    the CLI transcripts of the SDK's ``SessionStore``
``webhooks``       webhook endpoints and their durable deliveries
=================  =====================================================================
"""

from claude_gateway.storage.sql.cluster import ClusterRows
from claude_gateway.storage.sql.events import EventRows
from claude_gateway.storage.sql.keys import ApiKeyRows
from claude_gateway.storage.sql.leases import LeaseRows
from claude_gateway.storage.sql.permissions import PermissionRows
from claude_gateway.storage.sql.sessions import SessionRows
from claude_gateway.storage.sql.transcripts import TranscriptRows
from claude_gateway.storage.sql.turns import TurnRows
from claude_gateway.storage.sql.webhooks import WebhookRows


class SqlStore(SessionRows, TurnRows, EventRows, PermissionRows, ApiKeyRows, TranscriptRows,
               LeaseRows, ClusterRows, WebhookRows):
    """One repository per aggregate, over one engine (see :mod:`.engine`)."""


__all__ = ["SqlStore"]
