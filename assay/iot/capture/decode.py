"""Link, network and transport headers: just enough to find addresses, ports and payload.

Each function takes the frame bytes and an offset and returns plain tuples (no objects per
packet), or ``None`` when the header is missing or not one we decode, so the hot loop in
:mod:`assay.iot.capture.analyser` stays cheap.
"""

from __future__ import annotations

import ipaddress
import struct
from functools import lru_cache

ETH_IPV4, ETH_IPV6, ETH_ARP = 0x0800, 0x86DD, 0x0806
VLAN_TYPES = frozenset({0x8100, 0x88A8, 0x9100})
LINK_ETHERNET, LINK_NULL, LINK_LOOP = 1, 0, 108
LINK_RAW = frozenset({12, 14, 101})
LINK_IPV4, LINK_IPV6, LINK_SLL, LINK_SLL2 = 228, 229, 113, 276
LINK_NAMES = {
    0: "null", 1: "ethernet", 12: "raw", 14: "raw", 101: "raw", 108: "loop",
    113: "linux_sll", 228: "ipv4", 229: "ipv6", 276: "linux_sll2",
}
_IPV6_EXT = frozenset({0, 43, 60, 51})
_NULL_IPV6 = frozenset({24, 28, 30})
_U16 = struct.Struct(">H").unpack_from

# (ethertype, offset of the network header, source MAC or None, destination MAC or None)
Link = tuple[int, int, bytes | None, bytes | None]
# (source address, destination address, protocol, transport offset, end of IP payload, first fragment)
Network = tuple[bytes, bytes, int, int, int, bool]


def _by_version(frame: bytes, off: int) -> int:
    if len(frame) <= off:
        return 0
    version = frame[off] >> 4
    return ETH_IPV4 if version == 4 else ETH_IPV6 if version == 6 else 0


def decode_link(linktype: int, frame: bytes) -> Link | None:
    """The network-layer type and where it starts, for the link types the analyser knows."""
    if linktype == LINK_ETHERNET:
        if len(frame) < 14:
            return None
        etype = (frame[12] << 8) | frame[13]
        off = 14
        while etype in VLAN_TYPES and len(frame) >= off + 4:
            etype = (frame[off + 2] << 8) | frame[off + 3]
            off += 4
        return etype, off, frame[6:12], frame[0:6]
    if linktype == LINK_SLL and len(frame) >= 16:
        addr_len = _U16(frame, 4)[0]
        src = frame[6:12] if addr_len == 6 else None
        return _U16(frame, 14)[0], 16, src, None
    if linktype == LINK_SLL2 and len(frame) >= 20:
        src = frame[12:18] if frame[11] == 6 else None
        return _U16(frame, 0)[0], 20, src, None
    if linktype in LINK_RAW or linktype in (LINK_IPV4, LINK_IPV6):
        return _by_version(frame, 0), 0, None, None
    if linktype in (LINK_NULL, LINK_LOOP) and len(frame) >= 4:
        family = int.from_bytes(frame[:4], "big" if linktype == LINK_LOOP or frame[0] == 0 else "little")
        etype = ETH_IPV4 if family == 2 else ETH_IPV6 if family in _NULL_IPV6 else _by_version(frame, 4)
        return etype, 4, None, None
    return None


def decode_ip(etype: int, frame: bytes, off: int) -> Network | None:
    """IPv4 or IPv6 addresses, protocol and payload bounds (IPv6 extension headers skipped)."""
    if etype == ETH_IPV4:
        if len(frame) < off + 20 or frame[off] >> 4 != 4:
            return None
        ihl = (frame[off] & 0x0F) * 4
        total = _U16(frame, off + 2)[0]
        end = min(len(frame), off + total) if total >= ihl else len(frame)
        frag = _U16(frame, off + 6)[0] & 0x1FFF
        src, dst = frame[off + 12 : off + 16], frame[off + 16 : off + 20]
        return src, dst, frame[off + 9], off + ihl, end, frag == 0
    if etype == ETH_IPV6:
        if len(frame) < off + 40:
            return None
        nxt = frame[off + 6]
        end = min(len(frame), off + 40 + _U16(frame, off + 4)[0])
        src, dst = frame[off + 8 : off + 24], frame[off + 24 : off + 40]
        pos, first = off + 40, True
        for _ in range(8):
            if nxt in _IPV6_EXT and pos + 8 <= end:
                length = (frame[pos + 1] + 2) * 4 if nxt == 51 else (frame[pos + 1] + 1) * 8
                nxt, pos = frame[pos], pos + length
            elif nxt == 44 and pos + 8 <= end:
                first = _U16(frame, pos + 2)[0] >> 3 == 0
                nxt, pos = frame[pos], pos + 8
            else:
                break
        return src, dst, nxt, pos, end, first
    return None


@lru_cache(maxsize=65536)
def ip_text(raw: bytes) -> str:
    """Printable form of a 4- or 16-byte address (cached: few hosts, many packets)."""
    if len(raw) == 4:
        return f"{raw[0]}.{raw[1]}.{raw[2]}.{raw[3]}"
    return str(ipaddress.IPv6Address(raw))


@lru_cache(maxsize=65536)
def mac_text(raw: bytes) -> str:
    return raw.hex(":")


def split_addresses(addrs: bytes) -> tuple[bytes, bytes]:
    """Source and destination from a conversation key (addresses then four port bytes)."""
    half = (len(addrs) - 4) // 2
    return addrs[:half], addrs[half : 2 * half]


def reverse_addresses(addrs: bytes) -> bytes:
    """The key of the opposite direction: addresses and ports swapped."""
    half = (len(addrs) - 4) // 2
    return addrs[half : 2 * half] + addrs[:half] + addrs[-2:] + addrs[-4:-2]


def key_ports(addrs: bytes) -> tuple[int, int]:
    return (addrs[-4] << 8) | addrs[-3], (addrs[-2] << 8) | addrs[-1]
