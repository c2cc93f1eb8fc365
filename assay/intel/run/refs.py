"""Resolving references to stored groups and indicators (by xid, id, name, summary or hash), cached per run."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection

from assay.intel import store
from assay.intel.errors import Code, ItemError
from assay.intel.indicators import Hashes, indicator_type, normalise_summary
from assay.intel.run.state import RunState


class References:
    """Finds the stored id an item refers to; an unknown reference raises `ItemError` (0x1007)."""

    def __init__(self, state: RunState) -> None:
        self.state = state
        self.look = state.look

    def group_by_ref(self, conn: Connection, ref: str) -> int:
        """A group by xid, else by numeric id; unknown → 0x1007."""
        if ref in self.look.groups_by_ref:
            return self.look.groups_by_ref[ref]
        owner_id = self.state.owner_id
        row = store.find_groups_by_xid(conn, owner_id, [ref]).get(ref)
        ident = row["id"] if row else None
        if ident is None and ref.isdigit() and store.find_group_ids(conn, owner_id, [int(ref)]):
            ident = int(ref)
        if ident is None:
            raise ItemError(Code.ITEM_NOT_FOUND, f"no group with xid or id {ref!r}")
        self.look.groups_by_ref[ref] = ident
        return ident

    def group_ident(self, conn: Connection, xid: str | None, kind: str | None, name: Any, where: str) -> int:
        """By xid first, then by type and name: the oldest group wins, with a warning if several."""
        if xid:
            try:
                return self.group_by_ref(conn, xid)
            except ItemError:
                if not kind or not name:
                    raise
        rows = self.look.group_names.get((kind, str(name)))
        if rows is None:
            found = store.find_groups_by_name(conn, self.state.owner_id, [(kind, str(name))])
            rows = found.get((kind, str(name)), [])
        if not rows:
            raise ItemError(Code.ITEM_NOT_FOUND, f"no {kind} group named {name!r}")
        if len(rows) > 1 and (kind, str(name)) not in self.look.warned:
            self.look.warned.add((kind, str(name)))
            others = ", ".join(str(r["id"]) for r in rows[1:])
            oldest = rows[0]["id"]
            reason = f"{len(rows)} {kind} groups are named {name!r}: using the oldest ({oldest}); others: {others}"
            self.state.result.warn(where, Code.DUPLICATE_ITEM, reason, {"type": kind, "name": name})
        return rows[0]["id"]

    def indicator_by_ref(self, conn: Connection, kind: Any, ref: Any) -> int:
        """An indicator by type and summary in any spelling; a File by any of its hashes."""
        try:
            itype = indicator_type(kind)
            summary, hashes = normalise_summary(itype, ref)
        except ItemError as exc:
            raise ItemError(Code.ASSOCIATION, f"invalid indicator reference: {exc.reason}") from exc
        if hashes is not None:
            return self.file_by_hashes(conn, hashes)
        ident = self.look.indicators.get((itype, summary))
        if ident is None:
            rows = store.find_indicators(conn, self.state.owner_id, [(itype, summary)])
            if not rows:
                raise ItemError(Code.ITEM_NOT_FOUND, f"no {itype} indicator {summary!r}")
            ident = self.look.indicators[(itype, summary)] = rows[0]["id"]
        return ident

    def file_by_hashes(self, conn: Connection, hashes: Hashes) -> int:
        """The one File indicator holding any of these hashes; several are a hash-merge error (0x2003)."""
        for digest in hashes.values():
            if digest in self.look.files:
                return self.look.files[digest]
        rows = store.find_files(conn, self.state.owner_id, hashes.values())
        if not rows:
            raise ItemError(Code.ITEM_NOT_FOUND, f"no File indicator with hash {hashes.summary()}")
        if len(rows) > 1:
            raise ItemError(Code.FILE_HASH_MERGE, f"hashes {hashes.summary()} match several File indicators")
        for digest in hashes.values():
            self.look.files[digest] = rows[0]["id"]
        return rows[0]["id"]
