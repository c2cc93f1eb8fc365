"""Where members go: one numbered directory per child under the work directory.

Each child is written to ``<root>/<n>/<safe relative path>``: the number keeps duplicate and
clashing names apart, the safe path keeps every byte inside ``root``, and files are opened
with ``O_EXCL | O_NOFOLLOW`` so nothing planted in the tree can redirect a write.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

from assay.services.base import ExtractedFile
from assay.services.lib.extraction.limits import ARCHIVE_WIDE, Budget, Extraction, LimitReached
from assay.services.lib.extraction.names import display_name, safe_relpath, unsafe_reason

CHUNK = 1 << 20


class Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class ChildFile:
    """One member being written; ``commit`` makes it a child, ``discard`` removes it."""

    def __init__(self, sink: Sink, name: str, path: Path, compressed: int | None) -> None:
        self.sink = sink
        self.name = name
        self.path = path
        self.compressed = compressed
        self.size = 0
        self._handle = os.fdopen(
            os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600), "wb"
        )

    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Write a chunk, then check the limits (a chunk is at most one decoder step)."""
        self._handle.write(data)
        self.size += len(data)
        self.sink.budget.on_written(len(data), self.size, self.compressed)
        return len(data)

    def commit(self, note: str = "") -> ExtractedFile:
        self._handle.close()
        description = f"extracted from {self.sink.fmt}" + (f" ({note})" if note else "")
        child = ExtractedFile(display_name(self.name), description, path=self.path)
        self.sink.extraction.children.append(child)
        self.sink.budget.children += 1
        return child

    def discard(self) -> None:
        self._handle.close()
        self.path.unlink(missing_ok=True)
        folder, root = self.path.parent, self.sink.root
        while folder != root and folder.is_relative_to(root) and not any(folder.iterdir()):
            folder.rmdir()
            folder = folder.parent


class Sink:
    """Writes the members of one archive under ``root`` while the budget allows."""

    def __init__(self, root: Path, fmt: str, budget: Budget, extraction: Extraction) -> None:
        self.root = root
        self.fmt = fmt
        self.budget = budget
        self.extraction = extraction
        self._opened = 0

    def open(self, name: str, compressed: int | None = None) -> ChildFile:
        """Start a child for member ``name``; raises ``LimitReached`` when no more are allowed."""
        self.budget.check_count()
        self.budget.check_time()
        self.note_name(name)
        self._opened += 1
        folder = self.root / f"{self._opened:06d}"
        target = folder / safe_relpath(name, "unnamed")
        if not target.resolve().is_relative_to(self.root.resolve()):
            raise ValueError(f"refusing to write outside {self.root}")
        target.parent.mkdir(parents=True, exist_ok=True)
        return ChildFile(self, name, target, compressed)

    def rollback(self, keep: int) -> None:
        """Remove the children made after the first ``keep`` (a pass with a wrong password)."""
        for child in self.extraction.children[keep:]:
            if child.path is not None:
                self.budget.written -= child.path.stat().st_size
                child.path.unlink(missing_ok=True)
            self.budget.children -= 1
        del self.extraction.children[keep:]

    def note_link(self, name: str, target: str) -> None:
        """A link member was skipped; record it as unsafe if it points outside the archive."""
        reason = unsafe_reason(target)
        entry = {"name": display_name(name), "reason": f"link to {display_name(target)} ({reason})"}
        if reason and entry not in self.extraction.unsafe_names:
            self.extraction.unsafe_names.append(entry)

    def note_name(self, name: str) -> None:
        reason = unsafe_reason(name)
        entry = {"name": display_name(name), "reason": reason or ""}
        if reason and entry not in self.extraction.unsafe_names:
            self.extraction.unsafe_names.append(entry)

    def copy(
        self,
        name: str,
        reader: Readable,
        compressed: int | None = None,
        *,
        expected: int | None = None,
        keep_partial: bool = False,
    ) -> ChildFile | None:
        """Stream ``reader`` into a new child; the child, or None if a member-level limit skipped it.

        Limits are recorded here; archive-wide ones are re-raised to stop the reader. A decoding
        error discards the partial file unless ``keep_partial`` (the child is then kept and
        marked truncated) and is re-raised for the reader to record. A member shorter than its
        ``expected`` size is kept and marked truncated.
        """
        try:
            child = self.open(name, compressed)
        except LimitReached as limit:
            self.extraction.hit(limit)
            raise
        try:
            while chunk := reader.read(CHUNK):
                child.write(chunk)
        except LimitReached as limit:
            child.discard()
            self.extraction.hit(limit, display_name(name))
            if limit.kind in ARCHIVE_WIDE:
                raise
            return None
        except Exception:
            if keep_partial and child.size:
                child.commit("truncated")
            else:
                child.discard()
            raise
        if expected is not None and child.size < expected:
            self.extraction.error(f"{display_name(name)}: truncated ({child.size} of {expected} bytes)")
            child.commit("truncated")
        else:
            child.commit()
        return child
