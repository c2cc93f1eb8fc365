"""Who may read which row: one SQL condition that every query returning classified rows adds.

A classified row stores its marking three ways, written together by :func:`stored_marking`:
the canonical text (what answers show), ``classification_level`` (the level's index, so SQL
compares numbers) and ``classification_groups``, its REL TO groups as ``,G1,G2,`` (empty when
the marking names none), so SQL tests a reader's group with one ``LIKE '%,G1,%'`` per group the
reader is in. Group names never hold ``,`` (the engine refuses such definitions), so the commas
delimit exactly.

:func:`visible_to` is the SQL twin of :meth:`ClassificationEngine.is_accessible`: a row is
visible when its level is at most the reader's and it names no group or one of the reader's.
A row filtered out is indistinguishable from a row that does not exist, which is the point:
callers answer 404 or leave it out of lists and counts, so existence does not leak.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, and_, false, or_, true

from assay.access.classification import ClassificationEngine, Clearance, UnknownMarking

_SEPARATOR = ","


class StoredMarking(NamedTuple):
    """A marking as the three columns of a classified row hold it."""

    text: str
    level: int
    groups: str

    def columns(self) -> dict[str, Any]:
        """Column name -> value, to merge into a row being written."""
        return {"classification": self.text, "classification_level": self.level, "classification_groups": self.groups}


class _Grant(NamedTuple):
    """What a clearance lets through, precomputed once per clearance: level index and group patterns."""

    level: int  # -1: an unreadable clearance, which sees nothing
    patterns: tuple[str, ...]
    top_level: bool  # cleared for the highest level: no row is above it
    every_group: bool  # in every group the configuration knows: no REL TO excludes it


def stored_groups(groups: Iterable[str]) -> str:
    """``{"G2", "G1"}`` -> ``",G1,G2,"``; no groups -> ``""`` (no restriction)."""
    names = sorted(groups)
    return f"{_SEPARATOR}{_SEPARATOR.join(names)}{_SEPARATOR}" if names else ""


@functools.lru_cache(maxsize=4096)
def stored_marking(engine: ClassificationEngine, marking: str) -> StoredMarking:
    """The columns of ``marking`` in canonical form (raises UnknownMarking); cached, as rows repeat markings."""
    text = engine.normalise(marking)
    return StoredMarking(text, engine.level_index(text), stored_groups(engine.groups_of(text)))


def _like_literal(name: str) -> str:
    return name.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


@functools.lru_cache(maxsize=1024)
def _grant(engine: ClassificationEngine, clearance: Clearance) -> _Grant:
    try:
        level = engine.level_index(clearance.level)
    except UnknownMarking:  # a clearance this configuration cannot read grants nothing
        return _Grant(-1, (), top_level=False, every_group=False)
    groups = sorted(engine.known_groups(clearance))
    patterns = tuple(f"%{_SEPARATOR}{_like_literal(g)}{_SEPARATOR}%" for g in groups)
    return _Grant(level, patterns, level == len(engine.levels) - 1, set(groups) >= set(engine.groups))


def visible_to(engine: ClassificationEngine, clearance: Clearance, marked: Any) -> ColumnElement[bool]:
    """The condition "``clearance`` may see this row" on ``marked`` (a mapped class or a Table).

    Built once per clearance and table and then shared (SQL expressions are immutable, so every
    statement and thread may hold the same one): building it costs more than the query it
    filters on a small table. Its values are bound parameters, so the statements using it stay
    in SQLAlchemy's compiled cache whatever the reader.
    """
    return _condition(engine, clearance, marked)


@functools.lru_cache(maxsize=4096)
def _condition(engine: ClassificationEngine, clearance: Clearance, marked: Any) -> ColumnElement[bool]:
    grant = _grant(engine, clearance)
    if grant.level < 0:
        return false()
    columns = getattr(marked, "c", marked)
    parts: list[ColumnElement[bool]] = []
    if not grant.top_level:  # a test no row can fail costs a search as much as one that filters
        parts.append(columns.classification_level <= grant.level)
    if not grant.every_group:
        groups = columns.classification_groups
        parts.append(or_(groups == "", *(groups.like(pattern, escape="\\") for pattern in grant.patterns)))
    return and_(*parts) if parts else true()


@dataclass(frozen=True)
class Reader:
    """Whose eyes a query reads with: the configuration's engine and the caller's clearance."""

    engine: ClassificationEngine
    clearance: Clearance

    @classmethod
    def cleared_for_all(cls, engine: ClassificationEngine) -> Reader:
        """A reader cleared for the highest level and every group (the server's own reads, tests)."""
        return cls(engine, engine.clearance(engine.levels[-1], engine.groups))

    def sees(self, marked: Any) -> ColumnElement[bool]:
        """:func:`visible_to` for this reader."""
        return visible_to(self.engine, self.clearance, marked)
