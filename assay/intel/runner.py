"""Executes a `Job`: validate every item in Python first, then write the good ones in bulk.

Atomicity per item comes from two things. Validation runs before any write, so a bad item is
rejected without touching the store. The good items of a chunk are then written with a few
set-based statements inside one transaction: the chunk commits whole or not at all. If a chunk
still fails in the database, it is split in halves and retried, down to single items, so that
only the culprit fails. A crash mid-job loses at most the open chunks, and every row is keyed
(unique constraints, ON CONFLICT) so that running the job again converges to the same store.

Speed on large jobs comes from four choices. Indicators are inserted first and looked up only
when a stored row blocked them (a job of new indicators reads nothing back). Two chunks are in
flight at once, on two connections (`_write_parallel`): the chunks of a phase share no key, and
their results are replayed in chunk order, so counts and errors are those of a sequential run.
The `associatedGroup` links of a chunk are written in the chunk's own transaction. The cyclic
garbage collector is paused while a job runs. Durability is untouched: every chunk is an ordinary
transaction under the server's own `synchronous_commit`, so a chunk reported saved has been
flushed to the write-ahead log before its commit returned, and survives a crash.
"""

from __future__ import annotations

import gc
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from assay.intel import fields as f
from assay.intel import store
from assay.intel.errors import Code, ItemError
from assay.intel.groups import GroupItem, group_type, is_group_type, parse_group
from assay.intel.indicators import (
    Hashes,
    IndicatorItem,
    indicator_type,
    normalise_summary,
    parse_hashes,
    parse_indicator,
    parse_occurrence,
)
from assay.intel.models import Group, Indicator
from assay.intel.result import KINDS, JobResult

if TYPE_CHECKING:
    from assay.intel.job import Job

Json = dict[str, Any]
INDICATOR_UPDATE_COLUMNS = (
    "summary", "md5", "sha1", "sha256", "xid", "rating", "confidence", "attributes", "tags",
    "security_labels", "first_seen", "last_seen", "external_dates",
)  # fmt: skip
GROUP_UPDATE_COLUMNS = ("name", "fields", "attributes", "tags", "security_labels")
ANALYZE_FIRST = 1000  # indicators inserted before the first statistics refresh; then doubling
WRITERS = 2  # chunks in flight at once on large jobs (one per core of a small server)
PARALLEL_MIN_CHUNK = 1000  # smaller chunks are written one after the other: threads would not pay


@dataclass
class ChunkLog:
    """What writing one chunk did, kept until the main thread applies it (`Runner._replay`)."""

    events: list[tuple[str, Any]] = field(default_factory=list)
    not_saved: int = 0
    links: dict[tuple[int, int], bool] = field(default_factory=dict)  # see Runner._link_groups


@dataclass
class Outcome:
    """What happened (or is planned) for one item of a chunk."""

    item: Any
    raw: Any
    status: str  # insert | update | reuse | merged | failed | saved | existing | delete | absent
    row: Json | None = None
    ident: Any = None
    error: ItemError | None = None
    into: Outcome | None = None


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
class Occurrence:
    indicator_id: int
    data: Json
    raw: Any = None

    @property
    def key(self) -> tuple[int, str]:
        return (self.indicator_id, store.occurrence_fingerprint(self.data))


@dataclass
class _Lookups:
    """Per-run caches of resolved references."""

    groups_by_ref: dict[str, int] = field(default_factory=dict)
    indicators: dict[tuple[str, str], int] = field(default_factory=dict)
    files: dict[str, int] = field(default_factory=dict)
    warned: set[tuple[str, str]] = field(default_factory=set)
    group_names: dict[tuple[Any, str], list[Json]] = field(default_factory=dict)  # association phase only


Planner = Callable[[Connection, Sequence[Any]], list["Outcome"]]


