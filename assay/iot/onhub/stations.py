"""Who was on the network: station dumps, ARP tables and the merged station inventory.

Each source knows part of a device (the router's JSON knows names and band, ``iw station
dump`` how long it has been associated, ARP and DHCP leases its addresses); the inventory
merges them by normalised MAC so that one entry answers "what is this device and when did
it join".
"""

from __future__ import annotations

import re
from typing import Any

from assay.iot.mac import normalise_mac, vendor_of
from assay.iot.onhub.syslog import iso_from_epoch

_MAC = r"(?:[0-9A-Fa-f]{2}[:\-]){5}[0-9A-Fa-f]{2}|[0-9A-Fa-f]{12}"
_STATION = re.compile(rf"^Station\s+(?P<mac>{_MAC})\s*(?:\(on\s+(?P<iface>[\w.\-]+)\))?", re.MULTILINE)
_STATION_FIELD = re.compile(r"^\s+(?P<key>[A-Za-z][\w /\-]*?):\s*(?P<value>.*)$")
_INT = re.compile(r"-?\d+")
_IPV4 = re.compile(r"^\d{1,3}(?:\.\d{1,3}){3}$")
_PROC_ARP = re.compile(
    rf"^(?P<ip>\d{{1,3}}(?:\.\d{{1,3}}){{3}})\s+(?P<hw>0x[0-9a-fA-F]+)\s+(?P<flags>0x[0-9a-fA-F]+)\s+"
    rf"(?P<mac>{_MAC})\s+(?P<mask>\S+)\s+(?P<dev>\S+)"
)
_IP_NEIGH = re.compile(
    rf"^(?P<ip>[0-9A-Fa-f:.]+)\s+dev\s+(?P<dev>\S+)(?:\s+lladdr\s+(?P<mac>{_MAC}))?.*?(?P<state>[A-Z]+)?$"
)
_ARP_AN = re.compile(rf"\((?P<ip>[0-9.]+)\)\s+at\s+(?P<mac>{_MAC})(?:\s+\[\w+\])?\s+on\s+(?P<dev>\S+)")
_NUMERIC_FIELDS = {
    "inactive time": "inactive_ms",
    "rx bytes": "rx_bytes",
    "tx bytes": "tx_bytes",
    "rx packets": "rx_packets",
    "tx packets": "tx_packets",
    "tx retries": "tx_retries",
    "tx failed": "tx_failed",
    "signal": "signal_dbm",
    "signal avg": "signal_avg_dbm",
    "connected time": "connected_seconds",
}


def _station_block(mac: str, iface: str | None, body: str) -> dict[str, Any]:
    station: dict[str, Any] = {"mac": mac, "interface": iface}
    for line in body.splitlines():
        match = _STATION_FIELD.match(line)
        if match is None:
            continue
        key, value = match["key"].strip().lower(), match["value"].strip()
        if key in _NUMERIC_FIELDS:
            number = _INT.search(value)
            if number:
                station[_NUMERIC_FIELDS[key]] = int(number.group(0))
        elif key in ("tx bitrate", "rx bitrate"):
            station[key.replace(" ", "_")] = value
        elif key in ("authorized", "authenticated"):
            station[key] = value == "yes"
    return station


def station_dump(text: str, interface: str | None = None, limit: int = 10_000) -> list[dict[str, Any]]:
    """Every station of an ``iw dev <if> station dump`` output."""
    stations: list[dict[str, Any]] = []
    matches = list(_STATION.finditer(text))
    for index, match in enumerate(matches[:limit]):
        mac = normalise_mac(match["mac"])
        if mac is None:
            continue
        end = matches[index + 1].start() if index + 1 < len(matches) else len(text)
        stations.append(_station_block(mac, match["iface"] or interface, text[match.end() : end]))
    return stations


def arp_entries(text: str, source: str, limit: int = 10_000) -> list[dict[str, Any]]:
    """Neighbour entries from ``/proc/net/arp``, ``ip neigh`` or ``arp -an`` text."""
    entries: list[dict[str, Any]] = []
    for line in text.splitlines():
        line = line.strip()
        entry: dict[str, Any] | None = None
        if match := _PROC_ARP.match(line):
            complete = int(match["flags"], 16) & 0x2
            entry = {
                "ip": match["ip"],
                "mac": normalise_mac(match["mac"]),
                "device": match["dev"],
                "state": "complete" if complete else "incomplete",
            }
        elif (match := _IP_NEIGH.match(line)) and " dev " in line:
            entry = {
                "ip": match["ip"],
                "mac": normalise_mac(match["mac"] or ""),
                "device": match["dev"],
                "state": (match["state"] or "").lower() or None,
            }
        elif match := _ARP_AN.search(line):
            entry = {
                "ip": match["ip"],
                "mac": normalise_mac(match["mac"]),
                "device": match["dev"],
                "state": None,
            }
        if entry is not None:
            entry["source"] = source
            entries.append(entry)
            if len(entries) >= limit:
                break
    return entries


def _vendor(mac: str, oui: str | None = None) -> str | None:
    vendor = vendor_of(mac)
    if vendor is None and oui and re.fullmatch(r"[0-9A-Fa-f]{6}", oui):
        vendor = vendor_of(oui + "000000")
    return vendor


