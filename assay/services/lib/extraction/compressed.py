"""Single-stream compressors: gzip, bzip2, xz and zstd.

The decompressed stream becomes one child, named from the gzip FNAME header or from the
original name without its suffix. When the stream opens with a tar header the tar members
are extracted directly (``tar.gz`` and friends are one format, not two levels). Every byte
that leaves a decompressor is counted, so a bomb is stopped at ``max_ratio`` times the
archive size or at the first size limit, whichever comes first, whatever the headers say.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import struct
import zlib
from contextlib import AbstractContextManager
from pathlib import Path
from typing import IO, Any

import zstandard

from assay.services.lib.extraction.limits import Budget, LimitReached
from assay.services.lib.extraction.names import strip_suffix
from assay.services.lib.extraction.sink import CHUNK, Sink
from assay.services.lib.extraction.tar import RECORD, extract_tar, looks_like_tar

DECODE_ERRORS = (OSError, EOFError, zlib.error, lzma.LZMAError, zstandard.ZstdError, ValueError)
SUFFIXES = {
    "gzip": {".tgz": ".tar", ".taz": ".tar", ".gz": "", ".gzip": "", "-gz": "", ".z": ""},
    "bzip2": {".tbz2": ".tar", ".tbz": ".tar", ".bz2": "", ".bz": "", ".bzip2": ""},
    "xz": {".txz": ".tar", ".xz": ""},
    "zstd": {".tzst": ".tar", ".zst": "", ".zstd": ""},
}
TAR_FORMATS = {"gzip": "tar.gz", "bzip2": "tar.bz2", "xz": "tar.xz", "zstd": "tar.zst"}
GZIP_FNAME = 0x08


class Counted:
    """A decompressed stream that reports every byte it yields to the budget."""

    def __init__(self, inner: IO[bytes], raw: IO[bytes], budget: Budget) -> None:
        self.inner = inner
        self.raw = raw
        self.budget = budget

    def read(self, size: int = -1, /) -> bytes:
        # read1 returns what one decoder step produced, so a truncated stream loses no output
        data = self.inner.read1(CHUNK if size is None or size < 0 else min(size, CHUNK))
        self.budget.on_decoded(len(data), self.raw.tell())
        return data


def open_stream(fmt: str, raw: IO[bytes]) -> AbstractContextManager[Any]:
    """A file-like decompressor over ``raw`` whose ``read(n)`` never yields more than n bytes."""
    if fmt == "gzip":
        return gzip.GzipFile(fileobj=raw, mode="rb")
    if fmt == "bzip2":
        return bz2.BZ2File(raw)
    if fmt == "xz":
        return lzma.LZMAFile(raw)
    return zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)


def gzip_name(path: Path) -> str | None:
    """The original file name stored in a gzip header (FNAME), if any."""
    with path.open("rb") as handle:
        header = handle.read(10)
        if len(header) < 10 or header[:2] != b"\x1f\x8b" or not header[3] & GZIP_FNAME:
            return None
        if header[3] & 0x04:
            (extra,) = struct.unpack("<H", handle.read(2).ljust(2, b"\0"))
            handle.seek(extra, 1)
        name = bytearray()
        while (byte := handle.read(1)) not in (b"", b"\0") and len(name) < 1024:
            name += byte
    text = bytes(name).decode("latin-1").replace("\\", "/").rsplit("/", 1)[-1]
    return text or None


def declared_size(fmt: str, path: Path) -> int | None:
    """The size a zstd frame header claims, for the listing only.

    Declared stream sizes are never used to judge a bomb: the gzip trailer holds the size
    modulo 4 GiB and is garbage in a truncated file, and the byte counter is exact anyway.
    """
    if fmt != "zstd":
        return None
    with path.open("rb") as handle:
        try:
            size = zstandard.frame_content_size(handle.read(18))
        except zstandard.ZstdError:
            return None
    return size if size >= 0 else None


def _head(fmt: str, path: Path) -> bytes:
    with path.open("rb") as raw, open_stream(fmt, raw) as stream:
        try:
            return stream.read(RECORD)
        except DECODE_ERRORS:
            return b""


def extract_compressed(path: Path, fmt: str, name: str, sink: Sink) -> None:
    """Decompress the single stream at ``path``: a tar is extracted, anything else is one child."""
    extraction = sink.extraction
    extraction.members = 1
    size = declared_size(fmt, path)
    try:
        extraction.declared_size = size or 0
        is_tar = looks_like_tar(_head(fmt, path))
        with path.open("rb") as raw, open_stream(fmt, raw) as stream:
            counted = Counted(stream, raw, sink.budget)
            if is_tar:
                sink.fmt = extraction.format = TAR_FORMATS[fmt]
                extraction.members = 0
                extract_tar(counted, sink)
            else:
                child_name = (gzip_name(path) if fmt == "gzip" else None) or strip_suffix(name, SUFFIXES[fmt])
                sink.copy(child_name, counted, keep_partial=True)
    except LimitReached as limit:
        extraction.hit(limit, None)
    except DECODE_ERRORS as exc:
        extraction.error(f"{fmt} stream stopped: {exc}")
