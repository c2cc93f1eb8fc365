"""The data shipped under ``tests/data`` is intact: every file matches its folder's ``SHA256SUMS``.

A damaged copy (a bad checkout, a line-ending filter, a truncated download) should fail here,
by name, rather than as a puzzling result in the analyser tests that read it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.helpers.paths import CASE_DATA, DATA, ELF_SAMPLE, PE_SAMPLES

MANIFESTS = sorted(DATA.glob("*/SHA256SUMS"))


def manifest(path: Path) -> dict[str, str]:
    """``sha256sum`` output: ``<hex digest><two spaces><file name>`` a line."""
    entries = {}
    for line in path.read_text().splitlines():
        digest, name = line.split("  ", 1)
        entries[name] = digest
    return entries


def test_every_data_folder_has_a_manifest_and_a_readme() -> None:
    folders = {p for p in DATA.iterdir() if p.is_dir()}
    assert {CASE_DATA, PE_SAMPLES, ELF_SAMPLE.parent} <= folders
    assert {m.parent for m in MANIFESTS} == folders
    assert all((folder / "README.md").is_file() for folder in folders)


@pytest.mark.parametrize("sums", MANIFESTS, ids=lambda p: p.parent.name)
def test_files_match_their_sha256(sums: Path) -> None:
    expected = manifest(sums)
    listed = {p.name for p in sums.parent.iterdir()} - {"SHA256SUMS", "README.md"}
    assert set(expected) == listed, "every file of the folder is in SHA256SUMS, and only those"
    for name, digest in expected.items():
        assert hashlib.sha256((sums.parent / name).read_bytes()).hexdigest() == digest, f"{sums.parent / name}"


def test_the_case_files_the_tests_read_are_listed() -> None:
    assert {
        "004-Onhub-diagnostic-report",
        "005-Amazon-Echo-Alexa-Web-Scrape.zip",
        "IoT_Net_Traffic.zip",
    } <= set(manifest(CASE_DATA / "SHA256SUMS"))
