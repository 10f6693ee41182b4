"""Alembic's environment: the gateway passes its own open connection (``alembic.command``
run in-process at start); the ``alembic`` command line opens one from the URL."""

from alembic import context
from sqlalchemy import Connection, create_engine

from claude_gateway.storage.schema import metadata


def run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=metadata,
                      render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()


given = context.config.attributes.get("connection")
if given is not None:
    run(given)
else:
    url = context.config.get_main_option("sqlalchemy.url") or "sqlite:///data/gateway.db"
    with create_engine(url).connect() as opened:
        run(opened)
