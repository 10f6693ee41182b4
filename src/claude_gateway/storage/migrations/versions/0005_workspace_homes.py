"""Each session's home (the owner's directory it is confined to) and its workspace's
directory relative to the workspace root; an index to find conversations by id.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sessions") as batch:
        batch.add_column(sa.Column("home", sa.String(length=128), nullable=False,
                                   server_default=""))
        batch.add_column(sa.Column("workspace_path", sa.String(length=1024), nullable=False,
                                   server_default=""))
    # Until now every session worked in its owner's directory.
    op.execute("UPDATE sessions SET home = owner, workspace_path = CASE WHEN owner = '' "
               "THEN workspace ELSE owner || '/' || workspace END")
    with op.batch_alter_table("sessions") as batch:
        batch.create_index("ix_sessions_workspace_path",
                           ["workspace_path", "last_activity_at"])
        batch.create_index("ix_sessions_claude_session_id", ["claude_session_id"])


def downgrade() -> None:
    with op.batch_alter_table("sessions") as batch:
        batch.drop_index("ix_sessions_claude_session_id")
        batch.drop_index("ix_sessions_workspace_path")
        batch.drop_column("workspace_path")
        batch.drop_column("home")
