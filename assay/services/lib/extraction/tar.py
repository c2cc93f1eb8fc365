"""Tar reader, in stream mode so plain and compressed tars are read in one forward pass.

Only regular files are extracted. Links, devices and FIFOs are recorded and skipped: a link
in an archive is how an extractor is tricked into writing outside its directory.
"""

from __future__ import annotations

import lzma
import tarfile
import zlib

from assay.services.lib.extraction.limits import FILE_SIZE, LimitReached
from assay.services.lib.extraction.names import display_name
from assay.services.lib.extraction.sink import Readable, Sink

DECODE_ERRORS = (tarfile.TarError, zlib.error, lzma.LZMAError, EOFError, OSError, ValueError, UnicodeError)
RECORD = 512


def _kind(member: tarfile.TarInfo) -> str:
    if member.issym():
        return f"symbolic link to {display_name(member.linkname)}"
    if member.islnk():
        return f"hard link to {display_name(member.linkname)}"
    if member.ischr() or member.isblk():
        return "device file"
    if member.isfifo():
        return "FIFO"
    return f"special member (type {member.type!r})"


def looks_like_tar(head: bytes) -> bool:
    """True if ``head`` opens with a tar header whose checksum is right."""
    if len(head) < RECORD:
        return False
    try:
        tarfile.TarInfo.frombuf(head[:RECORD], "utf-8", "surrogateescape")
    except (tarfile.HeaderError, ValueError):
        return False
    return True


def extract_tar(stream: Readable, sink: Sink) -> None:
    """Extract one level of the tar read from ``stream`` into ``sink``."""
    extraction = sink.extraction
    try:
        with tarfile.open(fileobj=stream, mode="r|", encoding="utf-8", errors="surrogateescape") as archive:
            for member in archive:
                extraction.members += 1
                extraction.declared_size += member.size if member.isreg() else 0
                _member(archive, member, sink)
    except LimitReached as limit:
        extraction.hit(limit)
    except DECODE_ERRORS as exc:
        extraction.error(f"tar reading stopped: {exc}")


def _member(archive: tarfile.TarFile, member: tarfile.TarInfo, sink: Sink) -> None:
    extraction = sink.extraction
    if member.isdir():
        return
    if not member.isreg():
        sink.note_name(member.name)
        if member.issym() or member.islnk():
            sink.note_link(member.name, member.linkname)
        extraction.skip(display_name(member.name), f"{_kind(member)} not extracted")
        return
    try:
        sink.budget.check_declared(member.size, None)
    except LimitReached as limit:
        extraction.hit(limit, display_name(member.name))
        if limit.kind != FILE_SIZE:
            raise
        return
    handle = archive.extractfile(member)
    if handle is not None:
        sink.copy(member.name, handle, expected=member.size)
