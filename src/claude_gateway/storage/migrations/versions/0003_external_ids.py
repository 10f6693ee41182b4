"""Sessions named by their client (the OpenAI surface's X-Session-Id).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sessions") as batch:
        batch.add_column(sa.Column("external_id", sa.String(length=256), nullable=True))
        batch.create_index("ux_sessions_external_id", ["owner", "external_id"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("sessions") as batch:
        batch.drop_index("ux_sessions_external_id")
        batch.drop_column("external_id")
