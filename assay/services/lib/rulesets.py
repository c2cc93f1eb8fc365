"""YARA rule sets kept as files in one directory: validate, store, compile, cache, score.

An analyst adds or removes a named rule set while workers keep running, so nothing here is
loaded once at import: :class:`RuleCache` looks at the directory for every file it is asked
about, and recompiles only when the set of ``(name, sha256 of source)`` pairs has changed.
Writes go through a temporary file and a rename, after the source compiled on its own, so a
worker never sees half a file or a set that cannot compile. ``include`` is disabled: a rule
file must not read anything outside its own text.

Example::

    add_rule_set(rules_dir, "eicar", 'rule eicar { strings: $a = "EICAR" condition: $a }')
    loaded = DEFAULT_CACHE.load(rules_dir)
    matches = loaded.rules.match(data=b"...EICAR...") if loaded.rules else []
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yara

BUNDLED_RULES_DIR = Path(__file__).resolve().parent / "rules"


def seed_directory(directory: Path) -> Path:
    """On first use, start a rules directory with the bundled rule sets (admins may remove them)."""
    if not directory.exists():
        directory.mkdir(parents=True, exist_ok=True)
        for rule_file in sorted(BUNDLED_RULES_DIR.glob("*.yar")):
            shutil.copyfile(rule_file, directory / rule_file.name)
    return directory
RULE_SUFFIXES = (".yar", ".yara")
MAX_RULE_FILE_BYTES = 8 << 20
MAX_CACHED_RULE_SETS = 8

SEVERITY_SCORES: dict[str, int] = {"info": 0, "low": 100, "medium": 300, "high": 700, "critical": 1000}
DEFAULT_SEVERITY = "low"
NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9_]{0,63}$"
_NAME_RE = re.compile(NAME_PATTERN)


class RuleSetError(ValueError):
    """A rule set was refused: bad name, bad source, or a clash with an existing set."""


@dataclass(frozen=True)
class RuleSetInfo:
    """One rule file of a directory: its namespace name, path and content digest."""

    name: str
    path: Path
    sha256: str
    size: int


@dataclass(frozen=True)
class LoadedRules:
    """The compiled rules of one directory state, plus the files that failed to compile."""

    key: frozenset[tuple[str, str]]
    rules: yara.Rules | None
    sets: tuple[RuleSetInfo, ...]
    errors: tuple[str, ...]


def rule_score(meta: Mapping[str, Any]) -> int:
    """A rule's score from its meta: ``score`` (int) wins, then ``severity``, else the default."""
    score = meta.get("score")
    if isinstance(score, bool):
        score = None
    if isinstance(score, str) and score.strip().lstrip("-").isdigit():
        score = int(score)
    if isinstance(score, int):
        return max(0, min(score, SEVERITY_SCORES["critical"]))
    severity = str(meta.get("severity", "")).strip().lower()
    return SEVERITY_SCORES.get(severity, SEVERITY_SCORES[DEFAULT_SEVERITY])


def severity_band(score: int) -> str:
    """The highest severity band whose score ``score`` reaches (``info`` below ``low``)."""
    band = "info"
    for name, floor in sorted(SEVERITY_SCORES.items(), key=lambda item: item[1]):
        if score >= floor:
            band = name
    return band


def valid_name(name: str) -> bool:
    """Rule set names become YARA namespaces and tag prefixes: an identifier, at most 64 chars."""
    return bool(_NAME_RE.fullmatch(name))


def _namespace_for(path: Path) -> str:
    stem = re.sub(r"[^A-Za-z0-9_]", "_", path.stem)
    return stem if stem[:1].isalpha() else f"r_{stem}"


def compile_sources(sources: Mapping[str, str]) -> yara.Rules:
    """Compile ``{namespace: source}`` with includes disabled; :class:`RuleSetError` on failure."""
    try:
        return yara.compile(sources=dict(sources), includes=False)
    except yara.Error as exc:
        raise RuleSetError(str(exc)) from exc


def validate_source(source: str, name: str = "default") -> list[str]:
    """The rule identifiers ``source`` defines, or :class:`RuleSetError` if it does not compile."""
    rules = compile_sources({name: source})
    return [rule.identifier for rule in rules]


def _rule_files(directory: Path) -> list[Path]:
    try:
        entries = sorted(directory.iterdir())
    except OSError:
        return []
    return [
        entry
        for entry in entries
        if entry.suffix.lower() in RULE_SUFFIXES and not entry.name.startswith(".") and entry.is_file()
    ]


def _existing(directory: Path, name: str) -> list[Path]:
    return [path for path in _rule_files(directory) if _namespace_for(path) == name]


def list_rule_sets(directory: Path) -> list[RuleSetInfo]:
    """Every rule file in ``directory`` (not recursive), sorted by file name."""
    found = []
    for path in _rule_files(directory):
        try:
            data = path.read_bytes()
        except OSError:
            continue
        found.append(RuleSetInfo(_namespace_for(path), path, hashlib.sha256(data).hexdigest(), len(data)))
    return found


