"""A first guess at what an embedded blob is, from its leading bytes (for naming extracted children)."""

from __future__ import annotations

_FILE_MAGIC = {
    b"MZ": "exe",
    b"\x7fELF": "elf",
    b"PK\x03\x04": "zip",
    b"%PDF": "pdf",
    b"\xd0\xcf\x11\xe0": "ole",
    b"\x1f\x8b": "gz",
    b"Rar!": "rar",
    b"7z\xbc\xaf": "7z",
    b"{\\rt": "rtf",
}


def file_kind(blob: bytes) -> str | None:
    """A short extension when ``blob`` starts like a known file format."""
    for magic, kind in _FILE_MAGIC.items():
        if blob.startswith(magic):
            return kind
    return None
