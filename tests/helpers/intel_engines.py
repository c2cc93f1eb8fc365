"""Engines for the intel tests: SQLite (a WAL file) and real PostgreSQL, shared by several modules.

The PostgreSQL database is created once per test session under a random name, so engineers and CI
jobs sharing the server never collide; each test starts from emptied tables. Import the `engine`
and `pg_url` fixtures into a test module to run its tests on both backends.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, event, select, text

from assay.db.base import Base
from assay.intel.models import INTEL_TABLES

PG_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432"


def _sqlite_engine(path: Path) -> Engine:
    engine = create_engine(f"sqlite:///{path}")

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=5000")
        cursor.close()

    Base.metadata.create_all(engine, tables=INTEL_TABLES)
    return engine


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str | None]:
    import psycopg

    try:
        admin = psycopg.connect("host=127.0.0.1 user=postgres dbname=test", autocommit=True, connect_timeout=3)
    except psycopg.OperationalError:
        yield None
        return
    name = f"assay_intel_{secrets.token_hex(4)}"
    admin.execute(f'CREATE DATABASE "{name}"')
    engine = create_engine(f"{PG_SERVER}/{name}")
    Base.metadata.create_all(engine, tables=INTEL_TABLES)
    engine.dispose()
    try:
        yield f"{PG_SERVER}/{name}"
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.services)])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        eng = _sqlite_engine(tmp_path / "intel.db")
    else:
        url = request.getfixturevalue("pg_url")
        if url is None:
            pytest.fail("PostgreSQL is not reachable on 127.0.0.1:5432: start it (.ci/run does)")
        eng = create_engine(url)
        with eng.begin() as conn:
            conn.execute(text(f"TRUNCATE {', '.join(t.name for t in INTEL_TABLES)} RESTART IDENTITY CASCADE"))
    yield eng
    eng.dispose()


def rows(engine: Engine, model: Any, *where: Any) -> list[dict[str, Any]]:
    table = model.__table__
    with engine.connect() as conn:
        stmt = select(table).where(*where).order_by(*table.primary_key.columns)
        return [dict(r._mapping) for r in conn.execute(stmt)]
