"""The tables an analysis fills: hosts, conversations, protocol records and the timeline.

Every table is bounded by ``max_records``; reaching a bound is an anomaly, not an error.
Parsers hand their results to the methods here, which also collect the indicators that
become tags (domains, addresses, URIs).
"""

from __future__ import annotations

import ipaddress
import math
import struct
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from assay.iot.capture.decode import (
    LINK_NAMES,
    ip_text,
    key_ports,
    mac_text,
    reverse_addresses,
    split_addresses,
)
from assay.iot.capture.protocols import http as http_proto
from assay.iot.capture.protocols.coap import parse_coap
from assay.iot.capture.protocols.dhcp import parse_dhcp
from assay.iot.capture.protocols.dns import parse_dns
from assay.iot.capture.protocols.mqtt import iter_mqtt
from assay.iot.capture.protocols.ssdp import parse_ssdp
from assay.iot.capture.protocols.tls import parse_client_hello
from assay.iot.capture.reader import CaptureReader
from assay.iot.capture.streams import Direction, time_at
from assay.iot.mac import vendor_of

TABLES = ("dns", "http", "tls", "coap", "mqtt", "sse", "dhcp", "ssdp")
PROTOCOLS = {1: "icmp", 6: "tcp", 17: "udp", 58: "icmpv6", 132: "sctp"}
MAX_IPS_PER_HOST = 64
MAX_NAMES_PER_HOST = 32
_EXTENSIONS = {
    "json": "json", "html": "html", "xml": "xml", "javascript": "js", "event-stream": "txt",
    "text/plain": "txt",
    "png": "png", "jpeg": "jpg", "gif": "gif", "css": "css", "zip": "zip", "gzip": "gz", "pdf": "pdf",
}
# host list layout: packets, bytes, first seen, last seen, ips, info, key
Host = list[Any]
ConvKey = tuple[int, bytes]
_SATURATES = {"dns": ("dns", "mdns"), "coap": ("coap",), "dhcp": ("dhcp",), "ssdp": ("ssdp",)}
Offsets = list[int]
Times = list[float]


def epoch_isoformat(ts: float) -> str:
    """``datetime.fromtimestamp(ts, UTC).isoformat()``, or ``""`` for a time it cannot show.

    Records of one capture share their seconds, so only the microseconds are worked out per
    call; they are rounded half to even, as ``fromtimestamp`` rounds them.
    """
    try:
        frac, whole = math.modf(ts)
        micro = round(frac * 1e6)
        if micro >= 1_000_000:
            micro -= 1_000_000
            whole += 1.0
        elif micro < 0:
            micro += 1_000_000
            whole -= 1.0
        second = _iso_second(int(whole))
    except (OverflowError, OSError, ValueError):
        return ""
    return f"{second}.{micro:06d}+00:00" if micro else f"{second}+00:00"


@lru_cache(maxsize=4096)
def _iso_second(whole: int) -> str:
    """A whole second in ISO form, without the UTC offset."""
    return datetime.fromtimestamp(whole, UTC).isoformat().removesuffix("+00:00")


def extension_for(content_type: str | None) -> str:
    lowered = (content_type or "").lower()
    for needle, ext in _EXTENSIONS.items():
        if needle in lowered:
            return ext
    return "bin"


