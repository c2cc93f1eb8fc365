"""The indicator phase of a run: merge the job's duplicates, insert first, update what was stored.

Indicators are inserted first and looked up only when a stored row blocked them, so a job of new
indicators reads nothing back. Their `associatedGroup` links ride in the same transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.exc import SQLAlchemyError

from assay.intel import fields as f
from assay.intel import store
from assay.intel.errors import Code, ItemError
from assay.intel.indicators import Hashes, IndicatorItem, parse_indicator
from assay.intel.marking import MARKING_COLUMNS
from assay.intel.models import Indicator
from assay.intel.run.chunks import ChunkLog, Links, Outcome, OutcomeStatus, Steps, deleted_ids
from assay.intel.run.state import Json, RunState

INDICATOR_UPDATE_COLUMNS = (
    "summary", "md5", "sha1", "sha256", "xid", "rating", "confidence", "attributes", "tags",
    "security_labels", "first_seen", "last_seen", "external_dates", *MARKING_COLUMNS,
)  # fmt: skip
ANALYZE_FIRST = 1000  # indicators inserted before the first statistics refresh; then doubling


class IndicatorPhase:
    """Plans and applies chunks of indicators, and adapts its planning to what the job meets."""

    def __init__(self, state: RunState) -> None:
        self.state = state
        self.looked_up = 0
        self.analyze_at = ANALYZE_FIRST
        self.mostly_stored = False
        self.link_early = state.settings.action == "Create" and not state.settings.halt_on_error

    def steps(self) -> Steps:
        """A Delete job only finds and deletes stored rows; a Create job inserts, merges and links."""
        if self.state.settings.action == "Delete":
            return Steps(self.plan_delete, self.delete, replayed=self.replayed)
        return Steps(self.plan, self.apply, self.link_groups if self.link_early else None, self.replayed)

    def parse(self, raw: Any) -> IndicatorItem:
        """Validate one indicator, its security labels read by the job's classification."""
        return parse_indicator(raw, self.state.job.classification)

    def dedupe(self, items: list[IndicatorItem]) -> list[IndicatorItem]:
        """Merge duplicates of the same job: by (type, summary), and File rows sharing any hash."""
        state = self.state
        unique: list[IndicatorItem] = []
        by_key: dict[tuple[str, str], IndicatorItem] = {}
        by_hash: dict[str, IndicatorItem] = {}
        for index, item in enumerate(items):
            try:
                target = _same_indicator(item, by_key, by_hash)
                if target is not None:
                    target.absorb(item)
                    state.result.counts["indicator"].merged += 1
            except ItemError as exc:
                state.error("indicator", exc, item.raw)
                if state.halted:
                    state.result.counts["indicator"].not_saved += len(items) - index - 1
                    break
                continue
            target = target or item
            if target is item:
                unique.append(item)
            by_key[target.key] = target
            for digest in target.hashes.values() if target.hashes else ():
                by_hash[digest] = target
        return unique

    def replayed(self, log: ChunkLog) -> None:
        """After each chunk: refresh statistics if due, and look up first if most rows were stored."""
        self._keep_statistics_fresh()
        written = [o for event, outcomes in log.events if event == "record" for o in outcomes]
        stored = sum(1 for o in written if o.status == OutcomeStatus.EXISTING)
        self.mostly_stored = stored * 2 > len(written)  # then the next chunk looks up first

    def _keep_statistics_fresh(self) -> None:
        """Refresh planner statistics each time the job has doubled what it inserted.

        Only jobs that look stored rows up need them: a job of new indicators inserts first and
        looks nothing up, so it pays for no ANALYZE.
        """
        grown = self.state.result.counts["indicator"].saved
        if grown < self.analyze_at or not self.looked_up:
            return
        self.analyze_at = grown * 2
        try:
            with self.state.engine.begin() as conn:
                store.refresh_statistics(conn, Indicator.__table__)
        except SQLAlchemyError:
            pass  # statistics only speed up look-ups; the job stays correct without them

    def _stored_matches(
        self, conn: Connection, chunk: Sequence[IndicatorItem]
    ) -> Callable[[IndicatorItem], list[Json]]:
        """Read the stored rows of a whole chunk in two queries; returns item -> its stored rows."""
        self.looked_up += len(chunk)  # a heuristic counter: a lost update under threads is harmless
        owner_id = self.state.owner_id
        others = [i.key for i in chunk if i.type != "File"]
        by_key = {(r["type"], r["summary"]): r for r in store.find_indicators(conn, owner_id, others)}
        digests = [h for i in chunk if i.hashes for h in i.hashes.values()]
        by_hash: dict[str, Json] = {}
        for row in store.find_files(conn, owner_id, digests) if digests else []:
            for digest in (row["md5"], row["sha1"], row["sha256"]):
                if digest:
                    by_hash[digest] = row

        def matches(item: IndicatorItem) -> list[Json]:
            if item.hashes is None:
                row = by_key.get(item.key)
                return [row] if row else []
            rows = {by_hash[h]["id"]: by_hash[h] for h in item.hashes.values() if h in by_hash}
            return list(rows.values())

        return matches

    def plan(self, conn: Connection, chunk: Sequence[IndicatorItem]) -> list[Outcome]:
        """Insert first, then look up only the items a stored row blocked.

        A chunk's items share no key with each other, so an item that is not inserted collides with
        a row stored before: it is then planned like any update. Under haltOnError the look-up comes
        first instead, because nothing after the first failure may be written.
        """
        if self.state.settings.halt_on_error or self.mostly_stored:
            return self._plan_lookup_first(conn, chunk)
        ids = store.insert_indicators(conn, [self._row(item) for item in chunk])
        blocked = [item for item in chunk if item.key not in ids]
        planned = iter(self._plan_lookup_first(conn, blocked) if blocked else ())
        return [
            next(planned)
            if (ident := ids.get(item.key)) is None
            else Outcome(item, item.raw, OutcomeStatus.SAVED, ident=ident)
            for item in chunk
        ]

    def _plan_lookup_first(self, conn: Connection, chunk: Sequence[IndicatorItem]) -> list[Outcome]:
        matches = self._stored_matches(conn, chunk)
        outcomes: list[Outcome] = []
        claimed: dict[int, Outcome] = {}
        for item in chunk:
            rows = matches(item)
            if len(rows) > 1:
                ids = ", ".join(str(r["id"]) for r in rows)
                error = ItemError(Code.FILE_HASH_MERGE, f"hashes match several stored File indicators ({ids})")
                outcomes.append(Outcome(item, item.raw, OutcomeStatus.FAILED, error=error))
            elif not rows:
                outcomes.append(Outcome(item, item.raw, OutcomeStatus.INSERT))
            elif rows[0]["id"] in claimed:
                outcomes.append(_merge_into(claimed[rows[0]["id"]], item))
            else:
                outcome = _check_row(item, rows[0])
                if outcome.status == OutcomeStatus.UPDATE:
                    claimed[rows[0]["id"]] = outcome
                outcomes.append(outcome)
        return outcomes

    def apply(self, conn: Connection, outcomes: list[Outcome]) -> None:
        changed = []
        for outcome in (o for o in outcomes if o.status == OutcomeStatus.UPDATE):
            assert outcome.row is not None
            merged = self._merge(outcome.row, outcome.item)
            if any(merged[c] != outcome.row[c] for c in INDICATOR_UPDATE_COLUMNS):
                changed.append(merged)
            outcome.ident, outcome.status = outcome.row["id"], OutcomeStatus.EXISTING
        store.update_rows(conn, Indicator.__table__, sorted(changed, key=lambda row: row["id"]))  # lock order
        new = [o for o in outcomes if o.status == OutcomeStatus.INSERT]
        ids = store.insert_indicators(conn, [self._row(o.item) for o in new]) if new else {}
        for outcome in new:
            outcome.ident = ids.get(outcome.item.key)
            if outcome.ident is None:
                reason = "stored concurrently by another writer; run the job again"
                outcome.status, outcome.error = OutcomeStatus.FAILED, ItemError(Code.DUPLICATE_ITEM, reason)
            else:
                outcome.status = OutcomeStatus.SAVED
        for outcome in outcomes:
            if outcome.status == OutcomeStatus.MERGED and outcome.into is not None:
                outcome.ident = outcome.into.ident

    def link_groups(self, conn: Connection, outcomes: list[Outcome]) -> Links:
        """Write a chunk's `associatedGroup` links in the chunk's own transaction.

        The association phase would write the very same pairs later, after every indicator; written
        here they ride on the parallel chunk writers, commit with their indicators, and the phase
        only reports them (`AssociationPhase.report_linked`), in its own order and with its own
        counts. Returns pair -> whether this chunk inserted it. Only groups already resolved are
        linked here: an unknown reference is left to the phase, which reports it.
        """
        groups = self.state.look.groups_by_ref
        pairs = {
            (groups[ref], outcome.ident)
            for outcome in outcomes
            if outcome.status in (OutcomeStatus.SAVED, OutcomeStatus.EXISTING) and outcome.ident is not None
            for ref in outcome.item.group_refs
            if ref in groups
        }
        if not pairs:
            return {}
        ordered = sorted(pairs)  # one lock order for every writer: concurrent chunks cannot deadlock
        new = store.insert_pairs(conn, "group_indicator", ordered)
        return {pair: pair in new for pair in ordered}

    def _row(self, item: IndicatorItem) -> Json:
        hashes = item.hashes or Hashes()
        return {
            "owner_id": self.state.owner_id,
            "type": item.type,
            "summary": item.summary,
            "md5": hashes.md5,
            "sha1": hashes.sha1,
            "sha256": hashes.sha256,
            "xid": item.xid,
            "rating": item.rating,
            "confidence": item.confidence,
            "attributes": item.attributes,
            "tags": item.tags,
            "security_labels": item.labels,
            "first_seen": item.first_seen,
            "last_seen": item.last_seen,
            "external_dates": item.external_dates,
            **self.state.marking(item.labels),
        }

    def _merge(self, row: Json, item: IndicatorItem) -> Json:
        s = self.state.settings
        merged = {c: row[c] for c in INDICATOR_UPDATE_COLUMNS}
        if item.hashes is not None:
            hashes = Hashes(row["md5"], row["sha1"], row["sha256"]).merge(item.hashes)
            merged.update(md5=hashes.md5, sha1=hashes.sha1, sha256=hashes.sha256, summary=hashes.summary())
        merged.update(
            id=row["id"],
            xid=item.xid or row["xid"],
            rating=row["rating"] if item.rating is None else item.rating,
            confidence=row["confidence"] if item.confidence is None else item.confidence,
            attributes=f.merge_attributes(row["attributes"], item.attributes, s.attribute_write_type),
            tags=f.merge_tags(row["tags"], item.tags, s.tag_write_type),
            security_labels=f.merge_labels(row["security_labels"], item.labels, s.security_label_write_type),
            first_seen=f.earliest(row["first_seen"], item.first_seen),
            last_seen=f.latest(row["last_seen"], item.last_seen),
            external_dates={**row["external_dates"], **item.external_dates},
        )
        merged.update(self.state.marking(merged["security_labels"]))
        return merged

    def plan_delete(self, conn: Connection, chunk: Sequence[IndicatorItem]) -> list[Outcome]:
        matches = self._stored_matches(conn, chunk)
        outcomes = []
        for item in chunk:
            rows = matches(item)
            ids = [r["id"] for r in rows]
            status = OutcomeStatus.DELETE if ids else OutcomeStatus.ABSENT
            outcomes.append(Outcome(item, item.raw, status, ident=ids or None))
        return outcomes

    def delete(self, conn: Connection, outcomes: list[Outcome]) -> None:
        store.delete_indicators(conn, deleted_ids(outcomes))


