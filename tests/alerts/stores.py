"""Fixtures of the task store under test, for test modules to take in: SQLite in a temporary
folder, and PostgreSQL (a throwaway server started once per test session, a fresh database per
test) where its binaries are installed."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import free_port
from warehouse import postgres_bin, postgres_server


@pytest.fixture(scope="session")
def postgres() -> Iterator[str]:
    """The URL of a running PostgreSQL server's admin database."""
    if postgres_bin() is None:
        pytest.skip("PostgreSQL's server binaries (initdb, postgres) are not installed: "
                    "`make engines` installs them")
    with postgres_server(free_port(), database="alerts_admin") as url:
        yield url


def fresh_postgres_database(admin_url: str) -> str:
    import psycopg

    name = f"tasks_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as con:
        con.execute(f"CREATE DATABASE {name}")
    return admin_url.rsplit("/", 1)[0] + f"/{name}"


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty task store's URL, on each database the store supports."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'tasks.db'}"
    return fresh_postgres_database(request.getfixturevalue("postgres"))
