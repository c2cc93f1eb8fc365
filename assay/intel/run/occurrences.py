"""The file-occurrence phase of a run: where a File indicator was seen (file name, path, date)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection

from assay.intel import store
from assay.intel.errors import Code, ItemError
from assay.intel.indicators import parse_hashes, parse_occurrence
from assay.intel.run.chunks import ChunkWriter, Outcome, OutcomeStatus, Steps
from assay.intel.run.refs import References
from assay.intel.run.state import Json, RunState

KIND = "file_occurrence"


@dataclass
class Occurrence:
    """One occurrence resolved to its File indicator's id."""

    indicator_id: int
    data: Json
    raw: Any = None

    @property
    def key(self) -> tuple[int, str]:
        return (self.indicator_id, store.occurrence_fingerprint(self.data))


@dataclass
class OccurrencePhase:
    """Writes the job's file occurrences and those carried inside the indicators saved before."""

    state: RunState
    refs: References
    writer: ChunkWriter

    def run(self) -> None:
        """Resolve every occurrence to its File on one read connection first, so the chunks only write."""
        state = self.state
        derived = [
            {"indicator_id": ident, "occurrence": occ, "hash": item.summary}
            for item, ident in state.saved_indicators
            for occ in item.occurrences
        ]
        counts = state.result.counts[KIND]
        raws = [*state.job.file_occurrences, *derived]
        if state.halted:
            counts.submitted += len(raws)
            counts.not_saved += len(raws)
            return
        with state.engine.connect() as conn:
            counts.submitted += len(raws)
            occurrences = state.validate(KIND, raws, lambda raw: self._occurrence(conn, raw))
        self.writer.write(KIND, state.dedupe_keyed(KIND, occurrences), Steps(self.plan, self.apply))

    def _occurrence(self, conn: Connection, raw: Any) -> Occurrence:
        if not isinstance(raw, dict):
            raise ItemError(Code.INVALID_INDICATOR, "file occurrence is not an object")
        if "indicator_id" in raw:
            return Occurrence(raw["indicator_id"], raw["occurrence"], raw)
        data = parse_occurrence(raw, classification=self.state.job.classification)
        ref = raw.get("hash", raw.get("indicator", raw.get("summary")))
        return Occurrence(self.refs.file_by_hashes(conn, parse_hashes(ref, raw)), data, raw)

    def plan(self, conn: Connection, chunk: Sequence[Occurrence]) -> list[Outcome]:
        status = OutcomeStatus.DELETE if self.state.settings.action == "Delete" else OutcomeStatus.INSERT
        return [Outcome(o, o.raw, status) for o in chunk]

    def apply(self, conn: Connection, outcomes: list[Outcome]) -> None:
        keys = [o.item.key for o in outcomes]
        if self.state.settings.action == "Delete":
            done = store.delete_occurrences(conn, keys)
            hit, miss = OutcomeStatus.DELETE, OutcomeStatus.ABSENT
        else:
            marking = self.state.marking
            rows = [
                store.occurrence_row(o.item.indicator_id, o.item.data, marking(o.item.data.get("labels", [])))
                for o in outcomes
            ]
            done = store.insert_occurrences(conn, rows)
            hit, miss = OutcomeStatus.SAVED, OutcomeStatus.EXISTING
        for outcome, key in zip(outcomes, keys, strict=True):
            outcome.status = hit if key in done else miss