def _same_indicator(
    item: IndicatorItem, by_key: dict[tuple[str, str], IndicatorItem], by_hash: dict[str, IndicatorItem]
) -> IndicatorItem | None:
    if item.hashes is None:
        return by_key.get(item.key)
    targets = {id(by_hash[h]): by_hash[h] for h in item.hashes.values() if h in by_hash}
    if len(targets) > 1:
        raise ItemError(Code.FILE_HASH_MERGE, "hashes join File indicators that differ elsewhere")
    return next(iter(targets.values()), None)


def _check_row(item: IndicatorItem, row: Json) -> Outcome:
    if item.hashes is not None:
        try:
            Hashes(row["md5"], row["sha1"], row["sha256"]).merge(item.hashes)
        except ItemError as exc:
            return Outcome(item, item.raw, OutcomeStatus.FAILED, error=exc)
    return Outcome(item, item.raw, OutcomeStatus.UPDATE, row=row)


def _merge_into(first: Outcome, item: IndicatorItem) -> Outcome:
    """Two job items that only meet through a stored File row become one update."""
    try:
        first.item.absorb(item)
    except ItemError as exc:
        return Outcome(item, item.raw, OutcomeStatus.FAILED, error=exc)
    return Outcome(item, item.raw, OutcomeStatus.MERGED, into=first)
