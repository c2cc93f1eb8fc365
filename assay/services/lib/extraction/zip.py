"""ZIP reader: stored, deflate, bzip2 and LZMA members, ZipCrypto and WinZip AES encryption.

pyzipper reads both encryption schemes. Sizes in the central directory are checked before any
byte is decoded, overlapping entries (the "non-recursive" zip bomb) are refused outright, and
every member is streamed through the sink so lying headers are caught by the byte counters.
"""

from __future__ import annotations

import itertools
import lzma
import stat
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path

import pyzipper

from assay.services.lib.extraction.limits import FILE_SIZE, RATIO, LimitReached
from assay.services.lib.extraction.names import display_name
from assay.services.lib.extraction.sink import Sink

LOCAL_HEADER = 30
UNIX_SYSTEM = 3
Archive = pyzipper.AESZipFile
DECODE_ERRORS = (
    zipfile.BadZipFile,
    zlib.error,
    lzma.LZMAError,
    EOFError,
    OSError,
    ValueError,
    NotImplementedError,
)
_SPECIAL = (
    (stat.S_ISLNK, "symbolic link"),
    (stat.S_ISCHR, "character device"),
    (stat.S_ISBLK, "block device"),
    (stat.S_ISFIFO, "FIFO"),
    (stat.S_ISSOCK, "socket"),
)


def extract_zip(path: Path, sink: Sink, passwords: Sequence[str]) -> None:
    """Extract one level of the zip at ``path`` into ``sink``."""
    extraction = sink.extraction
    try:
        archive = pyzipper.AESZipFile(path)
    except (*DECODE_ERRORS, KeyError, IndexError) as exc:
        extraction.error(f"unreadable zip: {exc}")
        return
    with archive:
        infos = archive.infolist()
        extraction.members = len(infos)
        extraction.declared_size = sum(info.file_size for info in infos)
        try:
            _check_layout(infos, sink)
            for info in infos:
                _member(archive, info, sink, passwords)
        except LimitReached as limit:
            extraction.hit(limit)


def _check_layout(infos: list[zipfile.ZipInfo], sink: Sink) -> None:
    """Refuse archives whose entries share bytes or whose declared sizes are a bomb."""
    ordered = sorted(infos, key=lambda info: info.header_offset)
    for first, second in itertools.pairwise(ordered):
        if second.header_offset < first.header_offset + LOCAL_HEADER + first.compress_size:
            raise LimitReached(RATIO, f"entries overlap ({display_name(second.filename)} inside another)")
    sink.budget.check_declared_total(sum(info.file_size for info in infos))


def special_kind(info: zipfile.ZipInfo) -> str | None:
    """What a Unix-made entry is when it is not a regular file (links, devices...)."""
    mode = info.external_attr >> 16
    if info.create_system != UNIX_SYSTEM or not mode:
        return None
    return next((label for test, label in _SPECIAL if test(mode)), None)


def _member(archive: Archive, info: zipfile.ZipInfo, sink: Sink, passwords: Sequence[str]) -> None:
    extraction = sink.extraction
    name = info.filename
    if info.is_dir():
        return
    kind = special_kind(info)
    if kind:
        sink.note_name(name)
        if kind == "symbolic link" and not info.flag_bits & 0x1:
            sink.note_link(name, _link_target(archive, info))
        extraction.skip(display_name(name), f"{kind} not extracted")
        return
    try:
        sink.budget.check_declared(info.file_size, info.compress_size)
    except LimitReached as limit:
        extraction.hit(limit, display_name(name))
        if limit.kind != FILE_SIZE:
            raise
        return
    if info.flag_bits & 0x1:
        _encrypted(archive, info, sink, passwords)
        return
    try:
        with archive.open(info) as handle:
            sink.copy(name, handle, info.compress_size, expected=info.file_size)
    except (*DECODE_ERRORS, RuntimeError) as exc:
        extraction.error(f"{display_name(name)}: {exc}")


def _link_target(archive: Archive, info: zipfile.ZipInfo) -> str:
    """A zip symlink stores its target as the member's content."""
    try:
        with archive.open(info) as handle:
            return handle.read(4096).decode("utf-8", "replace")
    except (*DECODE_ERRORS, RuntimeError):
        return ""


def _encrypted(archive: Archive, info: zipfile.ZipInfo, sink: Sink, passwords: Sequence[str]) -> None:
    """Try the password that worked before, then every candidate, on one encrypted member."""
    extraction = sink.extraction
    extraction.encrypted = True
    known = [extraction.password] if extraction.password is not None else []
    last_error = "no password given"
    for password in dict.fromkeys([*known, *passwords]):
        try:
            with archive.open(info, pwd=password.encode("utf-8")) as handle:
                sink.copy(info.filename, handle, info.compress_size, expected=info.file_size)
        except (*DECODE_ERRORS, RuntimeError) as exc:
            last_error = str(exc)
            continue
        extraction.password = password
        return
    extraction.password_failed.append(display_name(info.filename))
    extraction.skip(display_name(info.filename), f"encrypted, no password worked ({last_error})")
