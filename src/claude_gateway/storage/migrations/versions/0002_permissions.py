"""Permission requests, idempotent turns (client ids), context size, expiry index.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "permissions",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("session_id", sa.String(length=64), nullable=False),
        sa.Column("turn_id", sa.String(length=64), nullable=True),
        sa.Column("tool_name", sa.String(length=256), nullable=False),
        sa.Column("input", sa.JSON(), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolution", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(["session_id"], ["sessions.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_permissions_session_status", "permissions", ["session_id", "status"])
    with op.batch_alter_table("turns") as batch:
        batch.add_column(sa.Column("client_id", sa.String(length=128), nullable=True))
        batch.create_index("ux_turns_client_id", ["session_id", "client_id"], unique=True)
    with op.batch_alter_table("sessions") as batch:
        batch.add_column(sa.Column("context_window", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("context_tokens", sa.BigInteger(), nullable=True))
        batch.create_index("ix_sessions_expires", ["expires_at"])


def downgrade() -> None:
    with op.batch_alter_table("sessions") as batch:
        batch.drop_index("ix_sessions_expires")
        batch.drop_column("context_tokens")
        batch.drop_column("context_window")
    with op.batch_alter_table("turns") as batch:
        batch.drop_index("ux_turns_client_id")
        batch.drop_column("client_id")
    op.drop_index("ix_permissions_session_status", table_name="permissions")
    op.drop_table("permissions")
