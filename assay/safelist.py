"""The safelist: known-good hashes and network indicators, managed by API and CLI.

A file whose md5, sha1 or sha256 is listed is not analysed further and scores as safe; a
listed network indicator is never tagged (domains also cover their subdomains). Imports of
large hash lists (an NSRL extract) are set-based and idempotent.
"""

from __future__ import annotations

import csv
import hashlib
import ipaddress
import re
import threading
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TextIO

from sqlalchemy import Engine, delete, func, or_, select
from sqlalchemy.orm import Session

from assay.db.models import SafelistEntry
from assay.db.session import session_scope
from assay.db.upsert import insert_ignore
from assay.services.lib.indicators import TAG_DOMAIN, TAG_EMAIL, TAG_IP, TAG_URI, is_safelisted

HASH_KINDS = {32: "md5", 40: "sha1", 64: "sha256"}
NETWORK_KINDS = (TAG_DOMAIN, TAG_IP, TAG_URI, TAG_EMAIL)
ALIASES = {"domain": TAG_DOMAIN, "ip": TAG_IP, "uri": TAG_URI, "url": TAG_URI, "email": TAG_EMAIL}
KINDS = (*HASH_KINDS.values(), *NETWORK_KINDS)
_HEX = re.compile(r"[0-9a-fA-F]+")
MAX_IMPORT_ROWS = 50_000_000


class SafelistError(ValueError):
    """A value or file that cannot be safelisted; the message says why."""


@dataclass(frozen=True)
class Entry:
    kind: str
    value: str


def classify(value: str, kind: str | None = None) -> Entry:
    """Normalise ``value``; guess its kind from its shape when none is given."""
    value = value.strip()
    if not value or len(value) > 2048:
        raise SafelistError("a safelist value is 1 to 2048 characters")
    if kind:
        kind = ALIASES.get(kind, kind)
        if kind not in KINDS:
            raise SafelistError(f"kind must be one of {', '.join(KINDS)} (or domain, ip, uri, email)")
    else:
        kind = _guess(value)
    return Entry(kind, _normalise(kind, value))


def _guess(value: str) -> str:
    if _HEX.fullmatch(value) and len(value) in HASH_KINDS:
        return HASH_KINDS[len(value)]
    if "://" in value:
        return TAG_URI
    if "@" in value:
        return TAG_EMAIL
    try:
        ipaddress.ip_address(value)
        return TAG_IP
    except ValueError:
        return TAG_DOMAIN


def _normalise(kind: str, value: str) -> str:
    if kind in HASH_KINDS.values():
        if not _HEX.fullmatch(value) or HASH_KINDS.get(len(value)) != kind:
            raise SafelistError(f"{value!r} is not an {kind} digest")
        return value.lower()
    if kind == TAG_IP:
        try:
            return str(ipaddress.ip_address(value))
        except ValueError:
            raise SafelistError(f"{value!r} is not an IP address") from None
    if kind in (TAG_DOMAIN, TAG_EMAIL):
        return value.lower().rstrip(".")
    return value


def add(session: Session, entries: Iterable[Entry], source: str = "", reason: str = "", user: str = "") -> int:
    """Add entries (existing ones are kept); returns how many were new."""
    rows = [
        {"kind": e.kind, "value": e.value, "source": source[:256], "reason": reason, "user": user}
        for e in {(e.kind, e.value): e for e in entries}.values()
    ]
    return len(insert_ignore(session, SafelistEntry.__table__, rows, returning="id"))


def remove(session: Session, entry: Entry) -> bool:
    return bool(
        session.execute(
            delete(SafelistEntry).where(SafelistEntry.kind == entry.kind, SafelistEntry.value == entry.value)
        ).rowcount
    )


def listing(session: Session, offset: int = 0, rows: int = 100, kind: str | None = None) -> dict[str, Any]:
    query = select(SafelistEntry)
    if kind:
        query = query.where(SafelistEntry.kind == ALIASES.get(kind, kind))
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    items = session.scalars(query.order_by(SafelistEntry.id).offset(offset).limit(rows)).all()
    return {
        "total": total,
        "offset": offset,
        "rows": len(items),
        "items": [
            {"id": e.id, "kind": e.kind, "value": e.value, "source": e.source, "reason": e.reason, "user": e.user}
            for e in items
        ],
    }


