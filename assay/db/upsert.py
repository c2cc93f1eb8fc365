"""Set-based "insert unless present" for SQLite and PostgreSQL alike."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session


def dialect_insert(session: Session, table: Table) -> Any:
    name = session.get_bind().dialect.name
    return postgresql.insert(table) if name == "postgresql" else sqlite.insert(table)


def insert_ignore(session: Session, table: Table, rows: Sequence[dict[str, Any]], returning: str) -> set[Any]:
    """Insert ``rows``, skipping those whose key exists; return the ``returning`` values written.

    One cached statement executed for many rows: SQLAlchemy batches it into multi-row inserts.
    """
    if not rows:
        return set()
    statement = dialect_insert(session, table).on_conflict_do_nothing().returning(table.c[returning])
    return {row[0] for row in session.execute(statement, list(rows)).all() if row is not None}
