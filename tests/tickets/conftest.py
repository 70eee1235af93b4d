"""Ticket platform tests run on both stores: SQLite (a file in tmp_path) and the running
PostgreSQL (a fresh database per test, dropped afterwards)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from sqlalchemy import Engine

from tests.pg import pg_database
from tickets import auth
from tickets.db import migrate, open_engine


@pytest.fixture(autouse=True)
def quick_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    # argon2's production parameters take ~0.4 s a hash here; test_auth checks them on their own.
    monkeypatch.setattr(auth, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


@pytest.fixture
def pg_url() -> Iterator[str]:
    with pg_database() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty store, once per backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'hotline.db'}"
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
def db(db_url: str) -> Iterator[Engine]:
    """A migrated store, once per backend."""
    engine = open_engine(db_url)
    migrate(engine)
    yield engine
    engine.dispose()
