"""Alembic migrations, run programmatically at start (no alembic.ini needed)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text

HERE = Path(__file__).parent
MIGRATION_LOCK = 0x6367_775F_6D69  # "cgw_mi": the advisory lock that serializes migrations


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(HERE))
    return config


def upgrade_to_head(connection: Connection) -> None:
    """Apply every migration the database lacks, on this connection (``alembic upgrade
    head``, through Alembic's public command API)."""
    if connection.dialect.name == "postgresql":
        # Several nodes starting at once: one migrates, the others wait here (the lock
        # ends with the transaction) and then find nothing to do.
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"),
                           {"key": MIGRATION_LOCK})
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


def current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()