class Report:
    """Accumulates findings during the walk and shapes them into one JSON-ready dict."""

    def __init__(self, opts: dict[str, Any]) -> None:
        self.opts = opts
        self.max_records = int(opts["max_records"])
        self.convs: dict[ConvKey, tuple[list[Any], int]] = {}
        self.conv_list: list[list[Any]] = []
        self.hosts: dict[bytes, Host] = {}
        self.ip_owner: dict[bytes, Host] = {}
        self.tables: dict[str, list[dict[str, Any]]] = {name: [] for name in TABLES}
        self.counts: dict[str, int] = dict.fromkeys(TABLES, 0)
        self.saturated: dict[str, str] = {}
        self.udp_kinds: dict[int, str] = {}
        self.timeline: list[dict[str, Any]] = []
        self.stats: dict[str, Any] = {}
        self.errors: list[str] = []
        self.anomalies: list[str] = []
        self.indicators: dict[str, set[str]] = {
            k: set() for k in ("domain", "ip", "uri", "sni", "ja3_hash", "user_agent", "protocol")
        }
        self.carved: list[tuple[str, str, bytes]] = []
        self._http_by_dir: dict[tuple[str, int, str, int], list[dict[str, Any]]] = {}
        self._stream_ids: dict[int, int] = {}
        self._carved_per_stream: dict[int, int] = {}

    # -- bookkeeping --------------------------------------------------------------------
    def anomaly(self, flag: str) -> None:
        if flag not in self.anomalies:
            self.anomalies.append(flag)

    def error(self, message: str) -> None:
        if len(self.errors) < 100:
            self.errors.append(message)

    def indicator(self, kind: str, value: str | None) -> None:
        bucket = self.indicators[kind]
        if value and value not in bucket and len(bucket) < self.max_records:
            bucket.add(value)

    def full(self, table: str) -> bool:
        """Count one more message; True when its table is full and parsing can be skipped."""
        if len(self.tables[table]) < self.max_records:
            return False
        self.counts[table] += 1
        self.anomaly(f"table_limit_reached:{table}")
        for kind in _SATURATES.get(table, ()):
            self.saturated[kind] = table
        return True

    def add(self, table: str, record: dict[str, Any], summary: str) -> None:
        self.counts[table] += 1
        if len(self.tables[table]) >= self.max_records:
            self.anomaly(f"table_limit_reached:{table}")
            return
        self.tables[table].append(record)
        self.indicator("protocol", table)
        if len(self.timeline) < self.max_records:
            self.timeline.append({
                "ts": record["ts"], "time": record["time"], "protocol": table,
                "src": record.get("src"), "dst": record.get("dst"), "summary": summary,
            })
        else:
            self.anomaly("table_limit_reached:timeline")

    @staticmethod
    def endpoints(ts: float, src: bytes | str, sport: int, dst: bytes | str, dport: int) -> dict[str, Any]:
        return {
            "ts": ts, "time": epoch_isoformat(ts),
            "src": src if isinstance(src, str) else ip_text(src), "sport": sport,
            "dst": dst if isinstance(dst, str) else ip_text(dst), "dport": dport,
        }

    # -- hosts and conversations ------------------------------------------------------
    def saw_address(self, host: Host | None, smac: bytes, addrs: bytes, ts: float) -> Host | None:
        """First packet of a conversation direction: make sure its sender is in the table."""
        src = split_addresses(addrs)[0]
        if host is None:
            host = self.new_host(smac if len(smac) == 6 else None, src, ts)
        if host is not None and src not in host[4]:
            self.host_ip(host, src)
        return host

    def new_host(self, mac: bytes | None, src: bytes, ts: float) -> Host | None:
        if len(self.hosts) >= int(self.opts["max_hosts"]):
            self.anomaly("host_limit_reached")
            return None
        key = mac if mac is not None else src
        host: Host = [0, 0, ts, ts, set(), {}, mac]
        self.hosts[key] = host
        return host

    def host_ip(self, host: Host, ip: bytes) -> None:
        if len(host[4]) < MAX_IPS_PER_HOST:
            host[4].add(ip)
        self.ip_owner.setdefault(ip, host)

    def host_note(self, host: Host | None, field: str, value: str | None, many: bool = False) -> None:
        if host is None or not value:
            return
        info = host[5]
        if not many:
            info[field] = value
        elif value not in info.setdefault(field, []) and len(info[field]) < MAX_NAMES_PER_HOST:
            info[field].append(value)

    def host_by_mac(self, mac: bytes, ts: float) -> Host | None:
        return self.hosts.get(mac) or self.new_host(mac, b"", ts)

    def arp(self, frame: bytes, off: int, ts: float) -> None:
        if len(frame) >= off + 28 and frame[off + 4] == 6 and frame[off + 5] == 4:
            sender_ip = frame[off + 14 : off + 18]
            host = self.host_by_mac(frame[off + 8 : off + 14], ts)
            if host is not None and sender_ip != b"\x00\x00\x00\x00":
                self.host_ip(host, sender_ip)

    def new_conversation(self, key: ConvKey, ts: float) -> tuple[list[Any], int] | None:
        if len(self.conv_list) >= int(self.opts["max_conversations"]):
            self.anomaly("conversation_limit_reached")
            return None
        proto = key[0]
        stream = self._stream_ids.get(proto, 0)
        self._stream_ids[proto] = stream + 1
        kind = None
        if proto == 17:
            sport, dport = key_ports(key[1])
            kind = self.udp_kinds.get(dport) or self.udp_kinds.get(sport)
        # packets a->b, b->a, bytes a->b, b->a, first, last, stream, key, host a, host b, UDP parser
        conv: list[Any] = [0, 0, 0, 0, ts, ts, stream, key, None, None, kind]
        self.conv_list.append(conv)
        self.convs[key] = (conv, 0)
        self.convs[(proto, reverse_addresses(key[1]))] = (conv, 1)
        return self.convs[key]

    # -- datagram protocols ---------------------------------------------------------------
    def dns_message(self, ts: float, src: bytes, sport: int, dst: bytes, dport: int, payload: bytes,
                    host: Host | None) -> None:
        if self.full("dns"):
            return
        message = parse_dns(payload)
        if message is None:
            self.stats["malformed_dns"] = self.stats.get("malformed_dns", 0) + 1
            return
        mdns = 5353 in (sport, dport)
        record = {**self.endpoints(ts, src, sport, dst, dport), "mdns": mdns, **message}
        names = ", ".join(q["name"] for q in message["questions"]) or ", ".join(
            a["name"] for a in message["answers"][:3])
        kind = "mDNS" if mdns else "DNS"
        summary = f"{kind} {'response' if message['response'] else 'query'} {names}"
        self.add("dns", record, summary)
        for question in message["questions"]:
            if not mdns and question["name"] != "<Root>":
                self.indicator("domain", question["name"])
        if mdns:
            self._mdns_names(message, host)

    def _mdns_names(self, message: dict[str, Any], host: Host | None) -> None:
        for answer in message["answers"]:
            if answer["type"] in ("A", "AAAA", "SRV", "TXT") or (
                answer["type"] == "PTR" and answer["name"].endswith(("._tcp.local", "._udp.local"))
            ):
                name = answer["data"] if answer["type"] == "PTR" else answer["name"]
                self.host_note(host, "mdns_names", name, many=True)

    def dhcp(self, ts: float, src: bytes, sport: int, dst: bytes, dport: int, payload: bytes,
             host: Host | None) -> None:
        if self.full("dhcp"):
            return
        message = parse_dhcp(payload)
        if message is None:
            return
        self.add("dhcp", {**self.endpoints(ts, src, sport, dst, dport), **message},
                 f"DHCP {message['message_type']} {message['client_mac']} {message.get('hostname', '')}")
        if message["op"] != "request":
            return
        client = self.host_by_mac(bytes.fromhex(message["client_mac"].replace(":", "")), ts)
        self.host_note(client, "dhcp_hostname", message.get("hostname") or message.get("fqdn"))
        self.host_note(client, "dhcp_vendor_class_id", message.get("vendor_class_id"))
        self.host_note(client, "dhcp_parameter_request_list", message.get("parameter_request_list"))
        self.host_note(client, "dhcp_requested_ip", message.get("requested_ip"))

    def ssdp(self, ts: float, src: bytes, sport: int, dst: bytes, dport: int, payload: bytes,
             host: Host | None) -> None:
        if self.full("ssdp"):
            return
        message = parse_ssdp(payload)
        if message is None:
            return
        target = message.get("nt") or message.get("st") or ""
        self.add("ssdp", {**self.endpoints(ts, src, sport, dst, dport), **message},
                 f"SSDP {message['kind']} {target}".strip())
        for field in ("server", "usn", "location", "user-agent"):
            self.host_note(host, f"ssdp_{field.replace('-', '_')}", message.get(field), many=True)
        if message.get("location"):
            self.indicator("uri", message["location"])

    def coap(self, ts: float, src: bytes, sport: int, dst: bytes, dport: int, payload: bytes,
             host: Host | None) -> None:
        if self.full("coap"):
            return
        message = parse_coap(payload)
        if message is None:
            self.stats["malformed_coap"] = self.stats.get("malformed_coap", 0) + 1
            return
        record = {**self.endpoints(ts, src, sport, dst, dport), **message}
        path = message["uri_path"]
        self.add("coap", record, f"CoAP {message['type']} {message['code']} {path}".strip())
        if path:
            self.indicator("uri", f"coap://{record['dst']}:{dport}{path}")
        query = message["uri_query"]
        if path.startswith("/rd") and "ep=" in query:
            endpoint = next((q[3:] for q in query.split("&") if q.startswith("ep=")), "")
            self.host_note(host, "lwm2m_endpoints", endpoint, many=True)

    # -- stream protocols -----------------------------------------------------------------
    def tcp_direction(self, direction: Direction) -> None:
        stream, offsets, times = direction.assemble()
        if direction.clipped:
            self.anomaly("stream_size_limit_reached")
        if direction.gap:
            self.stats["tcp_streams_with_gaps"] = self.stats.get("tcp_streams_with_gaps", 0) + 1
        handler = {"http": self._http_stream, "tls": self._tls_stream, "dns": self._dns_stream,
                   "mqtt": self._mqtt_stream, "sse": self._sse_stream}[direction.kind]
        handler(direction, stream, offsets, times)

    def _when(self, direction: Direction, offsets: Offsets, times: Times, off: int) -> dict[str, Any]:
        ts = time_at(offsets, times, off) or 0.0
        return self.endpoints(ts, direction.src, direction.sport, direction.dst, direction.dport)

    def _http_stream(self, direction: Direction, stream: bytes, offsets: Offsets, times: Times) -> None:
        records = self._http_by_dir.setdefault(
            (direction.src, direction.sport, direction.dst, direction.dport), [])
        for off, message, body, body_off in http_proto.iter_http(
                stream, self.max_records, int(self.opts["max_stream_bytes"])):
            record = {**self._when(direction, offsets, times, off), "stream": direction.stream, **message,
                      "body_size": len(body)}
            if body:
                record["carved"] = self._carve(direction.stream, body, message.get("content_type"))
            if "event-stream" in (message.get("content_type") or ""):
                self._sse_events(direction, stream[body_off:], body_off, offsets, times)
            records.append(record)
            self._http_indicators(record)
            if message["kind"] == "request":
                summary = f"HTTP {message['method']} {message.get('host') or ''}{message['uri']}"
            else:
                summary = f"HTTP {message['status']} {message.get('content_type') or ''}".strip()
            self.add("http", record, summary)

    def _http_indicators(self, record: dict[str, Any]) -> None:
        if record["kind"] != "request":
            return
        host = record.get("host") or record["dst"]
        bare = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
        if bare.replace(".", "").isdigit() or ":" in bare:
            self.indicator("ip", bare.strip("[]"))
        else:
            self.indicator("domain", bare)
        uri = record["uri"]
        self.indicator("uri", uri if uri.startswith("http") else f"http://{host}{uri}")
        self.indicator("user_agent", record.get("user_agent"))

    def _carve(self, stream: int, body: bytes, content_type: str | None) -> str | None:
        if len(self.carved) >= int(self.opts["max_carve_count"]):
            self.anomaly("carve_count_limit_reached")
            return None
        limit = int(self.opts["max_carve_size"])
        if len(body) > limit:
            self.anomaly("carve_size_limit_reached")
        index = self._carved_per_stream.get(stream, 0)
        self._carved_per_stream[stream] = index + 1
        name = f"http_{stream}_{index}.{extension_for(content_type)}"
        self.carved.append((name, f"HTTP body from TCP stream {stream} ({content_type or 'no type'})",
                            body[:limit]))
        return name

    def _sse_stream(self, direction: Direction, stream: bytes, offsets: Offsets, times: Times) -> None:
        self._sse_events(direction, stream, 0, offsets, times)

    def _sse_events(self, direction: Direction, raw: bytes, base: int, offsets: list[int],
                    times: list[float]) -> None:
        for off, event in http_proto.parse_sse_stream(raw, self.max_records):
            when = self._when(direction, offsets, times, base + off)
            record = {**when, "stream": direction.stream, **event}
            self.add("sse", record, f"SSE {event.get('event', 'message')} {event.get('data', '')[:120]}")

    def _tls_stream(self, direction: Direction, stream: bytes, offsets: Offsets, times: Times) -> None:
        hello = parse_client_hello(stream)
        if hello is None:
            return
        record = {**self._when(direction, offsets, times, 0), "stream": direction.stream, **hello}
        self.add("tls", record, f"TLS ClientHello {hello['sni'] or ''} ja3={hello['ja3_hash']}")
        self.indicator("sni", hello["sni"])
        self.indicator("domain", hello["sni"])
        self.indicator("ja3_hash", hello["ja3_hash"])

    def _dns_stream(self, direction: Direction, stream: bytes, offsets: Offsets, times: Times) -> None:
        off = 0
        while off + 2 <= len(stream):
            length = struct.unpack_from(">H", stream, off)[0]
            if length == 0 or off + 2 + length > len(stream):
                break
            when = self._when(direction, offsets, times, off)
            self.dns_message(when["ts"], direction.src, direction.sport, direction.dst, direction.dport,
                             stream[off + 2 : off + 2 + length], None)
            off += 2 + length

    def _mqtt_stream(self, direction: Direction, stream: bytes, offsets: Offsets, times: Times) -> None:
        for off, message in iter_mqtt(stream, self.max_records):
            record = {**self._when(direction, offsets, times, off), "stream": direction.stream, **message}
            detail = message.get("topic") or message.get("client_id") or ""
            self.add("mqtt", record, f"MQTT {message['type']} {detail}".strip())
            if message["type"] == "CONNECT":
                owner = self.ip_owner.get(_ip_bytes(direction.src))
                self.host_note(owner, "mqtt_client_ids", message.get("client_id"), many=True)

    # -- the result -------------------------------------------------------------------
    def capture_info(self, reader: CaptureReader) -> None:
        for message in reader.errors:
            self.error(message)
            self.anomaly("truncated_or_corrupt_capture")
        if reader.byte_limit_hit:
            self.anomaly("byte_limit_reached")
        self.stats.update({
            "format": reader.format,
            "link_types": sorted({LINK_NAMES.get(i["linktype"], str(i["linktype"]))
                                  for i in reader.interfaces}),
            "interfaces": len(reader.interfaces),
            "comments": reader.comments,
            "bytes_read": reader.bytes_read,
        })

    def finish(self) -> None:
        for (src, sport, dst, dport), requests in self._http_by_dir.items():
            responses = self._http_by_dir.get((dst, dport, src, sport), [])
            pairs = zip((r for r in requests if r["kind"] == "request"),
                        (r for r in responses if r["kind"] == "response"), strict=False)
            for request, response in pairs:
                response["request_method"] = request["method"]
                response["request_uri"] = request["uri"]
                request["response_status"] = response["status"]
        self.timeline.sort(key=lambda e: e["ts"])
        for conv in self.conv_list:
            for address in split_addresses(conv[7][1]):
                self.indicator("ip", ip_text(address))

    def host_rows(self) -> list[dict[str, Any]]:
        rows = []
        for key, host in list(self.hosts.items())[: self.max_records]:
            mac = host[6]
            mac_str = mac_text(mac) if mac is not None else None
            rows.append({
                "mac": mac_str,
                "vendor": vendor_of(mac_str) if mac_str else None,
                "ips": sorted(ip_text(ip) for ip in host[4]) or ([ip_text(key)] if mac is None else []),
                "packets": host[0], "bytes": host[1],
                "first_seen": epoch_isoformat(host[2]), "last_seen": epoch_isoformat(host[3]),
                **host[5],
            })
        return rows

    def conversation_rows(self) -> list[dict[str, Any]]:
        rows = []
        for conv in self.conv_list[: self.max_records]:
            proto, addrs = conv[7]
            a, b = split_addresses(addrs)
            aport, bport = key_ports(addrs)
            rows.append({
                "protocol": PROTOCOLS.get(proto, str(proto)), "stream": conv[6],
                "a": ip_text(a), "a_port": aport, "b": ip_text(b), "b_port": bport,
                "packets_a_to_b": conv[0], "packets_b_to_a": conv[1],
                "bytes_a_to_b": conv[2], "bytes_b_to_a": conv[3],
                "packets": conv[0] + conv[1], "bytes": conv[2] + conv[3],
                "first_seen": epoch_isoformat(conv[4]), "last_seen": epoch_isoformat(conv[5]),
                "duration": round(conv[5] - conv[4], 6),
            })
        if len(self.conv_list) > self.max_records:
            self.anomaly("table_limit_reached:conversations")
        return rows

    def as_dict(self) -> dict[str, Any]:
        conversations = self.conversation_rows()
        per_proto: dict[str, int] = {}
        for conv in self.conv_list:
            name = PROTOCOLS.get(conv[7][0], str(conv[7][0]))
            per_proto[name] = per_proto.get(name, 0) + 1
        stats = {**self.stats, "hosts": len(self.hosts), "conversations": per_proto,
                 "records": dict(self.counts), "carved": len(self.carved)}
        return {
            "hosts": self.host_rows(), "conversations": conversations, **self.tables,
            "timeline": self.timeline, "stats": stats, "errors": list(self.errors),
            "anomalies": list(self.anomalies),
            "indicators": {k: sorted(v) for k, v in self.indicators.items()},
        }


def _ip_bytes(text: str) -> bytes:
    return ipaddress.ip_address(text).packed
