"""What the ``assay`` sub-commands share: the one-line error and the file walk."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any


class CliError(Exception):
    """A failure to report in one line, with exit code 2."""


def walk(paths: Sequence[str]) -> Iterator[Path]:
    """Every regular file under ``paths``, links not followed, in a stable order."""
    for raw in paths:
        path = Path(raw)
        if path.is_symlink():
            continue
        if path.is_file():
            yield path
        elif path.is_dir():
            for root, dirs, files in os.walk(path, followlinks=False):
                dirs.sort()
                for name in sorted(files):
                    candidate = Path(root) / name
                    if candidate.is_file() and not candidate.is_symlink():
                        yield candidate
        else:
            raise CliError(f"{raw}: no such file or directory")


def wait_for(check: Any, timeout: float | None, poll: float = 0.2) -> Any:
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if deadline is not None and time.monotonic() > deadline:
            return None
        time.sleep(poll)
