"""One pass over a capture: the hot loop counts conversations and hands payloads on.

Only what is needed is decoded: UDP payloads go to a parser chosen by port, TCP payloads
are kept (bounded) only for directions whose first bytes look like HTTP, TLS, MQTT, DNS or
an event stream, and those are reassembled and parsed once the walk ends.

Per packet only what cannot wait is done. Each direction of a conversation gets a *tally*
that the walk bumps; the conversation and host tables are filled from the tallies once the
walk ends, and datagrams of a protocol whose table is full are only counted there too. Pcap
files of Ethernet frames, nearly every capture met in practice, are walked straight over the
memory map by :meth:`CaptureAnalysis._walk_ethernet_pcap`, which reads a record header and the
Ethernet/IPv4 header with one precompiled struct and needs no per-packet objects for a known
direction; every other packet takes the general path, :meth:`CaptureAnalysis._packet`.
"""

from __future__ import annotations

import mmap
import struct
import time
from collections.abc import Callable, Iterable
from operator import itemgetter
from pathlib import Path
from typing import Any

from assay.iot.capture.decode import (
    ETH_ARP,
    LINK_ETHERNET,
    decode_ip,
    decode_link,
    ip_text,
    key_ports,
    reverse_addresses,
    split_addresses,
)
from assay.iot.capture.protocols import http as http_proto
from assay.iot.capture.protocols.mqtt import looks_like_connect
from assay.iot.capture.reader import MAX_RECORD, CaptureReader, PcapLayout, Record
from assay.iot.capture.report import Host, Report
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
_UDP_KINDS = {53: "dns", 5355: "dns", 5353: "mdns", 67: "dhcp", 68: "dhcp", 1900: "ssdp", 5683: "coap"}
_TCP_PORT_KINDS = {53: "dns", 1883: "mqtt"}
_KIND_LIMITS = {"tls": 1 << 16, "dns": 1 << 16}
_NEVER = object()
_ETH_IPV4_NO_OPTIONS = b"\x08\x00\x45"
_PENDING = 4
_NO_PORTS = b"\x00\x00\x00\x00"
_CLOCK_EVERY = 0x3FFF  # the clock is read once every 16384 packets
# What a known direction needs from an Ethernet frame: ethertype and IP version/IHL, total
# length, fragment word (in the record's byte order, see frag_mask), protocol, then addresses
# and ports.
_IPV4_FIELDS = "12x3sxBBxxHxB2x12s"
_FRAME_IPV4 = struct.Struct(">" + _IPV4_FIELDS).unpack_from
# The same after a pcap record header, whose timestamp is skipped: only the few packets that
# need it read it again (_TIMESTAMP).
_RECORD_IPV4 = "8xII" + _IPV4_FIELDS
_WIDE = 16 + 38  # bytes that struct reads from the start of a record
_TIMESTAMP = "II"

# A tally: one direction of one conversation as the walk sees it. Its fields, by index:
# packets, bytes, order of its last packet (record offset or packet number), time of that
# packet, what to do with a datagram's payload (the parser kind, _COUNT_ONLY once that
# parser's table is full, or None), datagrams counted unparsed, host, conversation, side,
# parser kind.
Tally = list[Any]
_SEQ_AT = 2
_COUNT_ONLY = object()


def options_with_defaults(options: dict[str, Any] | None) -> dict[str, Any]:
    merged = dict(DEFAULTS)
    merged.update({k: v for k, v in (options or {}).items() if k in DEFAULTS})
    return merged


class _Budget:
    """The packet and time limits, checked only at checkpoints so a hot loop compares one count.

    ``next`` is the packet count at which :meth:`stop` must be asked next.
    """

    def __init__(self, report: Report, max_packets: int, time_limit: float) -> None:
        self.report = report
        self.max_packets = max_packets
        self.deadline = time.monotonic() + time_limit
        self.next = self._after(0)

    def _after(self, count: int) -> int:
        return min(count | _CLOCK_EVERY, self.max_packets)

    def stop(self, count: int) -> int | None:
        """``None`` to read one more packet, else the packet count the walk ends with (noted)."""
        if count >= self.max_packets:
            self.report.anomaly("packet_limit_reached")
            return count
        if count & _CLOCK_EVERY == _CLOCK_EVERY and time.monotonic() > self.deadline:
            self.report.anomaly("time_limit_reached")
            return count + 1  # that packet was counted, but never read
        self.next = self._after(count + 1)
        return None


