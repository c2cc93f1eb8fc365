"""Turning a decoded OnHub report into findings: inventory, configuration, timelines, files.

Decoding (``schema``, ``textproto``) knows the shapes; this module decides what matters to
an examiner and assembles it into one JSON-friendly dict plus the embedded files. Every
loop is bounded by a :class:`OnHubLimits` value, and every odd input becomes an anomaly string.
"""

from __future__ import annotations

import json
import re
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from google.protobuf import unknown_fields
from google.protobuf.message import Message

from assay.iot.mac import normalise_mac
from assay.iot.onhub import schema, stations, syslog, textproto
from assay.iot.onhub.secrets import mask

_GZIP_MAGIC = b"\x1f\x8b\x08"
_TEXT_KEYS = re.compile(r"^\s*[A-Za-z_][\w]*\s*(?::|\{)", re.MULTILINE)


@dataclass(frozen=True)
class OnHubLimits:
    """Every bound the analysis respects (the service's parameters)."""

    max_extracted_files: int = 200
    max_file_size: int = 64 * 1024 * 1024
    max_total_decompressed: int = 256 * 1024 * 1024
    max_text_scan: int = 32 * 1024 * 1024
    max_timeline_events: int = 20_000
    max_stations: int = 5_000
    max_json_size: int = 16 * 1024 * 1024
    max_text_depth: int = 32
    extract_command_outputs: bool = True

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> OnHubLimits:
        known = {name: options[name] for name in cls.__dataclass_fields__ if name in options}
        return cls(**known)


@dataclass
class EmbeddedFile:
    """One file (or command output) carried in the report, decompressed within bounds."""

    path: str
    content: bytes
    stored_size: int
    compressed: bool = False
    truncated: bool = False
    content_type: str | None = None
    status: int | None = None


@dataclass
class OnHubAnalysis:
    """What :func:`analyse` produces; the service turns it into a ``Result``."""

    data: dict[str, Any] = field(default_factory=dict)
    files: list[EmbeddedFile] = field(default_factory=list)
    commands: list[EmbeddedFile] = field(default_factory=list)
    anomalies: list[str] = field(default_factory=list)
    clear_secrets: list[str] = field(default_factory=list)

    def flag(self, anomaly: str) -> None:
        if anomaly not in self.anomalies:
            self.anomalies.append(anomaly)


def gunzip(blob: bytes, limit: int) -> tuple[bytes, bool, bool]:
    """(content, truncated, failed): bounded gzip decompression, concatenated members included."""
    out = bytearray()
    data = blob
    while data[:3] == _GZIP_MAGIC:
        decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            out += decoder.decompress(data, max(limit - len(out), 0) + 1)
            while decoder.unconsumed_tail and len(out) <= limit:
                out += decoder.decompress(decoder.unconsumed_tail, limit - len(out) + 1)
        except zlib.error:
            return bytes(out[:limit]), False, True
        if len(out) > limit:
            return bytes(out[:limit]), True, False
        if not decoder.eof:
            return bytes(out), False, True
        data = decoder.unused_data
    return bytes(out), False, False


def _embedded(
    analysis: OnHubAnalysis,
    path: str,
    raw: bytes,
    budget: list[int],
    limits: OnHubLimits,
    content_type: str | None = None,
) -> EmbeddedFile:
    item = EmbeddedFile(path, raw, len(raw), content_type=content_type)
    if raw[:3] != _GZIP_MAGIC:
        item.content = raw[: limits.max_file_size]
        item.truncated = len(raw) > limits.max_file_size
        return item
    item.compressed = True
    allowed = max(min(limits.max_file_size, budget[0]), 0)
    content, truncated, failed = gunzip(raw, allowed)
    budget[0] -= len(content)
    item.content, item.truncated = content, truncated
    if truncated:
        analysis.flag("decompression_limit_reached")
    if failed:
        analysis.flag("gzip_corrupt")
    return item


def _files(report: Message, analysis: OnHubAnalysis, limits: OnHubLimits) -> None:
    budget = [limits.max_total_decompressed]
    for entry in report.files:
        path = schema.text(entry.path, 4096) or "<unnamed>"
        content_type = schema.text(entry.content_type, 512) if entry.HasField("content_type") else None
        analysis.files.append(_embedded(analysis, path, entry.content, budget, limits, content_type))
    for command in report.command_outputs:
        item = _embedded(analysis, schema.text(command.command, 4096), command.output, budget, limits)
        item.status = command.status
        analysis.commands.append(item)


