"""Scratch PostgreSQL databases for tests: the server at 127.0.0.1:5432 (trust auth,
user ``postgres``) or ``CLAUDE_GATEWAY_TEST_POSTGRES_URL``. Each test gets a database
of its own, dropped afterwards (``scripts/check`` starts the server if none answers)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from sqlalchemy.engine import make_url

ADMIN_URL = os.environ.get("CLAUDE_GATEWAY_TEST_POSTGRES_URL",
                           "postgresql://postgres@127.0.0.1:5432/postgres")


def _admin() -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=10)


@contextmanager
def scratch_database(label: str = "t") -> Iterator[str]:
    """A new, empty database; its URL (``postgresql://``) while the block runs."""
    name = f"cgw_{label}_{uuid.uuid4().hex[:12]}"
    with _admin() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with _admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def empty_all_tables(url: str) -> None:
    """Every table of the gateway's schema emptied (its migrations kept)."""
    with psycopg.connect(make_url(url).set(drivername="postgresql").render_as_string(
            hide_password=False), autocommit=True) as conn:
        tables = [row[0] for row in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
            "AND tablename <> 'alembic_version'")]
        if tables:
            conn.execute("TRUNCATE " + ", ".join(f'"{t}"' for t in tables)
                         + " RESTART IDENTITY CASCADE")
