"""Identification: libmagic's MIME type and description, mapped to an Assemblyline-style type.

The type string (``executable/windows/pe32``, ``archive/zip``...) is what services route on
through their ``accepts`` pattern, so it is decided here once for every file.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from pathlib import Path

import magic

from assay.services.base import FileRequest, Result, Service, Stage

SNIFF_BYTES = 1 << 20
MAGIC_NO_CHECK_SOFT = 0x0004000  # libmagic's flag: leave the magic database out

# (MIME regex, description regex or None, type). First match wins.
_TYPE_RULES: tuple[tuple[str, str | None, str], ...] = (
    (
        r"application/x-(ms)?dos(exec|-executable)|application/vnd\.microsoft\.portable-executable",
        r".*(x86-64|PE32\+).*",
        "executable/windows/pe64",
    ),
    (
        r"application/x-(ms)?dos(exec|-executable)|application/vnd\.microsoft\.portable-executable",
        r".*\(DLL\).*",
        "executable/windows/dll32",
    ),
    (
        r"application/x-(ms)?dos(exec|-executable)|application/vnd\.microsoft\.portable-executable",
        r".*PE32.*",
        "executable/windows/pe32",
    ),
    (r"application/x-(ms)?dos(exec|-executable)", None, "executable/windows/dos"),
    (
        r"application/x-(executable|sharedlib|pie-executable|object|coredump)",
        r".*64-bit.*",
        "executable/linux/elf64",
    ),
    (
        r"application/x-(executable|sharedlib|pie-executable|object|coredump)",
        r".*32-bit.*",
        "executable/linux/elf32",
    ),
    (r"application/x-mach-binary", None, "executable/mach-o"),
    (r"application/java-archive", None, "java/jar"),
    (r"application/x-java-applet", None, "java/class"),
    (r"application/vnd\.android\.package-archive", None, "android/apk"),
    (r"application/zip", None, "archive/zip"),
    (r"application/x-7z-compressed", None, "archive/7-zip"),
    (r"application/(x-)?gzip", None, "archive/gzip"),
    (r"application/x-bzip2", None, "archive/bzip2"),
    (r"application/x-xz", None, "archive/xz"),
    (r"application/zstd|application/x-zstd", None, "archive/zstd"),
    (r"application/x-(tar|ustar|gtar)", None, "archive/tar"),
    (r"application/(x-)?rar|application/vnd\.rar", None, "archive/rar"),
    (r"application/x-cpio", None, "archive/cpio"),
    (r"application/x-iso9660-image", None, "archive/iso"),
    (r"application/vnd\.ms-cab-compressed", None, "archive/cab"),
    (r"application/x-lzma", None, "archive/lzma"),
    (r"application/x-debian-package|application/vnd\.debian\.binary-package", None, "archive/deb"),
    (r"application/x-rpm", None, "archive/rpm"),
    (r"application/pdf", None, "document/pdf"),
    (
        r"application/msword|application/vnd\.openxmlformats-officedocument\.wordprocessingml.*",
        None,
        "document/office/word",
    ),
    (
        r"application/vnd\.ms-excel|application/vnd\.openxmlformats-officedocument\.spreadsheetml.*",
        None,
        "document/office/excel",
    ),
    (
        r"application/vnd\.ms-powerpoint|application/vnd\.openxmlformats-officedocument\.presentationml.*",
        None,
        "document/office/powerpoint",
    ),
    (r"application/vnd\.ms-outlook", None, "document/office/email"),
    (r"application/(x-ole-storage|CDFV2|vnd\.ms-office)", None, "document/office/unknown"),
    (r"application/vnd\.oasis\.opendocument\..*", None, "document/odt"),
    (r"application/rtf|text/rtf", None, "document/office/rtf"),
    (r"application/vnd\.tcpdump\.pcap|application/x-pcap", None, "network/tcpdump"),
    (r"application/x-pcapng", None, "network/pcapng"),
    (r"application/(x-)?sqlite3|application/vnd\.sqlite3", None, "db/sqlite"),
    (r"application/x-shockwave-flash", None, "archive/swf"),
    (r"application/x-dosdriver", None, "executable/windows/driver"),
    (r"application/x-wine-extension-ini", None, "text/ini"),
    (r"message/rfc822", None, "document/email"),
    (r"text/html", None, "code/html"),
    (r"text/xml|application/xml", None, "code/xml"),
    (r"application/json", None, "text/json"),
    (r"text/x-(shellscript|sh)", None, "code/shell"),
    (r"text/x-(script\.)?python", None, "code/python"),
    (r"text/x-perl", None, "code/perl"),
    (r"text/x-php", None, "code/php"),
    (r"text/x-c(\+\+)?", None, "code/c"),
    (r"text/x-java", None, "code/java"),
    (r"text/x-msdos-batch", None, "code/batch"),
    (r"(application|text)/javascript", None, "code/javascript"),
    (r"text/x-ruby", None, "code/ruby"),
    (r"text/x-makefile", None, "code/makefile"),
    (r"text/x-tex", None, "text/latex"),
    (r"text/csv", None, "text/csv"),
    (r"text/plain", None, "text/plain"),
    (r"text/.*", None, "text/plain"),
    (r"image/(.*)", None, "image/{0}"),
    (r"audio/(.*)", None, "audio/{0}"),
    (r"video/(.*)", None, "video/{0}"),
    (r"font/(.*)", None, "resource/font"),
    (r"application/x-empty|inode/x-empty", None, "empty"),
)
_COMPILED = tuple(
    (re.compile(mime, re.I), re.compile(desc, re.I | re.S) if desc else None, kind)
    for mime, desc, kind in _TYPE_RULES
)


@dataclass(frozen=True)
class Identity:
    """What a file is, three ways: our type, its MIME type and libmagic's description."""

    file_type: str
    mime: str
    magic: str


