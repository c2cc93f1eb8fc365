"""What a job reports: counts per kind of item, errors with their codes, warnings, and an exit code."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from assay.intel.errors import Code

KINDS = ("group", "indicator", "group_association", "association", "file_occurrence")
EXIT_SUCCESS, EXIT_FAILURE, EXIT_PARTIAL = 0, 1, 3


@dataclass
class Counts:
    """Per-kind tallies; `submitted == saved + existing + merged + failed + not_saved` always holds.

    saved: new rows written (or rows deleted by a Delete job); existing: matched a stored row, which
    was updated or reused; merged: folded into an earlier duplicate of the same job; failed: rejected
    with an error; not_saved: valid but not written (halted, or nothing to delete).
    """

    submitted: int = 0
    saved: int = 0
    existing: int = 0
    merged: int = 0
    failed: int = 0
    not_saved: int = 0


@dataclass
class Problem:
    """One error or warning: its code, a reason, the kind and the offending item as submitted."""

    code: int
    reason: str
    kind: str
    item: Any

    @property
    def code_hex(self) -> str:
        return f"0x{self.code:04X}"


@dataclass
class JobResult:
    """The outcome of `Job.process()`."""

    exit_code: int = EXIT_SUCCESS
    counts: dict[str, Counts] = field(default_factory=lambda: {k: Counts() for k in KINDS})
    errors: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    halted: bool = False
    timings: dict[str, float] = field(default_factory=dict)

    def fail(self, kind: str, code: Code | int, reason: str, item: Any, *, critical: bool = False) -> None:
        self.errors.append(Problem(int(code), reason, kind, item))
        self.counts[kind].failed += 1
        self.raise_exit(EXIT_FAILURE if critical else EXIT_PARTIAL)

    def critical(self, kind: str, code: Code | int, reason: str) -> None:
        """A failure of the job rather than of one item (store down, indicator limit)."""
        self.errors.append(Problem(int(code), reason, kind, None))
        self.raise_exit(EXIT_FAILURE)

    def warn(self, kind: str, code: Code | int, reason: str, item: Any) -> None:
        self.warnings.append(Problem(int(code), reason, kind, item))

    def absorb(self, other: JobResult) -> None:
        """Add another job's outcome to this one: a batch naming several owners runs a job per owner."""
        for kind, counts in other.counts.items():
            mine = self.counts[kind]
            for name, value in asdict(counts).items():
                setattr(mine, name, getattr(mine, name) + value)
        self.errors += other.errors
        self.warnings += other.warnings
        self.halted = self.halted or other.halted
        for phase, seconds in other.timings.items():
            self.timings[phase] = round(self.timings.get(phase, 0.0) + seconds, 6)
        self.raise_exit(other.exit_code)

    def raise_exit(self, code: int) -> None:
        """Escalate the exit code; a failure (1) is never lowered to a partial failure (3)."""
        rank = {EXIT_SUCCESS: 0, EXIT_PARTIAL: 1, EXIT_FAILURE: 2}
        if rank[code] > rank[self.exit_code]:
            self.exit_code = code

    def to_dict(self) -> dict[str, Any]:
        return {
            "exit_code": self.exit_code,
            "halted": self.halted,
            "timings": dict(self.timings),
            "counts": {k: asdict(v) for k, v in self.counts.items()},
            "errors": [{**asdict(p), "code": p.code_hex} for p in self.errors],
            "warnings": [{**asdict(p), "code": p.code_hex} for p in self.warnings],
        }
