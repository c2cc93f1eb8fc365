"""Throughput of the YARA and Strings services over files of this machine.

Builds a bounded corpus (regular files under the given roots, at most ``--max-size`` bytes
each, ``--files`` in all, spread evenly over the roots) and runs both services over the same
files in one process, printing MB/s and files/s as JSON.

    .venv/bin/python bench/services_yara_strings.py --files 200 --max-size 2000000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

from assay.services import indicators, rulesets
from assay.services.base import FileRequest, Service
from assay.services.strings import Strings
from assay.services.yara_rules import Yara

DEFAULT_ROOTS = ("/usr/bin", "/usr/lib", "/usr/share/doc", "/etc")


def corpus(roots: list[str], count: int, max_size: int) -> list[Path]:
    """Up to ``count`` readable regular files, the same share from each root, sorted walk order."""
    per_root = max(1, count // len(roots))
    files: list[Path] = []
    for root in roots:
        candidates: list[Path] = []
        for folder, dirs, names in os.walk(root):
            dirs.sort()
            for name in sorted(names):
                path = Path(folder) / name
                if path.is_symlink() or not path.is_file():
                    continue
                if 0 < path.stat().st_size <= max_size:
                    candidates.append(path)
            if len(candidates) >= per_root * 10:
                break
        step = max(1, len(candidates) // per_root)
        files.extend(candidates[::step][:per_root])
    return files


def measure(service: Service, files: list[Path], params: dict[str, Any]) -> dict[str, Any]:
    total = 0
    tagged = 0
    started = time.perf_counter()
    for path in files:
        size = path.stat().st_size
        request = FileRequest(path=path, sha256="0" * 64, name=path.name, size=size, params=params)
        result = service.execute(request)
        total += size
        tagged += len(result.tags())
    seconds = time.perf_counter() - started
    return {
        "files": len(files),
        "bytes": total,
        "seconds": round(seconds, 3),
        "mb_per_s": round(total / 1e6 / seconds, 2) if seconds else None,
        "files_per_s": round(len(files) / seconds, 1) if seconds else None,
        "tags": tagged,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=200, help="number of files in the corpus")
    parser.add_argument("--max-size", type=int, default=2_000_000, help="largest file taken, bytes")
    parser.add_argument("--roots", nargs="+", default=list(DEFAULT_ROOTS), help="folders to take files from")
    args = parser.parse_args()

    files = corpus(args.roots, args.files, args.max_size)
    for path in files:  # read once so both services see a warm page cache
        path.read_bytes()
    rulesets.DEFAULT_CACHE.load(rulesets.BUNDLED_RULES_DIR)  # one-time loads outside the timing
    indicators.valid_domain("example.com")
    figures = {
        "corpus": {"roots": args.roots, "files": len(files), "max_size": args.max_size},
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "yara_bundled_rules": measure(Yara(), files, {}),
        "strings": measure(Strings(), files, {}),
    }
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
