"""The PE service on real launcher executables and on PE files built byte by byte here."""

from __future__ import annotations

import hashlib
import random
import struct
from pathlib import Path

import pefile
import pytest

from assay.services.base import FileRequest, Result
from assay.services.pe import PE
from tests.helpers.paths import PE_SAMPLES

LAUNCHERS = sorted(PE_SAMPLES.glob("*.exe"))  # setuptools launchers: PE32 console and PE32+ GUI


def run(path: Path, **params: object) -> Result:
    return PE().execute(FileRequest(path=path, sha256="", name=path.name, size=path.stat().st_size, params=params))


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _import_table(rva: int, imports: dict[str, list[str]]) -> bytes:
    """An .idata section at ``rva``: descriptors, lookup tables, names."""
    descriptors_size = 20 * (len(imports) + 1)
    tail = bytearray()
    descriptors = bytearray()
    for dll, funcs in imports.items():
        names = []
        for func in funcs:
            names.append(rva + descriptors_size + len(tail))
            tail += b"\x00\x00" + func.encode() + b"\x00" + (b"\x00" if len(func) % 2 == 0 else b"")
        dll_rva = rva + descriptors_size + len(tail)
        tail += dll.encode() + b"\x00\x00"
        thunks_rva = rva + descriptors_size + len(tail)
        tail += b"".join(struct.pack("<I", n) for n in names) + b"\x00" * 4
        descriptors += struct.pack("<IIIII", thunks_rva, 0, 0, dll_rva, thunks_rva)
    descriptors += b"\x00" * 20
    return bytes(descriptors + tail)


def _resource_table(rva: int, payload: bytes) -> bytes:
    """A resource tree RT_RCDATA/1/1033 holding ``payload``."""

    directory = struct.pack("<IIHHHH", 0, 0, 0, 0, 0, 1)
    root = directory + struct.pack("<II", 10, 0x80000000 | 24)
    names = directory + struct.pack("<II", 1, 0x80000000 | 48)
    langs = directory + struct.pack("<II", 1033, 72)
    data_entry = struct.pack("<IIII", rva + 88, len(payload), 0, 0)
    return root + names + langs + data_entry + payload


def _rvas(sections: list[tuple[bytes, int, bytes]]) -> list[int]:
    """Virtual addresses of the sections laid out one after another, page aligned, from 0x1000."""
    rvas, rva = [], 0x1000
    for _, _, data in sections:
        rvas.append(rva)
        rva += (max(len(data), 1) + 0xFFF) & ~0xFFF
    return [*rvas, rva]


def build_pe(
    sections: list[tuple[bytes, int, bytes]],
    *,
    timestamp: int = 1_600_000_000,
    entry: int = 0x1000,
    imports: dict[str, list[str]] | None = None,
    resource: bytes | None = None,
    overlay: bytes = b"",
    signed: bool = False,
) -> bytes:
    """A PE32 executable with the given (name, characteristics, raw data) sections."""
    sections = list(sections)
    directories = [(0, 0)] * 16
    if imports:
        rva = _rvas(sections)[-1]
        table = _import_table(rva, imports)
        sections.append((b".idata", 0xC0000040, table))
        directories[1] = (rva, len(table))
    if resource is not None:
        rva = _rvas(sections)[-1]
        table = _resource_table(rva, resource)
        sections.append((b".rsrc", 0x40000040, table))
        directories[2] = (rva, len(table))
    header_size = 0x400
    if signed:  # the certificate table is the whole overlay; its directory entry holds a file offset
        raw_total = sum((len(data) + 0x1FF) & ~0x1FF for _, _, data in sections)
        directories[4] = (header_size + raw_total, len(overlay))
    dos = b"MZ" + b"\x00" * 58 + struct.pack("<I", 0x40)
    file_header = struct.pack("<HHIIIHH", 0x14C, len(sections), timestamp, 0, 0, 224, 0x0102)
    raw_sizes = [(len(data) + 0x1FF) & ~0x1FF for _, _, data in sections]
    rvas = _rvas(sections)
    image_size = rvas[-1]
    optional = struct.pack(
        "<HBBIIIIIIIIIHHHHHHIIIIHHIIIIII",
        0x10B,
        14,
        0,
        0,
        0,
        0,
        entry,
        0x1000,
        0,
        0x400000,
        0x1000,
        0x200,
        6,
        0,
        0,
        0,
        6,
        0,
        0,
        image_size,
        header_size,
        0,
        2,
        0,
        0x100000,
        0x1000,
        0x100000,
        0x1000,
        0,
        16,
    ) + b"".join(struct.pack("<II", *d) for d in directories)
    table = b""
    offset = header_size
    for index, (name, flags, data) in enumerate(sections):
        table += struct.pack(
            "<8sIIIIIIHHI", name, max(len(data), 1), rvas[index], raw_sizes[index], offset, 0, 0, 0, 0, flags
        )
        offset += raw_sizes[index]
    head = (dos + b"\x00" * (0x40 - len(dos)) + b"PE\x00\x00" + file_header + optional + table).ljust(
        header_size, b"\x00"
    )
    body = b"".join(data.ljust(size, b"\x00") for (_, _, data), size in zip(sections, raw_sizes, strict=True))
    return head + body + overlay


