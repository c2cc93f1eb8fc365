"""Limits of one extraction and the running counters that enforce them.

Archives are hostile input: a few kilobytes can expand to terabytes, hold millions of
members or take hours to decode. Every limit is checked while bytes stream out, not only
against the sizes the archive claims, and every limit that is hit is recorded.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from assay.services.base import ExtractedFile

MiB = 1 << 20

# Kinds of limit: the archive-wide ones stop the whole extraction, the others skip a member.
FILE_SIZE = "file_size"
TOTAL_SIZE = "total_size"
RATIO = "ratio"
COUNT = "count"
TIMEOUT = "timeout"
ARCHIVE_WIDE = frozenset({TOTAL_SIZE, RATIO, COUNT, TIMEOUT})


class LimitReached(Exception):
    """A limit stopped the extraction of one member (or, if archive-wide, of the archive)."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail
        self.recorded = False


@dataclass(frozen=True)
class ExtractionLimits:
    """The numeric limits of one extraction, read from the service parameters."""

    max_extracted: int
    max_file_size: int
    max_total_size: int
    max_ratio: float
    ratio_min_size: int
    timeout: float

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> ExtractionLimits:
        return cls(
            max_extracted=int(params["max_extracted"]),
            max_file_size=int(params["max_file_size"]),
            max_total_size=int(params["max_total_size"]),
            max_ratio=float(params["max_ratio"]),
            ratio_min_size=int(params["ratio_min_size"]),
            timeout=float(params["timeout"]),
        )


class Budget:
    """Running counters of one extraction; ``LimitReached`` is raised when one runs out."""

    def __init__(self, limits: ExtractionLimits, archive_size: int) -> None:
        self.limits = limits
        self.archive_size = max(archive_size, 1)
        self.deadline = time.monotonic() + limits.timeout
        self.written = 0
        self.decoded = 0
        self.consumed = 0
        self.children = 0

    def check_time(self) -> None:
        if time.monotonic() > self.deadline:
            raise LimitReached(TIMEOUT, f"extraction took longer than {self.limits.timeout:g} s")

    def check_count(self) -> None:
        if self.children >= self.limits.max_extracted:
            raise LimitReached(COUNT, f"{self.limits.max_extracted} files extracted")

    def check_ratio(self, produced: int, compressed: int, scope: str) -> None:
        """``produced`` bytes came out of ``compressed`` bytes: is that an archive bomb?"""
        if produced > self.limits.ratio_min_size and produced > self.limits.max_ratio * max(compressed, 1):
            ratio = produced / max(compressed, 1)
            raise LimitReached(RATIO, f"{scope} expands {ratio:.0f} times ({produced} bytes so far)")

    def on_decoded(self, size: int, consumed: int) -> None:
        """Bytes left the decompressor of the archive stream, which had read ``consumed`` bytes."""
        self.decoded += size
        self.consumed = consumed
        self.check_ratio(self.decoded, self.archive_size, "archive stream")
        if self.decoded > self.limits.max_total_size + self.limits.max_file_size:
            raise self._size_limit(TOTAL_SIZE, f"more than {self.decoded} bytes decoded")
        self.check_time()

    def _size_limit(self, kind: str, detail: str) -> LimitReached:
        """The limit to raise when a size runs out: a bomb if the stream read so far expanded too much.

        The running ratio is only judged here, once output is large: judged from the first
        megabyte it would call a firmware image that opens with padding a bomb.
        """
        try:
            self.check_ratio(self.decoded, self.consumed or self.archive_size, "stream read so far")
        except LimitReached as bomb:
            return bomb
        return LimitReached(kind, detail)

    def on_written(self, size: int, member_written: int, member_compressed: int | None) -> None:
        """Bytes were written for one member; check every limit that applies."""
        self.written += size
        if member_written > self.limits.max_file_size:
            raise self._size_limit(FILE_SIZE, f"member larger than {self.limits.max_file_size} bytes")
        if self.written > self.limits.max_total_size:
            raise self._size_limit(TOTAL_SIZE, f"more than {self.limits.max_total_size} bytes extracted")
        if member_compressed is not None:
            self.check_ratio(member_written, member_compressed, "member")
        self.check_ratio(max(self.written, self.decoded), self.archive_size, "archive")
        self.check_time()

    def check_declared_total(self, size: int) -> None:
        """Judge the whole archive by the sum of the sizes its headers declare."""
        self.check_ratio(size, self.archive_size, "archive (declared sizes)")

    def check_declared(self, size: int, compressed: int | None) -> None:
        """Judge a member by the sizes its header declares, before decoding anything."""
        if compressed is not None:
            self.check_ratio(size, compressed, "member (declared size)")
        if size > self.limits.max_file_size:
            raise LimitReached(FILE_SIZE, f"declared size {size} exceeds {self.limits.max_file_size} bytes")


@dataclass
class Extraction:
    """What one reader did with one archive: children, listing, and everything it could not do."""

    format: str
    children: list[ExtractedFile] = field(default_factory=list)
    members: int = 0
    declared_size: int = 0
    skipped: list[dict[str, str]] = field(default_factory=list)
    unsafe_names: list[dict[str, str]] = field(default_factory=list)
    limits: dict[str, str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    encrypted: bool = False
    password: str | None = None
    password_failed: list[str] = field(default_factory=list)
    bomb: list[str] = field(default_factory=list)
    notes: dict[str, Any] = field(default_factory=dict)

    def skip(self, name: str, reason: str) -> None:
        self.skipped.append({"name": name, "reason": reason})

    def hit(self, limit: LimitReached, name: str | None = None) -> None:
        """Record a limit once, however many layers it passes through; the first detail of a kind wins."""
        if limit.recorded:
            return
        limit.recorded = True
        self.limits.setdefault(limit.kind, limit.detail)
        if limit.kind == RATIO:
            self.bomb.append(f"{name}: {limit.detail}" if name else limit.detail)
        if name is not None:
            self.skip(name, limit.detail)

    def error(self, message: str) -> None:
        if message not in self.errors:
            self.errors.append(message)
