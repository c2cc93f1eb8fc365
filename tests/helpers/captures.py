"""Builders for synthetic captures: frames, packets and pcap/pcapng writers.

Tests and the benchmark need captures with known content (every link type, both byte
orders, nanosecond stamps, several pcapng interfaces); building them here with
:mod:`struct` keeps them independent of any third-party writer.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Iterable
from pathlib import Path

Packet = tuple[float, bytes]


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\x00"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def ipv4(src: str, dst: str, proto: int, payload: bytes, ident: int = 1) -> bytes:
    header = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        20 + len(payload),
        ident & 0xFFFF,
        0x4000,
        64,
        proto,
        0,
        ipaddress.IPv4Address(src).packed,
        ipaddress.IPv4Address(dst).packed,
    )
    header = header[:10] + struct.pack("!H", _checksum(header)) + header[12:]
    return header + payload


def ipv6(src: str, dst: str, proto: int, payload: bytes) -> bytes:
    return (
        struct.pack(
            "!IHBB16s16s",
            6 << 28,
            len(payload),
            proto,
            64,
            ipaddress.IPv6Address(src).packed,
            ipaddress.IPv6Address(dst).packed,
        )
        + payload
    )


def udp(sport: int, dport: int, payload: bytes) -> bytes:
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def tcp(sport: int, dport: int, seq: int, payload: bytes = b"", flags: int = 0x18, ack: int = 0) -> bytes:
    header = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack, 5 << 4, flags, 65535, 0, 0)
    return header + payload


def ip_packet(src: str, dst: str, proto: int, segment: bytes) -> bytes:
    if ":" in src:
        return ipv6(src, dst, proto, segment)
    return ipv4(src, dst, proto, segment)


def ethernet(src_mac: str, dst_mac: str, packet: bytes, vlan: int | None = None) -> bytes:
    etype = 0x86DD if packet[0] >> 4 == 6 else 0x0800
    head = bytes.fromhex(dst_mac.replace(":", "")) + bytes.fromhex(src_mac.replace(":", ""))
    if vlan is not None:
        head += struct.pack("!HH", 0x8100, vlan)
    return head + struct.pack("!H", etype) + packet


def sll(src_mac: str, packet: bytes) -> bytes:
    etype = 0x86DD if packet[0] >> 4 == 6 else 0x0800
    return (
        struct.pack("!HHH", 0, 1, 6)
        + bytes.fromhex(src_mac.replace(":", ""))
        + b"\0\0"
        + struct.pack("!H", etype)
        + packet
    )


def sll2(src_mac: str, packet: bytes) -> bytes:
    etype = 0x86DD if packet[0] >> 4 == 6 else 0x0800
    mac = bytes.fromhex(src_mac.replace(":", ""))
    return struct.pack("!HHIHBB", etype, 0, 2, 1, 0, 6) + mac + b"\0\0" + packet


def null_loopback(packet: bytes, big_endian: bool = False) -> bytes:
    family = 30 if packet[0] >> 4 == 6 else 2
    return struct.pack(">I" if big_endian else "<I", family) + packet


def write_pcap(
    path: Path, packets: Iterable[Packet], linktype: int = 1, big_endian: bool = False, nanoseconds: bool = False
) -> Path:
    order = ">" if big_endian else "<"
    magic = 0xA1B23C4D if nanoseconds else 0xA1B2C3D4
    scale = 1_000_000_000 if nanoseconds else 1_000_000
    with path.open("wb") as out:
        out.write(struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, 262144, linktype))
        for ts, frame in packets:
            sec = int(ts)
            frac = round((ts - sec) * scale)
            out.write(struct.pack(order + "IIII", sec, frac, len(frame), len(frame)) + frame)
    return path


def _option(code: int, value: bytes) -> bytes:
    return struct.pack("<HH", code, len(value)) + value + b"\0" * (-len(value) % 4)


def _block(btype: int, body: bytes) -> bytes:
    body += b"\0" * (-len(body) % 4)
    length = len(body) + 12
    return struct.pack("<II", btype, length) + body + struct.pack("<I", length)


def write_pcapng(
    path: Path, interfaces: list[tuple[int, int]], packets: Iterable[tuple[int, float, bytes]], comment: str = ""
) -> Path:
    """``interfaces`` are (link type, tsresol exponent of ten); packets are (interface, time, frame)."""
    shb_opts = (_option(1, comment.encode()) + _option(0, b"")) if comment else b""
    with path.open("wb") as out:
        out.write(_block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1) + shb_opts))
        for linktype, resol in interfaces:
            out.write(
                _block(1, struct.pack("<HHI", linktype, 0, 262144) + _option(9, bytes([resol])) + _option(0, b""))
            )
        for index, (iface, ts, frame) in enumerate(packets):
            units = round(ts * 10 ** interfaces[iface][1])
            body = struct.pack("<IIIII", iface, units >> 32, units & 0xFFFFFFFF, len(frame), len(frame))
            body += frame + b"\0" * (-len(frame) % 4)
            if index == 0 and comment:
                body += _option(1, comment.encode()) + _option(0, b"")
            out.write(_block(6, body))
    return path


# -- application payloads -------------------------------------------------------------------
def dns_name(name: str) -> bytes:
    return b"".join(bytes([len(p)]) + p.encode() for p in name.split(".") if p) + b"\0"


def dns_query(name: str, ident: int = 0x1234, qtype: int = 1) -> bytes:
    return struct.pack("!HHHHHH", ident, 0x0100, 1, 0, 0, 0) + dns_name(name) + struct.pack("!HH", qtype, 1)


def dns_answer(name: str, address: str, ident: int = 0x1234, flags: int = 0x8180) -> bytes:
    """A response with one A record whose name is compressed to the question."""
    question = dns_name(name) + struct.pack("!HH", 1, 1)
    answer = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 120, 4) + ipaddress.IPv4Address(address).packed
    return struct.pack("!HHHHHH", ident, flags, 1, 1, 0, 0) + question + answer


def mdns_announce(hostname: str, address: str, service: str) -> bytes:
    """An mDNS response announcing ``hostname.local`` A and a PTR for ``service``."""
    a_rec = (
        dns_name(f"{hostname}.local") + struct.pack("!HHIH", 1, 0x8001, 120, 4) + ipaddress.IPv4Address(address).packed
    )
    target = dns_name(f"{hostname}.{service}")
    ptr = dns_name(service) + struct.pack("!HHIH", 12, 1, 120, len(target)) + target
    return struct.pack("!HHHHHH", 0, 0x8400, 0, 2, 0, 0) + a_rec + ptr


def http_request(
    method: str, host: str, uri: str, user_agent: str = "synth/1", body: bytes = b"", extra: str = ""
) -> bytes:
    head = f"{method} {uri} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {user_agent}\r\n{extra}"
    if body:
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + body


def http_response(body: bytes, content_type: str = "text/html", status: int = 200) -> bytes:
    head = (
        f"HTTP/1.1 {status} OK\r\nServer: synth\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def _ext(etype: int, data: bytes) -> bytes:
    return struct.pack("!HH", etype, len(data)) + data


def tls_client_hello(
    sni: str, alpn: list[str], ciphers: list[int], groups: list[int], formats: list[int], grease: bool = True
) -> bytes:
    """One TLS record with a ClientHello; GREASE values are added where JA3 must drop them."""
    name = sni.encode()
    exts = b""
    if grease:
        exts += _ext(0x0A0A, b"")
    exts += _ext(0, struct.pack("!HBH", len(name) + 3, 0, len(name)) + name)
    groups_raw = b"".join(struct.pack("!H", g) for g in ([0x1A1A] if grease else []) + groups)
    exts += _ext(10, struct.pack("!H", len(groups_raw)) + groups_raw)
    exts += _ext(11, bytes([len(formats), *formats]))
    alpn_raw = b"".join(bytes([len(p)]) + p.encode() for p in alpn)
    exts += _ext(16, struct.pack("!H", len(alpn_raw)) + alpn_raw)
    cipher_raw = b"".join(struct.pack("!H", c) for c in ([0x2A2A] if grease else []) + ciphers)
    body = struct.pack("!H", 0x0303) + b"\x11" * 32 + b"\x00"
    body += struct.pack("!H", len(cipher_raw)) + cipher_raw
    body += b"\x01\x00" + struct.pack("!H", len(exts)) + exts
    handshake = b"\x01" + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x01" + struct.pack("!H", len(handshake)) + handshake


def _mqtt_string(text: str) -> bytes:
    return struct.pack("!H", len(text.encode())) + text.encode()


def _mqtt_packet(first: int, body: bytes) -> bytes:
    length, encoded = len(body), b""
    while True:
        byte, length = length & 0x7F, length >> 7
        encoded += bytes([byte | (0x80 if length else 0)])
        if not length:
            return bytes([first]) + encoded + body


def mqtt_connect(client_id: str, username: str | None = None, password: str | None = None) -> bytes:
    flags = 0x02 | (0x80 if username else 0) | (0x40 if password else 0)
    body = _mqtt_string("MQTT") + bytes([4, flags]) + struct.pack("!H", 60) + _mqtt_string(client_id)
    body += (_mqtt_string(username) if username else b"") + (_mqtt_string(password) if password else b"")
    return _mqtt_packet(0x10, body)


def mqtt_publish(topic: str, payload: bytes, qos: int = 0, packet_id: int = 1) -> bytes:
    body = _mqtt_string(topic) + (struct.pack("!H", packet_id) if qos else b"") + payload
    return _mqtt_packet(0x30 | (qos << 1), body)


def dhcp_request(mac: str, hostname: str, vendor_class: str, prl: list[int], xid: int = 0x3903F326) -> bytes:
    chaddr = bytes.fromhex(mac.replace(":", ""))
    head = struct.pack("!BBBBIHH4s4s4s4s", 1, 1, 6, 0, xid, 0, 0x8000, b"\0" * 4, b"\0" * 4, b"\0" * 4, b"\0" * 4)
    head += chaddr + b"\0" * 10 + b"\0" * 192 + b"\x63\x82\x53\x63"
    options = b"\x35\x01\x03" + bytes([12, len(hostname)]) + hostname.encode()
    options += bytes([60, len(vendor_class)]) + vendor_class.encode() + bytes([55, len(prl), *prl]) + b"\xff"
    return head + options


def ssdp_notify(location: str, usn: str, server: str) -> bytes:
    return (
        f"NOTIFY * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nNT: upnp:rootdevice\r\nNTS: ssdp:alive\r\n"
        f"LOCATION: {location}\r\nUSN: {usn}\r\nSERVER: {server}\r\n\r\n"
    ).encode()


def ssdp_search(target: str = "ssdp:all") -> bytes:
    return (
        f'M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: "ssdp:discover"\r\nMX: 2\r\n'
        f"ST: {target}\r\nUSER-AGENT: synth/1 UPnP/1.1\r\n\r\n"
    ).encode()


def coap_message(
    mtype: int,
    code: int,
    mid: int,
    token: bytes,
    path: str,
    observe: int | None = None,
    payload: bytes = b"",
    query: str = "",
) -> bytes:
    """A CoAP message with Observe, Uri-Path and Uri-Query options (all lengths under 13)."""
    out = bytes([0x40 | (mtype << 4) | len(token), code]) + struct.pack("!H", mid) + token
    options: list[tuple[int, bytes]] = []
    if observe is not None:
        options.append((6, observe.to_bytes((observe.bit_length() + 7) // 8, "big")))
    options += [(11, part.encode()) for part in path.strip("/").split("/") if part]
    options += [(15, part.encode()) for part in query.split("&") if part]
    last = 0
    for number, value in options:
        out += bytes([((number - last) << 4) | len(value)]) + value
        last = number
    return out + (b"\xff" + payload if payload else b"")
