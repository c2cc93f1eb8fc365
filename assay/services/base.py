"""The one shape every analysis service has.

A service is pure: it receives a :class:`FileRequest` (a path on disk, what identification
found, its own parameters) and returns a :class:`Result`. It never touches the database,
the queue or the API; the dispatcher owns storage, scoring, children and limits.

Example::

    class Hello(Service):
        '''Says hello to text files.

        Parameters: ``greeting`` (str, default "hello").
        '''
        name = "Hello"
        version = "1"
        stage = Stage.CORE
        category = "Static Analysis"
        accepts = r"text/.*"
        parameters = {"greeting": "hello"}
        heuristics = (Heuristic("hello.1", "Greeted", "The file was greeted.", 10),)

        def execute(self, request: FileRequest) -> Result:
            result = Result()
            section = result.add_section("Greeting", request.params["greeting"])
            section.heuristic = "hello.1"
            return result
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import Any, ClassVar, Literal


class Stage(IntEnum):
    """Order in which services run on one file (lower first)."""

    IDENTIFY = 0
    FILTER = 1
    EXTRACT = 2
    CORE = 3
    SECONDARY = 4
    POST = 5


@dataclass(frozen=True)
class Heuristic:
    """A catalogued finding: the only place a score comes from."""

    id: str
    name: str
    description: str
    score: int
    attack_ids: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "heur_id": self.id,
            "name": self.name,
            "description": self.description,
            "score": self.score,
            "attack_ids": list(self.attack_ids),
        }


@dataclass(frozen=True)
class Tag:
    """An Assemblyline-style tag, e.g. ``Tag("network.static.domain", "example.com")``."""

    type: str
    value: str


BodyFormat = Literal["text", "kv", "table", "json"]


@dataclass
class Section:
    """One titled block of findings; may carry a heuristic id, tags and subsections."""

    title: str
    body: Any = None
    body_format: BodyFormat = "text"
    heuristic: str | None = None
    tags: list[Tag] = field(default_factory=list)
    subsections: list[Section] = field(default_factory=list)

    def add_tag(self, tag_type: str, value: str) -> None:
        tag = Tag(tag_type, str(value))
        if tag not in self.tags:
            self.tags.append(tag)

    def add_subsection(self, title: str, body: Any = None, body_format: BodyFormat = "text") -> Section:
        section = Section(title, body, body_format)
        self.subsections.append(section)
        return section

    def walk(self) -> Iterator[Section]:
        yield self
        for sub in self.subsections:
            yield from sub.walk()

    def as_dict(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "body": self.body,
            "body_format": self.body_format,
            "heuristic": self.heuristic,
            "tags": [{"type": t.type, "value": t.value} for t in self.tags],
            "subsections": [s.as_dict() for s in self.subsections],
        }


@dataclass
class ExtractedFile:
    """A file found inside another. Give either ``data`` or a ``path`` inside the request's workdir."""

    name: str
    description: str = ""
    data: bytes | None = None
    path: Path | None = None

    def read(self) -> bytes:
        if self.data is not None:
            return self.data
        if self.path is None:
            raise ValueError(f"extracted file {self.name!r} has neither data nor path")
        return self.path.read_bytes()


@dataclass
class Result:
    """What one service found in one file.

    ``file_info`` holds facts about the file itself (type, digests, entropy) that the
    dispatcher records on the file; ``anomalies`` are short flags such as
    ``"file_limit_reached"`` for odd situations that are findings, not crashes; ``data`` is
    the service's structured output for API consumers (an IoT device inventory, a timeline),
    JSON-serialisable. ``classification`` is a marking the service puts on what it found (say,
    a rule set whose matches are TLP:AMBER); the result never goes below the submission's
    marking, and the submission rises to the highest of its results' (None: nothing to add).
    """

    sections: list[Section] = field(default_factory=list)
    extracted: list[ExtractedFile] = field(default_factory=list)
    file_info: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    anomalies: list[str] = field(default_factory=list)
    drop_file: bool = False  # FILTER services: stop analysing this file (e.g. safelisted)
    classification: str | None = None

    def add_section(self, title: str, body: Any = None, body_format: BodyFormat = "text") -> Section:
        section = Section(title, body, body_format)
        self.sections.append(section)
        return section

    def add_extracted(
        self, name: str, description: str = "", *, data: bytes | None = None, path: Path | None = None
    ) -> None:
        self.extracted.append(ExtractedFile(name, description, data, path))

    def add_extracted_capped(self, limit: int, name: str, data: bytes, description: str = "") -> bool:
        """Add a child unless ``limit`` children are there already (then flag ``child_limit_reached``)."""
        if len(self.extracted) >= limit:
            if "child_limit_reached" not in self.anomalies:
                self.anomalies.append("child_limit_reached")
            return False
        self.add_extracted(name, description, data=data)
        return True

    def walk(self) -> Iterator[Section]:
        for section in self.sections:
            yield from section.walk()

    def tags(self) -> list[Tag]:
        seen: dict[Tag, None] = {}
        for section in self.walk():
            for tag in section.tags:
                seen.setdefault(tag)
        return list(seen)

    def heuristic_ids(self) -> list[str]:
        return [s.heuristic for s in self.walk() if s.heuristic]


@dataclass(frozen=True)
class FileRequest:
    """Everything a service may know about the file it analyses."""

    path: Path
    sha256: str
    name: str
    size: int
    file_type: str = "unknown"
    mime: str = "application/octet-stream"
    params: Mapping[str, Any] = field(default_factory=dict)
    depth: int = 0
    deep_scan: bool = False
    workdir: Path | None = None

    def read(self, limit: int | None = None) -> bytes:
        with self.path.open("rb") as handle:
            return handle.read() if limit is None else handle.read(limit)

    def read_capped(self, limit: int, result: Result) -> bytes:
        """At most ``limit`` bytes; a longer file is noted on ``result`` as ``file_truncated_to_limit``."""
        data = self.read(limit)
        if self.size > len(data):
            result.anomalies.append("file_truncated_to_limit")
        return data


class Service:
    """Base class of every analysis service; subclasses set the class attributes and ``execute``.

    ``accepts``/``rejects`` are regular expressions matched against the Assemblyline-style
    file type (``executable/windows/pe32``, ``archive/zip``, ``network/tcpdump``...).
    ``parameters`` declares every option with its default; callers override them through
    ``params.service_spec[<name>]``.
    """

    name: ClassVar[str] = ""
    version: ClassVar[str] = "1"
    stage: ClassVar[Stage] = Stage.CORE
    category: ClassVar[str] = "Static Analysis"
    accepts: ClassVar[str] = ".*"
    rejects: ClassVar[str] = r"empty"
    parameters: ClassVar[dict[str, Any]] = {}
    heuristics: ClassVar[tuple[Heuristic, ...]] = ()
    timeout: ClassVar[float] = 60.0
    memory_mb: ClassVar[int] = 1024
    default_enabled: ClassVar[bool] = True

    def accepts_type(self, file_type: str) -> bool:
        return bool(re.fullmatch(self.accepts, file_type)) and not re.fullmatch(self.rejects, file_type)

    def options(self, overrides: Mapping[str, Any] | None) -> dict[str, Any]:
        """The declared parameters with the caller's overrides for known keys applied."""
        merged = dict(self.parameters)
        for key, value in (overrides or {}).items():
            if key in merged:
                merged[key] = value
        return merged

    def execute(self, request: FileRequest) -> Result:
        raise NotImplementedError
