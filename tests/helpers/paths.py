"""Where the test data shipped with the repository lives; each folder has a README and a SHA256SUMS."""

from __future__ import annotations

from pathlib import Path

DATA = Path(__file__).resolve().parents[1] / "data"
CASE_DATA = DATA / "dfrws2017"  # DFRWS 2017 IoT challenge evidence
PE_SAMPLES = DATA / "pe"  # Windows launchers from setuptools
ELF_SAMPLE = DATA / "elf" / "wordfreq"  # a small dynamically linked x86-64 executable built from wordfreq.c
