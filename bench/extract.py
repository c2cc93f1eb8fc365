"""Extraction rate of the Extract service against ``7z x`` (and ``tar -x``) on the same archives.

Builds zip, 7z and tar.gz archives of the same mixed content (log-like text, random bytes,
word soup), then times, in one run and side by side, the service and the reference tools
extracting each one. Prints JSON: MB/s of extracted content and the ratio service/reference
(> 1 means the service is slower).

Usage: ``python bench/extract.py --size-mb 8 --repeat 3`` (needs ``7z`` and ``tar`` on PATH).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import random
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from assay.services.base import FileRequest
from assay.services.extract import Extract

WORDS = [
    "alpha",
    "beta",
    "gamma",
    "delta",
    "packet",
    "socket",
    "registry",
    "beacon",
    "payload",
    "dropper",
    "loader",
    "config",
]


def content(total: int, seed: int = 1) -> dict[str, bytes]:
    """About ``total`` bytes in files of 64 KiB to 1 MiB: a third text, a third random, a third words."""
    rng = random.Random(seed)
    files: dict[str, bytes] = {}
    made = 0
    while made < total:
        size = min(rng.randint(64 << 10, 1 << 20), total - made)
        kind = len(files) % 3
        if kind == 0:
            line = (
                f"2026-11-23 12:00:{len(files) % 60:02d} INFO worker {len(files)} handled request\n".encode()
            )
            data = (line * (size // len(line) + 1))[:size]
        elif kind == 1:
            data = rng.randbytes(size)
        else:
            data = " ".join(rng.choice(WORDS) for _ in range(size // 6)).encode()[:size]
        files[f"dir{len(files) % 4}/file{len(files):03d}.bin"] = data
        made += len(data)
    return files


def build(root: Path, files: dict[str, bytes]) -> dict[str, Path]:
    source = root / "src"
    for name, data in files.items():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_bytes(data)
    archives = {"zip": root / "set.zip", "7z": root / "set.7z", "tar.gz": root / "set.tar.gz"}
    with zipfile.ZipFile(archives["zip"], "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    subprocess.run(
        ["7z", "a", "-y", "-mx=5", str(archives["7z"]), "."], cwd=source, check=True, capture_output=True
    )
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    archives["tar.gz"].write_bytes(buffer.getvalue())
    return archives


def run_service(archive: Path, workdir: Path) -> int:
    request = FileRequest(
        path=archive,
        sha256=hashlib.sha256(archive.read_bytes()).hexdigest(),
        name=archive.name,
        size=archive.stat().st_size,
        params={"max_extracted": 10_000},
        workdir=workdir,
    )
    result = Extract().execute(request)
    return len(result.extracted)


def run_7z(archive: Path, workdir: Path) -> int:
    subprocess.run(["7z", "x", "-y", f"-o{workdir}", str(archive)], check=True, capture_output=True)
    return sum(1 for path in workdir.rglob("*") if path.is_file())


def run_tar(archive: Path, workdir: Path) -> int:
    workdir.mkdir(parents=True, exist_ok=True)
    subprocess.run(["tar", "-x", "-f", str(archive), "-C", str(workdir)], check=True, capture_output=True)
    return sum(1 for path in workdir.rglob("*") if path.is_file())


def best_time(
    runner: Callable[[Path, Path], int], archive: Path, scratch: Path, repeat: int
) -> tuple[float, int]:
    best, count = float("inf"), 0
    for _ in range(repeat):
        workdir = Path(tempfile.mkdtemp(dir=scratch))
        start = time.perf_counter()
        count = runner(archive, workdir)
        best = min(best, time.perf_counter() - start)
        shutil.rmtree(workdir)
    return best, count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=float, default=8.0, help="content size in MB (default 8)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement, best kept (default 3)")
    args = parser.parse_args()
    if shutil.which("7z") is None:
        sys.exit("7z is not installed (apt-get install p7zip-full)")
    files = content(int(args.size_mb * 1e6))
    megabytes = sum(map(len, files.values())) / 1e6
    report: dict[str, object] = {
        "content_mb": round(megabytes, 2),
        "files": len(files),
        "repeat": args.repeat,
    }
    with tempfile.TemporaryDirectory(prefix="bench-extract-") as tmp:
        root = Path(tmp)
        archives = build(root, files)
        for kind, archive in archives.items():
            service, service_count = best_time(run_service, archive, root, args.repeat)
            sevenzip, _ = best_time(run_7z, archive, root, args.repeat)
            row = {
                "archive_mb": round(archive.stat().st_size / 1e6, 2),
                "children": service_count,
                "service_mb_s": round(megabytes / service, 1),
                "7z_x_mb_s": round(megabytes / sevenzip, 1),
                "ratio_service_vs_7z": round(service / sevenzip, 2),
            }
            if kind == "tar.gz":
                tar, _ = best_time(run_tar, archive, root, args.repeat)
                row["tar_x_mb_s"] = round(megabytes / tar, 1)
                row["ratio_service_vs_tar"] = round(service / tar, 2)
                row["note"] = "7z x extracts only the inner .tar (one level); tar -x extracts the members"
            report[kind] = row
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