def add_rule_set(directory: Path, name: str, source: str, *, replace: bool = False) -> RuleSetInfo:
    """Store ``source`` as ``<directory>/<name>.yar`` once it compiles on its own.

    The file appears atomically (temporary file in the same directory, then rename). An
    existing set of that name is refused unless ``replace`` is true.
    """
    if not valid_name(name):
        raise RuleSetError(f"invalid rule set name {name!r}: use letters, digits and _ (max 64)")
    if len(source.encode("utf-8")) > MAX_RULE_FILE_BYTES:
        raise RuleSetError(f"rule set {name!r} is larger than {MAX_RULE_FILE_BYTES} bytes")
    validate_source(source, name)
    directory.mkdir(parents=True, exist_ok=True)
    existing = _existing(directory, name)
    if existing and not replace:
        raise RuleSetError(f"rule set {name!r} already exists")
    target = directory / f"{name}.yar"
    handle, temp_name = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(source)
        os.replace(temp_name, target)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
    for other in existing:
        if other != target:
            other.unlink(missing_ok=True)
    data = source.encode("utf-8")
    return RuleSetInfo(name, target, hashlib.sha256(data).hexdigest(), len(data))


def remove_rule_set(directory: Path, name: str) -> bool:
    """Delete the rule set ``name``; False if there was none."""
    if not valid_name(name):
        raise RuleSetError(f"invalid rule set name {name!r}")
    existing = _existing(directory, name)
    for path in existing:
        path.unlink(missing_ok=True)
    return bool(existing)


@dataclass(frozen=True)
class _Source:
    info: RuleSetInfo
    text: str | None
    error: str | None


class RuleCache:
    """Compiled rules per directory state, keyed by the set of ``(name, sha256)`` pairs.

    File digests are remembered per ``(path, mtime, size, inode)`` so an unchanged directory
    costs one ``stat`` per file; compiled rule sets are kept for the last
    ``max_entries`` distinct states. Safe to share between threads.
    """

    def __init__(self, max_entries: int = MAX_CACHED_RULE_SETS) -> None:
        self._max_entries = max_entries
        self._lock = threading.Lock()
        self._compiled: OrderedDict[frozenset[tuple[str, str]], LoadedRules] = OrderedDict()
        self._digests: dict[Path, tuple[tuple[int, int, int], _Source]] = {}

    def load(self, directory: Path) -> LoadedRules:
        """The rules of ``directory`` as it is now (compiled at most once per content)."""
        sources = self._snapshot(Path(directory))
        key = frozenset((s.info.name, s.info.sha256) for s in sources)
        with self._lock:
            cached = self._compiled.get(key)
            if cached is not None:
                self._compiled.move_to_end(key)
        if cached is not None:
            # Same content, maybe another directory: report this directory's files.
            names = {info.name for info in cached.sets}
            current = tuple(s.info for s in sources if s.info.name in names and s.text is not None)
            return replace(cached, sets=current) if current != cached.sets else cached
        loaded = _compile_snapshot(key, sources)
        with self._lock:
            self._compiled[key] = loaded
            while len(self._compiled) > self._max_entries:
                self._compiled.popitem(last=False)
        return loaded

    def _snapshot(self, directory: Path) -> list[_Source]:
        sources: list[_Source] = []
        listed = _rule_files(directory)
        present = set(listed)
        with self._lock:
            for gone in [p for p in self._digests if p.parent == directory and p not in present]:
                del self._digests[gone]
        for path in listed:
            try:
                stat = path.stat()
            except OSError:
                continue
            stamp = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
            with self._lock:
                remembered = self._digests.get(path)
            if remembered is None or remembered[0] != stamp:
                remembered = (stamp, _read_source(path))
                with self._lock:
                    self._digests[path] = remembered
            sources.append(remembered[1])
        return sources


def _read_source(path: Path) -> _Source:
    name = _namespace_for(path)
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_RULE_FILE_BYTES + 1)
    except OSError as exc:
        return _Source(RuleSetInfo(name, path, "", 0), None, f"{path.name}: unreadable ({exc.strerror})")
    info = RuleSetInfo(name, path, hashlib.sha256(data).hexdigest(), len(data))
    if len(data) > MAX_RULE_FILE_BYTES:
        return _Source(info, None, f"{path.name}: larger than {MAX_RULE_FILE_BYTES} bytes")
    try:
        return _Source(info, data.decode("utf-8"), None)
    except UnicodeDecodeError:
        return _Source(info, None, f"{path.name}: not UTF-8 text")


def _compile_snapshot(key: frozenset[tuple[str, str]], sources: list[_Source]) -> LoadedRules:
    errors = [s.error for s in sources if s.error]
    usable: dict[str, _Source] = {}
    for source in sources:
        if source.text is None:
            continue
        if source.info.name in usable:
            errors.append(f"{source.info.path.name}: rule set name {source.info.name!r} is used twice")
            continue
        usable[source.info.name] = source
    texts = {name: s.text or "" for name, s in usable.items()}
    try:
        rules = compile_sources(texts) if texts else None
    except RuleSetError:
        rules, bad = _compile_good_ones(texts)
        errors.extend(bad)
        usable = {name: s for name, s in usable.items() if not any(e.startswith(f"{name}:") for e in bad)}
    sets = tuple(s.info for s in usable.values()) if rules is not None else ()
    return LoadedRules(key, rules, sets, tuple(errors))


def _compile_good_ones(texts: dict[str, str]) -> tuple[yara.Rules | None, list[str]]:
    """Find the sets that fail alone, then compile the rest together."""
    good: dict[str, str] = {}
    bad: list[str] = []
    for name, text in texts.items():
        try:
            compile_sources({name: text})
        except RuleSetError as exc:
            bad.append(f"{name}: {exc}")
        else:
            good[name] = text
    if not good:
        return None, bad
    try:
        return compile_sources(good), bad
    except RuleSetError as exc:
        return None, [*bad, f"rule sets do not compile together: {exc}"]


DEFAULT_CACHE = RuleCache()
