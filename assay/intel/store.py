"""Set-based reads and writes of the intel tables: the fast path every job goes through.

Each function takes an open `Connection` inside the caller's transaction and touches many rows per
statement. On PostgreSQL a chunk is inserted by one `INSERT ... SELECT FROM jsonb_array_elements(...)
RETURNING ...` whose rows travel as one JSON document (`pg_json_insert`), and stored rows are read
back by one index probe per key, returned as one JSON document (`_pg_find`). On SQLite the same
functions use multi-row `INSERT ... VALUES ... ON CONFLICT DO NOTHING RETURNING` and `IN (...)`.
Updates are executemany `UPDATE ... WHERE id = ?` on both.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Connection,
    Table,
    bindparam,
    delete,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.dml import Insert

from assay import fastjson
from assay.db import bulk
from assay.db.base import utcnow
from assay.intel.marking import MARKING_COLUMNS
from assay.intel.models import (
    FileOccurrence,
    Group,
    GroupGroup,
    GroupIndicator,
    Indicator,
    IndicatorIndicator,
    Owner,
)

Json = dict[str, Any]
EXPECT_NEW = "intel_expect_new"  # execution option: the caller expects no conflicts (see pg_json_insert)
UNIQUE_VIOLATION = "23505"
HASH_LENGTHS = {"md5": 32, "sha1": 40, "sha256": 64}
IN_LIMIT = 900  # keys per IN list: well under SQLite's bound-parameter limit on every build
SQLITE_MAX_VARIABLES = 30000  # SQLite >= 3.32 allows 32766 bound parameters per statement

INDICATOR_COLUMNS = (
    "id", "type", "summary", "md5", "sha1", "sha256", "xid", "rating", "confidence", "attributes",
    "tags", "security_labels", "first_seen", "last_seen", "external_dates", *MARKING_COLUMNS,
)  # fmt: skip
GROUP_COLUMNS = ("id", "type", "name", "xid", "fields", "attributes", "tags", "security_labels", *MARKING_COLUMNS)


def dialect_insert(conn: Connection, table: Table) -> Insert:
    """The dialect's own INSERT, which knows ON CONFLICT."""
    module = postgresql if conn.dialect.name == "postgresql" else sqlite
    return module.insert(table)


def chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def is_postgres(conn: Connection) -> bool:
    return conn.dialect.name == "postgresql"


def pg_json_insert(
    conn: Connection,
    table: Table,
    rows: list[Json],
    returning: Sequence[str],
    constants: Json | None = None,
) -> list[tuple[Any, ...]]:
    """`INSERT ... SELECT FROM jsonb_array_elements(:rows) ON CONFLICT DO NOTHING RETURNING ...`.

    The whole chunk travels as one JSON document of positional rows, encoded by the C encoder in a
    single call: far less Python work per row than binding arrays or COPY rows, and JSON columns
    ride inside it as they are. The server casts each element back to the column's type. Columns
    that are NULL on every row are left to their default; `constants` (timestamps) are bound once.

    With the `EXPECT_NEW` execution option set on the connection, a plain INSERT is tried first
    under a savepoint: the server skips the speculative-insertion protocol of ON CONFLICT (about a
    third of its work per row). A unique violation rolls the savepoint back and the ON CONFLICT
    form runs instead, so the outcome is the same either way.
    """
    constants = constants or {}
    columns = [c for c in rows[0] if c not in constants and any(row[c] is not None for row in rows)]
    picks = [bulk.pg_pick(table, column, index) for index, column in enumerate(columns)]
    picks += [f"%s::{bulk.pg_type(table.c[c].type)}" for c in constants]
    document = fastjson.dumps([[row[c] for c in columns] for row in rows])
    head = (
        f"INSERT INTO {table.name} ({', '.join([*columns, *constants])}) "
        f"SELECT {', '.join(picks)} FROM jsonb_array_elements(%s::jsonb) AS e "
    )
    tail = f" RETURNING {', '.join(returning)}"
    params = (*constants.values(), document)
    if conn.get_execution_options().get(EXPECT_NEW):
        conn.exec_driver_sql("SAVEPOINT intel_plain_insert")  # never released: COMMIT ends it, no round trip
        try:
            return conn.exec_driver_sql(head + tail, params).fetchall()
        except IntegrityError as exc:
            if getattr(exc.orig, "sqlstate", None) != UNIQUE_VIOLATION:
                raise
            conn.exec_driver_sql("ROLLBACK TO SAVEPOINT intel_plain_insert")
    return conn.exec_driver_sql(head + "ON CONFLICT DO NOTHING" + tail, params).fetchall()