def _header(report: Message, decoded: schema.Decoded) -> dict[str, Any]:
    report_time = report.report_time if report.HasField("report_time") else None
    version = schema.text(report.version, 1024) if report.HasField("version") else None
    return {
        "time": syslog.iso_from_epoch(report_time) if report_time else None,
        "time_epoch": report_time,
        "version": version,
        "firmware": version.split(" ", 1)[0] if version else None,
        "storm_version": schema.text(report.storm_version, 1024)
        if report.HasField("storm_version")
        else None,
        "hardware": schema.text(report.whirlwind_version, 1024)
        if report.HasField("whirlwind_version")
        else None,
        "field_11": report.unknown_int_11 if report.HasField("unknown_int_11") else None,
        "complete": decoded.complete,
        "decoded_bytes": decoded.consumed,
    }


def _unknown(report: Message, analysis: OnHubAnalysis) -> list[dict[str, Any]]:
    try:
        found = list(unknown_fields.UnknownFieldSet(report))
    except Exception:  # the unknown-field API differs between protobuf runtimes
        return []
    if found:
        analysis.flag("unknown_fields")
    return [
        {
            "field": item.field_number,
            "wire_type": item.wire_type,
            "size": len(item.data) if isinstance(item.data, bytes) else None,
        }
        for item in found[:1000]
    ]


def _text_blobs(report: Message) -> list[tuple[str, str]]:
    """(name, text) of every text-format blob: the known ones and unknown text fields."""
    blobs = [
        (name, schema.text(getattr(report, name)))
        for name in ("network_config", "wan_info")
        if report.HasField(name)
    ]
    try:
        for item in unknown_fields.UnknownFieldSet(report):
            if item.wire_type == 2 and isinstance(item.data, bytes) and b"station_info" in item.data[:65536]:
                blobs.append((f"field_{item.field_number}", schema.text(item.data)))
    except Exception:  # the unknown-field API differs between protobuf runtimes
        pass
    return blobs


def _parse_text(analysis: OnHubAnalysis, name: str, text: str, limits: OnHubLimits) -> textproto.TextMessage:
    parsed = textproto.parse(text, max_depth=limits.max_text_depth)
    for anomaly in parsed.anomalies:
        analysis.flag(f"{name}:{anomaly}")
    return parsed.message


def _info_json(
    report: Message, analysis: OnHubAnalysis, limits: OnHubLimits
) -> tuple[dict[str, Any], textproto.TextMessage]:
    """The info blob as JSON (old firmware) or, failing that, as text format (newer firmware)."""
    if not report.HasField("info_json"):
        return {}, {}
    raw = report.info_json
    if len(raw) > limits.max_json_size:
        analysis.flag("info_json_too_large")
        return {}, {}
    text = schema.text(raw)
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        if _TEXT_KEYS.search(text):
            return {}, _parse_text(analysis, "info", text, limits)
        analysis.flag("info_json_invalid")
        return {}, {}
    if not isinstance(value, dict):
        analysis.flag("info_json_not_an_object")
        return {}, {}
    return value, {}


def _dig(value: Any, *keys: str) -> Any:
    for key in keys:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def _channel(message: Any) -> dict[str, Any] | None:
    if not isinstance(message, dict):
        return None
    return {
        key: textproto.first(message, key)
        for key in ("number", "ht_capabilities", "vht_width")
        if textproto.first(message, key) is not None
    }


