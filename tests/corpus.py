"""A varied corpus assembled from what this machine has, plus generated documents and archives.

Used by the identification agreement test and by ``bench/services.py``; bounded in count and
size, deterministic in order.
"""

from __future__ import annotations

import gzip
import io
import tarfile
import zipfile
from pathlib import Path

SOURCES = (
    ("/usr/bin", 140),
    ("/usr/lib/x86_64-linux-gnu", 90),
    ("/usr/share/doc", 80),
    ("/usr/share/icons", 30),
    ("/usr/share/pixmaps", 10),
    ("/etc", 50),
    ("/usr/share/perl5", 20),
    ("/usr/share/zoneinfo", 10),
    ("/usr/share/common-licenses", 10),
    ("/usr/include", 30),
    ("/usr/share/man/man1", 20),
)
MAX_SIZE = 4 << 20


def system_files(limit_per_source: dict[str, int] | None = None) -> list[Path]:
    picked: list[Path] = []
    seen_sizes: set[tuple[str, int]] = set()
    for root, count in SOURCES:
        count = (limit_per_source or {}).get(root, count)
        found = 0
        base = Path(root)
        if not base.is_dir():
            continue
        for path in sorted(base.rglob("*")):
            if found >= count:
                break
            try:
                if path.is_symlink() or not path.is_file():
                    continue
                size = path.stat().st_size
                if not 0 < size <= MAX_SIZE or not _readable(path):
                    continue
            except OSError:
                continue
            key = (path.suffix, size)
            if key in seen_sizes:
                continue
            seen_sizes.add(key)
            picked.append(path)
            found += 1
    return picked


def _readable(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            handle.read(1)
        return True
    except OSError:
        return False


def _docx(text: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as doc:
        doc.writestr(
            "[Content_Types].xml",
            '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
            '<Default Extension="xml" ContentType="application/xml"/>'
            '<Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.'
            'wordprocessingml.document.main+xml"/></Types>',
        )
        doc.writestr(
            "_rels/.rels",
            '<?xml version="1.0"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
            '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/'
            'officeDocument" Target="word/document.xml"/></Relationships>',
        )
        doc.writestr(
            "word/document.xml",
            '<?xml version="1.0"?><w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">'
            f"<w:body><w:p><w:r><w:t>{text}</w:t></w:r></w:p></w:body></w:document>",
        )
    return buffer.getvalue()


def _pdf(text: str) -> bytes:
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R >>",
        b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"\nendstream",
    ]
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(out.tell())
        out.write(f"{number} 0 obj\n".encode() + body + b"\nendobj\n")
    xref = out.tell()
    out.write(f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode())
    for offset in offsets:
        out.write(f"{offset:010d} 00000 n \n".encode())
    out.write(f"trailer << /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode())
    return out.getvalue()


def generated_files(folder: Path, count: int = 60) -> list[Path]:
    """Office, PDF, archives, scripts and markup written here; count split evenly by kind."""
    folder.mkdir(parents=True, exist_ok=True)
    makers = {
        "docx": lambda i: _docx(f"Document number {i}"),
        "pdf": lambda i: _pdf(f"Report number {i}"),
        "zip": lambda i: _zip_of({f"a{i}.txt": b"text " * (i + 1)}),
        "tar": lambda i: _tar_of({f"b{i}.txt": b"tar member " * (i + 1)}),
        "gz": lambda i: gzip.compress(b"compressed line\n" * (i + 10)),
        "html": lambda i: (
            f"<!DOCTYPE html><html><head><title>t{i}</title></head><body><p>x</p></body></html>".encode()
        ),
        "py": lambda i: f"#!/usr/bin/env python3\nimport os\n\nprint(os.getcwd(), {i})\n".encode(),
        "sh": lambda i: f"#!/bin/sh\nset -e\necho {i}\n".encode(),
        "json": lambda i: f'{{"n": {i}, "items": [1, 2, 3]}}'.encode(),
        "xml": lambda i: f'<?xml version="1.0"?><root><n>{i}</n></root>'.encode(),
    }
    paths = []
    for index in range(count):
        kind = list(makers)[index % len(makers)]
        path = folder / f"gen{index}.{kind}"
        path.write_bytes(makers[kind](index))
        paths.append(path)
    return paths


def _zip_of(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _tar_of(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def corpus(folder: Path) -> list[Path]:
    return system_files() + generated_files(folder)
