"""Timelines from the router's own logs: Wi-Fi associations, DHCP and web-API access.

hostapd writes one line per 802.11 state change of a station (``STA <mac> IEEE 802.11:
associated``), dnsmasq one per DHCP message (``DHCPACK(br-lan) <ip> <mac> <hostname>``),
and webservd an access log in common log format. Together they say which device was on the
network when, under which address and name, and who talked to the router's API.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime

from assay.iot.mac import normalise_mac

_MAC = r"(?:[0-9A-Fa-f]{2}[:\-]){5}[0-9A-Fa-f]{2}|[0-9A-Fa-f]{12}"
_IPV4 = r"\d{1,3}(?:\.\d{1,3}){3}"
_ISO_LINE = re.compile(
    r"^(?P<ts>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)?)\s+\S+\s+"
    r"(?P<prog>[\w.\-/]+)(?:\[\d+\])?:\s?(?P<msg>.*)$"
)
_BSD_LINE = re.compile(
    r"^(?P<ts>[A-Z][a-z]{2}\s+\d{1,2}\s\d\d:\d\d:\d\d)\s+\S+\s+(?P<prog>[\w.\-/]+)(?:\[\d+\])?:\s?(?P<msg>.*)$"
)
_HOSTAPD = re.compile(rf"^(?:(?P<iface>[\w.\-]+):\s+)?STA\s+(?P<mac>{_MAC})\s+IEEE 802\.11:\s*(?P<what>.*)$")
_HOSTAPD_CTRL = re.compile(
    rf"^(?:(?P<iface>[\w.\-]+):\s+)?(?:IEEE 802\.11\s+)?(?P<what>AP-STA-[A-Z\-]+)"
    rf"\s+(?P<mac>{_MAC})\s*(?P<rest>.*)$"
)
_DNSMASQ = re.compile(
    rf"^(?P<kind>DHCP[A-Z]+)\((?P<iface>[\w.\-]+)\)\s+(?:(?P<ip>{_IPV4})\s+)?(?P<mac>{_MAC})?\s*(?P<rest>.*)$"
)
_CLF = re.compile(
    r'^(?P<ip>[0-9A-Fa-f:.]+)\s+\S+\s+(?P<user>\S+)\s+\[(?P<ts>[^\]]+)\]\s+"(?P<method>[A-Z\-]+)\s+(?P<path>\S+)'
    r'(?:\s+(?P<proto>[^"]*))?"\s+(?P<status>\d{3})\s+(?P<size>\d+|-)(?P<rest>.*)$'
)
_HOSTAPD_EVENTS = (
    ("connected", "connected"),
    ("disconnected", "disconnected"),
    ("associated", "associated"),
    ("reassociated", "associated"),
    ("disassociated", "disassociated"),
    ("authenticated", "authenticated"),
    ("deauthenticated", "deauthenticated"),
    ("ap-sta-possible-psk-mismatch", "psk_mismatch"),
    ("disconnect sta", "disconnected"),
)
_CTRL_EVENTS = {
    "AP-STA-CONNECTED": "connected",
    "AP-STA-CONNECT": "connected",
    "AP-STA-DISCONNECTED": "disconnected",
    "AP-STA-DISCONNECT": "disconnected",
    "AP-STA-ASSOC": "associated",
    "AP-STA-AUTH": "authenticated",
    "AP-STA-DISASSOC-RESP": "disassociated",
}


def isoformat_utc(moment: datetime) -> str:
    """The one timestamp format of the OnHub reports: UTC, ISO 8601 with ``+00:00``, as IoTInsight wrote them."""
    return moment.astimezone(UTC).isoformat()


def iso_from_epoch(seconds: float) -> str | None:
    """UTC ISO time of a unix time, ``None`` when it is not a plausible time."""
    try:
        return (
            isoformat_utc(datetime.fromtimestamp(float(seconds), UTC)) if 0 < float(seconds) < 32_503_680_000 else None
        )
    except (OverflowError, ValueError, OSError):
        return None


def _parse_time(raw: str, year: int) -> datetime | None:
    try:
        if raw[:4].isdigit():
            moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        else:
            moment = datetime.strptime(f"{year} {' '.join(raw.split())}", "%Y %b %d %H:%M:%S")
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def syslog_lines(lines: Iterable[str], year: int) -> Iterator[tuple[datetime, str, str]]:
    """(time, program, message) of every syslog line, ISO (ChromeOS) or BSD style."""
    for line in lines:
        match = _ISO_LINE.match(line) or _BSD_LINE.match(line)
        if match is None:
            continue
        moment = _parse_time(match["ts"], year)
        if moment is not None:
            yield moment, match["prog"].rsplit("/", 1)[-1], match["msg"].rstrip()


def _hostapd_event(what: str) -> str:
    lowered = what.strip().lower()
    for prefix, event in _HOSTAPD_EVENTS:
        if lowered.startswith(prefix):
            return event
    return "ieee80211"


def hostapd_entry(moment: datetime, message: str) -> dict[str, object] | None:
    """A timeline entry for one hostapd 802.11 state line, ``None`` for other hostapd chatter."""
    match = _HOSTAPD.match(message)
    if match:
        event = _hostapd_event(match["what"])
        detail = match["what"].strip()
    else:
        match = _HOSTAPD_CTRL.match(message)
        if match is None:
            return None
        event = _CTRL_EVENTS.get(match["what"]) or match["what"].removeprefix("AP-STA-").lower().replace(
            "-", "_"
        )
        detail = f"{match['what']} {match['rest']}".strip()
    entry: dict[str, object] = {"time": isoformat_utc(moment), "source": "hostapd", "event": event, "detail": detail}
    mac = normalise_mac(match["mac"])
    if mac:
        entry["mac"] = mac
    if match["iface"]:
        entry["interface"] = match["iface"]
    return entry


def dnsmasq_entry(moment: datetime, message: str) -> dict[str, object] | None:
    """A timeline entry for one dnsmasq DHCP message line."""
    match = _DNSMASQ.match(message)
    if match is None:
        return None
    kind = match["kind"]
    entry: dict[str, object] = {
        "time": isoformat_utc(moment),
        "source": "dnsmasq",
        "event": kind.removeprefix("DHCP").lower(),
        "interface": match["iface"],
        "detail": message.strip(),
    }
    mac = normalise_mac(match["mac"]) if match["mac"] else None
    if mac:
        entry["mac"] = mac
    if match["ip"]:
        entry["ip"] = match["ip"]
    rest = match["rest"].strip()
    if kind == "DHCPACK" and rest and " " not in rest:
        entry["hostname"] = rest
    return entry


def timelines(
    texts: Iterable[str], year: int, limit: int
) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    """(association timeline, DHCP timeline) from syslog texts, deduplicated, time-ordered."""
    seen: set[tuple[datetime, str, str]] = set()
    assoc: list[dict[str, object]] = []
    dhcp: list[dict[str, object]] = []
    for text in texts:
        for moment, prog, message in syslog_lines(text.splitlines(), year):
            key = (moment, prog, message)
            if key in seen or len(assoc) + len(dhcp) >= limit:
                continue
            seen.add(key)
            if prog == "hostapd":
                entry = hostapd_entry(moment, message)
                if entry:
                    assoc.append(entry)
            elif prog.startswith("dnsmasq"):
                entry = dnsmasq_entry(moment, message)
                if entry:
                    dhcp.append(entry)
    return sorted(assoc, key=_time_key), sorted(dhcp, key=_time_key)


def _time_key(entry: dict[str, object]) -> str:
    return str(entry.get("time", ""))


def access_log(text: str, limit: int) -> list[dict[str, object]]:
    """Web-API requests from a common-log-format access log (webservd)."""
    entries: list[dict[str, object]] = []
    for line in text.splitlines():
        match = _CLF.match(line.strip())
        if match is None:
            continue
        try:
            moment = datetime.strptime(match["ts"], "%d/%b/%Y:%H:%M:%S %z")
        except ValueError:
            continue
        entries.append(
            {
                "time": isoformat_utc(moment),
                "source": "webservd",
                "event": "api_request",
                "ip": match["ip"],
                "method": match["method"],
                "path": match["path"],
                "status": int(match["status"]),
                "size": int(match["size"]) if match["size"].isdigit() else None,
                "detail": f"{match['method']} {match['path']} -> {match['status']}",
            }
        )
        if len(entries) >= limit:
            break
    return entries
