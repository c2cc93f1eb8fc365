"""Extract: opens archives one level deep and hands every member back to the pipeline.

Archives are where malware hides from scanners: zips with the customary ``infected``
password, 7z with encrypted headers, tarballs of droppers. This service opens one level
and returns the members as children; the dispatcher sends each child through the whole
pipeline again, so nesting is handled by recursion bounded by ``max_depth``.

Archives are also weapons against the analyser, so every limit is a parameter and every
limit hit is reported (section + anomaly), never a silent stop.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from assay.services.base import FileRequest, Heuristic, Result, Service, Stage
from assay.services.lib.extraction.compressed import extract_compressed
from assay.services.lib.extraction.limits import (
    COUNT,
    FILE_SIZE,
    RATIO,
    TIMEOUT,
    TOTAL_SIZE,
    Budget,
    Extraction,
    ExtractionLimits,
    MiB,
)
from assay.services.lib.extraction.sevenzip import extract_7z
from assay.services.lib.extraction.sink import Sink
from assay.services.lib.extraction.tar import RECORD, extract_tar, looks_like_tar
from assay.services.lib.extraction.zip import extract_zip

DEFAULT_PASSWORDS = ["infected", "password", "malware", "virus", "1234", "12345", "123456", "admin", "secret"]
LISTING_ROWS = 200
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"PK\x03\x04", "zip"),
    (b"PK\x05\x06", "zip"),
    (b"PK\x07\x08", "zip"),
    (b"7z\xbc\xaf\x27\x1c", "7z"),
    (b"\x1f\x8b", "gzip"),
    (b"BZh", "bzip2"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
)
_BY_TYPE = {
    "archive/zip": "zip",
    "archive/7-zip": "7z",
    "archive/tar": "tar",
    "archive/gzip": "gzip",
    "archive/bzip2": "bzip2",
    "archive/xz": "xz",
    "archive/zstd": "zstd",
}
_ANOMALIES = {
    COUNT: "file_limit_reached",
    FILE_SIZE: "file_size_limit_reached",
    TOTAL_SIZE: "total_size_limit_reached",
    RATIO: "archive_bomb",
    TIMEOUT: "timeout_reached",
}


def sniff_format(path: Path, file_type: str) -> str | None:
    """The archive format, from the file's first bytes, else from the identified type."""
    with path.open("rb") as handle:
        head = handle.read(RECORD)
    for magic, fmt in _MAGIC:
        if head.startswith(magic):
            return fmt
    if looks_like_tar(head):
        return "tar"
    return _BY_TYPE.get(file_type)


class Extract(Service):
    """Extracts the members of zip, 7z, tar (plain or compressed), gzip, bzip2, xz and zstd files.

    Parameters (all limits are reported when hit):

    - ``password`` (str, default ""): tried first on encrypted archives.
    - ``passwords`` (list of str, default ``infected``, ``password``, ``malware``...): tried next.
    - ``max_depth`` (int, default 6): files at this nesting depth or deeper are not opened.
    - ``max_extracted`` (int, default 100): children per archive.
    - ``max_file_size`` (int, default 100 MiB): a larger member is skipped.
    - ``max_total_size`` (int, default 500 MiB): bytes extracted from one archive.
    - ``max_ratio`` (float, default 100): expansion above this, past ``ratio_min_size``
      (int, default 1 MiB) of output, is an archive bomb; extraction stops.
    - ``timeout`` (float, default 120): seconds for the whole extraction.

    Children are written under ``request.workdir`` (a new temporary directory when it is
    None; the caller then owns its removal) and keep their in-archive name.
    """

    name = "Extract"
    version = "1"
    stage = Stage.EXTRACT
    category = "Extraction"
    accepts = r"archive/(zip|7-zip|tar|gzip|bzip2|xz|zstd)"
    timeout = 180.0
    parameters: ClassVar[dict[str, Any]] = {
        "password": "",
        "passwords": DEFAULT_PASSWORDS,
        "max_depth": 6,
        "max_extracted": 100,
        "max_file_size": 100 * MiB,
        "max_total_size": 500 * MiB,
        "max_ratio": 100,
        "ratio_min_size": 1 * MiB,
        "timeout": 120,
    }
    heuristics = (
        Heuristic(
            "extract.bomb",
            "Archive bomb",
            "The archive expands far beyond its size or reuses its own bytes (decompression bomb).",
            500,
            ("T1499",),
        ),
        Heuristic(
            "extract.password_unknown",
            "Encrypted archive, password unknown",
            "Members are encrypted and no supplied or common password opened them.",
            100,
            ("T1027",),
        ),
        Heuristic(
            "extract.unsafe_name",
            "Member name escapes the archive",
            "A member name is absolute or climbs out of the extraction directory (path traversal).",
            250,
        ),
    )

    def execute(self, request: FileRequest) -> Result:
        params = self.options(request.params)
        result = Result()
        if request.depth >= int(params["max_depth"]):
            section = result.add_section(
                "Nesting limit reached", {"depth": request.depth, "max_depth": params["max_depth"]}, "kv"
            )
            section.body["action"] = "not extracted"
            result.anomalies.append("depth_limit_reached")
            return result
        fmt = sniff_format(request.path, request.file_type)
        if fmt is None:
            result.add_section("Not an archive", f"No supported archive format found ({request.file_type}).")
            result.anomalies.append("unsupported_archive")
            return result
        extraction = self._extract(request, params, fmt)
        report(result, extraction)
        return result

    def _extract(self, request: FileRequest, params: dict[str, Any], fmt: str) -> Extraction:
        limits = ExtractionLimits.from_params(params)
        extraction = Extraction(fmt)
        budget = Budget(limits, request.size or request.path.stat().st_size)
        sink = Sink(_output_root(request.workdir), fmt, budget, extraction)
        passwords = [p for p in [params["password"], *params["passwords"]] if p]
        readers: dict[str, Callable[[], None]] = {
            "zip": lambda: extract_zip(request.path, sink, passwords),
            "7z": lambda: extract_7z(request.path, sink, passwords),
            "tar": lambda: _extract_plain_tar(request.path, sink),
        }
        reader = readers.get(fmt, lambda: extract_compressed(request.path, fmt, request.name, sink))
        try:
            reader()
        except Exception as exc:  # a reader bug must not lose the children already written
            extraction.error(f"extraction failed: {type(exc).__name__}: {exc}")
        return extraction