class CaptureAnalysis:
    """State of one analysis; ``run()`` walks the file, then ``report`` holds every table.

    Usage::

        analysis = CaptureAnalysis(Path("dump.pcap"), {"max_packets": 100_000})
        analysis.run()
        analysis.report.as_dict()
    """

    def __init__(self, path: Path, options: dict[str, Any] | None = None) -> None:
        self.path = path
        self.opts = options_with_defaults(options)
        self.report = Report(self.opts)
        self.report.udp_kinds = _UDP_KINDS
        self.dirs: dict[bytes, Direction | None] = {}
        self.kept_bytes = 0
        self.undecoded = 0
        # tallies by protocol then conversation key, once their sender is known
        self.known: dict[int, dict[bytes, Tally]] = {6: {}, 17: {}}
        self.hostless: dict[tuple[int, bytes], Tally] = {}
        self.tallies: list[Tally] = []
        self._fast = self._fast_tables()
        self._count_only_kinds = 0
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
        self._fold_tallies()
        self.report.capture_info(reader)
        for direction in self.dirs.values():
            if direction is not None:
                self.report.tcp_direction(direction)
        self.report.finish()
        return self.report

    def _budget(self) -> _Budget:
        return _Budget(self.report, int(self.opts["max_packets"]), float(self.opts["time_limit"]))

    def _walk(self, reader: CaptureReader) -> None:
        with reader.mapped() as buf:
            layout = reader.pcap_layout(buf) if buf is not None and reader.format == "pcap" else None
            if layout is not None and layout.linktype == LINK_ETHERNET:
                try:
                    with memoryview(buf) as view:  # struct reads a memoryview faster than the map
                        count = self._walk_ethernet_pcap(reader, buf, view, layout)
                finally:
                    self._times_from_offsets(buf, layout)
            elif buf is not None and (layout is not None or reader.format == "pcapng"):
                count = self._walk_records(reader.records(buf, layout))
            else:
                count = 0
        self.report.stats["packets"] = count
        self.report.stats["undecoded_packets"] = self.undecoded

    def _walk_records(self, records: Iterable[Record]) -> int:
        """The general walk, for any format and link type; returns the packets counted."""
        budget = self._budget()
        count = 0
        for ts, linktype, frame, orig in records:
            if count >= budget.next:
                stopped = budget.stop(count)
                if stopped is not None:
                    return stopped
            count += 1
            if linktype != LINK_ETHERNET or not self._known_packet(ts, frame, orig, count):
                self._packet(ts, linktype, frame, orig, count)
        return count

    def _walk_ethernet_pcap(self, reader: CaptureReader, buf: mmap.mmap, view: memoryview,
                            layout: PcapLayout) -> int:
        """The fast walk over a pcap of Ethernet frames; returns the packets counted.

        Tallies are stamped with the record offset instead of a time (see
        :meth:`_times_from_offsets`). The loop body is inlined on purpose: a call per packet
        would cost as much as everything else it does.
        """
        unpack = struct.Struct(layout.order + _RECORD_IPV4).unpack_from
        stamp = struct.Struct(layout.order + _TIMESTAMP).unpack_from

        def time_of(record: int) -> float:
            sec, frac = stamp(view, record)
            return sec + frac * scale

        frag_mask = 0xFF1F if layout.order == "<" else 0x1FFF  # offset bits, "more fragments" flag
        dirs, fast = self.dirs, self._fast
        scale, size, ipv4, never, max_record = layout.scale, layout.size, _ETH_IPV4_NO_OPTIONS, _NEVER, MAX_RECORD
        count_only = _COUNT_ONLY
        budget = self._budget()
        check_at, count, off = budget.next, 0, 24
        wide_until = min(layout.end - 16, size - _WIDE)  # past it, the wide struct would overrun
        # Offsets in the frame (add 16 for the file): IPv4 header 14, transport header 34, UDP
        # payload 42, TCP data offset 46. The IP payload ends at min(incl, 14 + total length).
        while off <= wide_until:
            incl, orig, head, len_hi, len_lo, frag, proto, addrs = unpack(view, off)
            after = off + 16 + incl
            if after > size or incl > max_record:
                reader.pcap_corrupt(off)
                return count
            if count >= check_at:
                stopped = budget.stop(count)
                if stopped is not None:
                    return stopped
                check_at = budget.next
            count += 1
            # IPv4 without options, not a later fragment, so for TCP and UDP addrs is the key
            if head == ipv4 and incl >= 38 and not frag & frag_mask:
                tally = fast[proto].get(addrs)
                if tally is not None:  # a direction seen before: count it, then its payload
                    tally[0] += 1
                    tally[1] += orig
                    tally[2] = off
                    # below, "incl > 42 and total > 28" is "UDP payload is not empty" and
                    # "incl >= 54 and total >= 40" is "TCP header is whole", without a min()
                    if proto == 17:
                        parser = tally[4]
                        if parser is not None and incl > 42 and (len_hi or len_lo > 28):
                            if parser is count_only:
                                tally[5] += 1
                            else:
                                end = min(after, off + 30 + ((len_hi << 8) | len_lo))
                                self._datagram(tally, time_of(off), addrs, buf[off + 58 : end])
                    elif incl >= 54 and (len_hi or len_lo >= 40) and dirs.get(addrs, never) is not None:
                        end = min(after, off + 30 + ((len_hi << 8) | len_lo))
                        payload_at = off + 50 + (buf[off + 62] >> 4) * 4
                        if payload_at < end:
                            self._tcp_payload(tally, addrs, buf, off + 50, payload_at, end, time_of(off))
                    off = after
                    continue
            self._packet(time_of(off), LINK_ETHERNET, buf[off + 16 : after], orig, off)
            off = after
        return self._walk_pcap_tail(reader, buf, layout, off, count, budget)

    def _fast_tables(self) -> list[dict[bytes, Tally]]:
        """Known directions by IP protocol number: TCP and UDP only, every other one empty."""
        tables: list[dict[bytes, Tally]] = [{} for _ in range(256)]
        tables[6], tables[17] = self.known[6], self.known[17]
        return tables

    def _walk_pcap_tail(self, reader: CaptureReader, buf: mmap.mmap, layout: PcapLayout, off: int,
                        count: int, budget: _Budget) -> int:
        """The last records of a pcap, too near its end for the wide struct of the fast walk."""
        header = struct.Struct(layout.order + "IIII").unpack_from
        while off + 16 <= layout.end:
            sec, frac, incl, orig = header(buf, off)
            after = off + 16 + incl
            if after > layout.size or incl > MAX_RECORD:
                reader.pcap_corrupt(off)
                return count
            if count >= budget.next:
                stopped = budget.stop(count)
                if stopped is not None:
                    return stopped
            count += 1
            self._packet(sec + frac * layout.scale, layout.linktype, buf[off + 16 : after], orig, off)
            off = after
        reader.pcap_done(layout, off)
        return count

    def _times_from_offsets(self, buf: mmap.mmap, layout: PcapLayout) -> None:
        """After the fast walk: each tally's last-packet time, read back from its record."""
        header = struct.Struct(layout.order + "II").unpack_from
        for tally in self.tallies:
            sec, frac = header(buf, tally[_SEQ_AT])
            tally[3] = sec + frac * layout.scale

    def _packet(self, ts: float, linktype: int, frame: bytes, orig: int, seq: int) -> None:
        """Any packet, decoded from its link layer up; ``seq`` orders packets in the file."""
        decoded = self._decode(linktype, frame, ts)
        if decoded is None:
            return
        proto, addrs, smac, l4, end = decoded
        tally = self._tally(proto, addrs, smac, frame, ts)
        if tally is None:
            return
        tally[0] += 1
        tally[1] += orig
        tally[2] = seq
        tally[3] = ts
        self._payload(tally, proto, addrs, frame, l4, end, ts)

    def _known_packet(self, ts: float, frame: bytes, orig: int, seq: int) -> bool:
        """An Ethernet frame of a TCP or UDP direction already seen, counted without a decode.

        ``False`` (nothing done) when the packet needs the general path.
        """
        if len(frame) < 38:
            return False
        head, len_hi, len_lo, frag, proto, addrs = _FRAME_IPV4(frame)
        if head != _ETH_IPV4_NO_OPTIONS or frag & 0x1FFF:
            return False
        tally = self._fast[proto].get(addrs)
        if tally is None:
            return False
        tally[0] += 1
        tally[1] += orig
        tally[2] = seq
        tally[3] = ts
        self._payload(tally, proto, addrs, frame, 34, min(len(frame), 14 + ((len_hi << 8) | len_lo)), ts)
        return True

    def _payload(self, tally: Tally, proto: int, addrs: bytes, frame: bytes, l4: int, end: int,
                 ts: float) -> None:
        """Hand a datagram to its parser, or a TCP segment to reassembly, if either is wanted."""
        if proto == 17:
            if tally[4] is None or end - l4 <= 8:
                return
            if tally[4] is _COUNT_ONLY:
                tally[5] += 1
            else:
                self._datagram(tally, ts, addrs, frame[l4 + 8 : end])
        elif proto == 6 and end - l4 >= 20:
            payload_off = l4 + (frame[l4 + 12] >> 4) * 4
            if payload_off < end and self.dirs.get(addrs, _NEVER) is not None:
                self._tcp_payload(tally, addrs, frame, l4, payload_off, end, ts)

    def _decode(self, linktype: int, frame: bytes, ts: float) -> tuple[int, bytes, bytes | None, int, int] | None:
        """Protocol, conversation key, source MAC (if known), transport offset and payload end."""
        if linktype == 1 and frame[12:15] == _ETH_IPV4_NO_OPTIONS and len(frame) >= 38:
            # the common case: Ethernet, IPv4 without options (MAC sliced only when first needed)
            proto = frame[23]
            end = min(len(frame), 14 + ((frame[16] << 8) | frame[17]))
            first = not (frame[20] & 0x1F or frame[21])
            addrs = frame[26:38] if first and (proto == 6 or proto == 17) else frame[26:34] + _NO_PORTS
            return proto, addrs, None, 34, end
        link = decode_link(linktype, frame)
        if link is None:
            self.undecoded += 1
            return None
        etype, off, smac, _dmac = link
        net = decode_ip(etype, frame, off)
        if net is None:
            if etype == ETH_ARP and smac is not None:
                self.report.arp(frame, off, ts)
            else:
                self.undecoded += 1
            return None
        src, dst, proto, l4, end, first = net
        ports = frame[l4 : l4 + 4] if first and (proto == 6 or proto == 17) else b""
        addrs = src + dst + (ports if len(ports) == 4 else _NO_PORTS)
        return proto, addrs, src if smac is None else smac, l4, end

    def _tally(self, proto: int, addrs: bytes, smac: bytes | None, frame: bytes, ts: float) -> Tally | None:
        """The tally of this packet's direction; the first packet of a direction learns its sender.

        ``None`` when the conversation table is full. While the host table is full a
        direction stays host-less and every packet of it tries again, as the first did.
        """
        known = self.known.setdefault(proto, {})
        tally = known.get(addrs)
        if tally is not None:
            return tally
        report = self.report
        key = (proto, addrs)
        entry = report.convs.get(key)
        if entry is None:
            entry = report.new_conversation(key, ts)
            if entry is None:
                return None
        conv, side = entry
        if smac is None:
            smac = frame[6:12]
        host = report.saw_address(report.hosts.get(smac), smac, addrs, ts)
        tally = self.hostless.get(key)
        if host is None and tally is not None:
            return tally
        kind = conv[10]
        parser = _COUNT_ONLY if kind in report.saturated else kind
        tally = [0, 0, 0, 0.0, parser, 0, host, conv, side, kind]
        self.tallies.append(tally)
        if host is None:
            self.hostless[key] = tally
        else:
            conv[8 + side] = host
            known[addrs] = tally
        return tally

    def _fold_tallies(self) -> None:
        """Add every tally into its conversation and host, in file order for the last-seen times."""
        counts, saturated = self.report.counts, self.report.saturated
        for packets, size, _seq, ts, _parser, unparsed, host, conv, side, kind in sorted(
                self.tallies, key=itemgetter(_SEQ_AT)):
            if unparsed:
                counts[saturated[kind]] += unparsed
            if not packets:
                continue
            conv[side] += packets
            conv[2 + side] += size
            conv[5] = ts
            if host is not None:
                host[0] += packets
                host[1] += size
                host[3] = ts

    def _datagram(self, tally: Tally, ts: float, addrs: bytes, payload: bytes) -> None:
        src, dst = split_addresses(addrs)
        sport, dport = key_ports(addrs)
        host: Host | None = tally[6]
        self._udp[tally[4]](ts, src, sport, dst, dport, payload, host)
        if len(self.report.saturated) > self._count_only_kinds:
            self._count_only()

    def _count_only(self) -> None:
        """A parser's table just filled up: its datagrams are only counted from now on."""
        saturated = self.report.saturated
        self._count_only_kinds = len(saturated)
        for tally in self.tallies:
            if tally[4] is not None and tally[4] in saturated:
                tally[4] = _COUNT_ONLY

    def _tcp_payload(self, tally: Tally, addrs: bytes, data: bytes | mmap.mmap, l4: int, payload_off: int,
                     end: int, ts: float) -> None:
        """A TCP segment with payload (at ``data[payload_off:end]``) of a direction not yet rejected."""
        seq = _SEQ(data, l4 + 4)[0]
        direction = self.dirs.get(addrs, _NEVER)
        if direction is _NEVER:
            stream = tally[7][6]  # the conversation's stream number
            self._classify(addrs, (seq, ts, data[payload_off:end]), stream)
        elif direction is not None:
            self.kept_bytes += direction.add(seq, ts, data[payload_off:end])
            if self.kept_bytes > self.opts["max_reassembly_bytes"]:
                self.report.anomaly("reassembly_limit_reached")
                direction.limit = 0

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
