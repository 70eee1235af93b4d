"""A fresh PostgreSQL database on the running server for one test, dropped afterwards."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator

import psycopg

PG_ADMIN = "host=127.0.0.1 user=postgres dbname=postgres"


@contextlib.contextmanager
def pg_database() -> Iterator[str]:
    """The SQLAlchemy URL of a new, empty database; dropped (connections and all) on the way out."""
    name = f"hotline_test_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