class Runner:
    """One execution of a job against one engine."""

    def __init__(self, job: Job, engine: Engine) -> None:
        self.job = job
        self.settings = job.settings
        self.engine = engine
        self.result = JobResult()
        self.halted = False
        self.owner_id = 0
        self.look = _Lookups()
        self.saved_groups: list[tuple[GroupItem, int]] = []
        self.saved_indicators: list[tuple[IndicatorItem, int]] = []
        self.grown = 0
        self.looked_up = 0
        self.analyze_at = ANALYZE_FIRST
        self.store_down = False
        self.mostly_stored = False
        self.conflicted = dict.fromkeys(KINDS, False)  # a chunk met stored rows: stop expecting new ones
        self.link_early = self.settings.action == "Create" and not self.settings.halt_on_error
        self.linked: dict[tuple[int, int], bool] = {}  # group-indicator pairs written with their chunk

    # --- driver --------------------------------------------------------------------------------

    def run(self) -> JobResult:
        with _cyclic_gc_paused():
            return self._run()

    def _run(self) -> JobResult:
        try:
            with self.engine.begin() as conn:
                self.owner_id = store.ensure_owner(conn, self.job.owner, self.job.owner_kind)
        except SQLAlchemyError as exc:
            self.result.critical("group", Code.INTERNAL, f"store unavailable: {exc}")
            self.result.halted = True
            return self.result
        if self.settings.action == "Delete":
            self._run_delete()
        else:
            self._run_create()
        self.result.halted = self.halted
        return self.result

    def _parse_group(self, raw: Any) -> GroupItem:
        item = parse_group(raw)
        if self.settings.require_group_xid and not item.xid:
            raise ItemError(Code.INVALID_GROUP, "a V2 batch group needs an xid")
        return item

    @contextmanager
    def _timed(self, phase: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.result.timings[phase] = round(time.perf_counter() - start, 6)

    def _run_create(self) -> None:
        with self._timed("group"):
            self._phase("group", self.job.groups, self._parse_group, self._dedupe_groups, self._plan_groups)
        with self._timed("indicator"):
            self._phase(
                "indicator", self.job.indicators, parse_indicator, self._dedupe_indicators, self._plan_indicators
            )
        with self._timed("association"):
            self._associations_phase()
        with self._timed("file_occurrence"):
            self._occurrences_phase()

    def _run_delete(self) -> None:
        self._occurrences_phase()
        self._associations_phase()
        self._phase(
            "indicator",
            self.job.indicators,
            parse_indicator,
            self._dedupe_indicators,
            self._plan_delete_indicators,
        )
        self._phase("group", self.job.groups, self._parse_group, self._dedupe_groups, self._plan_delete_groups)

    # --- the generic phase ----------------------------------------------------------------------

    def _error(self, kind: str, error: ItemError, raw: Any) -> None:
        self.result.fail(kind, error.code, error.reason, raw, critical=self.settings.halt_on_error)
        if self.settings.halt_on_error:
            self.halted = True

    def _phase(
        self,
        kind: str,
        raws: Sequence[Any],
        parse: Callable[[Any], Any],
        dedupe: Callable[[list[Any]], list[Any]],
        plan: Planner,
    ) -> None:
        counts = self.result.counts[kind]
        counts.submitted += len(raws)
        if self.halted:
            counts.not_saved += len(raws)
            return
        valid = self._validate(kind, raws, parse)
        unique = dedupe(valid)
        if kind == "indicator" and not self._within_limit(unique):
            return
        self._write(kind, unique, plan)

    def _validate(self, kind: str, raws: Sequence[Any], parse: Callable[[Any], Any]) -> list[Any]:
        """Parse items in order; under haltOnError stop at the first bad one (the rest: not_saved)."""
        valid: list[Any] = []
        for index, raw in enumerate(raws):
            try:
                valid.append(parse(raw))
            except ItemError as exc:
                self._error(kind, exc, raw)
                if self.halted:
                    self.result.counts[kind].not_saved += len(raws) - index - 1
                    break
        return valid

    def _within_limit(self, unique: list[Any]) -> bool:
        limit = self.settings.indicator_limit
        if limit is None or len(unique) <= limit:
            return True
        reason = f"job would exceed the number of allowed indicators ({len(unique)} > {limit})"
        self.result.critical("indicator", Code.INDICATOR_LIMIT, reason)
        self.result.counts["indicator"].not_saved += len(unique)
        return False

    def _write(self, kind: str, items: list[Any], plan: Planner) -> None:
        """Write chunk after chunk; large Create jobs keep two chunks in flight (see `_write_parallel`)."""
        parts = list(store.chunks(items, self.settings.chunk_size))
        if self._parallel(kind, parts):
            self._write_parallel(kind, parts, plan)
            return
        stop = False
        for chunk in parts:
            if stop:
                self.result.counts[kind].not_saved += len(chunk)
                continue
            log = ChunkLog()
            stop = self._write_chunk(kind, chunk, plan, log)
            self._replay(kind, log)

    def _parallel(self, kind: str, parts: list[Sequence[Any]]) -> bool:
        """Only independent chunks go in parallel: Create, no haltOnError, big enough to pay off, and
        on PostgreSQL (SQLite has one writer at a time: a second one would only wait for the lock)."""
        return (
            self.engine.dialect.name == "postgresql"
            and len(parts) > 1
            and len(parts[0]) >= PARALLEL_MIN_CHUNK
            and self.settings.action == "Create"
            and not self.settings.halt_on_error
            and kind != "group"
        )

    def _write_parallel(self, kind: str, parts: list[Sequence[Any]], plan: Planner) -> None:
        """Two chunks in flight, each in its own transaction on its own connection.

        While one server backend inserts a chunk, the other chunk's Python work (encoding, merging)
        or its own server work proceeds: on two cores this nearly halves the write phase. The chunks
        of a phase share no key (the job was de-duplicated first), so they cannot conflict. Results
        are replayed in chunk order, so counts, errors and remembered ids come out exactly as in a
        sequential run. A crash loses at most the chunks in flight, never a committed one.
        """
        with ThreadPoolExecutor(WRITERS, thread_name_prefix="intel-writer") as pool:
            pending: deque[Future[ChunkLog]] = deque()
            try:
                for chunk in parts:
                    if len(pending) >= WRITERS:
                        self._replay(kind, pending.popleft().result())
                    pending.append(pool.submit(self._write_logged, kind, chunk, plan))
                while pending:
                    self._replay(kind, pending.popleft().result())
            except BaseException:
                for future in pending:
                    future.cancel()
                raise

    def _write_logged(self, kind: str, chunk: Sequence[Any], plan: Planner) -> ChunkLog:
        log = ChunkLog()
        if self.store_down:
            log.not_saved += len(chunk)
        else:
            self._write_chunk(kind, chunk, plan, log)
        return log

    def _replay(self, kind: str, log: ChunkLog) -> None:
        """Apply what a chunk write logged, in the order it happened (main thread only)."""
        for event, payload in log.events:
            if event == "record":
                self.conflicted[kind] = self.conflicted[kind] or any(o.status == "existing" for o in payload)
                self._record(kind, payload)
            elif event == "error":
                self._error(kind, *payload)
            else:
                self._critical(kind, *payload)
        self.result.counts[kind].not_saved += log.not_saved
        for pair, new in log.links.items():
            self.linked[pair] = self.linked.get(pair, False) or new  # new if any chunk inserted it
        if kind == "indicator":
            self._keep_statistics_fresh()
            written = [o for event, outcomes in log.events if event == "record" for o in outcomes]
            stored = sum(1 for o in written if o.status == "existing")
            self.mostly_stored = stored * 2 > len(written)  # then the next chunk looks up first

    def _keep_statistics_fresh(self) -> None:
        """Refresh planner statistics each time the job has doubled what it inserted.

        Only jobs that look stored rows up need them: a job of new indicators inserts first and
        looks nothing up, so it pays for no ANALYZE.
        """
        self.grown = self.result.counts["indicator"].saved
        if self.grown < self.analyze_at or not self.looked_up:
            return
        self.analyze_at = self.grown * 2
        try:
            with self.engine.begin() as conn:
                store.refresh_statistics(conn, Indicator.__table__)
        except SQLAlchemyError:
            pass  # statistics only speed up look-ups; the job stays correct without them

    def _write_chunk(self, kind: str, chunk: Sequence[Any], plan: Planner, log: ChunkLog) -> bool:
        """Plan and apply one chunk in one transaction; returns True when the job must stop.

        Runs on a writer thread when chunks go in parallel, so it only reads job state and logs what
        happened; `_replay` applies the log.
        """
        try:
            with self.engine.begin() as conn:
                conn.execution_options(**{store.EXPECT_NEW: not self.conflicted[kind]})
                outcomes = plan(conn, chunk)
                cut = self._halt_cut(outcomes)
                self._apply(kind, conn, outcomes[:cut])
                links = self._link_groups(conn, outcomes) if kind == "indicator" and self.link_early else {}
        except OperationalError as exc:
            self.store_down = True
            log.events.append(("critical", (chunk, exc)))
            return True
        except SQLAlchemyError as exc:
            if len(chunk) == 1:
                reason = f"database rejected the item: {getattr(exc, 'orig', None) or exc}"
                log.events.append(("error", (ItemError(Code.INTERNAL, reason), _raw(chunk[0]))))
                return self.settings.halt_on_error
            return self._write_halves(kind, chunk, plan, log)
        log.events.append(("record", outcomes[:cut]))
        log.links.update(links)
        log.not_saved += len(outcomes) - cut
        return self.settings.halt_on_error and any(o.status == "failed" for o in outcomes[:cut])

    def _halt_cut(self, outcomes: list[Outcome]) -> int:
        """Under haltOnError, only the outcomes before the first failure are applied."""
        if not self.settings.halt_on_error:
            return len(outcomes)
        for index, outcome in enumerate(outcomes):
            if outcome.status == "failed":
                return index + 1
        return len(outcomes)

    def _write_halves(self, kind: str, chunk: Sequence[Any], plan: Planner, log: ChunkLog) -> bool:
        """Bisect a chunk the database refused, so only the culprits fail (log2(n) tries each)."""
        middle = len(chunk) // 2
        if self._write_chunk(kind, chunk[:middle], plan, log):
            log.not_saved += len(chunk) - middle
            return True
        return self._write_chunk(kind, chunk[middle:], plan, log)

    def _critical(self, kind: str, chunk: Sequence[Any], exc: Exception) -> None:
        for item in chunk:
            self.result.fail(kind, Code.INTERNAL, f"store unavailable: {exc}", _raw(item), critical=True)
        self.halted = True

    def _apply(self, kind: str, conn: Connection, outcomes: list[Outcome]) -> None:
        if self.settings.action == "Delete" and kind in ("group", "indicator"):
            ids = [i for o in outcomes if o.status == "delete" for i in _as_ids(o.ident)]
            (store.delete_indicators if kind == "indicator" else store.delete_groups)(conn, ids)
            return
        appliers: dict[str, Callable[[Connection, list[Outcome]], None]] = {
            "group": self._apply_groups,
            "indicator": self._apply_indicators,
            "group_association": self._apply_pairs,
            "association": self._apply_pairs,
            "file_occurrence": self._apply_occurrences,
        }
        appliers[kind](conn, outcomes)

    def _record(self, kind: str, outcomes: list[Outcome]) -> None:
        """Count outcomes and remember ids, only once their transaction committed."""
        counts = self.result.counts[kind]
        for outcome in outcomes:
            if outcome.status == "failed" and outcome.error is not None:
                self._error(kind, outcome.error, outcome.raw)
                continue
            bucket = _BUCKETS.get(outcome.status, "existing")
            setattr(counts, bucket, getattr(counts, bucket) + 1)
            if outcome.status == "absent":
                self.result.warn(kind, Code.ITEM_NOT_FOUND, "nothing stored to delete", outcome.raw)
            elif isinstance(outcome.item, IndicatorItem) and outcome.ident is not None:
                self._remember_indicator(outcome.item, outcome.ident, outcome.status != "merged")
            elif isinstance(outcome.item, GroupItem) and outcome.ident is not None:
                self.saved_groups.append((outcome.item, outcome.ident))
                if outcome.item.xid:
                    self.look.groups_by_ref[outcome.item.xid] = outcome.ident

    def _remember_indicator(self, item: IndicatorItem, ident: int, linked: bool) -> None:
        if self.settings.action == "Delete":
            return
        if linked:
            self.saved_indicators.append((item, ident))
        self.look.indicators[item.key] = ident
        for digest in item.hashes.values() if item.hashes else ():
            self.look.files[digest] = ident

    # --- groups ---------------------------------------------------------------------------------

    def _dedupe_groups(self, items: list[GroupItem]) -> list[GroupItem]:
        unique: list[GroupItem] = []
        seen: dict[tuple[str, ...], GroupItem] = {}
        for item in items:
            if item.xid:
                key: tuple[str, ...] = ("xid", item.xid)
            elif self.settings.group_action == "duplicate":
                unique.append(item)
                continue
            else:
                key = ("name", item.type, item.name)
            first = seen.get(key)
            if first is None:
                seen[key] = item
                unique.append(item)
            elif first.type != item.type:
                self._error(
                    "group",
                    ItemError(Code.DUPLICATE_ITEM, f"xid {item.xid!r} used by two group types"),
                    item.raw,
                )
            else:
                _absorb_group(first, item)
                self.result.counts["group"].merged += 1
        return unique

    def _plan_groups(self, conn: Connection, chunk: Sequence[GroupItem]) -> list[Outcome]:
        by_xid = store.find_groups_by_xid(conn, self.owner_id, [g.xid for g in chunk if g.xid])
        names = [(g.type, g.name) for g in chunk if not g.xid]
        by_name = store.find_groups_by_name(conn, self.owner_id, names) if names else {}
        outcomes = []
        for item in chunk:
            if item.xid:
                row = by_xid.get(item.xid)
                if row is not None and row["type"] != item.type:
                    error = ItemError(Code.INVALID_GROUP, f"xid {item.xid!r} already names a {row['type']}")
                    outcomes.append(Outcome(item, item.raw, "failed", error=error))
                else:
                    outcomes.append(Outcome(item, item.raw, "update" if row else "insert", row=row))
                continue
            rows = by_name.get((item.type, item.name), [])
            action = self.settings.group_action
            if not rows or action == "duplicate":
                outcomes.append(Outcome(item, item.raw, "insert"))
            else:
                outcomes.append(Outcome(item, item.raw, "reuse" if action == "skip" else "replace", row=rows[0]))
        return outcomes

    def _apply_groups(self, conn: Connection, outcomes: list[Outcome]) -> None:
        changed = []
        for outcome in outcomes:
            if outcome.status in ("update", "replace", "reuse"):
                assert outcome.row is not None
                outcome.ident = outcome.row["id"]
                if outcome.status != "reuse":
                    merged = self._merge_group(outcome.row, outcome.item, outcome.status == "replace")
                    if any(merged[c] != outcome.row[c] for c in GROUP_UPDATE_COLUMNS):
                        changed.append(merged)
                outcome.status = "existing"
        store.update_rows(conn, Group.__table__, changed)
        new = [o for o in outcomes if o.status == "insert"]
        ids = store.insert_groups(conn, self.owner_id, [_group_row(o.item) for o in new])
        for outcome, ident in zip(new, ids, strict=True):
            outcome.ident, outcome.status = ident, "saved"

    def _merge_group(self, row: Json, item: GroupItem, replace: bool) -> Json:
        s = self.settings
        attr_mode, tag_mode, label_mode = (
            ("Replace", "Replace", "Replace")
            if replace
            else (s.attribute_write_type, s.tag_write_type, s.security_label_write_type)
        )
        return {
            "id": row["id"],
            "name": item.name,
            "fields": dict(item.fields) if replace else {**row["fields"], **item.fields},
            "attributes": f.merge_attributes(row["attributes"], item.attributes, attr_mode),
            "tags": f.merge_tags(row["tags"], item.tags, tag_mode),
            "security_labels": f.merge_labels(row["security_labels"], item.labels, label_mode),
        }

    def _plan_delete_groups(self, conn: Connection, chunk: Sequence[GroupItem]) -> list[Outcome]:
        outcomes = []
        for item in chunk:
            try:
                ident = self._group_ident(conn, item.xid, item.type, item.name, "group")
                outcomes.append(Outcome(item, item.raw, "delete", ident=ident))
            except ItemError:
                outcomes.append(Outcome(item, item.raw, "absent"))
        return outcomes

    # --- indicators -----------------------------------------------------------------------------

    def _dedupe_indicators(self, items: list[IndicatorItem]) -> list[IndicatorItem]:
        """Merge duplicates of the same job: by (type, summary), and File rows sharing any hash."""
        unique: list[IndicatorItem] = []
        by_key: dict[tuple[str, str], IndicatorItem] = {}
        by_hash: dict[str, IndicatorItem] = {}
        for index, item in enumerate(items):
            try:
                target = _same_indicator(item, by_key, by_hash)
                if target is not None:
                    target.absorb(item)
                    self.result.counts["indicator"].merged += 1
            except ItemError as exc:
                self._error("indicator", exc, item.raw)
                if self.halted:
                    self.result.counts["indicator"].not_saved += len(items) - index - 1
                    break
                continue
            target = target or item
            if target is item:
                unique.append(item)
            by_key[target.key] = target
            for digest in target.hashes.values() if target.hashes else ():
                by_hash[digest] = target
        return unique

    def _stored_matches(
        self, conn: Connection, chunk: Sequence[IndicatorItem]
    ) -> Callable[[IndicatorItem], list[Json]]:
        self.looked_up += len(chunk)  # a heuristic counter: a lost update under threads is harmless
        others = [i.key for i in chunk if i.type != "File"]
        by_key = {(r["type"], r["summary"]): r for r in store.find_indicators(conn, self.owner_id, others)}
        digests = [h for i in chunk if i.hashes for h in i.hashes.values()]
        by_hash: dict[str, Json] = {}
        for row in store.find_files(conn, self.owner_id, digests) if digests else []:
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

    def _plan_indicators(self, conn: Connection, chunk: Sequence[IndicatorItem]) -> list[Outcome]:
        """Insert first, then look up only the items a stored row blocked.

        A chunk's items share no key with each other, so an item that is not inserted collides with
        a row stored before: it is then planned like any update. Under haltOnError the look-up comes
        first instead, because nothing after the first failure may be written.
        """
        if self.settings.halt_on_error or self.mostly_stored:
            return self._plan_lookup_first(conn, chunk)
        ids = store.insert_indicators(conn, [self._indicator_row(item) for item in chunk])
        blocked = [item for item in chunk if item.key not in ids]
        planned = iter(self._plan_lookup_first(conn, blocked) if blocked else ())
        return [
            next(planned) if (ident := ids.get(item.key)) is None else Outcome(item, item.raw, "saved", ident=ident)
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
                outcomes.append(Outcome(item, item.raw, "failed", error=error))
            elif not rows:
                outcomes.append(Outcome(item, item.raw, "insert"))
            elif rows[0]["id"] in claimed:
                outcomes.append(_merge_into(claimed[rows[0]["id"]], item))
            else:
                outcome = _check_row(item, rows[0])
                if outcome.status == "update":
                    claimed[rows[0]["id"]] = outcome
                outcomes.append(outcome)
        return outcomes

    def _apply_indicators(self, conn: Connection, outcomes: list[Outcome]) -> None:
        changed = []
        for outcome in (o for o in outcomes if o.status == "update"):
            assert outcome.row is not None
            merged = self._merge_indicator(outcome.row, outcome.item)
            if any(merged[c] != outcome.row[c] for c in INDICATOR_UPDATE_COLUMNS):
                changed.append(merged)
            outcome.ident, outcome.status = outcome.row["id"], "existing"
        store.update_rows(conn, Indicator.__table__, sorted(changed, key=lambda row: row["id"]))  # lock order
        new = [o for o in outcomes if o.status == "insert"]
        ids = store.insert_indicators(conn, [self._indicator_row(o.item) for o in new]) if new else {}
        for outcome in new:
            outcome.ident = ids.get(outcome.item.key)
            if outcome.ident is None:
                reason = "stored concurrently by another writer; run the job again"
                outcome.status, outcome.error = "failed", ItemError(Code.DUPLICATE_ITEM, reason)
            else:
                outcome.status = "saved"
        for outcome in outcomes:
            if outcome.status == "merged" and outcome.into is not None:
                outcome.ident = outcome.into.ident

    def _link_groups(self, conn: Connection, outcomes: list[Outcome]) -> dict[tuple[int, int], bool]:
        """Write a chunk's `associatedGroup` links in the chunk's own transaction.

        The association phase would write the very same pairs later, after every indicator; written
        here they ride on the parallel chunk writers, commit with their indicators, and the phase
        only reports them (`_report_linked`), in its own order and with its own counts. Returns
        pair -> whether this chunk inserted it. Only groups already resolved are linked here: an
        unknown reference is left to the phase, which reports it.
        """
        groups = self.look.groups_by_ref
        pairs = {
            (groups[ref], outcome.ident)
            for outcome in outcomes
            if outcome.status in ("saved", "existing") and outcome.ident is not None
            for ref in outcome.item.group_refs
            if ref in groups
        }
        if not pairs:
            return {}
        ordered = sorted(pairs)  # one lock order for every writer: concurrent chunks cannot deadlock
        new = store.insert_pairs(conn, "group_indicator", ordered)
        return {pair: pair in new for pair in ordered}

    def _indicator_row(self, item: IndicatorItem) -> Json:
        hashes = item.hashes or Hashes()
        return {
            "owner_id": self.owner_id,
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
        }

    def _merge_indicator(self, row: Json, item: IndicatorItem) -> Json:
        s = self.settings
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
        return merged

    def _plan_delete_indicators(self, conn: Connection, chunk: Sequence[IndicatorItem]) -> list[Outcome]:
        matches = self._stored_matches(conn, chunk)
        outcomes = []
        for item in chunk:
            rows = matches(item)
            ids = [r["id"] for r in rows]
            outcomes.append(Outcome(item, item.raw, "delete" if ids else "absent", ident=ids or None))
        return outcomes

    # --- associations ---------------------------------------------------------------------------

    def _associations_phase(self) -> None:
        derived_gi, derived_gg = self._derived_associations()
        for kind, raws, derived in (
            ("group_association", self.job.group_associations, derived_gi),
            ("association", self.job.associations, derived_gg),
        ):
            counts = self.result.counts[kind]
            if self.halted:
                self._count_halted(kind, raws, derived)
                continue
            with self.engine.connect() as conn:
                self._prefetch_group_names(conn, raws)
                resolve = self._resolver(conn, kind)
                counts.submitted += len(raws) + len(derived)
                pairs = self._validate(kind, [*raws, *derived], resolve)
            self.look.group_names.clear()
            pending = self._report_linked(kind, self._dedupe_keyed(kind, pairs))
            self._write(kind, pending, self._plan_pairs)

    def _count_halted(self, kind: str, raws: Sequence[Any], derived: list[Json]) -> None:
        """After a halt nothing more is written: only links that `_link_groups` stored count as done."""
        counts = self.result.counts[kind]
        counts.submitted += len(raws) + len(derived)
        linked = self.linked if kind == "group_association" else {}
        seen: set[tuple[int, int]] = set()
        for raw in derived if linked else ():
            pair = (self.look.groups_by_ref.get(raw["group_ref"], 0), raw["indicator_id"])
            if pair not in linked:
                counts.not_saved += 1
            elif pair in seen:
                counts.merged += 1
            else:
                seen.add(pair)
                bucket = "saved" if linked[pair] else "existing"
                setattr(counts, bucket, getattr(counts, bucket) + 1)
        counts.not_saved += len(raws) + (0 if linked else len(derived))

    def _report_linked(self, kind: str, pairs: list[Pair]) -> list[Pair]:
        """Count the pairs `_link_groups` already wrote; returns those still to write."""
        if not self.linked:
            return pairs
        done = [p for p in pairs if p.table == "group_indicator" and (p.left, p.right) in self.linked]
        self._record(kind, [Outcome(p, p.raw, "saved" if self.linked[(p.left, p.right)] else "existing") for p in done])
        self.linked.update(dict.fromkeys(((p.left, p.right) for p in done), False))  # a later phase finds them stored
        return [p for p in pairs if p.table != "group_indicator" or (p.left, p.right) not in self.linked]

    def _prefetch_group_names(self, conn: Connection, raws: Sequence[Any]) -> None:
        """Read every group named by (group_type, group_name) in one query instead of one each."""
        keys = set()
        for raw in raws:
            if isinstance(raw, dict) and raw.get("group_name") and is_group_type(raw.get("group_type")):
                keys.add((group_type(raw["group_type"]), str(raw["group_name"])))
        if keys:
            found = store.find_groups_by_name(conn, self.owner_id, keys)
            self.look.group_names.update({key: found.get(key, []) for key in keys})

    def _derived_associations(self) -> tuple[list[Json], list[Json]]:
        """Associations written inside groups and indicators (associatedGroup, associatedGroupXid)."""
        to_indicators = [
            {"group_ref": ref, "indicator_id": ident, "indicator": item.summary, "indicator_type": item.type}
            for item, ident in self.saved_indicators
            for ref in item.group_refs
        ]
        to_groups = [
            {"group_id": ident, "ref_2": ref, "name": item.name, "type_1": item.type}
            for item, ident in self.saved_groups
            for ref in item.group_refs
        ]
        return to_indicators, to_groups

    def _resolver(self, conn: Connection, kind: str) -> Callable[[Any], Pair]:
        groups = self.look.groups_by_ref

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
            group = self._group_by_ref(conn, str(raw["group_ref"]))
            return Pair("group_indicator", group, raw["indicator_id"], raw)
        xid = raw.get("group_xid", raw.get("groupXid"))
        name, kind = raw.get("group_name"), raw.get("group_type")
        if xid in (None, "") and (not name or not kind):
            raise ItemError(Code.ASSOCIATION, "needs group_xid, or group_name and group_type")
        try:
            gtype = group_type(kind) if kind else None
        except ItemError as exc:
            raise ItemError(Code.ASSOCIATION, exc.reason) from exc
        group = self._group_ident(conn, str(xid) if xid not in (None, "") else None, gtype, name, "group_association")
        if not raw.get("indicator") or not raw.get("indicator_type"):
            raise ItemError(Code.ASSOCIATION, "needs indicator and indicator_type")
        indicator = self._indicator_by_ref(conn, raw["indicator_type"], raw["indicator"])
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
        if ref in (None, "") or isinstance(ref, dict | list):
            raise ItemError(Code.ASSOCIATION, "association needs ref_1 and ref_2 (or id_1 and id_2)")
        ref = str(ref)
        if kind in (None, ""):
            try:
                return ("group", self._group_by_ref(conn, ref))
            except ItemError:
                found = store.find_indicators_by_xid(conn, self.owner_id, [ref])
                if ref in found:
                    return ("indicator", found[ref])
                raise ItemError(Code.ITEM_NOT_FOUND, f"no group or indicator with xid {ref!r}") from None
        if is_group_type(kind):
            return ("group", self._group_ident(conn, ref, group_type(kind), ref, "association"))
        try:
            indicator_type(kind)
        except ItemError as exc:
            raise ItemError(Code.ASSOCIATION, f"unknown item type {kind!r}") from exc
        return ("indicator", self._indicator_by_ref(conn, kind, ref))

    def _group_by_ref(self, conn: Connection, ref: str) -> int:
        """A group by xid, else by numeric id; unknown → 0x1007."""
        if ref in self.look.groups_by_ref:
            return self.look.groups_by_ref[ref]
        row = store.find_groups_by_xid(conn, self.owner_id, [ref]).get(ref)
        ident = row["id"] if row else None
        if ident is None and ref.isdigit() and store.find_group_ids(conn, self.owner_id, [int(ref)]):
            ident = int(ref)
        if ident is None:
            raise ItemError(Code.ITEM_NOT_FOUND, f"no group with xid or id {ref!r}")
        self.look.groups_by_ref[ref] = ident
        return ident

    def _group_ident(self, conn: Connection, xid: str | None, kind: str | None, name: Any, where: str) -> int:
        """By xid first, then by type and name: the oldest group wins, with a warning if several."""
        if xid:
            try:
                return self._group_by_ref(conn, xid)
            except ItemError:
                if not kind or not name:
                    raise
        rows = self.look.group_names.get((kind, str(name)))
        if rows is None:
            rows = store.find_groups_by_name(conn, self.owner_id, [(kind, str(name))]).get((kind, str(name)), [])
        if not rows:
            raise ItemError(Code.ITEM_NOT_FOUND, f"no {kind} group named {name!r}")
        if len(rows) > 1 and (kind, str(name)) not in self.look.warned:
            self.look.warned.add((kind, str(name)))
            others = ", ".join(str(r["id"]) for r in rows[1:])
            oldest = rows[0]["id"]
            reason = f"{len(rows)} {kind} groups are named {name!r}: using the oldest ({oldest}); others: {others}"
            self.result.warn(where, Code.DUPLICATE_ITEM, reason, {"type": kind, "name": name})
        return rows[0]["id"]

    def _indicator_by_ref(self, conn: Connection, kind: Any, ref: Any) -> int:
        try:
            itype = indicator_type(kind)
            summary, hashes = normalise_summary(itype, ref)
        except ItemError as exc:
            raise ItemError(Code.ASSOCIATION, f"invalid indicator reference: {exc.reason}") from exc
        if hashes is not None:
            return self._file_by_hashes(conn, hashes)
        ident = self.look.indicators.get((itype, summary))
        if ident is None:
            rows = store.find_indicators(conn, self.owner_id, [(itype, summary)])
            if not rows:
                raise ItemError(Code.ITEM_NOT_FOUND, f"no {itype} indicator {summary!r}")
            ident = self.look.indicators[(itype, summary)] = rows[0]["id"]
        return ident

    def _file_by_hashes(self, conn: Connection, hashes: Hashes) -> int:
        for digest in hashes.values():
            if digest in self.look.files:
                return self.look.files[digest]
        rows = store.find_files(conn, self.owner_id, hashes.values())
        if not rows:
            raise ItemError(Code.ITEM_NOT_FOUND, f"no File indicator with hash {hashes.summary()}")
        if len(rows) > 1:
            raise ItemError(Code.FILE_HASH_MERGE, f"hashes {hashes.summary()} match several File indicators")
        for digest in hashes.values():
            self.look.files[digest] = rows[0]["id"]
        return rows[0]["id"]

    def _dedupe_keyed(self, kind: str, items: list[Any]) -> list[Any]:
        seen: set[Any] = set()
        unique = []
        for item in items:
            if item.key in seen:
                self.result.counts[kind].merged += 1
            else:
                seen.add(item.key)
                unique.append(item)
        return unique

    def _plan_pairs(self, conn: Connection, chunk: Sequence[Pair]) -> list[Outcome]:
        status = "delete" if self.settings.action == "Delete" else "insert"
        return [Outcome(p, p.raw, status) for p in chunk]

    def _apply_pairs(self, conn: Connection, outcomes: list[Outcome]) -> None:
        by_table: dict[str, list[Outcome]] = {}
        for outcome in outcomes:
            by_table.setdefault(outcome.item.table, []).append(outcome)
        for table, group in by_table.items():
            pairs = [(o.item.left, o.item.right) for o in group]
            if self.settings.action == "Delete":
                done = store.delete_pairs(conn, table, pairs)
                hit, miss = "delete", "absent"
            else:
                done = store.insert_pairs(conn, table, pairs)
                hit, miss = "saved", "existing"
            for outcome, pair in zip(group, pairs, strict=True):
                outcome.status = hit if pair in done else miss

    # --- file occurrences -----------------------------------------------------------------------

    def _occurrences_phase(self) -> None:
        kind = "file_occurrence"
        derived = [
            {"indicator_id": ident, "occurrence": occ, "hash": item.summary}
            for item, ident in self.saved_indicators
            for occ in item.occurrences
        ]
        counts = self.result.counts[kind]
        raws = [*self.job.file_occurrences, *derived]
        if self.halted:
            counts.submitted += len(raws)
            counts.not_saved += len(raws)
            return
        with self.engine.connect() as conn:
            counts.submitted += len(raws)
            occurrences = self._validate(kind, raws, lambda raw: self._occurrence(conn, raw))
        self._write(kind, self._dedupe_keyed(kind, occurrences), self._plan_occurrences)

    def _occurrence(self, conn: Connection, raw: Any) -> Occurrence:
        if not isinstance(raw, dict):
            raise ItemError(Code.INVALID_INDICATOR, "file occurrence is not an object")
        if "indicator_id" in raw:
            return Occurrence(raw["indicator_id"], raw["occurrence"], raw)
        data = parse_occurrence(raw)
        ref = raw.get("hash", raw.get("indicator", raw.get("summary")))
        return Occurrence(self._file_by_hashes(conn, parse_hashes(ref, raw)), data, raw)

    def _plan_occurrences(self, conn: Connection, chunk: Sequence[Occurrence]) -> list[Outcome]:
        status = "delete" if self.settings.action == "Delete" else "insert"
        return [Outcome(o, o.raw, status) for o in chunk]

    def _apply_occurrences(self, conn: Connection, outcomes: list[Outcome]) -> None:
        keys = [o.item.key for o in outcomes]
        if self.settings.action == "Delete":
            done = store.delete_occurrences(conn, keys)
            hit, miss = "delete", "absent"
        else:
            done = store.insert_occurrences(
                conn, [store.occurrence_row(o.item.indicator_id, o.item.data) for o in outcomes]
            )
            hit, miss = "saved", "existing"
        for outcome, key in zip(outcomes, keys, strict=True):
            outcome.status = hit if key in done else miss


# --- helpers -------------------------------------------------------------------------------------

_gc_lock = threading.Lock()
_gc_holders = 0
_gc_was_enabled = False


@contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while jobs run (reference counting still frees memory).

    A large job allocates millions of small, acyclic objects that live until it ends; the cyclic
    collector would traverse all of them again and again for nothing (a quarter of the job's CPU).
    Concurrent jobs share one pause; the last one out restores the collector as the first found it.
    """
    global _gc_holders, _gc_was_enabled
    with _gc_lock:
        if _gc_holders == 0:
            _gc_was_enabled = gc.isenabled()
            gc.disable()
        _gc_holders += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_holders -= 1
            if _gc_holders == 0 and _gc_was_enabled:
                gc.enable()


_BUCKETS = {"saved": "saved", "delete": "saved", "merged": "merged", "absent": "not_saved"}


def _as_ids(ident: Any) -> list[int]:
    return list(ident) if isinstance(ident, list) else [ident]


def _raw(item: Any) -> Any:
    return getattr(item, "raw", item)


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
            return Outcome(item, item.raw, "failed", error=exc)
    return Outcome(item, item.raw, "update", row=row)


def _merge_into(first: Outcome, item: IndicatorItem) -> Outcome:
    """Two job items that only meet through a stored File row become one update."""
    try:
        first.item.absorb(item)
    except ItemError as exc:
        return Outcome(item, item.raw, "failed", error=exc)
    return Outcome(item, item.raw, "merged", into=first)