CODE = 0x60000020  # code, execute, read
RWX = 0xE0000020


@pytest.fixture(scope="module", params=LAUNCHERS, ids=lambda p: p.name)
def launcher(request: pytest.FixtureRequest) -> Path:
    return request.param


def test_launcher_headers_imports_and_imphash_match_pefile(launcher: Path) -> None:
    result = run(launcher)
    reference = pefile.PE(str(launcher))
    assert result.anomalies == []
    assert result.data["header"]["machine"] == pefile.MACHINE_TYPE[reference.FILE_HEADER.Machine]
    assert result.data["imphash"] == reference.get_imphash()
    assert ("file.pe.imports.imphash", reference.get_imphash()) in {(t.type, t.value) for t in result.tags()}
    expected = sum(len(entry.imports) for entry in reference.DIRECTORY_ENTRY_IMPORT)
    assert len(result.data["imports"]) == expected
    assert [s["name"] for s in result.data["sections"]] == [s.Name.rstrip(b"\x00").decode() for s in reference.sections]
    entropies = [round(s.get_entropy(), 2) for s in reference.sections]
    assert [round(s["entropy"], 2) for s in result.data["sections"]] == entropies


def test_every_launcher_parses_without_anomalies() -> None:
    formats = set()
    for path in LAUNCHERS:
        result = run(path)
        assert "pe.malformed" not in result.heuristic_ids(), path
        formats.add(result.data["header"]["format"])
    assert formats == {"PE32", "PE32+"}


def test_packed_self_modifying_build_with_forged_timestamp(tmp_path: Path) -> None:
    noise = random.Random(7).randbytes(16384)
    overlay = random.Random(8).randbytes(9000)
    data = build_pe(
        [(b"UPX0", RWX, noise), (b".text", CODE, b"\xc3" * 600)], timestamp=0, entry=0x20000, overlay=overlay
    )
    result = run(write(tmp_path, "packed.exe", data))
    heuristics = set(result.heuristic_ids())
    assert {
        "pe.packer_section",
        "pe.wx_section",
        "pe.packed",
        "pe.timestamp",
        "pe.entry_point",
        "pe.overlay",
        "pe.no_imports",
    } <= heuristics
    assert [e.read() for e in result.extracted if e.name == "overlay.bin"] == [overlay]
    assert result.data["header"]["entry_section"] is None


def test_plain_build_raises_no_packing_heuristics(tmp_path: Path) -> None:
    data = build_pe([(b".text", CODE, b"\x90" * 2048)], imports={"kernel32.dll": ["ExitProcess"]})
    result = run(write(tmp_path, "plain.exe", data))
    assert not {
        "pe.packed",
        "pe.packer_section",
        "pe.wx_section",
        "pe.timestamp",
        "pe.entry_point",
        "pe.overlay",
        "pe.malformed",
    } & set(result.heuristic_ids())
    assert result.data["header"]["entry_section"] == ".text"


