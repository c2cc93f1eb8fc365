"""Server paths a caller may name: only under the configured roots, never out of them.

IoTInsight let a caller name any file the server could read. Here ``[tasks] allowed_roots``
lists the directories a caller may name (empty: none, uploads only). A path is resolved with
every symlink and ``..`` followed, and must land under the resolved form of a root; files are
opened without following a final symlink and checked again after opening, so a swap between
check and open is caught. Directory walks never follow symlinks and are bounded in count and
depth.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from assay.config import Settings


class PathRefused(ValueError):
    """A path the caller may not use; the message says why without revealing more than needed."""


def allowed_roots(settings: Settings) -> list[Path]:
    """The configured roots that exist, resolved once."""
    roots = []
    for raw in settings.tasks.allowed_roots:
        try:
            roots.append(Path(raw).resolve(strict=True))
        except (OSError, RuntimeError):
            continue
    return roots


def resolve_allowed(raw: str, roots: list[Path]) -> Path:
    """The real path behind ``raw`` when it lies under one of ``roots``; :class:`PathRefused` otherwise."""
    if not roots:
        raise PathRefused("this server accepts no server paths ([tasks] allowed_roots is empty)")
    if not raw or "\x00" in raw or len(raw) > 4096:
        raise PathRefused("filepath must be a non-empty path")
    path = Path(raw)
    if not path.is_absolute():
        raise PathRefused("filepath must be an absolute path")
    try:
        real = path.resolve(strict=True)
    except (OSError, RuntimeError):
        raise PathRefused(f"filepath {raw} does not exist") from None
    if not any(real.is_relative_to(root) for root in roots):
        raise PathRefused(f"filepath {raw} is outside the allowed roots")
    return real


def open_regular(real: Path, roots: list[Path]) -> tuple[int, int]:
    """Open a resolved path read-only as a regular file: (descriptor, size).

    ``O_NOFOLLOW`` refuses a final symlink swapped in after the check, ``O_NONBLOCK`` keeps a
    FIFO from hanging the open, and the descriptor's own path is checked against the roots.
    """
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(real, flags)
    except OSError:
        raise PathRefused(f"filepath {real} cannot be opened") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise PathRefused(f"filepath {real} is not a regular file")
        proc = Path(f"/proc/self/fd/{fd}")
        if proc.exists() and not any(Path(os.readlink(proc)).is_relative_to(root) for root in roots):
            raise PathRefused(f"filepath {real} is outside the allowed roots")
        os.set_blocking(fd, True)
        return fd, info.st_size
    except BaseException:
        os.close(fd)
        raise


@dataclass(frozen=True)
class Walk:
    files: list[Path]
    skipped: int


def walk(directory: Path, max_files: int, max_depth: int) -> Walk:
    """Regular files under ``directory`` (already resolved), sorted, without following symlinks.

    :class:`PathRefused` when there are more than ``max_files``; deeper levels than
    ``max_depth`` and anything that is not a regular file or directory are skipped.
    """
    if not directory.is_dir():
        raise PathRefused(f"filepath {directory} is not a directory")
    files: list[Path] = []
    skipped = 0
    pending: list[tuple[Path, int]] = [(directory, 0)]
    while pending:
        current, depth = pending.pop()
        try:
            entries = list(os.scandir(current))
        except OSError:
            skipped += 1
            continue
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                if depth < max_depth:
                    pending.append((Path(entry.path), depth + 1))
                else:
                    skipped += 1
            elif entry.is_file(follow_symlinks=False):
                files.append(Path(entry.path))
                if len(files) > max_files:
                    raise PathRefused(f"{directory} holds more than {max_files} files; name a smaller one")
            else:
                skipped += 1
    return Walk(sorted(files), skipped)
