"""What one analysis run found, held in memory between the services and the database."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

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


@dataclass
class ErrorRecord:
    sha256: str
    service: str
    kind: str
    message: str


@dataclass
class Analysis:
    """Everything one run found, held in memory until it is stored in one go."""

    nodes: list[FileNode] = field(default_factory=list)
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    results: list[StoredResult] = field(default_factory=list)
    errors: list[ErrorRecord] = field(default_factory=list)
    crashes: list[tuple[str, str]] = field(default_factory=list)

    @property
    def max_score(self) -> int:
        return max((node.score for node in self.nodes), default=0)
