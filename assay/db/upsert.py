"""Set-based "insert unless present" for SQLite and PostgreSQL alike."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

CHUNK = 500


def dialect_insert(session: Session, table: Table) -> Any:
    name = session.get_bind().dialect.name
    return postgresql.insert(table) if name == "postgresql" else sqlite.insert(table)


def insert_ignore(session: Session, table: Table, rows: Sequence[dict[str, Any]], returning: str) -> set[Any]:
    """Insert ``rows``, skipping those whose key exists; return the ``returning`` values written."""
    written: set[Any] = set()
    for start in range(0, len(rows), CHUNK):
        chunk = rows[start : start + CHUNK]
        statement = dialect_insert(session, table).values(chunk).on_conflict_do_nothing()
        written.update(session.scalars(statement.returning(table.c[returning])).all())
    return written
