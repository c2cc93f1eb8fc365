"""The group phase of a run: merge the job's duplicates, then insert, update, reuse or delete groups."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection

from assay.intel import fields as f
from assay.intel import store
from assay.intel.errors import Code, ItemError
from assay.intel.groups import GroupItem, parse_group
from assay.intel.marking import MARKING_COLUMNS
from assay.intel.models import Group
from assay.intel.run.chunks import Outcome, OutcomeStatus, Steps, deleted_ids
from assay.intel.run.refs import References
from assay.intel.run.state import Json, RunState

GROUP_UPDATE_COLUMNS = ("name", "fields", "attributes", "tags", "security_labels", *MARKING_COLUMNS)


class GroupPhase:
    """Plans and applies chunks of groups; `group_action` decides what a same-named stored group means."""

    def __init__(self, state: RunState, refs: References) -> None:
        self.state = state
        self.refs = refs

    def steps(self) -> Steps:
        """A Delete job only finds and deletes stored groups; a Create job inserts or merges."""
        if self.state.settings.action == "Delete":
            return Steps(self.plan_delete, self.delete)
        return Steps(self.plan, self.apply)

    def parse(self, raw: Any) -> GroupItem:
        """Validate one group before any write; `require_group_xid` enforces the V2 batch rule."""
        item = parse_group(raw, self.state.job.classification)
        if self.state.settings.require_group_xid and not item.xid:
            raise ItemError(Code.INVALID_GROUP, "a V2 batch group needs an xid")
        return item

    def dedupe(self, items: list[GroupItem]) -> list[GroupItem]:
        """Merge the job's own duplicates: by xid, else by type and name (unless `duplicate`)."""
        unique: list[GroupItem] = []
        seen: dict[tuple[str, ...], GroupItem] = {}
        for item in items:
            if item.xid:
                key: tuple[str, ...] = ("xid", item.xid)
            elif self.state.settings.group_action == "duplicate":
                unique.append(item)
                continue
            else:
                key = ("name", item.type, item.name)
            first = seen.get(key)
            if first is None:
                seen[key] = item
                unique.append(item)
            elif first.type != item.type:
                self.state.error(
                    "group",
                    ItemError(Code.DUPLICATE_ITEM, f"xid {item.xid!r} used by two group types"),
                    item.raw,
                )
            else:
                _absorb_group(first, item)
                self.state.result.counts["group"].merged += 1
        return unique

    def plan(self, conn: Connection, chunk: Sequence[GroupItem]) -> list[Outcome]:
        owner_id = self.state.owner_id
        by_xid = store.find_groups_by_xid(conn, owner_id, [g.xid for g in chunk if g.xid])
        names = [(g.type, g.name) for g in chunk if not g.xid]
        by_name = store.find_groups_by_name(conn, owner_id, names) if names else {}
        outcomes = []
        for item in chunk:
            if item.xid:
                row = by_xid.get(item.xid)
                if row is not None and row["type"] != item.type:
                    error = ItemError(Code.INVALID_GROUP, f"xid {item.xid!r} already names a {row['type']}")
                    outcomes.append(Outcome(item, item.raw, OutcomeStatus.FAILED, error=error))
                else:
                    status = OutcomeStatus.UPDATE if row else OutcomeStatus.INSERT
                    outcomes.append(Outcome(item, item.raw, status, row=row))
                continue
            rows = by_name.get((item.type, item.name), [])
            action = self.state.settings.group_action
            if not rows or action == "duplicate":
                outcomes.append(Outcome(item, item.raw, OutcomeStatus.INSERT))
            else:
                status = OutcomeStatus.REUSE if action == "skip" else OutcomeStatus.REPLACE
                outcomes.append(Outcome(item, item.raw, status, row=rows[0]))
        return outcomes

    def apply(self, conn: Connection, outcomes: list[Outcome]) -> None:
        changed = []
        for outcome in outcomes:
            if outcome.status in (OutcomeStatus.UPDATE, OutcomeStatus.REPLACE, OutcomeStatus.REUSE):
                assert outcome.row is not None
                outcome.ident = outcome.row["id"]
                if outcome.status != OutcomeStatus.REUSE:
                    merged = self._merge(outcome.row, outcome.item, outcome.status == OutcomeStatus.REPLACE)
                    if any(merged[c] != outcome.row[c] for c in GROUP_UPDATE_COLUMNS):
                        changed.append(merged)
                outcome.status = OutcomeStatus.EXISTING
        store.update_rows(conn, Group.__table__, changed)
        new = [o for o in outcomes if o.status == OutcomeStatus.INSERT]
        rows = [{**_group_row(o.item), **self.state.marking(o.item.labels)} for o in new]
        ids = store.insert_groups(conn, self.state.owner_id, rows)
        for outcome, ident in zip(new, ids, strict=True):
            outcome.ident, outcome.status = ident, OutcomeStatus.SAVED

    def _merge(self, row: Json, item: GroupItem, replace: bool) -> Json:
        s = self.state.settings
        attr_mode, tag_mode, label_mode = (
            ("Replace", "Replace", "Replace")
            if replace
            else (s.attribute_write_type, s.tag_write_type, s.security_label_write_type)
        )
        labels = f.merge_labels(row["security_labels"], item.labels, label_mode)
        return {
            "id": row["id"],
            "name": item.name,
            "fields": dict(item.fields) if replace else {**row["fields"], **item.fields},
            "attributes": f.merge_attributes(row["attributes"], item.attributes, attr_mode),
            "tags": f.merge_tags(row["tags"], item.tags, tag_mode),
            "security_labels": labels,
            **self.state.marking(labels),
        }

    def plan_delete(self, conn: Connection, chunk: Sequence[GroupItem]) -> list[Outcome]:
        outcomes = []
        for item in chunk:
            try:
                ident = self.refs.group_ident(conn, item.xid, item.type, item.name, "group")
                outcomes.append(Outcome(item, item.raw, OutcomeStatus.DELETE, ident=ident))
            except ItemError:
                outcomes.append(Outcome(item, item.raw, OutcomeStatus.ABSENT))
        return outcomes

    def delete(self, conn: Connection, outcomes: list[Outcome]) -> None:
        store.delete_groups(conn, deleted_ids(outcomes))


def _absorb_group(first: GroupItem, other: GroupItem) -> None:
    first.name = other.name
    first.fields = {**first.fields, **other.fields}
    first.attributes = f.merge_attributes(first.attributes, other.attributes, "Append")
    first.tags = f.merge_tags(first.tags, other.tags, "Append")
    first.labels = f.merge_labels(first.labels, other.labels, "Append")
    first.group_refs += [r for r in other.group_refs if r not in first.group_refs]


def _group_row(item: GroupItem) -> Json:
    return {
        "type": item.type,
        "name": item.name,
        "xid": item.xid,
        "fields": item.fields,
        "attributes": item.attributes,
        "tags": item.tags,
        "security_labels": item.labels,
    }
