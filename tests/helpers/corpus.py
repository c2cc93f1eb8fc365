"""A varied corpus written by the tests themselves: every kind of ``tests/formats.py``, documents
and archives, and the executables shipped in ``tests/data``.

Nothing is read from the machine running the tests, so every machine builds the same files.
Used by the identification agreement test, the YARA comparison and ``bench/services.py``;
bounded in count and size (tens of KiB a file), deterministic in contents and order.
"""

from __future__ import annotations

import gzip
import io
import tarfile
import zipfile
from pathlib import Path

from tests.helpers.formats import KINDS
from tests.helpers.paths import ELF_SAMPLE, PE_SAMPLES

PER_KIND = 10
MAX_SIZE = 4 << 20  # the largest file bench/services.py takes by default; the files here are far smaller


def format_files(folder: Path, per_kind: int = PER_KIND) -> list[Path]:
    """``per_kind`` files of every kind in ``tests.helpers.formats.KINDS``, written under ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, suffix, make in KINDS:
        for index in range(per_kind):
            path = folder / f"{name}{index}{suffix}"
            path.write_bytes(make(index))
            paths.append(path)
    return paths


def shipped_samples() -> list[Path]:
    """The compiled executables kept in ``tests/data`` (read in place, never written)."""
    return [ELF_SAMPLE, *sorted(PE_SAMPLES.glob("*.exe"))]


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
        "html": lambda i: f"<!DOCTYPE html><html><head><title>t{i}</title></head><body><p>x</p></body></html>".encode(),
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
    return format_files(folder / "formats") + shipped_samples() + generated_files(folder)