def sqlite_values_insert(
    conn: Connection, table: Table, rows: list[Json], returning: Sequence[str]
) -> list[tuple[Any, ...]]:
    """Multi-row `INSERT ... VALUES (...), (...) ON CONFLICT DO NOTHING RETURNING ...` on SQLite.

    Values go through each column type's own bind processor (so JSON and UTC dates are stored
    exactly as the ORM stores them), but once per value rather than through the per-row machinery
    of executemany, which costs more than SQLite itself.
    """
    dialect = conn.dialect
    columns = list(rows[0])
    processors = [table.c[c].type.dialect_impl(dialect).bind_processor(dialect) for c in columns]
    row_sql = "(" + ", ".join("?" * len(columns)) + ")"
    head = f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES "
    tail = f" ON CONFLICT DO NOTHING RETURNING {', '.join(returning)}"
    out: list[tuple[Any, ...]] = []
    for part in chunks(rows, max(1, SQLITE_MAX_VARIABLES // len(columns))):
        values: list[Any] = []
        for row in part:
            for column, process in zip(columns, processors, strict=True):
                value = row[column]
                values.append(process(value) if process is not None and value is not None else value)
        sql = head + ", ".join([row_sql] * len(part)) + tail
        out += [tuple(r) for r in conn.exec_driver_sql(sql, tuple(values))]
    return out


def bulk_insert(
    conn: Connection, table: Table, rows: list[Json], returning: Sequence[str], constants: Json | None = None
) -> list[tuple[Any, ...]]:
    """Insert rows, skipping those that collide with a unique key; returns the inserted rows' columns.

    `constants` are columns with one value for every row (timestamps).
    """
    if is_postgres(conn):
        return pg_json_insert(conn, table, rows, returning, constants)
    if constants:
        rows = [{**row, **constants} for row in rows]
    if conn.dialect.name == "sqlite":
        return sqlite_values_insert(conn, table, rows, returning)
    stmt = dialect_insert(conn, table).on_conflict_do_nothing().returning(*(table.c[c] for c in returning))
    return [tuple(r) for r in conn.execute(stmt, rows)]


def refresh_statistics(conn: Connection, table: Table) -> None:
    """ANALYZE a table that a job has grown a lot, on PostgreSQL.

    Look-ups by key do not depend on it (`_pg_find` probes the index per key), but other queries
    of the job (by xid, by group name) plan better once the server knows the table's new size.
    """
    if is_postgres(conn):
        conn.exec_driver_sql(f"ANALYZE {table.name}")


def ensure_owner(conn: Connection, name: str, kind: str = "Organization") -> int:
    """The owner's id, creating the owner on first use (safe against a concurrent creator)."""
    table = Owner.__table__
    conn.execute(dialect_insert(conn, table).values(name=name, kind=kind).on_conflict_do_nothing())
    return conn.execute(select(table.c.id).where(table.c.name == name)).scalar_one()


def _rows(conn: Connection, columns: Sequence[str], table: Table, *where: Any) -> list[Json]:
    stmt = select(*(table.c[c] for c in columns)).where(*where)
    return [dict(row._mapping) for row in conn.execute(stmt)]


# --- indicators -------------------------------------------------------------------------------


def _find(conn: Connection, column: str, values: Sequence[str], owner_id: int, kind: str | None = None) -> list[Json]:
    """Indicator rows of the owner (and type) whose `column`, a uniquely indexed key, is in `values`."""
    if is_postgres(conn):
        return _pg_find(conn, column, values, owner_id, kind)
    table = Indicator.__table__
    where = [table.c.owner_id == owner_id] + ([table.c.type == kind] if kind is not None else [])
    found: list[Json] = []
    for part in chunks(values, IN_LIMIT):
        found += _rows(conn, INDICATOR_COLUMNS, table, *where, table.c[column].in_(part))
    return found


def _pg_find(conn: Connection, column: str, values: Sequence[str], owner_id: int, kind: str | None) -> list[Json]:
    """The PostgreSQL form of `_find`: one unique-index probe per key, rows back as one JSON document.

    The keys arrive as one array and each is looked up by a LATERAL subquery: a plan the server
    cannot turn into a scan of every row of the owner's type, which is what it picks for
    `column = ANY(:array)` or a plain join while it has no statistics on a freshly filled table
    (every key compared with every row, or every row hashed, per chunk). One JSON document per
    query, decoded by one C call, costs a fraction of decoding every JSON column of every row.
    """
    picks = ", ".join(INDICATOR_COLUMNS)
    same_type = " AND type = %s" if kind is not None else ""
    sql = (
        "SELECT json_agg(found.row)::text FROM unnest(%s::text[]) AS wanted(key) "
        f"CROSS JOIN LATERAL (SELECT json_build_array({picks}) AS row FROM intel_indicator "
        f"WHERE owner_id = %s{same_type} AND {column} = wanted.key LIMIT 1) AS found"
    )
    params = (list(values), owner_id, *([kind] if kind is not None else []))
    text = conn.exec_driver_sql(sql, params).scalar()
    return [_indicator_from_json(row) for row in json.loads(text)] if text else []


def _indicator_from_json(values: list[Any]) -> Json:
    row = dict(zip(INDICATOR_COLUMNS, values, strict=True))
    if row["rating"] is not None:
        row["rating"] = float(row["rating"])
    for column in ("first_seen", "last_seen"):
        if row[column] is not None:
            row[column] = datetime.fromisoformat(row[column]).astimezone(UTC)
    return row


def find_indicators(conn: Connection, owner_id: int, keys: Sequence[tuple[str, str]]) -> list[Json]:
    """Stored non-File indicators whose (type, summary) is among `keys`.

    One query per type, so that the (owner_id, type, summary) unique index serves the look-up.
    """
    by_type: dict[str, set[str]] = {}
    for kind, summary in keys:
        by_type.setdefault(kind, set()).add(summary)
    found: list[Json] = []
    for kind, summaries in sorted(by_type.items()):
        found += _find(conn, "summary", sorted(summaries), owner_id, kind)
    return found


def find_files(conn: Connection, owner_id: int, hashes: Iterable[str]) -> list[Json]:
    """Stored File indicators sharing any of `hashes`: one query per hash column, each on its index."""
    found: dict[int, Json] = {}
    unique = sorted(set(hashes))
    for column in ("md5", "sha1", "sha256"):
        wanted = [h for h in unique if len(h) == HASH_LENGTHS[column]]
        if wanted:
            for row in _find(conn, column, wanted, owner_id):
                found[row["id"]] = row
    return list(found.values())


def find_indicators_by_xid(conn: Connection, owner_id: int, xids: Iterable[str]) -> dict[str, int]:
    table = Indicator.__table__
    out: dict[str, int] = {}
    for part in chunks(sorted(set(xids)), IN_LIMIT):
        stmt = select(table.c.xid, table.c.id).where(table.c.owner_id == owner_id, table.c.xid.in_(part))
        for xid, ident in conn.execute(stmt.order_by(table.c.id)):
            out.setdefault(xid, ident)
    return out


def insert_indicators(conn: Connection, rows: list[Json]) -> dict[tuple[str, str], int]:
    """Insert new indicators; returns (type, summary) → id for the rows actually inserted."""
    if not rows:
        return {}
    now = utcnow()
    inserted = bulk_insert(
        conn, Indicator.__table__, rows, ("id", "type", "summary"), {"created_at": now, "updated_at": now}
    )
    return {(t, s): i for i, t, s in inserted}


def update_rows(conn: Connection, table: Table, rows: list[Json]) -> None:
    """executemany `UPDATE table SET ... WHERE id = :id`; every row must carry the same keys."""
    if not rows:
        return
    now = utcnow()
    columns = [c for c in rows[0] if c != "id"]
    stmt = (
        update(table).where(table.c.id == bindparam("_id")).values({c: bindparam(c) for c in [*columns, "updated_at"]})
    )
    conn.execute(stmt, [{**{c: r[c] for c in columns}, "_id": r["id"], "updated_at": now} for r in rows])


def delete_indicators(conn: Connection, ids: Sequence[int]) -> None:
    """Delete indicators with their associations and occurrences (no reliance on FK cascades,
    which SQLite only honours when the connection enabled them)."""
    gi, ii, fo, ind = (
        GroupIndicator.__table__,
        IndicatorIndicator.__table__,
        FileOccurrence.__table__,
        Indicator.__table__,
    )
    for part in chunks(list(ids), IN_LIMIT):
        conn.execute(delete(gi).where(gi.c.indicator_id.in_(part)))
        conn.execute(delete(ii).where(or_(ii.c.indicator_id_1.in_(part), ii.c.indicator_id_2.in_(part))))
        conn.execute(delete(fo).where(fo.c.indicator_id.in_(part)))
        conn.execute(delete(ind).where(ind.c.id.in_(part)))


# --- groups -----------------------------------------------------------------------------------


def find_groups_by_xid(conn: Connection, owner_id: int, xids: Iterable[str]) -> dict[str, Json]:
    table = Group.__table__
    out: dict[str, Json] = {}
    for part in chunks(sorted(set(xids)), IN_LIMIT):
        for row in _rows(conn, GROUP_COLUMNS, table, table.c.owner_id == owner_id, table.c.xid.in_(part)):
            out[row["xid"]] = row
    return out


def find_groups_by_name(
    conn: Connection, owner_id: int, keys: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], list[Json]]:
    """(type, name) → stored groups, oldest first (lowest id: ids only grow)."""
    table = Group.__table__
    out: dict[tuple[str, str], list[Json]] = {}
    for part in chunks(sorted(set(keys)), IN_LIMIT // 2):
        cond = tuple_(table.c.type, table.c.name).in_(part)
        stmt = select(*(table.c[c] for c in GROUP_COLUMNS)).where(table.c.owner_id == owner_id, cond)
        for row in conn.execute(stmt.order_by(table.c.id)):
            data = dict(row._mapping)
            out.setdefault((data["type"], data["name"]), []).append(data)
    return out


def find_group_ids(conn: Connection, owner_id: int, ids: Iterable[int]) -> set[int]:
    table = Group.__table__
    wanted = sorted(set(ids))
    stmt = select(table.c.id).where(table.c.owner_id == owner_id, table.c.id.in_(wanted))
    return set(conn.execute(stmt).scalars()) if wanted else set()


def insert_groups(conn: Connection, owner_id: int, rows: list[Json]) -> list[int]:
    """Insert groups; returns their ids in the order of `rows`."""
    if not rows:
        return []
    table = Group.__table__
    now = utcnow()
    stmt = dialect_insert(conn, table).returning(table.c.id, sort_by_parameter_order=True)
    params = [{**row, "owner_id": owner_id, "created_at": now, "updated_at": now} for row in rows]
    return list(conn.execute(stmt, params).scalars())


def delete_groups(conn: Connection, ids: Sequence[int]) -> None:
    gi, gg, grp = GroupIndicator.__table__, GroupGroup.__table__, Group.__table__
    for part in chunks(list(ids), IN_LIMIT):
        conn.execute(delete(gi).where(gi.c.group_id.in_(part)))
        conn.execute(delete(gg).where(or_(gg.c.group_id_1.in_(part), gg.c.group_id_2.in_(part))))
        conn.execute(delete(grp).where(grp.c.id.in_(part)))


# --- associations and occurrences -------------------------------------------------------------

PAIR_TABLES: dict[str, tuple[Table, str, str]] = {
    "group_indicator": (GroupIndicator.__table__, "group_id", "indicator_id"),
    "group_group": (GroupGroup.__table__, "group_id_1", "group_id_2"),
    "indicator_indicator": (IndicatorIndicator.__table__, "indicator_id_1", "indicator_id_2"),
}


def insert_pairs(conn: Connection, kind: str, pairs: Sequence[tuple[int, int]]) -> set[tuple[int, int]]:
    """Insert association pairs, ignoring those already stored; returns the pairs that were new."""
    if not pairs:
        return set()
    table, left, right = PAIR_TABLES[kind]
    params = [{left: a, right: b} for a, b in pairs]
    return {(a, b) for a, b in bulk_insert(conn, table, params, (left, right), {"created_at": utcnow()})}


def delete_pairs(conn: Connection, kind: str, pairs: Sequence[tuple[int, int]]) -> set[tuple[int, int]]:
    table, left, right = PAIR_TABLES[kind]
    gone: set[tuple[int, int]] = set()
    for part in chunks(list(pairs), IN_LIMIT // 2):
        stmt = delete(table).where(tuple_(table.c[left], table.c[right]).in_(part))
        stmt = stmt.returning(table.c[left], table.c[right])
        gone |= {(a, b) for a, b in conn.execute(stmt)}
    return gone


def occurrence_fingerprint(occurrence: Json) -> str:
    text = json.dumps([occurrence.get("fileName"), occurrence.get("path"), occurrence.get("date")])
    return hashlib.sha256(text.encode()).hexdigest()


def occurrence_row(indicator_id: int, occurrence: Json, marking: Json | None = None) -> Json:
    """The row of one occurrence; `marking` holds its classification columns (assay.intel.marking)."""
    date = occurrence.get("date")
    return {
        "indicator_id": indicator_id,
        "fingerprint": occurrence_fingerprint(occurrence),
        "file_name": occurrence.get("fileName"),
        "path": occurrence.get("path"),
        "date": datetime.fromisoformat(date) if date else None,
        **(marking or {}),
    }


def insert_occurrences(conn: Connection, rows: list[Json]) -> set[tuple[int, str]]:
    """Insert occurrence rows; returns the (indicator_id, fingerprint) of those that were new."""
    if not rows:
        return set()
    inserted = bulk_insert(
        conn, FileOccurrence.__table__, rows, ("indicator_id", "fingerprint"), {"created_at": utcnow()}
    )
    return {(i, f) for i, f in inserted}


def delete_occurrences(conn: Connection, keys: Sequence[tuple[int, str]]) -> set[tuple[int, str]]:
    table = FileOccurrence.__table__
    gone: set[tuple[int, str]] = set()
    for part in chunks(list(keys), IN_LIMIT // 2):
        cond = tuple_(table.c.indicator_id, table.c.fingerprint).in_(part)
        stmt = delete(table).where(cond).returning(table.c.indicator_id, table.c.fingerprint)
        gone |= {(i, f) for i, f in conn.execute(stmt)}
    return gone
