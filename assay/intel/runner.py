"""Executes a `Job`: validate every item in Python first, then write the good ones in bulk.

Atomicity per item comes from two things. Validation runs before any write, so a bad item is
rejected without touching the store. The good items of a chunk are then written with a few
set-based statements inside one transaction: the chunk commits whole or not at all. If a chunk
still fails in the database, it is split in halves and retried, down to single items, so that
only the culprit fails. A crash mid-job loses at most the open chunks, and every row is keyed
(unique constraints, ON CONFLICT) so that running the job again converges to the same store.

Speed on large jobs comes from four choices. Indicators are inserted first and looked up only
when a stored row blocked them (a job of new indicators reads nothing back). Two chunks are in
flight at once, on two connections (`ChunkWriter` in `assay.intel.run.chunks`): the chunks of a
phase share no key, and their results are replayed in chunk order, so counts and errors are those
of a sequential run. The `associatedGroup` links of a chunk are written in the chunk's own
transaction. The cyclic garbage collector is paused while a job runs. Durability is untouched:
every chunk is an ordinary transaction under the server's own `synchronous_commit`, so a chunk
reported saved has been flushed to the write-ahead log before its commit returned, and survives a
crash.

Each phase lives in its own module under `assay.intel.run`; this one only orders them.
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from assay.intel import store
from assay.intel.errors import Code
from assay.intel.result import JobResult
from assay.intel.run.associations import AssociationPhase
from assay.intel.run.chunks import ChunkWriter, Steps
from assay.intel.run.groups import GroupPhase
from assay.intel.run.indicators import IndicatorPhase
from assay.intel.run.occurrences import OccurrencePhase
from assay.intel.run.refs import References
from assay.intel.run.state import RunState

if TYPE_CHECKING:
    from assay.intel.job import Job


class Runner:
    """One execution of a job against one engine.

    Example:
        >>> result = Runner(job, engine).run()   # what `Job.process()` does
    """

    def __init__(self, job: Job, engine: Engine) -> None:
        self.state = RunState(job, engine)
        self.result = self.state.result
        self.writer = ChunkWriter(self.state)
        refs = References(self.state)
        self.groups = GroupPhase(self.state, refs)
        self.indicators = IndicatorPhase(self.state)
        self.associations = AssociationPhase(self.state, refs, self.writer)
        self.occurrences = OccurrencePhase(self.state, refs, self.writer)

    def run(self) -> JobResult:
        with _cyclic_gc_paused():
            return self._run()

    def _run(self) -> JobResult:
        state = self.state
        try:
            with state.engine.begin() as conn:
                state.owner_id = store.ensure_owner(conn, state.job.owner, state.job.owner_kind)
        except SQLAlchemyError as exc:
            self.result.critical("group", Code.INTERNAL, f"store unavailable: {exc}")
            self.result.halted = True
            return self.result
        if state.settings.action == "Delete":
            self._run_delete()
        else:
            self._run_create()
        self.result.halted = state.halted
        return self.result

    @contextmanager
    def _timed(self, phase: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.result.timings[phase] = round(time.perf_counter() - start, 6)

    def _run_create(self) -> None:
        job = self.state.job
        with self._timed("group"):
            self._phase("group", job.groups, self.groups.parse, self.groups.dedupe, self.groups.steps())
        with self._timed("indicator"):
            indicators = self.indicators
            self._phase("indicator", job.indicators, indicators.parse, indicators.dedupe, indicators.steps())
        with self._timed("association"):
            self.associations.run()
        with self._timed("file_occurrence"):
            self.occurrences.run()

    def _run_delete(self) -> None:
        """Dependents first: occurrences and associations go before the items they point at."""
        job = self.state.job
        self.occurrences.run()
        self.associations.run()
        self._phase("indicator", job.indicators, self.indicators.parse, self.indicators.dedupe, self.indicators.steps())
        self._phase("group", job.groups, self.groups.parse, self.groups.dedupe, self.groups.steps())

    def _phase(
        self,
        kind: str,
        raws: Sequence[Any],
        parse: Callable[[Any], Any],
        dedupe: Callable[[list[Any]], list[Any]],
        steps: Steps,
    ) -> None:
        """Validate every item, merge the job's duplicates, then write; nothing once the run halted."""
        counts = self.result.counts[kind]
        counts.submitted += len(raws)
        if self.state.halted:
            counts.not_saved += len(raws)
            return
        valid = self.state.validate(kind, raws, parse)
        unique = dedupe(valid)
        if kind == "indicator" and not self._within_limit(unique):
            return
        self.writer.write(kind, unique, steps)

    def _within_limit(self, unique: list[Any]) -> bool:
        limit = self.state.settings.indicator_limit
        if limit is None or len(unique) <= limit:
            return True
        reason = f"job would exceed the number of allowed indicators ({len(unique)} > {limit})"
        self.result.critical("indicator", Code.INDICATOR_LIMIT, reason)
        self.result.counts["indicator"].not_saved += len(unique)
        return False


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
