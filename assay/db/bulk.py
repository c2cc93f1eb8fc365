"""Many rows per statement on PostgreSQL, where executemany pays for every row.

psycopg sends each row of an executemany as its own execution: the server starts and ends an
executor per row, and the client binds every value in Python. Here a batch travels as one JSON
document of positional rows, unpacked by one `INSERT ... SELECT` or `UPDATE ... FROM` over
`jsonb_array_elements`, and the server casts each value back to its column's type. SQLite runs
in-process, where executemany is already a tight loop, so it keeps it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Connection, DateTime, Float, Integer, String, Table, Text, bindparam
from sqlalchemy.orm import Session
from sqlalchemy.types import TypeEngine

from assay import fastjson
from assay.db.base import UtcDateTime

Row = dict[str, Any]


def pg_type(sa_type: TypeEngine[Any]) -> str:
    """The PostgreSQL type a JSON value is cast to for a column of ``sa_type``."""
    if isinstance(sa_type, UtcDateTime | DateTime):
        return "timestamptz"
    if isinstance(sa_type, JSON) or isinstance(getattr(sa_type, "impl", None), JSON):
        return "jsonb"
    if isinstance(sa_type, Boolean):
        return "boolean"
    if isinstance(sa_type, BigInteger | Integer):
        return "int8"
    if isinstance(sa_type, Float):
        return "float8"
    if isinstance(sa_type, String | Text):
        return "text"
    raise TypeError(f"no PostgreSQL type for {sa_type!r}")


def pg_pick(table: Table, column: str, index: int) -> str:
    """The expression reading element ``index`` of a JSON row ``e`` as ``column``'s type."""
    kind = pg_type(table.c[column].type)
    return f"e->{index}" if kind == "jsonb" else f"(e->>{index})::{kind}"


def insert_rows(session: Session, table: Table, rows: Sequence[Row]) -> None:
    """Insert ``rows`` (dicts with the same keys) in one statement on PostgreSQL."""
    if not rows:
        return
    connection = session.connection()
    if connection.dialect.name != "postgresql":
        connection.execute(table.insert(), list(rows))
        return
    defaults = _python_defaults(table, rows[0])
    columns = [*rows[0], *defaults]
    picks = ", ".join(pg_pick(table, column, index) for index, column in enumerate(columns))
    connection.exec_driver_sql(
        f"INSERT INTO {_name(connection, table)} ({_columns(connection, columns)}) "
        f"SELECT {picks} FROM jsonb_array_elements(%s::jsonb) AS e",
        (fastjson.dumps([[*(row[c] for c in rows[0]), *defaults.values()] for row in rows]),),
    )


def update_rows(session: Session, table: Table, key: str, rows: Sequence[Row]) -> None:
    """Set the other columns of each row where ``key`` equals the row's ``key`` (same keys in every row)."""
    if not rows:
        return
    connection = session.connection()
    columns = [c for c in rows[0] if c != key]
    if connection.dialect.name != "postgresql":
        statement = (
            table.update().where(table.c[key] == bindparam("b_key")).values({c: bindparam(f"b_{c}") for c in columns})
        )
        connection.execute(statement, [{f"b_{c}": row[c] for c in columns} | {"b_key": row[key]} for row in rows])
        return
    quote = connection.dialect.identifier_preparer.quote
    sets = ", ".join(f"{quote(c)} = {pg_pick(table, c, index)}" for index, c in enumerate(columns, start=1))
    connection.exec_driver_sql(
        f"UPDATE {_name(connection, table)} AS t SET {sets} FROM jsonb_array_elements(%s::jsonb) AS e "
        f"WHERE t.{quote(key)} = {pg_pick(table, key, 0)}",
        (fastjson.dumps([[row[key], *(row[c] for c in columns)] for row in rows]),),
    )


def _python_defaults(table: Table, given: Row) -> Row:
    """Values of the Python-side column defaults ``given`` leaves out, as ``table.insert()`` would fill them."""
    values: Row = {}
    for column in table.c:
        default = column.default
        if column.name in given or default is None or not (default.is_scalar or default.is_callable):
            continue
        values[column.name] = default.arg(None) if default.is_callable else default.arg  # type: ignore[attr-defined]
    return values


def _name(connection: Connection, table: Table) -> str:
    return connection.dialect.identifier_preparer.format_table(table)


def _columns(connection: Connection, columns: Sequence[str]) -> str:
    return ", ".join(connection.dialect.identifier_preparer.quote(c) for c in columns)
