"""DNS, mDNS and LLMNR messages: questions and answers, with bounded name decompression."""

from __future__ import annotations

import ipaddress
import struct
from typing import Any

TYPES = {
    1: "A", 2: "NS", 5: "CNAME", 6: "SOA", 12: "PTR", 15: "MX", 16: "TXT", 28: "AAAA",
    33: "SRV", 41: "OPT", 47: "NSEC", 64: "SVCB", 65: "HTTPS", 255: "ANY",
}
MAX_RECORDS = 64
MAX_JUMPS = 16


def read_name(msg: bytes, off: int) -> tuple[str, int]:
    """The dotted name at ``off`` and the offset after it; ``"<Root>"`` for the root."""
    labels: list[str] = []
    end = -1
    jumps = 0
    while off < len(msg):
        length = msg[off]
        if length & 0xC0 == 0xC0:
            if off + 1 >= len(msg) or jumps >= MAX_JUMPS:
                raise ValueError("bad compression pointer")
            if end < 0:
                end = off + 2
            off = ((length & 0x3F) << 8) | msg[off + 1]
            jumps += 1
            continue
        if length == 0:
            name = ".".join(labels) if labels else "<Root>"
            return name, end if end >= 0 else off + 1
        if length > 63 or off + 1 + length > len(msg):
            raise ValueError("bad label")
        labels.append(bytes(msg[off + 1 : off + 1 + length]).decode("ascii", "replace"))
        off += 1 + length
    raise ValueError("name runs past the message")


def _rdata(msg: bytes, rtype: int, off: int, length: int) -> str:
    raw = msg[off : off + length]
    if rtype == 1 and length == 4:
        return ".".join(str(b) for b in raw)
    if rtype == 28 and length == 16:
        return str(ipaddress.IPv6Address(bytes(raw)))
    if rtype in (2, 5, 12):
        return read_name(msg, off)[0]
    if rtype == 33 and length > 6:
        _prio, _weight, port = struct.unpack_from(">HHH", msg, off)
        return f"{read_name(msg, off + 6)[0]}:{port}"
    if rtype == 16:
        parts, pos = [], 0
        while pos < len(raw):
            size = raw[pos]
            parts.append(bytes(raw[pos + 1 : pos + 1 + size]).decode("utf-8", "replace"))
            pos += 1 + size
        return " ".join(parts)
    if rtype == 15 and length > 2:
        return read_name(msg, off + 2)[0]
    return bytes(raw[:64]).hex()


def parse_dns(msg: bytes) -> dict[str, Any] | None:
    """Header flags, questions and answer-like records (answers, authority, additional)."""
    if len(msg) < 12:
        return None
    ident, flags, qd, an, ns, ar = struct.unpack_from(">HHHHHH", msg)
    questions: list[dict[str, Any]] = []
    answers: list[dict[str, Any]] = []
    try:
        off = 12
        for _ in range(min(qd, MAX_RECORDS)):
            name, off = read_name(msg, off)
            if off + 4 > len(msg):
                raise ValueError("short question")
            qtype, _qclass = struct.unpack_from(">HH", msg, off)
            off += 4
            questions.append({"name": name, "type": TYPES.get(qtype, str(qtype))})
        for _ in range(min(an + ns + ar, MAX_RECORDS)):
            name, off = read_name(msg, off)
            if off + 10 > len(msg):
                raise ValueError("short record")
            rtype, _rclass, ttl, rdlen = struct.unpack_from(">HHIH", msg, off)
            off += 10
            if off + rdlen > len(msg):
                raise ValueError("short rdata")
            if rtype != 41:
                answers.append({"name": name, "type": TYPES.get(rtype, str(rtype)), "ttl": ttl,
                                "data": _rdata(msg, rtype, off, rdlen)})
            off += rdlen
    except (ValueError, struct.error):
        if not questions:
            return None
    return {
        "id": ident,
        "response": bool(flags & 0x8000),
        "opcode": (flags >> 11) & 0xF,
        "rcode": flags & 0xF,
        "questions": questions,
        "answers": answers,
    }