class _Magic(threading.local):
    """libmagic handles are not thread-safe; keep one pair per thread."""

    def __init__(self) -> None:
        self.mime = magic.Magic(mime=True)
        self.text = magic.Magic()
        # For text, the MIME type already carries what soft magic knows (shell, python, html...):
        # the description then only says which text, and skipping the magic database there saves
        # most of libmagic's time on text files.
        self.plain_text = magic.Magic()
        magic.magic_setflags(self.plain_text.cookie, MAGIC_NO_CHECK_SOFT)


_magic = _Magic()


def identify_bytes(head: bytes) -> Identity:
    """Identify from the first bytes only (``SNIFF_BYTES`` are enough for libmagic)."""
    if not head:
        return Identity("empty", "inode/x-empty", "empty")
    mime = _magic.mime.from_buffer(head)
    describe = _magic.plain_text if mime.startswith("text/") else _magic.text
    description = describe.from_buffer(head)
    return Identity(classify(mime, description, head), mime, description)


def identify_path(path: Path) -> Identity:
    """Identify a file on disk, as ``file`` does: for ELF, libmagic needs the file itself to
    parse program headers (PIE or shared object); it bounds that reading on its own.
    """
    with path.open("rb") as handle:
        head = handle.read(SNIFF_BYTES)
    if not head:
        return Identity("empty", "inode/x-empty", "empty")
    if not head.startswith(b"\x7fELF"):
        return identify_bytes(head)
    mime = _magic.mime.from_file(str(path))
    description = _magic.text.from_file(str(path))
    return Identity(classify(mime, description, head), mime, description)


# Scripting languages libmagic calls plain text: (type, telltale fragments, how many must appear).
# Plain substring tests on the lower-cased head keep this cheap on every text file.
_SCRIPT_SIGNS: tuple[tuple[str, tuple[str, ...], int], ...] = (
    (
        "code/powershell",
        ("$env:", "param(", "write-host", "invoke-expression", "iex ", "iex(", "new-object ",
         "-encodedcommand", "[system.", "get-childitem", "get-content", "set-content", "start-process"),
        2,
    ),
    ("code/vbs", ("createobject(", "wscript.", "end sub", "end function", "dim "), 2),
    ("code/batch", ("@echo off", "%~dp0", "goto :", "set ", "%errorlevel%"), 2),
    ("code/javascript", ("function", "var ", "let ", "const ", "document.", "window.", "=>"), 3),
)  # fmt: skip
SCRIPT_SNIFF = 16384


def _script_type(head: bytes) -> str | None:
    sample = head[:SCRIPT_SNIFF].decode("latin-1").lower()
    for kind, fragments, needed in _SCRIPT_SIGNS:
        if sum(fragment in sample for fragment in fragments) >= needed:
            return kind
    return None


def classify(mime: str, description: str, head: bytes = b"") -> str:
    """Map a MIME type and description to an Assemblyline-style type."""
    if head[:4] == b"\x0a\x0d\x0d\x0a" and head[8:12] in (b"\x4d\x3c\x2b\x1a", b"\x1a\x2b\x3c\x4d"):
        return "network/pcapng"  # libmagic names it only in the description, not the MIME type
    if head[:1] == b"\x0a" and _looks_like_onhub_report(head):
        return "iot/onhub"
    for mime_re, desc_re, kind in _COMPILED:
        match = mime_re.fullmatch(mime)
        if match and (desc_re is None or desc_re.fullmatch(description)):
            if kind == "text/plain":
                return _script_type(head) or kind
            return kind.format(*match.groups()) if "{0}" in kind else kind
    return "unknown"


def _looks_like_onhub_report(head: bytes) -> bool:
    """OnHub diagnostic reports open with field 1 (version string) of a protobuf."""
    if len(head) < 4 or head[0] != 0x0A:
        return False
    length, pos = _varint(head, 1)
    version = head[pos : pos + length]
    return 0 < length < 200 and b"(Official Build)" in version


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while pos < len(data) and shift < 64:
        byte = data[pos]
        value |= (byte & 0x7F) << shift
        pos += 1
        if not byte & 0x80:
            break
        shift += 7
    return value, pos


class Identify(Service):
    """Names the file's type, MIME type and libmagic description.

    Runs first on every file; the dispatcher routes the other services on its ``file_type``.
    No parameters.
    """

    name = "Identify"
    version = "1"
    stage = Stage.IDENTIFY
    category = "Static Analysis"
    rejects = r"$^"

    def execute(self, request: FileRequest) -> Result:
        identity = identify_path(request.path)
        result = Result(
            file_info={"type": identity.file_type, "mime": identity.mime, "magic": identity.magic}
        )
        result.add_section(
            "File identification",
            {"type": identity.file_type, "mime": identity.mime, "magic": identity.magic},
            "kv",
        )
        return result
