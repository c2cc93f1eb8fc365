"""Member names: what is shown (the name inside the archive) and what is written (a safe path).

A member name is attacker-chosen. It may climb out of the output directory (``../``), be
absolute (``/etc/x``, ``C:\\x``, ``\\\\server\\share``), hold control characters or bytes
that are not text. The child keeps a printable form of its in-archive name; the file on
disk gets a relative path made only of harmless components.
"""

from __future__ import annotations

import re

MAX_COMPONENT = 120  # bytes; file systems allow 255 per component
MAX_COMPONENTS = 16
_DRIVE = re.compile(r"^[A-Za-z]:")
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f]")
_UNSAFE_CHARS = re.compile(r"[^\w.\- +=@,()\[\]{}~#%&!$']", re.UNICODE)


def display_name(raw: str) -> str:
    """The in-archive name, made storable: control characters and undecodable bytes replaced."""
    text = raw.encode("utf-8", "replace").decode("utf-8")
    return _UNPRINTABLE.sub("\ufffd", text) or "(unnamed)"


def unsafe_reason(raw: str) -> str | None:
    """Why writing ``raw`` as-is would escape the output directory, or None if it would not."""
    name = raw.replace("\\", "/")
    if name.startswith("/"):
        return "absolute path"
    if _DRIVE.match(name):
        return "drive letter"
    if ".." in name.split("/"):
        return "parent directory component"
    if "\x00" in raw:
        return "NUL byte in name"
    return None


def safe_relpath(raw: str, fallback: str) -> str:
    """A relative POSIX path for ``raw`` that cannot leave the directory it is joined to."""
    name = _DRIVE.sub("", raw.replace("\\", "/"))
    parts = []
    for part in name.split("/"):
        if part in ("", ".", ".."):
            continue
        clean = _UNSAFE_CHARS.sub("_", display_name(part)).strip(" ")
        clean = clean.lstrip(".") or "_"
        parts.append(clean.encode("utf-8")[:MAX_COMPONENT].decode("utf-8", "ignore") or "_")
    parts = parts[-MAX_COMPONENTS:]
    return "/".join(parts) if parts else fallback


def strip_suffix(name: str, suffixes: dict[str, str]) -> str:
    """``name`` with a compression suffix replaced (``a.tgz`` -> ``a.tar``, ``a.gz`` -> ``a``)."""
    lowered = name.lower()
    for suffix, replacement in suffixes.items():
        if lowered.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)] + replacement
    return f"{name}.decompressed" if name else "decompressed"
