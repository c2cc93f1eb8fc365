"""What an export covers: a `Selection` of one owner's rows, read in one transaction.

Exporters never query the store themselves: they turn a Selection into STIX or MISP. That keeps
the three ways of choosing what to share (a whole owner, a group with everything associated with
it, a list of indicators) in one place, and makes every export a pure function of the rows read.
Rows are ordered by id, so two reads of an unchanged store give the same Selection.

Every selection takes an optional `Reader`: then only the rows it may see are read (the platform's
one visibility condition, `assay.access.visibility`), a group it may not see is as absent as one
that does not exist, and each row exported carries one security label, its marking (the least
restrictive context it was seen in, `assay.intel.marking`), so what a reader shares is marked as
what they were allowed to see. Without a reader (the operator's command line) rows keep their
labels as stored.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, Connection, Engine, Table, or_, select

from assay.intel.models import (
    FileOccurrence,
    Group,
    GroupGroup,
    GroupIndicator,
    Indicator,
    IndicatorIndicator,
    Owner,
)
from assay.intel.store import IN_LIMIT, chunks

if TYPE_CHECKING:
    from assay.access.visibility import Reader

Json = dict[str, Any]


class SelectionError(LookupError):
    """The owner, group or submission asked for is not in the store."""


@dataclass
class Selection:
    """Rows to export, as plain dicts keyed by column name.

    key: a stable name of the selection (feeds deterministic bundle and event ids).
    label: a human description (MISP event info, STIX bundle comment).
    group_indicator / group_group / indicator_indicator: association pairs whose both ends are
    in the selection, with the time each was stored. occurrences: the file occurrences of the selected File indicators.
    """

    owner: Json
    key: str
    label: str
    groups: list[Json] = field(default_factory=list)
    indicators: list[Json] = field(default_factory=list)
    group_indicator: dict[tuple[int, int], datetime] = field(default_factory=dict)
    group_group: dict[tuple[int, int], datetime] = field(default_factory=dict)
    indicator_indicator: dict[tuple[int, int], datetime] = field(default_factory=dict)
    occurrences: list[Json] = field(default_factory=list)
    root_group: Json | None = None


def _engine(engine: Engine | None) -> Engine:
    if engine is not None:
        return engine
    from assay.db.session import get_engine

    return get_engine()


def _owner(conn: Connection, name: str) -> Json:
    table = Owner.__table__
    row = conn.execute(select(table).where(table.c.name == name.strip())).first()
    if row is None:
        raise SelectionError(f"no intel owner named {name!r}")
    return dict(row._mapping)


def _seen(table: Table, reader: Reader | None) -> list[ColumnElement[bool]]:
    """The visibility condition on `table`'s rows for `reader`; none without one."""
    return [] if reader is None else [reader.sees(table)]


def _by_ids(conn: Connection, table: Table, ids: Iterable[int], owner_id: int, reader: Reader | None) -> list[Json]:
    out: list[Json] = []
    for part in chunks(sorted(set(ids)), IN_LIMIT):
        stmt = select(table).where(table.c.owner_id == owner_id, table.c.id.in_(part), *_seen(table, reader))
        out += [dict(r._mapping) for r in conn.execute(stmt)]
    return sorted(out, key=lambda r: r["id"])


def _pairs(
    conn: Connection, table: Table, left: str, right: str, ids: Sequence[int], both: bool
) -> dict[tuple[int, int], datetime]:
    """Pairs touching `ids` (on either end); with `both`, only pairs whose two ends are in `ids`."""
    wanted = set(ids)
    found: dict[tuple[int, int], datetime] = {}
    for part in chunks(sorted(wanted), IN_LIMIT):
        cols = (table.c[left], table.c[right], table.c.created_at)
        stmt = select(*cols).where(or_(table.c[left].in_(part), table.c[right].in_(part)))
        found.update({(a, b): when for a, b, when in conn.execute(stmt)})
    if both:
        found = {k: v for k, v in found.items() if k[0] in wanted and k[1] in wanted}
    return dict(sorted(found.items()))


