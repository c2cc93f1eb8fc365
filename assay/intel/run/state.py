"""What the phases of one run share: the job, the result being built, and what earlier phases saved."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine

from assay.db.base import holds_nul
from assay.intel.errors import Code, ItemError
from assay.intel.groups import GroupItem
from assay.intel.indicators import IndicatorItem
from assay.intel.marking import TLP, labels_marking
from assay.intel.result import JobResult

if TYPE_CHECKING:
    from assay.intel.job import Job, JobSettings

Json = dict[str, Any]
_INVALID = {"indicator": Code.INVALID_INDICATOR, "group": Code.INVALID_GROUP}


@dataclass
class Lookups:
    """Per-run caches of resolved references, so each one costs at most one query."""

    groups_by_ref: dict[str, int] = field(default_factory=dict)
    indicators: dict[tuple[str, str], int] = field(default_factory=dict)
    files: dict[str, int] = field(default_factory=dict)
    warned: set[tuple[str, str]] = field(default_factory=set)
    group_names: dict[tuple[Any, str], list[Json]] = field(default_factory=dict)  # association phase only


class RunState:
    """One run's shared state; the phases read it and, on the main thread only, update it.

    Later phases depend on earlier ones: associations and occurrences use the ids of the groups and
    indicators saved before, and `haltOnError` in any phase stops all that follow.
    """

    def __init__(self, job: Job, engine: Engine) -> None:
        self.job = job
        self.settings: JobSettings = job.settings
        self.engine = engine
        self.classification = job.classification or TLP
        self.result = JobResult()
        self.halted = False
        self.owner_id = 0
        self.look = Lookups()
        self.saved_groups: list[tuple[GroupItem, int]] = []
        self.saved_indicators: list[tuple[IndicatorItem, int]] = []
        self.linked: dict[tuple[int, int], bool] = {}  # group-indicator pairs written with their chunk

    def marking(self, labels: list[str]) -> Json:
        """The marking columns of a row with these labels, under this run's classification."""
        return labels_marking(self.classification, labels)

    def error(self, kind: str, error: ItemError, raw: Any) -> None:
        """Report one failed item; under haltOnError it also stops the run."""
        self.result.fail(kind, error.code, error.reason, raw, critical=self.settings.halt_on_error)
        if self.settings.halt_on_error:
            self.halted = True

    def validate(self, kind: str, raws: Sequence[Any], parse: Callable[[Any], Any]) -> list[Any]:
        """Parse items in order; under haltOnError stop at the first bad one (the rest: not_saved)."""
        valid: list[Any] = []
        for index, raw in enumerate(raws):
            try:
                if holds_nul(raw):  # no store may keep it (PostgreSQL refuses it in text and JSON)
                    raise ItemError(_INVALID.get(kind, Code.GENERAL), f"the {kind} contains a NUL character")
                valid.append(parse(raw))
            except ItemError as exc:
                self.error(kind, exc, raw)
                if self.halted:
                    self.result.counts[kind].not_saved += len(raws) - index - 1
                    break
        return valid

    def dedupe_keyed(self, kind: str, items: list[Any]) -> list[Any]:
        """Keep the first item of each `key`; the others count as merged."""
        seen: set[Any] = set()
        unique = []
        for item in items:
            if item.key in seen:
                self.result.counts[kind].merged += 1
            else:
                seen.add(item.key)
                unique.append(item)
        return unique
