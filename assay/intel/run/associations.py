"""The association phase of a run: resolve both ends of every association to ids, then write the pairs.

Associations come from the job's own lists and from the groups and indicators saved before
(`associatedGroup`, `associatedGroupXid`). Group-indicator links already written with their
indicator chunk are only reported here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection

from assay.intel import store
from assay.intel.errors import Code, ItemError
from assay.intel.groups import group_type, is_group_type
from assay.intel.indicators import indicator_type
from assay.intel.run.chunks import ChunkWriter, Outcome, OutcomeStatus, Steps
from assay.intel.run.refs import References
from assay.intel.run.state import Json, RunState


@dataclass
class Pair:
    """A resolved association: its table kind and the two ids."""

    table: str
    left: int
    right: int
    raw: Any = None

    @property
    def key(self) -> tuple[str, int, int]:
        return (self.table, self.left, self.right)


@dataclass
class AssociationPhase:
    """Writes `group_association` (group-indicator by name or xid) and `association` (any two items)."""

    state: RunState
    refs: References
    writer: ChunkWriter

    def run(self) -> None:
        """Resolve all of a kind on one read connection first, so the chunks only write."""
        state = self.state
        derived_gi, derived_gg = self._derived()
        steps = Steps(self.plan, self.apply)
        for kind, raws, derived in (
            ("group_association", state.job.group_associations, derived_gi),
            ("association", state.job.associations, derived_gg),
        ):
            counts = state.result.counts[kind]
            if state.halted:
                self._count_halted(kind, raws, derived)
                continue
            with state.engine.connect() as conn:
                self._prefetch_group_names(conn, raws)
                resolve = self._resolver(conn, kind)
                counts.submitted += len(raws) + len(derived)
                pairs = state.validate(kind, [*raws, *derived], resolve)
            state.look.group_names.clear()
            pending = self.report_linked(kind, state.dedupe_keyed(kind, pairs))
            self.writer.write(kind, pending, steps)

    def _count_halted(self, kind: str, raws: Sequence[Any], derived: list[Json]) -> None:
        """After a halt nothing more is written: only links that `link_groups` stored count as done."""
        state = self.state
        counts = state.result.counts[kind]
        counts.submitted += len(raws) + len(derived)
        linked = state.linked if kind == "group_association" else {}
        seen: set[tuple[int, int]] = set()
        for raw in derived if linked else ():
            pair = (state.look.groups_by_ref.get(raw["group_ref"], 0), raw["indicator_id"])
            if pair not in linked:
                counts.not_saved += 1
            elif pair in seen:
                counts.merged += 1
            else:
                seen.add(pair)
                bucket = "saved" if linked[pair] else "existing"
                setattr(counts, bucket, getattr(counts, bucket) + 1)
        counts.not_saved += len(raws) + (0 if linked else len(derived))

    def report_linked(self, kind: str, pairs: list[Pair]) -> list[Pair]:
        """Count the pairs `IndicatorPhase.link_groups` already wrote; returns those still to write."""
        linked = self.state.linked
        if not linked:
            return pairs
        done = [p for p in pairs if p.table == "group_indicator" and (p.left, p.right) in linked]
        statuses = {True: OutcomeStatus.SAVED, False: OutcomeStatus.EXISTING}
        self.writer.record(kind, [Outcome(p, p.raw, statuses[linked[(p.left, p.right)]]) for p in done])
        linked.update(dict.fromkeys(((p.left, p.right) for p in done), False))  # a later phase finds them stored
        return [p for p in pairs if p.table != "group_indicator" or (p.left, p.right) not in linked]

    def _prefetch_group_names(self, conn: Connection, raws: Sequence[Any]) -> None:
        """Read every group named by (group_type, group_name) in one query instead of one each."""
        keys = set()
        for raw in raws:
            if isinstance(raw, dict) and raw.get("group_name") and is_group_type(raw.get("group_type")):
                keys.add((group_type(raw["group_type"]), str(raw["group_name"])))
        if keys:
            found = store.find_groups_by_name(conn, self.state.owner_id, keys)
            self.state.look.group_names.update({key: found.get(key, []) for key in keys})

    def _derived(self) -> tuple[list[Json], list[Json]]:
        """Associations written inside groups and indicators (associatedGroup, associatedGroupXid)."""
        to_indicators = [
            {"group_ref": ref, "indicator_id": ident, "indicator": item.summary, "indicator_type": item.type}
            for item, ident in self.state.saved_indicators
            for ref in item.group_refs
        ]
        to_groups = [
            {"group_id": ident, "ref_2": ref, "name": item.name, "type_1": item.type}
            for item, ident in self.state.saved_groups
            for ref in item.group_refs
        ]
        return to_indicators, to_groups

    def _resolver(self, conn: Connection, kind: str) -> Callable[[Any], Pair]:
        groups = self.state.look.groups_by_ref

        def resolve(raw: Any) -> Pair:
            ref = raw.get("group_ref") if type(raw) is dict and "indicator_id" in raw else None
            if type(ref) is str and ref in groups:
                return Pair("group_indicator", groups[ref], raw["indicator_id"], raw)  # derived: no query
            if not isinstance(raw, dict):
                raise ItemError(Code.ASSOCIATION, "association is not an object")
            if kind == "group_association":
                return self._group_indicator_pair(conn, raw)
            return self._generic_pair(conn, raw)

        return resolve

    def _group_indicator_pair(self, conn: Connection, raw: Json) -> Pair:
        if "indicator_id" in raw:
            group = self.refs.group_by_ref(conn, str(raw["group_ref"]))
            return Pair("group_indicator", group, raw["indicator_id"], raw)
        xid = raw.get("group_xid", raw.get("groupXid"))
        name, kind = raw.get("group_name"), raw.get("group_type")
        if xid in (None, "") and (not name or not kind):
            raise ItemError(Code.ASSOCIATION, "needs group_xid, or group_name and group_type")
        try:
            gtype = group_type(kind) if kind else None
        except ItemError as exc:
            raise ItemError(Code.ASSOCIATION, exc.reason) from exc
        xid = str(xid) if xid not in (None, "") else None
        group = self.refs.group_ident(conn, xid, gtype, name, "group_association")
        if not raw.get("indicator") or not raw.get("indicator_type"):
            raise ItemError(Code.ASSOCIATION, "needs indicator and indicator_type")
        indicator = self.refs.indicator_by_ref(conn, raw["indicator_type"], raw["indicator"])
        return Pair("group_indicator", group, indicator, raw)

    def _generic_pair(self, conn: Connection, raw: Json) -> Pair:
        if "group_id" in raw:
            end1: tuple[str, int] = ("group", raw["group_id"])
        else:
            end1 = self._end(conn, raw.get("ref_1", raw.get("id_1")), raw.get("type_1"))
        end2 = self._end(conn, raw.get("ref_2", raw.get("id_2")), raw.get("type_2"))
        if end1 == end2:
            raise ItemError(Code.ASSOCIATION, "an item cannot be associated with itself")
        (k1, a), (k2, b) = sorted([end1, end2])
        if k1 != k2:
            return Pair("group_indicator", a, b, raw)
        return Pair(f"{k1}_{k1}", min(a, b), max(a, b), raw)

    def _end(self, conn: Connection, ref: Any, kind: Any) -> tuple[str, int]:
        """One end of an association; without a type, a group xid is tried before an indicator xid."""
        if ref in (None, "") or isinstance(ref, dict | list):
            raise ItemError(Code.ASSOCIATION, "association needs ref_1 and ref_2 (or id_1 and id_2)")
        ref = str(ref)
        if kind in (None, ""):
            try:
                return ("group", self.refs.group_by_ref(conn, ref))
            except ItemError:
                found = store.find_indicators_by_xid(conn, self.state.owner_id, [ref])
                if ref in found:
                    return ("indicator", found[ref])
                raise ItemError(Code.ITEM_NOT_FOUND, f"no group or indicator with xid {ref!r}") from None
        if is_group_type(kind):
            return ("group", self.refs.group_ident(conn, ref, group_type(kind), ref, "association"))
        try:
            indicator_type(kind)
        except ItemError as exc:
            raise ItemError(Code.ASSOCIATION, f"unknown item type {kind!r}") from exc
        return ("indicator", self.refs.indicator_by_ref(conn, kind, ref))

    def plan(self, conn: Connection, chunk: Sequence[Pair]) -> list[Outcome]:
        status = OutcomeStatus.DELETE if self.state.settings.action == "Delete" else OutcomeStatus.INSERT
        return [Outcome(p, p.raw, status) for p in chunk]

    def apply(self, conn: Connection, outcomes: list[Outcome]) -> None:
        by_table: dict[str, list[Outcome]] = {}
        for outcome in outcomes:
            by_table.setdefault(outcome.item.table, []).append(outcome)
        for table, group in by_table.items():
            pairs = [(o.item.left, o.item.right) for o in group]
            if self.state.settings.action == "Delete":
                done = store.delete_pairs(conn, table, pairs)
                hit, miss = OutcomeStatus.DELETE, OutcomeStatus.ABSENT
            else:
                done = store.insert_pairs(conn, table, pairs)
                hit, miss = OutcomeStatus.SAVED, OutcomeStatus.EXISTING
            for outcome, pair in zip(group, pairs, strict=True):
                outcome.status = hit if pair in done else miss