def _network(
    config: textproto.TextMessage, wan: textproto.TextMessage, info: dict[str, Any], analysis: OnHubAnalysis
) -> dict[str, Any]:
    first = textproto.first
    lan = first(config, "local_network")
    wireless = first(config, "wireless_network")
    guest = first(config, "guest_network")
    mesh = first(config, "mesh_network")
    dhcp = first(config, "dhcp")
    ap_config = info.get("_apConfiguration") if isinstance(info.get("_apConfiguration"), dict) else {}
    ap_state = info.get("_apState") if isinstance(info.get("_apState"), dict) else {}
    forwards = [textproto.plain(m) for m in textproto.find_all(config, "port_forwarding")]
    forwards += [textproto.plain(m) for m in textproto.find_all(config, "port_forwardings")]
    json_forwards = ap_config.get("_portForwardingConfiguration")
    if isinstance(json_forwards, list):
        forwards += [f for f in json_forwards if isinstance(f, dict)]
    network = {
        "lan": {
            "ip_address": first(lan, "ip_address") or _dig(ap_config, "_routerConfiguration", "_ipAddress"),
            "netmask": first(lan, "netmask") or _dig(ap_config, "_routerConfiguration", "_netmask"),
        },
        "wireless": {
            "ssid": first(wireless, "ssid") or _dig(ap_config, "_primaryPskNetworkConfiguration", "_ssid"),
            "psk_enabled": first(wireless, "primary_psk_enabled"),
            "channel_2400mhz": _channel(first(wireless, "channel_2400mhz")),
            "channel_5000mhz": _channel(first(wireless, "channel_5000mhz")),
        },
        "guest": {
            "enabled": first(guest, "enabled", _dig(ap_config, "_guestNetworkConfiguration", "_enabled")),
            "ssid": first(guest, "ssid") or _dig(ap_config, "_guestNetworkConfiguration", "_ssid"),
        },
        "mesh": {
            "ssid": first(mesh, "ssid") or _dig(ap_config, "_meshNetworkConfiguration", "_ssid"),
            "enabled": _dig(ap_config, "_meshNetworkConfiguration", "_enabled"),
        },
        "dhcp": {"pool_begin": first(dhcp, "pool_begin"), "pool_end": first(dhcp, "pool_end")},
        "wan": {
            "connection_type": first(first(config, "wan"), "connection_type")
            or _dig(ap_config, "_wanConfiguration", "_connectionType"),
            "interface": first(wan, "wan_interface"),
            "ip_address": first(wan, "wan_ipv4_address") or _dig(ap_state, "_wan", "_ipAddress"),
            "gateway": first(wan, "wan_ipv4_gateway") or _dig(ap_state, "_wan", "_gatewayAddress"),
            "name_servers": [s for s in textproto.many(wan, "upstream_name_server") if isinstance(s, str)],
            "lan_ipv6_link_local": first(wan, "lan_link_local_ipv6_address"),
        },
        "dns_servers": [s for s in _dig(ap_state, "_dns", "_servers") or [] if isinstance(s, str)],
        "upnp": first(config, "enable_upnp", _dig(ap_config, "_upnpConfiguration", "_enabled")),
        "port_forwards": forwards,
        "config": textproto.plain(config),
        "wan_info": textproto.plain({k: v for k, v in wan.items() if k != "dhcp_lease"}),
        "ap_configuration": ap_config,
    }
    found: list[str] = []
    masked = mask(network, found=found)
    analysis.clear_secrets.extend(found)
    return masked


def _leases(wan: textproto.TextMessage) -> list[dict[str, Any]]:
    leases = []
    for lease in textproto.submessages(wan, "dhcp_lease"):
        mac = normalise_mac(str(textproto.first(lease, "mac_address", "")))
        ip = textproto.first(lease, "ip_address")
        hostname = textproto.first(lease, "hostname")
        leases.append(
            {
                "mac": mac,
                "ip": ip if isinstance(ip, str) else None,
                "hostname": hostname if isinstance(hostname, str) else None,
            }
        )
    return leases


def _arp(analysis: OnHubAnalysis) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    for item in analysis.files:
        if item.path.rstrip("/").endswith(("net/arp", "arp")):
            entries += stations.arp_entries(schema.text(item.content), item.path)
    for item in analysis.commands:
        words = item.path.split()
        if any(w.endswith("arp") for w in words[:1]) or "neigh" in words or "neighbour" in words:
            entries += stations.arp_entries(schema.text(item.content), item.path)
    return entries


def _station_dumps(analysis: OnHubAnalysis) -> list[dict[str, Any]]:
    dumps: list[dict[str, Any]] = []
    for item in analysis.commands:
        if "station dump" in item.path:
            match = re.search(r"\bdev\s+(\S+)", item.path)
            dumps += stations.station_dump(schema.text(item.content), match.group(1) if match else None)
    return dumps


def _log_texts(analysis: OnHubAnalysis, limits: OnHubLimits) -> tuple[list[str], list[str]]:
    """(syslog texts, web access log texts) among the embedded files, within the scan budget."""
    budget = limits.max_text_scan
    logs: list[str] = []
    access: list[str] = []
    for item in analysis.files:
        if budget <= 0:
            analysis.flag("text_scan_limit_reached")
            break
        chunk = item.content[:budget]
        budget -= len(chunk)
        if "webserv" in item.path or "access" in item.path.rsplit("/", 1)[-1]:
            access.append(schema.text(chunk))
        elif b"hostapd" in chunk or b"dnsmasq" in chunk:
            logs.append(schema.text(chunk))
    return logs, access


def _inventory(
    analysis: OnHubAnalysis,
    report: Message,
    info: dict[str, Any],
    text_stations: list[Any],
    leases: list[dict[str, Any]],
    limits: OnHubLimits,
) -> list[dict[str, Any]]:
    pairs = [(schema.text(p.station_id, 256), schema.text(p.mac_address, 256)) for p in report.station_macs]
    id_to_mac = stations.id_mac_pairs(pairs)
    inventory = stations.StationInventory(limits.max_stations)
    json_stations = _dig(info, "_apState", "_stations")
    unmapped = stations.add_json_stations(
        inventory, json_stations if isinstance(json_stations, list) else [], id_to_mac
    )
    unmapped += stations.add_text_stations(inventory, text_stations, id_to_mac)
    if unmapped:
        analysis.flag("stations_without_mac")
    for lease in leases:
        inventory.add(
            lease["mac"], "dhcp_lease", ips=[lease["ip"]] if lease["ip"] else [], hostname=lease["hostname"]
        )
    report_time = report.report_time if report.HasField("report_time") else None
    stations.add_station_dump(inventory, analysis.data.get("station_dump", []), report_time)
    for entry in analysis.data.get("arp", []):
        if entry.get("mac") and entry.get("state") != "incomplete":
            inventory.add(entry["mac"], "arp", ips=[entry["ip"]], arp_device=entry.get("device"))
    for event in analysis.data.get("dhcp_timeline", []):
        if event.get("event") == "ack":
            inventory.add(
                event.get("mac"),
                "dnsmasq",
                ips=[str(event["ip"])] if event.get("ip") else [],
                hostname=event.get("hostname"),
            )
    if inventory.overflow:
        analysis.flag("station_limit_reached")
    return inventory.result()


