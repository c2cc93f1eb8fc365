"""A task's bytes: into the file store from an upload or a server path, then judged by content.

Server paths are opened through :mod:`.paths`, so a path outside the allowed roots, or one
swapped for a symlink after the check, never reaches the store.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO

from assay.filestore import FileStore, Stored
from assay.iotinsight import detect, paths
from assay.iotinsight.pipeline import Pipeline


class EmptyFile(ValueError):
    """The file has no bytes: nothing to analyse."""


def store_upload(pipeline: Pipeline, handle: BinaryIO) -> Stored:
    """An uploaded part, read from its start (raises :class:`FileTooLarge` or :class:`EmptyFile`)."""
    handle.seek(0)
    stored = pipeline.store.put_stream(handle, pipeline.max_file_size)
    if stored.size == 0:
        raise EmptyFile("the file is empty")
    return stored


def store_path(pipeline: Pipeline, real: Path, roots: list[Path], shown: str) -> Stored:
    """A resolved path's bytes; ``shown`` is how the caller named it, for the error message."""
    fd, size = paths.open_regular(real, roots)
    with os.fdopen(fd, "rb") as handle:
        if size == 0:
            raise EmptyFile(f"filepath {shown} is an empty file")
        return pipeline.store.put_stream(handle, pipeline.max_file_size)


def store_server_file(pipeline: Pipeline, raw: str) -> tuple[Stored, Path]:
    """The file a caller named, checked against the allowed roots: what was stored and its real path."""
    roots = pipeline.roots()
    real = paths.resolve_allowed(raw, roots)
    return store_path(pipeline, real, roots, raw), real


def detect_stored(store: FileStore, stored: Stored) -> detect.FileType:
    """Detection reads the stored copy: the bytes analysed are the bytes judged."""
    with store.path(stored.sha256).open("rb") as handle:
        return detect.detect_stream(handle, stored.size)
