"""Fixtures shared by the test modules: real PostgreSQL databases and live servers.

The helpers they are built on (and that tests import) live in ``tests/helpers/``.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import psycopg
import pytest

from assay.db.session import dispose_all
from tests.helpers.servers import PG_ADMIN, Server, drop_pg, make_server, new_pg_url


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session (dropped afterwards)."""
    name = f"assay_test_{secrets.token_hex(4)}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield name
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.services)])
def database_environ(request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    """Settings environment naming a fresh database of each kind (SQLite: the data directory's)."""
    pg_name = None
    environ: dict[str, str] = {}
    if request.param == "postgresql":
        pg_name, environ["ASSAY_DATABASE_URL"] = new_pg_url()
    try:
        yield environ
    finally:
        dispose_all()
        if pg_name:
            drop_pg(pg_name)


@pytest.fixture(scope="module")
def embedded_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One embedded server (SQLite, local workers) shared by a test module."""
    server = make_server(tmp_path_factory.mktemp("embedded"))
    server.start()
    yield server
    server.stop()
