"""TLS ClientHello: SNI, ALPN, offered versions and the JA3 fingerprint.

JA3 (Salesforce's published method) is ``version,ciphers,extensions,groups,point_formats``
as decimal values joined by ``-``, GREASE values removed, and its MD5 is the hash.
"""

from __future__ import annotations

import hashlib
import struct
from typing import Any


def is_grease(value: int) -> bool:
    return (value & 0x0F0F) == 0x0A0A and (value >> 8) == (value & 0xFF)


def _u16_list(raw: bytes) -> list[int]:
    return [v for (v,) in struct.iter_unpack(">H", raw[: len(raw) & ~1])]


def _extensions(body: bytes, off: int) -> list[tuple[int, bytes]]:
    found: list[tuple[int, bytes]] = []
    if off + 2 > len(body):
        return found
    end = min(len(body), off + 2 + struct.unpack_from(">H", body, off)[0])
    off += 2
    while off + 4 <= end:
        etype, elen = struct.unpack_from(">HH", body, off)
        found.append((etype, body[off + 4 : off + 4 + elen]))
        off += 4 + elen
    return found


def _sni(data: bytes) -> str | None:
    off = 2
    while off + 3 <= len(data):
        kind, length = data[off], struct.unpack_from(">H", data, off + 1)[0]
        if kind == 0:
            return bytes(data[off + 3 : off + 3 + length]).decode("ascii", "replace")
        off += 3 + length
    return None


def _alpn(data: bytes) -> list[str]:
    names, off = [], 2
    while off < len(data):
        length = data[off]
        names.append(bytes(data[off + 1 : off + 1 + length]).decode("ascii", "replace"))
        off += 1 + length
    return names


def parse_client_hello(stream: bytes) -> dict[str, Any] | None:
    """The first ClientHello in a client-to-server byte stream (records may be split)."""
    handshake = bytearray()
    off = 0
    while off + 5 <= len(stream) and stream[off] == 0x16 and len(handshake) < 1 << 16:
        length = struct.unpack_from(">H", stream, off + 3)[0]
        handshake += stream[off + 5 : off + 5 + length]
        off += 5 + length
    if len(handshake) < 42 or handshake[0] != 1:
        return None
    body = bytes(handshake[4 : 4 + int.from_bytes(handshake[1:4], "big")])
    try:
        return _hello_fields(body)
    except (struct.error, IndexError):
        return None


def _hello_fields(body: bytes) -> dict[str, Any]:
    version = struct.unpack_from(">H", body)[0]
    off = 34
    off += 1 + body[off]
    cipher_len = struct.unpack_from(">H", body, off)[0]
    ciphers = _u16_list(body[off + 2 : off + 2 + cipher_len])
    off += 2 + cipher_len
    off += 1 + body[off]
    extensions = _extensions(body, off)
    sni, alpn, groups, formats, versions = None, [], [], [], []
    for etype, data in extensions:
        if etype == 0:
            sni = _sni(data)
        elif etype == 16:
            alpn = _alpn(data)
        elif etype == 10:
            groups = _u16_list(data[2:])
        elif etype == 11:
            formats = list(data[1 : 1 + data[0]]) if data else []
        elif etype == 43 and data:
            versions = _u16_list(data[1 : 1 + data[0]])
    ja3 = ",".join([
        str(version),
        "-".join(str(c) for c in ciphers if not is_grease(c)),
        "-".join(str(e) for e, _ in extensions if not is_grease(e)),
        "-".join(str(g) for g in groups if not is_grease(g)),
        "-".join(str(p) for p in formats),
    ])
    return {
        "version": f"0x{version:04x}",
        "sni": sni,
        "alpn": alpn,
        "supported_versions": [f"0x{v:04x}" for v in versions if not is_grease(v)],
        "cipher_count": len(ciphers),
        "ja3": ja3,
        "ja3_hash": hashlib.md5(ja3.encode(), usedforsecurity=False).hexdigest(),
    }