def test_suspicious_imports_are_grouped_with_attack_ids(tmp_path: Path) -> None:
    imports = {
        "kernel32.dll": ["VirtualAllocEx", "WriteProcessMemory", "CreateRemoteThread", "IsDebuggerPresent"],
        "user32.dll": ["SetWindowsHookExA", "GetAsyncKeyState"],
        "wininet.dll": ["InternetOpenUrlW"],
    }
    path = write(tmp_path, "inject.exe", build_pe([(b".text", CODE, b"\xc3" * 512)], imports=imports))
    result = run(path)
    heuristics = set(result.heuristic_ids())
    assert {"pe.api_injection", "pe.api_keylogger", "pe.api_network"} <= heuristics
    assert "pe.api_antidebug" not in heuristics  # one anti-debug call alone is what every CRT imports
    assert "kernel32.dll!WriteProcessMemory" in result.data["imports"]
    assert result.data["imphash"] == pefile.PE(str(path)).get_imphash()
    attack = {h.id: h.attack_ids for h in PE.heuristics}
    assert "T1055" in attack["pe.api_injection"]


def test_import_listing_is_bounded(tmp_path: Path) -> None:
    funcs = [f"Func{i}" for i in range(20)]
    path = write(tmp_path, "many.exe", build_pe([(b".text", CODE, b"\xc3")], imports={"a.dll": funcs}))
    result = run(path, max_imports=5)
    assert len(result.data["imports"]) == 5
    assert "import_limit_reached" in result.anomalies


def test_executable_in_resource_is_extracted(tmp_path: Path, launcher: Path) -> None:
    payload = launcher.read_bytes()
    path = write(tmp_path, "dropper.exe", build_pe([(b".text", CODE, b"\xc3")], resource=payload))
    result = run(path)
    assert "pe.embedded_pe" in result.heuristic_ids()
    children = [e.read() for e in result.extracted if e.name.startswith("resource_")]
    assert [hashlib.sha256(c).hexdigest() for c in children] == [hashlib.sha256(payload).hexdigest()]
    assert result.data["resources"][0]["type"] == "RT_RCDATA"


def test_garbage_is_reported_not_raised(tmp_path: Path) -> None:
    result = run(write(tmp_path, "noise.exe", random.Random(1).randbytes(4096)))
    assert "pe_unparseable" in result.anomalies
    assert result.heuristic_ids() == ["pe.malformed"]


@pytest.mark.parametrize("cut", [64, 300, 700, 1500, 5000])
def test_truncated_launcher_gives_partial_result(tmp_path: Path, launcher: Path, cut: int) -> None:
    result = run(write(tmp_path, "cut.exe", launcher.read_bytes()[:cut]))
    assert result.anomalies  # unparseable, warnings or failed parts: never silent, never raised


def test_mutated_headers_never_escape(tmp_path: Path, launcher: Path) -> None:
    original = bytearray(launcher.read_bytes())
    rng = random.Random(42)
    for round_ in range(60):
        data = bytearray(original)
        for _ in range(20):
            data[rng.randrange(0, 1024)] = rng.randrange(256)
        result = run(write(tmp_path, f"m{round_}.exe", bytes(data)))
        assert isinstance(result, Result)


def test_certificate_table_is_reported_and_not_counted_as_overlay(tmp_path: Path) -> None:
    certificate = struct.pack("<IHH", 4096, 0x200, 2) + random.Random(6).randbytes(4088)
    path = write(tmp_path, "signed.exe", build_pe([(b".text", CODE, b"\xc3")], overlay=certificate, signed=True))
    result = run(path)
    assert result.data["authenticode"]["present"] and result.data["authenticode"]["within_file"]
    assert result.data["authenticode"]["size"] == len(certificate)
    assert "overlay" not in result.data and "pe.overlay" not in result.heuristic_ids()