def import_csv(session: Session, text: TextIO, source: str, user: str = "", chunk: int = 5000) -> int:
    """Import every hash column of a CSV (an NSRL extract or any list with a header); returns rows added."""
    added = 0
    batch: list[Entry] = []
    for entry in _csv_hashes(text):
        batch.append(entry)
        if len(batch) >= chunk:
            added += add(session, batch, source, "imported", user)
            batch.clear()
    if batch:
        added += add(session, batch, source, "imported", user)
    return added


def _csv_hashes(text: TextIO) -> Iterator[Entry]:
    reader = csv.reader(text)
    header = next(reader, None)
    if header is None:
        return
    columns = _hash_columns(header)
    rows: Iterable[list[str]] = reader
    if not columns:  # no header: the first row is data
        columns = {i: HASH_KINDS[len(v.strip())] for i, v in enumerate(header) if _is_hash(v)}
        rows = _chain([header], reader)
    if not columns:
        raise SafelistError("no column of md5, sha1 or sha256 digests found in the CSV")
    for count, row in enumerate(rows):
        if count >= MAX_IMPORT_ROWS:
            raise SafelistError(f"the CSV has more than {MAX_IMPORT_ROWS} rows")
        for index, kind in columns.items():
            if index < len(row) and _is_hash(row[index]) and HASH_KINDS[len(row[index].strip())] == kind:
                yield Entry(kind, row[index].strip().lower())


def _chain(first: list[list[str]], rest: Iterable[list[str]]) -> Iterator[list[str]]:
    yield from first
    yield from rest


def _hash_columns(header: list[str]) -> dict[int, str]:
    names = {"md5": "md5", "sha1": "sha1", "sha-1": "sha1", "sha256": "sha256", "sha-256": "sha256"}
    return {i: names[h.strip().lower()] for i, h in enumerate(header) if h.strip().lower() in names}


def _is_hash(value: str) -> bool:
    value = value.strip()
    return len(value) in HASH_KINDS and bool(_HEX.fullmatch(value))


def match_file(session: Session, hashes: dict[str, str]) -> dict[str, str] | None:
    """The safelist entry covering a file with these digests, if any."""
    conditions = [
        (SafelistEntry.kind == kind) & (SafelistEntry.value == hashes[kind].lower())
        for kind in ("md5", "sha1", "sha256")
        if hashes.get(kind)
    ]
    if not conditions:
        return None
    entry = session.scalars(select(SafelistEntry).where(or_(*conditions)).limit(1)).first()
    if entry is None:
        return None
    return {"kind": entry.kind, "value": entry.value, "source": entry.source, "reason": entry.reason}


class NetworkSafelist:
    """The network part, re-read at most every ``ttl`` seconds per process (it is used for every file)."""

    def __init__(self, engine: Engine, ttl: float = 2.0) -> None:
        self.engine = engine
        self.ttl = ttl
        self._loaded: tuple[float, dict[str, list[str]]] = (0.0, {})
        self._digest = ""
        self._lock = threading.Lock()

    def values(self) -> dict[str, list[str]]:
        with self._lock:
            loaded_at, values = self._loaded
        if time.monotonic() - loaded_at < self.ttl:
            return values
        found: dict[str, list[str]] = defaultdict(list)
        with session_scope(self.engine, readonly=True) as session:
            rows = session.execute(
                select(SafelistEntry.kind, SafelistEntry.value).where(SafelistEntry.kind.in_(NETWORK_KINDS))
            )
            for kind, value in rows:
                found[kind].append(value)
        values = dict(found)
        digest = hashlib.md5(repr(sorted((k, sorted(v)) for k, v in values.items())).encode()).hexdigest()[:16]
        with self._lock:
            self._loaded = (time.monotonic(), values)
            self._digest = digest
        return values

    def digest(self) -> str:
        """Changes whenever the network safelist does."""
        self.values()
        with self._lock:
            return self._digest

    def covers(self, tag_type: str, value: str) -> bool:
        values = self.values()
        if not values:
            return False
        static = tag_type.replace("network.dynamic.", "network.static.")
        return is_safelisted(static, value, values)