def _extract_plain_tar(path: Path, sink: Sink) -> None:
    with path.open("rb") as handle:
        extract_tar(handle, sink)


def _output_root(workdir: Path | None) -> Path:
    base = Path(tempfile.mkdtemp(prefix="assay-extract-")) if workdir is None else Path(workdir)
    base.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="extract-", dir=base))


def report(result: Result, extraction: Extraction) -> None:
    """Turn what a reader did into sections, tags, anomalies and data."""
    summary = result.add_section(
        "Archive",
        {
            "format": extraction.format,
            "members": extraction.members,
            "declared_size": extraction.declared_size,
            "extracted": len(extraction.children),
            "skipped": len(extraction.skipped),
        },
        "kv",
    )
    _children(result, extraction)
    _passwords(result, extraction)
    _limits(result, extraction)
    _names(result, extraction)
    if extraction.skipped:
        summary.add_subsection("Skipped members", extraction.skipped[:LISTING_ROWS], "table")
    if extraction.errors:
        result.add_section("Archive damaged", "\n".join(extraction.errors[:LISTING_ROWS]))
        result.anomalies.append("corrupt_archive")
    result.extracted.extend(extraction.children)
    result.data["extract"] = {
        "format": extraction.format,
        "members": extraction.members,
        "extracted": [child.name for child in extraction.children][:LISTING_ROWS],
        "skipped": extraction.skipped[:LISTING_ROWS],
        "password": extraction.password,
        "encrypted": extraction.encrypted,
        "limits_reached": extraction.limits,
        "errors": extraction.errors[:LISTING_ROWS],
    }


def _children(result: Result, extraction: Extraction) -> None:
    if not extraction.children:
        return
    rows = [{"name": c.name, "size": c.path.stat().st_size if c.path else 0} for c in extraction.children]
    section = result.add_section("Extracted files", rows[:LISTING_ROWS], "table")
    for child in extraction.children:
        section.add_tag("file.name.extracted", child.name)


def _passwords(result: Result, extraction: Extraction) -> None:
    if extraction.password is not None:
        result.add_section("Password", {"password": extraction.password}, "kv")
    if extraction.password_failed:
        section = result.add_section(
            "Encrypted members not opened",
            {
                "members": extraction.password_failed[:LISTING_ROWS],
                "note": "no supplied or default password worked",
            },
            "kv",
        )
        section.heuristic = "extract.password_unknown"
        result.anomalies.append("password_unknown")


def _limits(result: Result, extraction: Extraction) -> None:
    if not extraction.limits:
        return
    result.add_section("Limits reached", dict(extraction.limits), "kv")
    for kind in extraction.limits:
        result.anomalies.append(_ANOMALIES.get(kind, f"{kind}_limit_reached"))
    if extraction.bomb:
        section = result.add_section("Archive bomb", "\n".join(extraction.bomb[:LISTING_ROWS]))
        section.heuristic = "extract.bomb"


def _names(result: Result, extraction: Extraction) -> None:
    if extraction.unsafe_names:
        section = result.add_section("Unsafe member names", extraction.unsafe_names[:LISTING_ROWS], "table")
        section.heuristic = "extract.unsafe_name"
        result.anomalies.append("unsafe_names")