class StationInventory:
    """Station entries keyed by normalised MAC; every source adds what it knows."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.entries: dict[str, dict[str, Any]] = {}
        self.overflow = False

    def entry(self, mac: str | None) -> dict[str, Any] | None:
        if mac is None:
            return None
        if mac not in self.entries:
            if len(self.entries) >= self.limit:
                self.overflow = True
                return None
            self.entries[mac] = {
                "mac": mac,
                "ips": [],
                "hostname": None,
                "vendor": _vendor(mac),
                "names": [],
                "sources": [],
            }
        return self.entries[mac]

    def add(
        self,
        mac: str | None,
        source: str,
        *,
        ips: list[str] | tuple[str, ...] = (),
        hostname: str | None = None,
        names: list[str] | tuple[str, ...] = (),
        **facts: Any,
    ) -> None:
        item = self.entry(mac)
        if item is None:
            return
        if source not in item["sources"]:
            item["sources"].append(source)
        for ip in ips:
            if isinstance(ip, str) and ip and ip not in item["ips"]:
                item["ips"].append(ip)
        if hostname and not item["hostname"]:
            item["hostname"] = hostname
        for name in names:
            if isinstance(name, str) and name and name not in item["names"]:
                item["names"].append(name)
        for key, value in facts.items():
            if value is not None and item.get(key) is None:
                item[key] = value
        if item["vendor"] is None and facts.get("oui"):
            item["vendor"] = _vendor(item["mac"], str(facts["oui"]))

    def result(self) -> list[dict[str, Any]]:
        return sorted(self.entries.values(), key=lambda e: e["mac"])


def _band(raw: Any) -> str | None:
    text = str(raw or "").lower()
    if "2400" in text or "2.4" in text or "2g" in text:
        return "2.4GHz"
    if "5000" in text or "5g" in text or "5 g" in text:
        return "5GHz"
    return None


def add_json_stations(inventory: StationInventory, stations: list[Any], id_to_mac: dict[str, str]) -> int:
    """Merge ``_apState._stations`` of the info JSON; returns how many had no known MAC."""
    unmapped = 0
    for station in stations:
        if not isinstance(station, dict):
            continue
        station_id = str(station.get("_id") or "").upper()
        mac = id_to_mac.get(station_id) or normalise_mac(str(station.get("_macAddress") or ""))
        if mac is None:
            unmapped += 1
            continue
        wireless = station.get("_wireless")
        band = _band(station.get("_wirelessBand"))
        last_seen = station.get("_lastSeenSecondsSinceEpoch")
        inventory.add(
            mac,
            "info_json",
            ips=[ip for ip in station.get("_ipAddresses") or [] if isinstance(ip, str)],
            hostname=str(station.get("_dhcpHostname") or "") or None,
            names=[n for n in station.get("_mdnsNames") or [] if isinstance(n, str)],
            station_id=station_id or None,
            oui=station.get("_oui") or None,
            connection=("wired" if wireless is False else band or ("wireless" if wireless else None)),
            guest=station.get("_guest") if isinstance(station.get("_guest"), bool) else None,
            connected=station.get("_connected") if isinstance(station.get("_connected"), bool) else None,
            last_seen=iso_from_epoch(last_seen)
            if isinstance(last_seen, (int, float)) and last_seen
            else None,
            taxonomy_ids=[t for t in station.get("_taxonomyIds") or [] if isinstance(t, str)] or None,
        )
    return unmapped


def _truthy(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return None


def add_text_stations(
    inventory: StationInventory, stations: list[dict[str, list[Any]]], id_to_mac: dict[str, str]
) -> int:
    """Merge the newer text-format ``station_info { ... }`` blocks; returns how many had no MAC."""
    unmapped = 0
    for station in stations:
        one = {key: values[0] for key, values in station.items() if values}
        station_id = str(one.get("station_id") or one.get("id") or "").upper()
        mac = normalise_mac(str(one.get("mac_address") or one.get("mac") or "")) or id_to_mac.get(station_id)
        if mac is None:
            unmapped += 1
            continue
        ips = [
            v for key in ("ip_addresses", "ip_address") for v in station.get(key, []) if isinstance(v, str)
        ]
        names = [v for key in ("mdns_name", "mdns_names") for v in station.get(key, []) if isinstance(v, str)]
        last_seen = one.get("last_seen_seconds_since_epoch")
        interface = one.get("wireless_interface")
        inventory.add(
            mac,
            "station_info",
            ips=ips,
            hostname=str(one.get("dhcp_hostname") or "") or None,
            names=names,
            station_id=station_id or None,
            oui=one.get("oui"),
            connection=_band(interface) or ("wired" if _truthy(one.get("wireless")) is False else None),
            interface=str(interface) if interface else None,
            guest=_truthy(one.get("guest")),
            connected=_truthy(one.get("connected")),
            last_seen=iso_from_epoch(last_seen)
            if isinstance(last_seen, (int, float)) and last_seen
            else None,
        )
    return unmapped


def add_station_dump(inventory: StationInventory, stations: list[dict[str, Any]], report_time: int | None) -> None:
    """Merge ``iw station dump`` facts; the join time is the report time minus the connected time."""
    for station in stations:
        seconds = station.get("connected_seconds")
        joined = iso_from_epoch(report_time - seconds) if report_time and isinstance(seconds, int) else None
        interface = station.get("interface")
        inventory.add(
            station["mac"],
            "iw_station_dump",
            interface=interface,
            connection=_band(interface),
            guest=("guest" in str(interface)) if interface else None,
            connected=True,
            connected_seconds=seconds,
            joined=joined,
            signal_dbm=station.get("signal_dbm"),
            inactive_ms=station.get("inactive_ms"),
        )


def id_mac_pairs(pairs: list[tuple[str, str]]) -> dict[str, str]:
    """Field 12 of the report: station id (hex) to MAC, both normalised."""
    mapping: dict[str, str] = {}
    for station_id, raw_mac in pairs:
        mac = normalise_mac(raw_mac)
        if mac and station_id:
            mapping[station_id.strip().upper()] = mac
    return mapping


def is_ipv4(text: str) -> bool:
    return bool(_IPV4.match(text)) and all(int(part) < 256 for part in text.split("."))
