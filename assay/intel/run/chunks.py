"""Writing a phase chunk by chunk: one transaction each, two in flight, halving a chunk the database refuses.

A chunk's write runs on a writer thread when chunks go in parallel, so it only reads run state and
logs what happened in a `ChunkLog`; the main thread replays the logs in chunk order, so counts,
errors and remembered ids are those of a sequential run.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from assay.intel import store
from assay.intel.errors import Code, ItemError
from assay.intel.groups import GroupItem
from assay.intel.indicators import IndicatorItem
from assay.intel.result import KINDS
from assay.intel.run.state import Json, RunState

WRITERS = 2  # chunks in flight at once on large jobs (one per core of a small server)
PARALLEL_MIN_CHUNK = 1000  # smaller chunks are written one after the other: threads would not pay

Links = dict[tuple[int, int], bool]


class OutcomeStatus(StrEnum):
    """What became of one item of a chunk: the first four are plans that the write turns into
    SAVED, EXISTING or FAILED; the others are final."""

    INSERT = "insert"  # a new row
    UPDATE = "update"  # a stored row takes the item's changes
    REUSE = "reuse"  # a stored group is kept as it is (group_action skip)
    REPLACE = "replace"  # a stored group is overwritten (group_action replace)
    DELETE = "delete"  # stored rows are deleted
    MERGED = "merged"  # the item joined an earlier item of the same job
    FAILED = "failed"
    SAVED = "saved"  # a new row was written
    EXISTING = "existing"  # the row was stored already
    ABSENT = "absent"  # nothing stored to delete


@dataclass
class Outcome:
    """What happened (or is planned) for one item of a chunk."""

    item: Any
    raw: Any
    status: OutcomeStatus
    row: Json | None = None
    ident: Any = None
    error: ItemError | None = None
    into: Outcome | None = None


@dataclass
class ChunkLog:
    """What writing one chunk did, kept until the main thread applies it (`ChunkWriter.replay`)."""

    events: list[tuple[str, Any]] = field(default_factory=list)
    not_saved: int = 0
    links: Links = field(default_factory=dict)  # see IndicatorPhase.link_groups


Planner = Callable[[Connection, Sequence[Any]], list[Outcome]]
Applier = Callable[[Connection, list[Outcome]], None]


@dataclass(frozen=True)
class Steps:
    """How a phase writes one chunk: plan it, apply the plan, then any extra writes of the same transaction.

    `replayed` runs on the main thread after each chunk's log was applied, for what a phase adapts
    as the job goes (the indicator phase refreshes statistics there).
    """

    plan: Planner
    apply: Applier
    link: Callable[[Connection, list[Outcome]], Links] | None = None
    replayed: Callable[[ChunkLog], None] | None = None


class ChunkWriter:
    """Writes the items of a phase in chunks and records what each committed chunk did."""

    def __init__(self, state: RunState) -> None:
        self.state = state
        self.store_down = False
        self.conflicted = dict.fromkeys(KINDS, False)  # a chunk met stored rows: stop expecting new ones

    def write(self, kind: str, items: list[Any], steps: Steps) -> None:
        """Write chunk after chunk; large Create jobs keep two chunks in flight (see `_write_parallel`)."""
        parts = list(store.chunks(items, self.state.settings.chunk_size))
        if self._parallel(kind, parts):
            self._write_parallel(kind, parts, steps)
            return
        stop = False
        for chunk in parts:
            if stop:
                self.state.result.counts[kind].not_saved += len(chunk)
                continue
            log = ChunkLog()
            stop = self._write_chunk(kind, chunk, steps, log)
            self.replay(kind, log, steps)

    def _parallel(self, kind: str, parts: list[Sequence[Any]]) -> bool:
        """Only independent chunks go in parallel: Create, no haltOnError, big enough to pay off, and
        on PostgreSQL (SQLite has one writer at a time: a second one would only wait for the lock)."""
        settings = self.state.settings
        return (
            self.state.engine.dialect.name == "postgresql"
            and len(parts) > 1
            and len(parts[0]) >= PARALLEL_MIN_CHUNK
            and settings.action == "Create"
            and not settings.halt_on_error
            and kind != "group"
        )

    def _write_parallel(self, kind: str, parts: list[Sequence[Any]], steps: Steps) -> None:
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
                        self.replay(kind, pending.popleft().result(), steps)
                    pending.append(pool.submit(self._write_logged, kind, chunk, steps))
                while pending:
                    self.replay(kind, pending.popleft().result(), steps)
            except BaseException:
                for future in pending:
                    future.cancel()
                raise

    def _write_logged(self, kind: str, chunk: Sequence[Any], steps: Steps) -> ChunkLog:
        log = ChunkLog()
        if self.store_down:
            log.not_saved += len(chunk)
        else:
            self._write_chunk(kind, chunk, steps, log)
        return log

    def replay(self, kind: str, log: ChunkLog, steps: Steps) -> None:
        """Apply what a chunk write logged, in the order it happened (main thread only)."""
        for event, payload in log.events:
            if event == "record":
                stored = any(o.status == OutcomeStatus.EXISTING for o in payload)
                self.conflicted[kind] = self.conflicted[kind] or stored
                self.record(kind, payload)
            elif event == "error":
                self.state.error(kind, *payload)
            else:
                self._critical(kind, *payload)
        self.state.result.counts[kind].not_saved += log.not_saved
        linked = self.state.linked
        for pair, new in log.links.items():
            linked[pair] = linked.get(pair, False) or new  # new if any chunk inserted it
        if steps.replayed is not None:
            steps.replayed(log)

    def _write_chunk(self, kind: str, chunk: Sequence[Any], steps: Steps, log: ChunkLog) -> bool:
        """Plan and apply one chunk in one transaction; returns True when the job must stop."""
        try:
            with self.state.engine.begin() as conn:
                conn.execution_options(**{store.EXPECT_NEW: not self.conflicted[kind]})
                outcomes = steps.plan(conn, chunk)
                cut = self._halt_cut(outcomes)
                steps.apply(conn, outcomes[:cut])
                links = steps.link(conn, outcomes) if steps.link is not None else {}
        except OperationalError as exc:
            self.store_down = True
            log.events.append(("critical", (chunk, exc)))
            return True
        except SQLAlchemyError as exc:
            if len(chunk) == 1:
                reason = f"database rejected the item: {getattr(exc, 'orig', None) or exc}"
                log.events.append(("error", (ItemError(Code.INTERNAL, reason), _raw(chunk[0]))))
                return self.state.settings.halt_on_error
            return self._write_halves(kind, chunk, steps, log)
        log.events.append(("record", outcomes[:cut]))
        log.links.update(links)
        log.not_saved += len(outcomes) - cut
        return self.state.settings.halt_on_error and any(o.status == OutcomeStatus.FAILED for o in outcomes[:cut])

    def _halt_cut(self, outcomes: list[Outcome]) -> int:
        """Under haltOnError, only the outcomes before the first failure are applied."""
        if not self.state.settings.halt_on_error:
            return len(outcomes)
        for index, outcome in enumerate(outcomes):
            if outcome.status == OutcomeStatus.FAILED:
                return index + 1
        return len(outcomes)

    def _write_halves(self, kind: str, chunk: Sequence[Any], steps: Steps, log: ChunkLog) -> bool:
        """Bisect a chunk the database refused, so only the culprits fail (log2(n) tries each)."""
        middle = len(chunk) // 2
        if self._write_chunk(kind, chunk[:middle], steps, log):
            log.not_saved += len(chunk) - middle
            return True
        return self._write_chunk(kind, chunk[middle:], steps, log)

    def _critical(self, kind: str, chunk: Sequence[Any], exc: Exception) -> None:
        for item in chunk:
            self.state.result.fail(kind, Code.INTERNAL, f"store unavailable: {exc}", _raw(item), critical=True)
        self.state.halted = True

    def record(self, kind: str, outcomes: list[Outcome]) -> None:
        """Count outcomes and remember ids, only once their transaction committed."""
        state = self.state
        counts = state.result.counts[kind]
        for outcome in outcomes:
            if outcome.status == OutcomeStatus.FAILED and outcome.error is not None:
                state.error(kind, outcome.error, outcome.raw)
                continue
            bucket = _BUCKETS.get(outcome.status, "existing")
            setattr(counts, bucket, getattr(counts, bucket) + 1)
            if outcome.status == OutcomeStatus.ABSENT:
                state.result.warn(kind, Code.ITEM_NOT_FOUND, "nothing stored to delete", outcome.raw)
            elif isinstance(outcome.item, IndicatorItem) and outcome.ident is not None:
                self._remember_indicator(outcome.item, outcome.ident, outcome.status != OutcomeStatus.MERGED)
            elif isinstance(outcome.item, GroupItem) and outcome.ident is not None:
                state.saved_groups.append((outcome.item, outcome.ident))
                if outcome.item.xid:
                    state.look.groups_by_ref[outcome.item.xid] = outcome.ident

    def _remember_indicator(self, item: IndicatorItem, ident: int, linked: bool) -> None:
        state = self.state
        if state.settings.action == "Delete":
            return
        if linked:
            state.saved_indicators.append((item, ident))
        state.look.indicators[item.key] = ident
        for digest in item.hashes.values() if item.hashes else ():
            state.look.files[digest] = ident


def deleted_ids(outcomes: list[Outcome]) -> list[int]:
    """The stored ids a Delete chunk removes (an indicator outcome may name several File rows)."""
    return [i for o in outcomes if o.status == OutcomeStatus.DELETE for i in _as_ids(o.ident)]


_BUCKETS = {
    OutcomeStatus.SAVED: "saved",
    OutcomeStatus.DELETE: "saved",
    OutcomeStatus.MERGED: "merged",
    OutcomeStatus.ABSENT: "not_saved",
}


def _as_ids(ident: Any) -> list[int]:
    return list(ident) if isinstance(ident, list) else [ident]


def _raw(item: Any) -> Any:
    return getattr(item, "raw", item)
