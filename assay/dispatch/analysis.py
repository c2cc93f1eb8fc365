"""What one analysis run found, held in memory between the services and the database."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from assay.db.models import UNRESTRICTED
from assay.services.base import Service


@dataclass
class FileNode:
    sha256: str
    name: str
    parent: str | None
    depth: int
    size: int
    score: int = 0
    truncated: bool = False


@dataclass
class StoredResult:
    key: str
    sha256: str
    service: Service
    score: int
    body: dict[str, Any]
    tags: list[tuple[str, str]]
    new: bool
    classification: str = UNRESTRICTED  # canonical: the submission's marking, raised by the service's


class ErrorKind(StrEnum):
    """Why a service gave no result; stored as ``service_errors.error_type`` and shown upper-cased."""

    EXCEPTION = "exception"  # the service raised, or ran out of memory
    TIMEOUT = "timeout"  # it overran its time limit
    CRASH = "crash"  # it killed its sandbox (or crashed on this file before)
    EXTRACT = "extract"  # an extracted child could not be stored
    FAILED = "failed"  # the whole submission could not be analysed
    CLASSIFICATION = "classification"  # a service's marking could not be read or combined


@dataclass
class ErrorRecord:
    sha256: str
    service: str
    kind: ErrorKind
    message: str


@dataclass
class Analysis:
    """Everything one run found, held in memory until it is stored in one go."""

    nodes: list[FileNode] = field(default_factory=list)
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    results: list[StoredResult] = field(default_factory=list)
    errors: list[ErrorRecord] = field(default_factory=list)
    crashes: list[tuple[str, str]] = field(default_factory=list)
    marking: str = UNRESTRICTED  # canonical: the marking the submission was accepted with
    classification: str = UNRESTRICTED  # that marking raised by every result's: the submission's

    @property
    def max_score(self) -> int:
        return max((node.score for node in self.nodes), default=0)
