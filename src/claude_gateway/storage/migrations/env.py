"""Used only by the ``alembic`` command line (the gateway migrates in-process)."""

from alembic import context
from sqlalchemy import create_engine

from claude_gateway.storage.schema import metadata

url = context.config.get_main_option("sqlalchemy.url") or "sqlite:///data/gateway.db"
with create_engine(url).connect() as connection:
    context.configure(connection=connection, target_metadata=metadata)
    with context.begin_transaction():
        context.run_migrations()