def _derived_events(report_time: int | None, inventory: list[dict[str, Any]]) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    for station in inventory:
        if station.get("joined"):
            events.append(
                {
                    "time": station["joined"],
                    "source": "iw_station_dump",
                    "event": "joined",
                    "mac": station["mac"],
                    "hostname": station.get("hostname"),
                    "detail": f"associated for {station.get('connected_seconds')} s at report time",
                }
            )
        if station.get("last_seen"):
            events.append(
                {
                    "time": station["last_seen"],
                    "source": "info_json",
                    "event": "last_seen",
                    "mac": station["mac"],
                    "hostname": station.get("hostname"),
                    "detail": "station last seen by the router",
                }
            )
    if report_time:
        events.append(
            {
                "time": syslog.iso_from_epoch(report_time),
                "source": "report",
                "event": "report_generated",
                "detail": "diagnostic report generated",
            }
        )
    return sorted(events, key=lambda e: str(e.get("time")))


def _year(report_time: int | None) -> int:
    if report_time and 0 < report_time < 32_503_680_000:
        return datetime.fromtimestamp(report_time, UTC).year
    return 1970


def analyse(data: bytes, limits: OnHubLimits) -> OnHubAnalysis:
    """Decode ``data`` as an OnHub report and extract everything worth knowing; never raises on bad input."""
    analysis = OnHubAnalysis()
    decoded = schema.decode(data)
    for anomaly in decoded.anomalies:
        analysis.flag(anomaly)
    report = decoded.report
    analysis.data["report"] = _header(report, decoded)
    analysis.data["unknown_fields"] = _unknown(report, analysis)
    _files(report, analysis, limits)

    texts = {name: _parse_text(analysis, name, text, limits) for name, text in _text_blobs(report)}
    info, info_text = _info_json(report, analysis, limits)
    config, wan = texts.get("network_config", {}), texts.get("wan_info", {})
    text_stations = [s for m in [*texts.values(), info_text] for s in textproto.find_all(m, "station_info")]

    analysis.data["network"] = _network(config, wan, info, analysis)
    leases = _leases(wan)
    analysis.data["dhcp_leases"] = leases
    analysis.data["arp"] = _arp(analysis)
    analysis.data["station_dump"] = _station_dumps(analysis)

    report_time = report.report_time if report.HasField("report_time") else None
    if report_time is None:
        analysis.flag("report_time_missing")
    logs, access = _log_texts(analysis, limits)
    association, dhcp = syslog.timelines(logs, _year(report_time), limits.max_timeline_events)
    if len(association) + len(dhcp) >= limits.max_timeline_events:
        analysis.flag("timeline_limit_reached")
    analysis.data["association_timeline"] = association
    analysis.data["dhcp_timeline"] = dhcp
    web = [e for text in access for e in syslog.access_log(text, limits.max_timeline_events)]
    analysis.data["web_access_log"] = sorted(web, key=lambda e: str(e["time"]))[: limits.max_timeline_events]

    inventory = _inventory(analysis, report, info, text_stations, leases, limits)
    analysis.data["stations"] = inventory
    analysis.data["events"] = _derived_events(report_time, inventory)
    analysis.data["files"] = [_file_row(item) for item in analysis.files]
    analysis.data["commands"] = [
        {"command": c.path, "status": c.status, "size": len(c.content)} for c in analysis.commands
    ]
    analysis.data["file_lengths"] = [
        {"path": schema.text(f.path, 4096), "length": f.length} for f in report.file_lengths
    ]
    analysis.data["ap_state"] = mask(
        {k: v for k, v in _dig(info, "_apState").items() if k != "_stations"}
        if isinstance(_dig(info, "_apState"), dict)
        else {}
    )
    return analysis


def _file_row(item: EmbeddedFile) -> dict[str, Any]:
    return {
        "path": item.path,
        "stored_size": item.stored_size,
        "size": len(item.content),
        "compressed": item.compressed,
        "truncated": item.truncated,
        "content_type": item.content_type,
    }
