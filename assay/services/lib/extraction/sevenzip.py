"""7z reader (py7zr), including archives with encrypted content or encrypted headers.

py7zr decides output paths itself and refuses a whole archive when one name climbs out of
its directory, so every member is renamed to an opaque token before extraction and written
through a writer factory that maps the token back to the in-archive name. py7zr decodes
exactly the size a 7z header declares, so declared sizes are judged before extraction and
the sink's counters guard the rest.
"""

from __future__ import annotations

import lzma
import stat
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import IO

import py7zr
from py7zr.exceptions import ArchiveError, DecompressionBombError, PasswordRequired
from py7zr.io import Py7zIO, WriterFactory
from py7zr.py7zr import ArchiveFile

from assay.services.lib.extraction.limits import COUNT, TOTAL_SIZE, Extraction, LimitReached
from assay.services.lib.extraction.names import display_name
from assay.services.lib.extraction.sink import ChildFile, Sink

DECODE_ERRORS = (
    ArchiveError,
    PasswordRequired,
    lzma.LZMAError,
    zlib.error,
    EOFError,
    OSError,
    ValueError,
    KeyError,
    IndexError,
    TypeError,
    AttributeError,
    NotImplementedError,
    MemoryError,
)


class _Writer(Py7zIO):
    """A py7zr output that is one sink child; ``close`` (only called on success) commits it."""

    def __init__(self, child: ChildFile) -> None:
        self.child = child
        self.done = False

    def write(self, s: bytes | bytearray) -> int:
        return self.child.write(s)

    def read(self, size: int | None = None) -> bytes:
        return b""

    def seek(self, offset: int, whence: int = 0) -> int:
        return 0

    def seekable(self) -> bool:
        return False

    def flush(self) -> None:
        return None

    def size(self) -> int:
        return self.child.size

    def close(self) -> None:
        if not self.done:
            self.done = True
            self.child.commit()


class _Factory(WriterFactory):
    def __init__(self, sink: Sink, names: dict[str, str]) -> None:
        self.sink = sink
        self.names = names
        self.writers: list[_Writer] = []

    def create(self, filename: str) -> Py7zIO:
        name = self.names[Path(filename).name]
        writer = _Writer(self.sink.open(name, None))
        self.writers.append(writer)
        return writer

    def discard_unfinished(self) -> None:
        for writer in self.writers:
            if not writer.done:
                writer.done = True
                writer.child.discard()


def extract_7z(path: Path, sink: Sink, passwords: Sequence[str]) -> None:
    """Extract one level of the 7z at ``path`` into ``sink``, trying passwords if needed."""
    extraction = sink.extraction
    candidates = list(dict.fromkeys(passwords))
    with path.open("rb") as handle:
        archive, password = _open(handle, candidates, extraction)
        if archive is None:
            return
        targets = _plan(archive, sink)
        archive.close()
        if not targets:
            return
        if password is not None or not extraction.encrypted:
            _extract(handle, password, targets, sink)
            return
        for candidate in candidates:
            if _extract(handle, candidate, targets, sink):
                extraction.password = candidate
                return
        extraction.password_failed.extend(display_name(name) for name in targets.values())
        for name in targets.values():
            extraction.skip(display_name(name), "encrypted, no password worked")


def _open(
    handle: IO[bytes], candidates: list[str], extraction: Extraction
) -> tuple[py7zr.SevenZipFile | None, str | None]:
    """Open the archive, trying passwords only when its header is encrypted."""
    try:
        archive = py7zr.SevenZipFile(handle, password=None)
    except PasswordRequired:
        extraction.encrypted = True
    except DECODE_ERRORS as exc:
        extraction.error(f"unreadable 7z: {exc}")
        return None, None
    else:
        extraction.encrypted = archive.needs_password()
        return archive, None
    for password in candidates:
        handle.seek(0)
        try:
            archive = py7zr.SevenZipFile(handle, password=password)
        except DECODE_ERRORS:
            continue
        extraction.password = password
        return archive, password
    extraction.password_failed.append("(archive header)")
    extraction.skip("(whole archive)", "header encrypted, no password worked")
    return None, None


def special_kind(member: ArchiveFile) -> str | None:
    """What a member is when it is not a regular file; a Unix mode without a type counts as regular."""
    if member.is_symlink or member.is_junction:
        return "link"
    if member.is_socket:
        return "socket"
    if member.st_fmt not in (None, 0, stat.S_IFREG):
        return "special file"
    return None


def _plan(archive: py7zr.SevenZipFile, sink: Sink) -> dict[str, str]:
    """Choose the members to extract (token -> in-archive name), recording the rest."""
    extraction = sink.extraction
    files = list(archive.files)
    extraction.members = len(files)
    extraction.declared_size = sum(f.uncompressed or 0 for f in files)
    targets: dict[str, str] = {}
    try:
        sink.budget.check_declared_total(extraction.declared_size)
    except LimitReached as limit:
        extraction.hit(limit)
        return targets
    room = sink.budget.limits.max_extracted - sink.budget.children
    for index, member in enumerate(files):
        name = member.filename
        if member.is_directory:
            continue
        kind = special_kind(member)
        if kind:
            sink.note_name(name)
            extraction.skip(display_name(name), f"{kind} not extracted")
            continue
        try:
            sink.budget.check_declared(member.uncompressed or 0, None)
        except LimitReached as limit:
            extraction.hit(limit, display_name(name))
            continue
        if len(targets) >= room:
            extraction.hit(LimitReached(COUNT, f"{sink.budget.limits.max_extracted} files extracted"))
            break
        targets[f"m{index:08d}"] = name
    return targets


def _decoded_any(extraction: Extraction, before: int) -> bool:
    """Did this pass decode real content? Empty members come out even with a wrong password."""
    return any(c.path is not None and c.path.stat().st_size for c in extraction.children[before:])


def _extract(handle: IO[bytes], password: str | None, targets: dict[str, str], sink: Sink) -> bool:
    """One extraction pass; False when nothing came out and decoding failed (wrong password?)."""
    extraction = sink.extraction
    before = len(extraction.children)
    handle.seek(0)
    factory = _Factory(sink, {})
    limits = sink.budget.limits
    try:
        with py7zr.SevenZipFile(
            handle, password=password, max_extract_size=limits.max_total_size + limits.max_file_size
        ) as archive:
            tokens = {}
            for index, member in enumerate(archive.files):
                token = f"m{index:08d}"
                if token in targets:
                    member.file_properties()["filename"] = token
                    tokens[token] = targets[token]
            factory.names = tokens
            archive.extract(targets=list(tokens), factory=factory)
    except LimitReached as limit:
        factory.discard_unfinished()
        extraction.hit(limit)
        return True
    except DecompressionBombError as exc:
        factory.discard_unfinished()
        extraction.hit(LimitReached(TOTAL_SIZE, str(exc)))
        return True
    except DECODE_ERRORS as exc:
        factory.discard_unfinished()
        if extraction.encrypted and not _decoded_any(extraction, before):
            sink.rollback(before)
            return False
        extraction.error(f"7z decoding stopped: {exc}")
        return True
    factory.discard_unfinished()
    return True
