"""One pass over a capture: the hot loop counts hosts and conversations and hands payloads on.

Only what is needed is decoded: UDP payloads go to a parser chosen by port, TCP payloads
are kept (bounded) only for directions whose first bytes look like HTTP, TLS, MQTT, DNS or
an event stream, and those are reassembled and parsed once the walk ends.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from assay.iot.capture.decode import (
    ETH_ARP,
    decode_ip,
    decode_link,
    ip_text,
    key_ports,
    reverse_addresses,
    split_addresses,
)
from assay.iot.capture.protocols import http as http_proto
from assay.iot.capture.protocols.mqtt import looks_like_connect
from assay.iot.capture.reader import CaptureReader
from assay.iot.capture.report import Report
from assay.iot.capture.streams import Direction

DEFAULTS: dict[str, Any] = {
    "max_packets": 10_000_000,
    "max_bytes": 4 << 30,
    "max_records": 10_000,
    "max_conversations": 200_000,
    "max_hosts": 10_000,
    "max_streams": 20_000,
    "max_stream_bytes": 4 << 20,
    "max_reassembly_bytes": 256 << 20,
    "max_carve_size": 4 << 20,
    "max_carve_count": 200,
    "time_limit": 50.0,
}
_SEQ = struct.Struct(">I").unpack_from
_PORTS = struct.Struct(">HH").unpack_from
_UDP_KINDS = {53: "dns", 5355: "dns", 5353: "mdns", 67: "dhcp", 68: "dhcp", 1900: "ssdp", 5683: "coap"}
_TCP_PORT_KINDS = {53: "dns", 1883: "mqtt"}
_KIND_LIMITS = {"tls": 1 << 16, "dns": 1 << 16}
_NEVER = object()
_ETH_IPV4_NO_OPTIONS = b"\x08\x00\x45"
_PENDING = 4
_NO_PORTS = b"\x00\x00\x00\x00"


def options_with_defaults(options: dict[str, Any] | None) -> dict[str, Any]:
    merged = dict(DEFAULTS)
    merged.update({k: v for k, v in (options or {}).items() if k in DEFAULTS})
    return merged


class Analysis:
    """State of one analysis; ``run()`` walks the file, then ``report`` holds every table.

    Usage::

        analysis = Analysis(Path("dump.pcap"), {"max_packets": 100_000})
        analysis.run()
        analysis.report.as_dict()
    """

    def __init__(self, path: Path, options: dict[str, Any] | None = None) -> None:
        self.path = path
        self.opts = options_with_defaults(options)
        self.report = Report(self.opts)
        self.dirs: dict[bytes, Direction | None] = {}
        self.kept_bytes = 0
        self._pending: dict[bytes, list[tuple[int, float, bytes]]] = {}
        self._udp: dict[str, Callable[..., None]] = {
            "dns": self.report.dns_message, "mdns": self.report.dns_message, "dhcp": self.report.dhcp,
            "ssdp": self.report.ssdp, "coap": self.report.coap,
        }

    def run(self) -> Report:
        reader = CaptureReader(self.path, int(self.opts["max_bytes"]))
        try:
            self._walk(reader)
        except Exception as exc:  # a parser bug must not lose what was already found
            self.report.error(f"analysis stopped: {type(exc).__name__}: {exc}")
        self.report.capture_info(reader)
        for direction in self.dirs.values():
            if direction is not None:
                self.report.tcp_direction(direction)
        self.report.finish()
        return self.report

    def _walk(self, reader: CaptureReader) -> None:
        report, convs, hosts, dirs = self.report, self.report.convs, self.report.hosts, self.dirs
        report.udp_kinds = _UDP_KINDS
        saturated, counts = report.saturated, report.counts
        max_packets = int(self.opts["max_packets"])
        deadline = time.monotonic() + float(self.opts["time_limit"])
        count = undecoded = 0
        for ts, linktype, frame, orig in reader:
            if count >= max_packets:
                report.anomaly("packet_limit_reached")
                break
            count += 1
            if not count & 0x3FFF and time.monotonic() > deadline:
                report.anomaly("time_limit_reached")
                break
            if linktype == 1 and frame[12:15] == _ETH_IPV4_NO_OPTIONS and len(frame) >= 34:
                # the common case, inlined: Ethernet, IPv4 without options
                smac, proto, l4 = None, frame[23], 34  # MAC sliced only when first needed
                end = min(len(frame), 14 + ((frame[16] << 8) | frame[17]))
                first = not (frame[20] & 0x1F or frame[21])
                addrs = frame[26:38] if first and (proto == 6 or proto == 17) else frame[26:34] + _NO_PORTS
            else:
                link = decode_link(linktype, frame)
                if link is None:
                    undecoded += 1
                    continue
                etype, off, smac, _dmac = link
                net = decode_ip(etype, frame, off)
                if net is None:
                    if etype == ETH_ARP and smac is not None:
                        report.arp(frame, off, ts)
                    else:
                        undecoded += 1
                    continue
                src, dst, proto, l4, end, first = net
                ports = frame[l4 : l4 + 4] if first and (proto == 6 or proto == 17) else b""
                addrs = src + dst + (ports if len(ports) == 4 else _NO_PORTS)
                if smac is None:
                    smac = src
            key = (proto, addrs)
            entry = convs.get(key)
            if entry is None:
                entry = report.new_conversation(key, ts)
                if entry is None:
                    continue
            conv, side = entry
            host = conv[8 + side]
            if host is None:  # first packet from this side: learn who sends it
                if smac is None:
                    smac = frame[6:12]
                host = conv[8 + side] = report.saw_address(hosts.get(smac), smac, addrs, ts)
            conv[side] += 1
            conv[2 + side] += orig
            conv[5] = ts
            if host is not None:
                host[0] += 1
                host[1] += orig
                host[3] = ts
            if proto == 17:
                kind = conv[10]
                if kind is None or end - l4 <= 8:
                    continue
                if kind in saturated:
                    counts[saturated[kind]] += 1
                    continue
                sport, dport = _PORTS(frame, l4)
                src, dst = split_addresses(addrs)
                self._udp[kind](ts, src, sport, dst, dport, frame[l4 + 8 : end], host)
            elif proto == 6 and end - l4 >= 20:
                payload_off = l4 + (frame[l4 + 12] >> 4) * 4
                if payload_off >= end:
                    continue
                direction = dirs.get(addrs, _NEVER)
                if direction is _NEVER:
                    segment = (_SEQ(frame, l4 + 4)[0], ts, frame[payload_off:end])
                    direction = self._classify(addrs, segment, conv[6])
                elif direction is not None:
                    self.kept_bytes += direction.add(_SEQ(frame, l4 + 4)[0], ts, frame[payload_off:end])
                    if self.kept_bytes > self.opts["max_reassembly_bytes"]:
                        report.anomaly("reassembly_limit_reached")
                        direction.limit = 0
        report.stats["packets"] = count
        report.stats["undecoded_packets"] = undecoded

    def _classify(self, addrs: bytes, segment: tuple[int, float, bytes], stream: int) -> Direction | None:
        """Decide from the first payloads of a direction whether its bytes are worth keeping.

        Up to ``_PENDING`` segments are held while undecided, so a request whose start
        arrives after its continuation (reordering) is still recognised.
        """
        src, dst = split_addresses(addrs)
        sport, dport = key_ports(addrs)
        kind = _first_payload_kind(segment[2], sport, dport)
        reverse = self.dirs.get(reverse_addresses(addrs))
        if kind is None and reverse is not None and reverse.kind in ("http", "mqtt", "dns"):
            kind = reverse.kind
        held = self._pending.pop(addrs, [])
        held.append(segment)
        if kind is None and len(held) < _PENDING:
            self._pending[addrs] = held
            return None
        if kind is None or len(self.dirs) >= self.opts["max_streams"]:
            if kind is not None:
                self.report.anomaly("stream_limit_reached")
            self.dirs[addrs] = None
            return None
        limit = min(_KIND_LIMITS.get(kind, 1 << 62), int(self.opts["max_stream_bytes"]))
        direction = Direction(kind, ip_text(src), sport, ip_text(dst), dport, limit, stream)
        self.dirs[addrs] = direction
        for seq, ts, payload in held:
            self.kept_bytes += direction.add(seq, ts, payload)
        return direction


def _first_payload_kind(payload: bytes, sport: int, dport: int) -> str | None:
    if http_proto.is_request(payload) or http_proto.is_response(payload):
        return "http"
    if len(payload) > 5 and payload[0] == 0x16 and payload[1] == 3 and payload[5] == 1:
        return "tls"
    port_kind = _TCP_PORT_KINDS.get(dport) or _TCP_PORT_KINDS.get(sport)
    if port_kind is not None:
        return port_kind
    if looks_like_connect(payload):
        return "mqtt"
    if http_proto.looks_like_sse(payload):
        return "sse"
    return None
