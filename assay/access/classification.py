"""Classification markings: parse, normalise, compare and combine them, as Assemblyline does.

A marking is a level, optionally followed by the groups it is released to::

    TLP:AMBER//REL TO GROUP A, GROUP B

Levels are ordered; a user sees an item when the item's level is at most the user's clearance
and, if the item names groups, the user is in at least one of them. Input is accepted in long
form, short form or by alias, in any case and with any spacing (``tlp:a // rel g1,g2``); output
is always the *canonical form*: the level's long name in upper case, then, when there are groups,
``//REL TO `` and the groups' long names, upper case, sorted and joined by ``", "``. Markings
are stored and compared as canonical text, so normalising once on the way in is enough.

Assemblyline's "required" tokens and subgroups are not supported: a marking naming one is
unknown, so it is refused rather than half understood.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple, TypeVar

MAX_MARKING_LENGTH = 512
"""Longer input is refused before any parsing, so hostile text costs nothing and is never cached."""

_CACHE_SIZE = 4096
_T = TypeVar("_T")
_REL = re.compile(r"REL(?: TO)?(?: (.*))?")
_FORBIDDEN_IN_NAMES = ("/", ",")


class UnknownMarking(ValueError):
    """A marking this engine cannot read; the message names what it accepts (an API answers 400)."""


class NoCommonGroup(ValueError):
    """The most restrictive combination of markings released to disjoint groups: nobody may see it."""


class BadClassificationConfig(ValueError):
    """A classification definition that cannot work (duplicate or malformed names)."""


@dataclass(frozen=True)
class LevelDef:
    """One level of a definition; its short name and aliases are accepted on input."""

    name: str
    short_name: str
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class GroupDef:
    """One group a marking may be released to (``REL TO``); the short name defaults to the name."""

    name: str
    short_name: str = ""
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class ClassificationConfig:
    """A classification definition as plain data, so it can come from any configuration source.

    ``levels`` go from the lowest to the highest. ``default`` is the marking of an item given
    without one (the lowest level if unset, Assemblyline's ``unrestricted``); ``restricted`` is
    the marking to assume when none can be known (the highest level if unset).
    """

    levels: tuple[LevelDef, ...]
    groups: tuple[GroupDef, ...] = ()
    default: str | None = None
    restricted: str | None = None


@dataclass(frozen=True)
class Clearance:
    """What a user may see: the highest level (a marking without groups) and the groups they are in."""

    level: str
    groups: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        # Any iterable is accepted but a frozenset is kept, so a clearance can key a cache.
        object.__setattr__(self, "groups", frozenset(self.groups))


class _Parsed(NamedTuple):
    level: int
    groups: frozenset[str]
    text: str


TLP_LEVELS = (
    LevelDef("TLP:CLEAR", "TLP:C", ("TLP:W", "TLP:WHITE")),
    LevelDef("TLP:GREEN", "TLP:G"),
    LevelDef("TLP:AMBER", "TLP:A"),
    LevelDef("TLP:AMBER+STRICT", "TLP:A+S"),
    LevelDef("TLP:RED", "TLP:R"),
)
"""TLP 2.0, lowest first; TLP 1.0's WHITE is read as CLEAR, as Assemblyline does."""


def _squash(text: str) -> str:
    """Upper case, one space between words: the form every token is looked up in."""
    return " ".join(text.upper().split())


def _shown(text: str) -> str:
    """The offending input as quoted in an error, cut short so an error never echoes a flood."""
    return repr(text if len(text) <= 64 else text[:64] + "...")


def _token_map(entries: Iterable[tuple[_T, Iterable[str]]], kind: str) -> dict[str, _T]:
    """Every accepted spelling -> what it stands for; a spelling claimed twice is a config error."""
    found: dict[str, _T] = {}
    for canonical, spellings in entries:
        for spelling in {_squash(s) for s in spellings}:
            if not spelling or any(c in spelling for c in _FORBIDDEN_IN_NAMES):
                raise BadClassificationConfig(f"{kind} name {spelling!r} is empty or holds '/' or ','")
            if found.setdefault(spelling, canonical) != canonical:
                raise BadClassificationConfig(f"{kind} name {spelling!r} is used twice")
    return found


class ClassificationEngine:
    """Markings for one classification definition; cheap enough to call on every request and row."""

    def __init__(self, config: ClassificationConfig) -> None:
        if not config.levels:
            raise BadClassificationConfig("a classification definition needs at least one level")
        self.levels: tuple[str, ...] = tuple(_squash(level.name) for level in config.levels)
        self.groups: tuple[str, ...] = tuple(_squash(group.name) for group in config.groups)
        self._level_tokens = _token_map(
            ((i, (lv.name, lv.short_name, *lv.aliases)) for i, lv in enumerate(config.levels)), "level"
        )
        self._group_tokens = _token_map(
            ((_squash(g.name), (g.name, g.short_name or g.name, *g.aliases)) for g in config.groups), "group"
        )
        self._accepted = self._describe(config)
        # Per-instance caches (not decorated methods), so an engine and its cache go away together.
        self._parse = functools.lru_cache(maxsize=_CACHE_SIZE)(self._parse_uncached)
        self._known_groups = functools.lru_cache(maxsize=_CACHE_SIZE)(self._known_groups_uncached)
        self.default = self._configured(config.default, self.levels[0], "default")
        self.restricted = self._configured(config.restricted, self.levels[-1], "restricted")

    @classmethod
    def tlp_default(cls, groups: Iterable[GroupDef] = (), default: str = "TLP:CLEAR") -> ClassificationEngine:
        """TLP 2.0 with the given REL TO groups; unmarked items are TLP:CLEAR unless told otherwise."""
        return cls(ClassificationConfig(levels=TLP_LEVELS, groups=tuple(groups), default=default))

    @property
    def unrestricted(self) -> str:
        """The lowest level: the marking everyone with any clearance may see."""
        return self.levels[0]

    def normalise(self, text: str) -> str:
        """The canonical form of ``text``; raises UnknownMarking if any part of it is not known."""
        return self._read(text).text

    def normalise_stored(self, text: str) -> str:
        """The canonical form of a marking read back from storage; one this configuration cannot
        read (written before the levels were changed) is taken as the most restrictive, so it
        hides rather than shares."""
        try:
            return self.normalise(text)
        except UnknownMarking:
            return self.restricted

    def level_index(self, marking: str) -> int:
        """The level's position, 0 for the lowest: store it beside the text to filter in SQL.

        Positions follow the configured order, so a stored index must be recomputed from the
        stored text if levels are inserted or reordered.
        """
        return self._read(marking).level

    def groups_of(self, marking: str) -> frozenset[str]:
        """The canonical names of the groups a marking is released to (empty: no group restriction)."""
        return self._read(marking).groups

    def is_accessible(self, user: Clearance, marking: str) -> bool:
        """Whether ``user`` may see an item marked ``marking``: level high enough, and a shared group."""
        item = self._read(marking)
        if item.level > self._clearance_level(user.level):
            return False
        return not item.groups or not item.groups.isdisjoint(self._known_groups(user.groups))

    def known_groups(self, user: Clearance) -> frozenset[str]:
        """A clearance's groups in canonical names, unknown ones left out: what SQL filters match.

        The same set ``is_accessible`` compares with, so a query and a Python check agree.
        """
        return self._known_groups(user.groups)

    def max_of(self, first: str, *others: str) -> str:
        """The most restrictive combination: the highest level, released only to groups all share.

        Markings without groups restrict nothing and are left out of the intersection, as in
        Assemblyline's ``max_classification``; if the others have no group in common, nobody
        could see the result, so NoCommonGroup is raised rather than a marking invented.
        """
        parsed = [self._read(m) for m in (first, *others)]
        restricting = [p.groups for p in parsed if p.groups]
        groups = frozenset.intersection(*restricting) if restricting else frozenset()
        if restricting and not groups:
            raise NoCommonGroup(f"no group is common to {', '.join(p.text for p in parsed)}: nobody could see it")
        return self._render(max(p.level for p in parsed), groups)

    def min_of(self, first: str, *others: str) -> str:
        """The least restrictive combination: the lowest level, released to every group named.

        Whoever could see any of the markings can see the result (Assemblyline's
        ``min_classification``): groups are united, and one marking without groups lifts the
        group restriction altogether.
        """
        parsed = [self._read(m) for m in (first, *others)]
        unrestricted = any(not p.groups for p in parsed)
        groups = frozenset() if unrestricted else frozenset.union(*(p.groups for p in parsed))
        return self._render(min(p.level for p in parsed), groups)

    def clearance(self, level: str, groups: Iterable[str] = ()) -> Clearance:
        """A validated clearance in canonical names, for storing a user's; unknown names raise."""
        canonical = self._render(self._clearance_level(level), frozenset())
        names = frozenset(self._group_named(_squash(g), g) for g in groups)
        return Clearance(canonical, names)

    def _read(self, text: str) -> _Parsed:
        """Parse through the cache, refusing non-text and overlong input before it reaches it."""
        if not isinstance(text, str):
            raise self._unknown(f"a marking is text, not {type(text).__name__}")
        if len(text) > MAX_MARKING_LENGTH:
            raise self._unknown(f"a marking is at most {MAX_MARKING_LENGTH} characters")
        return self._parse(text)

    def _parse_uncached(self, text: str) -> _Parsed:
        level_part, *rest = text.split("//")
        level = self._level_named(_squash(level_part), text)
        if not rest:
            return _Parsed(level, frozenset(), self._render(level, frozenset()))
        if len(rest) > 1:
            raise self._unknown(f"{_shown(text)} has more than one '//' part")
        groups = self._rel_to(_squash(rest[0]), text)
        return _Parsed(level, groups, self._render(level, groups))

    def _rel_to(self, part: str, text: str) -> frozenset[str]:
        """The groups of a ``REL TO A, B`` (or short ``REL A, B``) part."""
        match = _REL.fullmatch(part)
        if match is None:
            raise self._unknown(f"{_shown(text)}: unknown part {_shown(part)}")
        if match.group(1) is None:
            raise self._unknown(f"{_shown(text)}: REL TO names no group")
        return frozenset(self._group_named(name.strip(), text) for name in match.group(1).split(","))

    def _level_named(self, token: str, text: str) -> int:
        level = self._level_tokens.get(token)
        if level is None:
            raise self._unknown(f"{_shown(text)}: unknown level {_shown(token)}")
        return level

    def _group_named(self, token: str, text: str) -> str:
        group = self._group_tokens.get(token)
        if group is None:
            raise self._unknown(f"{_shown(text)}: unknown group {_shown(token)}")
        return group

    def _clearance_level(self, level: str) -> int:
        parsed = self._read(level)
        if parsed.groups:
            raise self._unknown(f"a clearance level names no groups (got {_shown(level)})")
        return parsed.level

    def _known_groups_uncached(self, names: frozenset[str]) -> frozenset[str]:
        """A user's groups in canonical names; names that are no classification group match nothing."""
        found = (self._group_tokens.get(_squash(name)) for name in names)
        return frozenset(name for name in found if name is not None)

    def _render(self, level: int, groups: frozenset[str]) -> str:
        if not groups:
            return self.levels[level]
        return f"{self.levels[level]}//REL TO {', '.join(sorted(groups))}"

    def _unknown(self, detail: str) -> UnknownMarking:
        return UnknownMarking(f"unknown classification: {detail}; {self._accepted}")

    def _configured(self, value: str | None, fallback: str, what: str) -> str:
        try:
            return self.normalise(fallback if value is None else value)
        except UnknownMarking as error:
            raise BadClassificationConfig(f"the {what} classification is not valid: {error}") from None

    @staticmethod
    def _describe(config: ClassificationConfig) -> str:
        """The accepted levels and groups, as every UnknownMarking message ends."""
        levels = ", ".join(_spellings(lv.name, (lv.short_name, *lv.aliases)) for lv in config.levels)
        if not config.groups:
            return f"accepted levels, lowest first: {levels}; no REL TO groups are configured"
        groups = ", ".join(_spellings(g.name, (g.short_name, *g.aliases)) for g in config.groups)
        return f"accepted levels, lowest first: {levels}; groups after '//REL TO ': {groups}"


def _spellings(name: str, others: Iterable[str]) -> str:
    """``NAME (SHORT, ALIAS)`` for an error message; spellings equal to the name are left out."""
    canonical = _squash(name)
    extra = list(dict.fromkeys(_squash(o) for o in others if o and _squash(o) != canonical))
    return f"{canonical} ({', '.join(extra)})" if extra else canonical