def _occurrences(conn: Connection, indicator_ids: Sequence[int], reader: Reader | None) -> list[Json]:
    table = FileOccurrence.__table__
    out: list[Json] = []
    for part in chunks(sorted(set(indicator_ids)), IN_LIMIT):
        stmt = select(table).where(table.c.indicator_id.in_(part), *_seen(table, reader))
        out += [dict(r._mapping) for r in conn.execute(stmt)]
    return sorted(out, key=lambda r: r["id"])


def _marked(sel: Selection) -> Selection:
    """Each row's security labels replaced by its one marking, as it is exported to a reader."""
    rows = [*sel.groups, *sel.indicators, *sel.occurrences, *([sel.root_group] if sel.root_group else [])]
    for row in rows:
        row["security_labels"] = [row["classification"]]
    return sel


def _complete(conn: Connection, sel: Selection, reader: Reader | None) -> Selection:
    """Fill the associations among the selected rows and the occurrences of its files (those
    `reader` may see), and mark the rows for the reader."""
    group_ids = [g["id"] for g in sel.groups]
    indicator_ids = [i["id"] for i in sel.indicators]
    gi = _pairs(conn, GroupIndicator.__table__, "group_id", "indicator_id", group_ids, False)
    groups, indicators = set(group_ids), set(indicator_ids)
    sel.group_indicator = {k: v for k, v in gi.items() if k[0] in groups and k[1] in indicators}
    sel.group_group = _pairs(conn, GroupGroup.__table__, "group_id_1", "group_id_2", group_ids, True)
    ii = IndicatorIndicator.__table__
    sel.indicator_indicator = _pairs(conn, ii, "indicator_id_1", "indicator_id_2", indicator_ids, True)
    files = [i["id"] for i in sel.indicators if i["type"] == "File"]
    sel.occurrences = _occurrences(conn, files, reader)
    return sel if reader is None else _marked(sel)


def owner_selection(owner: str, engine: Engine | None = None, reader: Reader | None = None) -> Selection:
    """Everything an owner holds (that `reader` may see)."""
    with _engine(engine).connect() as conn:
        row = _owner(conn, owner)
        groups, indicators = Group.__table__, Indicator.__table__
        sel = Selection(owner=row, key=f"owner|{row['name']}", label=f"Intel of {row['name']}")
        stmt = select(groups).where(groups.c.owner_id == row["id"], *_seen(groups, reader)).order_by(groups.c.id)
        sel.groups = [dict(r._mapping) for r in conn.execute(stmt)]
        where = (indicators.c.owner_id == row["id"], *_seen(indicators, reader))
        stmt = select(indicators).where(*where).order_by(indicators.c.id)
        sel.indicators = [dict(r._mapping) for r in conn.execute(stmt)]
        return _complete(conn, sel, reader)


def _find_group(
    conn: Connection,
    owner_id: int | None,
    xids: Sequence[str],
    group_id: int | None,
    kind: str | None,
    reader: Reader | None,
) -> Json:
    table = Group.__table__
    stmt = select(table).where(*_seen(table, reader))
    if owner_id is not None:
        stmt = stmt.where(table.c.owner_id == owner_id)
    stmt = stmt.where(table.c.id == group_id if group_id is not None else table.c.xid.in_(list(xids)))
    if kind is not None:
        stmt = stmt.where(table.c.type == kind)
    row = conn.execute(stmt.order_by(table.c.id)).first()
    if row is None:
        which = f"id {group_id}" if group_id is not None else f"xid {' or '.join(map(repr, xids))}"
        raise SelectionError(f"no {kind or 'group'} with {which}")
    return dict(row._mapping)


def _owner_by_id(conn: Connection, owner_id: int) -> Json:
    table = Owner.__table__
    return dict(conn.execute(select(table).where(table.c.id == owner_id)).one()._mapping)


