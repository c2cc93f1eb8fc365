"""One device inventory and one timeline from every task of a case.

Each service describes devices in its own words: NetworkCapture's ``hosts``, OnHubReport's
``stations``, CloudAccount's ``inventory``. A device seen by several sources becomes one entry,
joined on the normalised MAC first, then the serial number, then the hostname; a join on
serial or hostname is refused when both sides carry different MACs, and masked hostnames
(``android-****``, as in anonymised evidence) never join anything. Timeline entries from
every source are sorted by time, each keeping the task it came from.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from assay.config import TasksSettings
from assay.iot.mac import normalise_mac

INVENTORY_KEYS = ("hosts", "stations", "inventory", "devices")
TIMELINE_KEYS = ("timeline", "association_timeline", "dhcp_timeline", "events", "web_access_log")
_SERIAL_KEYS = ("serial", "serial_number", "serialNumber", "device_serial", "deviceSerialNumber")
_MAC_KEYS = ("mac", "mac_address", "macAddress", "wifi_mac")
_HOST_KEYS = ("hostname", "dhcp_hostname", "host_name")
_NAME_KEYS = ("name", "label", "device_name", "deviceName", "accountName")
_MASK_CHARS = set("*#?")
DEFAULT_MAX_TIMELINE: int = TasksSettings.model_fields["case_max_timeline"].default
DEFAULT_MAX_DEVICES = 20_000


@dataclass
class Source:
    """What one task found: its id and each service's ``result.data``."""

    task_id: str
    data: Mapping[str, Mapping[str, Any]]


@dataclass
class Device:
    mac: str | None = None
    serial: str | None = None
    hostnames: list[str] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    ips: list[str] = field(default_factory=list)
    vendor: str | None = None
    first_seen: str | None = None
    last_seen: str | None = None
    seen_by: list[dict[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "mac": self.mac, "serial": self.serial, "hostnames": self.hostnames, "names": self.names,
            "ips": self.ips, "vendor": self.vendor, "first_seen": self.first_seen,
            "last_seen": self.last_seen, "seen_by": self.seen_by,
        }


def _text(record: Mapping[str, Any], keys: Iterable[str]) -> str | None:
    for key in keys:
        value = record.get(key)
        if isinstance(value, str | int) and not isinstance(value, bool) and str(value).strip():
            return str(value).strip()
    return None


def hostname_key(raw: str | None) -> str | None:
    """Lower case, no trailing dot or ``.local``; ``None`` for masked or empty names."""
    if not raw:
        return None
    name = raw.strip().lower().rstrip(".")
    name = name.removesuffix(".local").removesuffix(".lan")
    if not name or _MASK_CHARS & set(name):
        return None
    return name


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value] if value else []
    if isinstance(value, list):
        return [str(v) for v in value if isinstance(v, str | int) and not isinstance(v, bool) and str(v)]
    return []


def _records(data: Mapping[str, Any]) -> Iterable[tuple[str, Mapping[str, Any]]]:
    for key in INVENTORY_KEYS:
        value = data.get(key)
        if isinstance(value, Mapping):
            value = value.get("devices", [])
        if isinstance(value, list):
            yield from ((key, item) for item in value if isinstance(item, Mapping))


class DeviceInventory:
    """Devices joined across sources (see the module docstring for the join rules)."""

    def __init__(self, max_devices: int = DEFAULT_MAX_DEVICES) -> None:
        self.devices: list[Device] = []
        self.by_mac: dict[str, Device] = {}
        self.by_serial: dict[str, Device] = {}
        self.by_host: dict[str, Device] = {}
        self.max_devices = max_devices
        self.truncated = False

    def add(self, task_id: str, service: str, kind: str, record: Mapping[str, Any]) -> None:
        mac = normalise_mac(_text(record, _MAC_KEYS) or "")
        serial = _text(record, _SERIAL_KEYS)
        hosts = [h for h in (hostname_key(_text(record, (k,))) for k in _HOST_KEYS) if h]
        device = self._find(mac, serial, hosts)
        if device is None:
            if len(self.devices) >= self.max_devices:
                self.truncated = True
                return
            device = Device()
            self.devices.append(device)
        self._merge(device, record, mac, serial, hosts)
        source = {"task_id": task_id, "service": service, "kind": kind}
        if source not in device.seen_by:
            device.seen_by.append(source)

    def _find(self, mac: str | None, serial: str | None, hosts: list[str]) -> Device | None:
        if mac and mac in self.by_mac:
            return self.by_mac[mac]
        candidates = [self.by_serial.get(serial or "")] + [self.by_host.get(h) for h in hosts]
        for device in candidates:
            if device is not None and not (mac and device.mac and device.mac != mac):
                return device
        return None

    def _merge(self, device: Device, record: Mapping[str, Any], mac: str | None, serial: str | None,
               hosts: list[str]) -> None:
        if mac and not device.mac:
            device.mac = mac
            self.by_mac[mac] = device
        if serial and not device.serial:
            device.serial = serial
            self.by_serial.setdefault(serial, device)
        for host in hosts:
            _append(device.hostnames, host)
            self.by_host.setdefault(host, device)
        named = [_text(record, _NAME_KEYS), record.get("names"), record.get("mdns_names")]
        for name in (n for value in named for n in _strings(value)):
            _append(device.names, name)
        for ip in _strings(record.get("ips")) + _strings(record.get("ip")):
            _append(device.ips, ip)
        device.vendor = device.vendor or _text(record, ("vendor", "manufacturer", "manufacturerName"))
        first = _text(record, ("first_seen",))
        last = _text(record, ("last_seen",))
        if first and (device.first_seen is None or sort_key(first) < sort_key(device.first_seen)):
            device.first_seen = first
        if last and (device.last_seen is None or sort_key(last) > sort_key(device.last_seen)):
            device.last_seen = last


def _append(items: list[str], value: str) -> None:
    if value not in items:
        items.append(value)


def sort_key(value: Any) -> float:
    """Seconds since the epoch for an ISO time or an epoch number; +inf when there is none."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value) / 1000.0 if value > 1e11 else float(value)
    if isinstance(value, str) and value:
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return float("inf")
        return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()
    return float("inf")


def _entry_time(entry: Mapping[str, Any]) -> float:
    for key in ("ts", "time", "epoch", "timestamp"):
        found = sort_key(entry.get(key))
        if found != float("inf"):
            return found
    return float("inf")


def merge(sources: Iterable[Source], max_timeline: int = DEFAULT_MAX_TIMELINE,
          max_devices: int = DEFAULT_MAX_DEVICES) -> dict[str, Any]:
    """``{"inventory": [...], "timeline": [...], "truncated": {...}}`` for the given sources."""
    inventory = DeviceInventory(max_devices)
    timeline: list[tuple[float, int, dict[str, Any]]] = []
    timeline_cut = False
    for source in sources:
        for service, data in source.data.items():
            for kind, record in _records(data):
                inventory.add(source.task_id, service, kind, record)
            for key in TIMELINE_KEYS:
                entries = data.get(key)
                if not isinstance(entries, list):
                    continue
                for entry in entries:
                    if not isinstance(entry, Mapping):
                        continue
                    if len(timeline) >= max_timeline:
                        timeline_cut = True
                        break
                    row = {**entry, "task_id": source.task_id, "service": service, "source_table": key}
                    timeline.append((_entry_time(entry), len(timeline), row))
    timeline.sort(key=lambda item: (item[0], item[1]))
    return {
        "inventory": [d.as_dict() for d in inventory.devices],
        "timeline": [row for _, _, row in timeline],
        "truncated": {"inventory": inventory.truncated, "timeline": timeline_cut},
    }
