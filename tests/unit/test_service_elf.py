"""The ELF service on a shipped x86-64 executable, on hand-built loaders and on damaged copies."""

from __future__ import annotations

import random
import re
import struct
import subprocess
from pathlib import Path

import pytest

from assay.services.base import FileRequest, Result
from assay.services.elf import ELF
from tests.helpers.paths import ELF_SAMPLE

PT_LOAD, PT_GNU_STACK = 1, 0x6474E551


def run(path: Path, **params: object) -> Result:
    return ELF().execute(FileRequest(path=path, sha256="", name=path.name, size=path.stat().st_size, params=params))


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def build_loader(payload: bytes, load_flags: int, stack_flags: int) -> bytes:
    """A static ELF64 executable with no section headers: one PT_LOAD and a PT_GNU_STACK."""
    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + b"\x00" * 8
    header = ident + struct.pack("<HHIQQQIHHHHHH", 2, 62, 1, 0x400000 + 176, 64, 0, 0, 64, 56, 2, 64, 0, 0)
    size = 64 + 2 * 56 + len(payload)
    load = struct.pack("<IIQQQQQQ", PT_LOAD, load_flags, 0, 0x400000, 0x400000, size, size, 0x1000)
    stack = struct.pack("<IIQQQQQQ", PT_GNU_STACK, stack_flags, 0, 0, 0, 0, 0, 16)
    return header + load + stack + payload


def readelf(*args: str) -> str:
    return subprocess.run(["readelf", "-W", *args, str(ELF_SAMPLE)], capture_output=True, text=True, check=True).stdout


def test_dynamic_binary_agrees_with_readelf() -> None:
    result = run(ELF_SAMPLE)
    assert result.anomalies == []
    assert result.data["needed"] == re.findall(r"\(NEEDED\).*\[(.+?)\]", readelf("-d"))
    interp = re.search(r"Requesting program interpreter: (.+?)\]", readelf("-l"))
    assert interp and result.data["interpreter"] == interp.group(1)
    section_count = int(re.search(r"There are (\d+) section headers", readelf("-S")).group(1))  # type: ignore[union-attr]
    assert len(result.data["sections"]) == section_count
    assert result.data["linking"]["static"] is False
    undefined = {
        line.split()[7].split("@")[0]
        for line in readelf("--dyn-syms").splitlines()
        if " FUNC " in line and " UND " in line
    }
    assert set(result.data["symbols"]["imported_functions"]) == undefined
    assert "elf.stripped_static" not in result.heuristic_ids()


def test_packed_static_loader_raises_the_iot_heuristics(tmp_path: Path) -> None:
    payload = b"UPX!" + random.Random(3).randbytes(8192)
    result = run(write(tmp_path, "bot", build_loader(payload, load_flags=7, stack_flags=7)))
    assert {"elf.stripped_static", "elf.no_sections", "elf.upx", "elf.exec_stack", "elf.wx_segment"} <= set(
        result.heuristic_ids()
    )
    assert result.data["linking"] == {"static": True, "stripped": True, "interpreter": None}
    assert result.file_info["elf"]["packer"] == "UPX"


def test_tidy_loader_is_not_called_packed_or_self_modifying(tmp_path: Path) -> None:
    result = run(write(tmp_path, "tool", build_loader(b"\x90" * 512, load_flags=5, stack_flags=6)))
    heuristics = set(result.heuristic_ids())
    assert not {"elf.upx", "elf.exec_stack", "elf.wx_segment", "elf.packed", "elf.malformed"} & heuristics
    assert [s["flags"] for s in result.data["segments"]] == ["RX", "RW"]


def test_imported_function_list_is_bounded() -> None:
    result = run(ELF_SAMPLE, max_symbols=3)
    assert len(result.data["symbols"]["imported_functions"]) <= 3
    assert "symbol_limit_reached" in result.anomalies


@pytest.mark.parametrize("cut", [10, 63, 64, 200, 3000, 40000])
def test_truncated_copies_give_partial_results(tmp_path: Path, cut: int) -> None:
    result = run(write(tmp_path, "cut", ELF_SAMPLE.read_bytes()[:cut]))
    assert result.anomalies
    assert "elf.malformed" in result.heuristic_ids()


def test_mutated_copies_never_escape(tmp_path: Path) -> None:
    original = bytearray(ELF_SAMPLE.read_bytes())
    rng = random.Random(5)
    for round_ in range(40):
        data = bytearray(original)
        for _ in range(12):
            data[rng.randrange(0, 256)] = rng.randrange(256)
        for _ in range(12):
            data[rng.randrange(len(data) - 4096, len(data))] = rng.randrange(256)  # section headers live here
        assert isinstance(run(write(tmp_path, f"m{round_}", bytes(data))), Result)


def test_garbage_is_reported_not_raised(tmp_path: Path) -> None:
    result = run(write(tmp_path, "noise", b"\x7fELF" + random.Random(2).randbytes(2000)))
    assert result.anomalies