def _group_selection(
    conn: Connection, owner: Json, root: Json, key: str, label: str, reader: Reader | None
) -> Selection:
    """The group, the indicators and groups associated with it, and the links among them."""
    gi = _pairs(conn, GroupIndicator.__table__, "group_id", "indicator_id", [root["id"]], False)
    gg = _pairs(conn, GroupGroup.__table__, "group_id_1", "group_id_2", [root["id"]], False)
    group_ids = {root["id"]} | {a for a, _ in gg} | {b for _, b in gg}
    sel = Selection(owner=owner, key=key, label=label, root_group=root)
    sel.groups = _by_ids(conn, Group.__table__, group_ids, owner["id"], reader)
    members = [i for g, i in gi if g == root["id"]]
    sel.indicators = _by_ids(conn, Indicator.__table__, members, owner["id"], reader)
    return _complete(conn, sel, reader)


def group_selection(
    group: int | str, owner: str | None = None, engine: Engine | None = None, reader: Reader | None = None
) -> Selection:
    """A group and its associations: by numeric id (any owner, or checked against `owner`), or by
    xid (then `owner` is required)."""
    with _engine(engine).connect() as conn:
        owner_row = _owner(conn, owner) if owner is not None else None
        owner_id = owner_row["id"] if owner_row else None
        if isinstance(group, int):
            root = _find_group(conn, owner_id, (), group, None, reader)
        elif owner_id is None:
            raise SelectionError("a group chosen by xid needs its owner")
        else:
            root = _find_group(conn, owner_id, (group,), None, None, reader)
        owner_row = owner_row or _owner_by_id(conn, root["owner_id"])
        key = f"group|{owner_row['name']}|{root['type']}|{root['xid'] or root['id']}"
        return _group_selection(conn, owner_row, root, key, f"{root['type']}: {root['name']}", reader)


def submission_xids(sid: str) -> tuple[str, str]:
    """The xids a submission's Report may carry: the publisher's (`assay-submission-<sid>`), or the sid."""
    from assay.intel.publish import report_xid

    return (report_xid(sid), sid)


def submission_selection(
    sid: str, owner: str | None = None, engine: Engine | None = None, reader: Reader | None = None
) -> Selection:
    """A submission's intel: its Report group (see `submission_xids`) and what is associated with it.

    Without `owner`, the one owner holding such a Report is used; several is an error.
    """
    xids = submission_xids(sid)
    with _engine(engine).connect() as conn:
        if owner is None:
            table, owners = Group.__table__, Owner.__table__
            stmt = select(owners.c.name).join(table, table.c.owner_id == owners.c.id).where(*_seen(table, reader))
            names = sorted(set(conn.execute(stmt.where(table.c.type == "Report", table.c.xid.in_(xids))).scalars()))
            if len(names) != 1:
                found = ", ".join(names) or "none"
                raise SelectionError(f"submission {sid!r}: need exactly one owner with its Report (found {found})")
            owner = names[0]
        row = _owner(conn, owner)
        root = _find_group(conn, row["id"], xids, None, "Report", reader)
        key = f"submission|{row['name']}|{sid}"
        return _group_selection(conn, row, root, key, f"Submission {sid}: {root['name']}", reader)


def indicator_selection(
    owner: str, ids: Sequence[int], engine: Engine | None = None, reader: Reader | None = None
) -> Selection:
    """Chosen indicators (unknown ids, or ids `reader` may not see, are an error), with the links
    among them and their occurrences."""
    with _engine(engine).connect() as conn:
        row = _owner(conn, owner)
        sel = Selection(owner=row, key=f"indicators|{row['name']}|{','.join(map(str, sorted(set(ids))))}", label="")
        sel.indicators = _by_ids(conn, Indicator.__table__, ids, row["id"], reader)
        missing = sorted(set(ids) - {i["id"] for i in sel.indicators})
        if missing:
            raise SelectionError(f"owner {owner!r} has no indicators with ids {missing[:10]}")
        sel.label = f"{len(sel.indicators)} indicators of {row['name']}"
        return _complete(conn, sel, reader)
