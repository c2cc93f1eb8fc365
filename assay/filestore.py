"""Content-addressed file store: blobs kept under their sha256, written once, shared by all.

The layout (``ab/cd/abcd...``) is a plain directory, so several machines can share it over a
network file system. Writes go to a temporary name and are renamed into place, so a reader
never sees half a file and a crash leaves at most a stray temporary.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import os
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

_SHA256 = re.compile(r"[0-9a-f]{64}")
CHUNK = 1 << 20


class FileTooLarge(ValueError):
    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"File too large ({size} > {limit})")
        self.size = size
        self.limit = limit


@dataclass(frozen=True)
class Stored:
    sha256: str
    md5: str
    sha1: str
    size: int


class FileStore:
    """Blobs by sha256 under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._tmp = self.root / "tmp"
        self._tmp.mkdir(exist_ok=True)
        self._prefix = secrets.token_hex(8)  # unique among the machines sharing the directory
        self._serial = itertools.count()

    def path(self, sha256: str) -> Path:
        if not _SHA256.fullmatch(sha256):
            raise ValueError(f"not a sha256: {sha256!r}")
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def exists(self, sha256: str) -> bool:
        try:
            return self.path(sha256).is_file()
        except ValueError:
            return False

    def put_bytes(self, data: bytes, max_size: int | None = None) -> Stored:
        """Store bytes already in memory: hashed first, so a blob already stored is not rewritten."""
        if max_size is not None and len(data) > max_size:
            raise FileTooLarge(len(data), max_size)
        stored = Stored(
            hashlib.sha256(data).hexdigest(), hashlib.md5(data).hexdigest(), hashlib.sha1(data).hexdigest(), len(data)
        )
        target = self.path(stored.sha256)
        if not target.exists():
            fd, tmp_name = self._temporary()
            try:
                with os.fdopen(fd, "wb") as out:
                    out.write(data)
                self._move_into_place(tmp_name, target)
            except BaseException:
                _discard(tmp_name)
                raise
        return stored

    def put_stream(self, stream: BinaryIO, max_size: int | None = None) -> Stored:
        return self.put_chunks(iter(lambda: stream.read(CHUNK), b""), max_size)

    def put_chunks(self, chunks: Iterable[bytes], max_size: int | None = None) -> Stored:
        """Hash while writing; refuse (and delete) once ``max_size`` is passed."""
        md5, sha1, sha256 = hashlib.md5(), hashlib.sha1(), hashlib.sha256()
        size = 0
        fd, tmp_name = self._temporary()
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in chunks:
                    size += len(chunk)
                    if max_size is not None and size > max_size:
                        raise FileTooLarge(size, max_size)
                    md5.update(chunk)
                    sha1.update(chunk)
                    sha256.update(chunk)
                    out.write(chunk)
            stored = Stored(sha256.hexdigest(), md5.hexdigest(), sha1.hexdigest(), size)
            target = self.path(stored.sha256)
            if target.exists():
                os.unlink(tmp_name)
            else:
                self._move_into_place(tmp_name, target)
            return stored
        except BaseException:
            _discard(tmp_name)
            raise

    def _temporary(self) -> tuple[int, str]:
        """A new file under ``tmp/``: this store's random prefix and a counter (cheaper than mkstemp)."""
        name = str(self._tmp / f"{self._prefix}.{next(self._serial)}")
        return os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), name

    def _move_into_place(self, tmp_name: str, target: Path) -> None:
        try:
            os.replace(tmp_name, target)
        except FileNotFoundError:  # the first blob of its directory
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp_name, target)

    def describe(self, sha256: str) -> Stored:
        """Digests and size of a stored blob (read, not rewritten)."""
        md5, sha1 = hashlib.md5(), hashlib.sha1()
        size = 0
        with self.path(sha256).open("rb") as handle:
            while chunk := handle.read(CHUNK):
                size += len(chunk)
                md5.update(chunk)
                sha1.update(chunk)
        return Stored(sha256, md5.hexdigest(), sha1.hexdigest(), size)

    def get(self, sha256: str) -> bytes:
        return self.path(sha256).read_bytes()

    def delete(self, sha256: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path(sha256).unlink()


def _discard(name: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(name)
