"""The OnHubReport service: a Google OnHub / Google Wifi diagnostic report, read for an examiner.

The decoding and assembling live in :mod:`assay.iot.onhub`; this module only maps the
analysis onto Assay's result model (sections, tags, heuristics, extracted files).
"""

from __future__ import annotations

import re
from typing import Any

from assay.iot.onhub import OnHubAnalysis, OnHubLimits, analyse
from assay.iot.onhub.report import EmbeddedFile
from assay.iot.onhub.stations import is_ipv4
from assay.services.base import FileRequest, Heuristic, Result, Section, Service, Stage

_SAFE_NAME = re.compile(r"[^A-Za-z0-9._\-]+")
_DOMAIN = re.compile(r"^(?=.{4,253}$)(?:[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$")
_LOCAL_SUFFIXES = (".local", ".lan", ".home", ".internal", ".localdomain", ".arpa", ".localhost")
_PSK_MISMATCH_MIN = 3


def child_name(path: str, prefix: str = "") -> str:
    """A file name that keeps the embedded path readable but is safe anywhere: ``var_log_messages.1``."""
    name = _SAFE_NAME.sub("_", path.strip().strip("/")).strip("._") or "unnamed"
    return (prefix + name)[:200]


def _is_domain(name: str) -> bool:
    return bool(_DOMAIN.match(name)) and not name.lower().endswith(_LOCAL_SUFFIXES)


class OnHubReport(Service):
    """Reads a Google OnHub / Google Wifi diagnostic report (the router's ``/api/v1/diagnostic-report``).

    Produces the report time, firmware and hardware, the network configuration with every
    pre-shared key masked, a station inventory merged by MAC (JSON state, text-format
    ``station_info``, DHCP leases, ``iw station dump`` with derived join times, ARP, dnsmasq),
    the hostapd association and dnsmasq DHCP timelines, the router's web-API access log, and
    every embedded file (decompressed) as a child so that its text is searched later.

    Parameters:
        ``max_report_size`` (int, 256 MiB): bytes of the report read at most.
        ``max_extracted_files`` (int, 200): embedded files and command outputs extracted at most.
        ``max_file_size`` (int, 64 MiB): size of one decompressed embedded file at most.
        ``max_total_decompressed`` (int, 256 MiB): decompressed bytes over all files at most.
        ``max_text_scan`` (int, 32 MiB): log text scanned for timelines at most.
        ``max_timeline_events`` (int, 20000): timeline entries kept at most.
        ``max_stations`` (int, 5000): inventory entries at most.
        ``max_json_size`` (int, 16 MiB): size of the info JSON parsed at most.
        ``max_text_depth`` (int, 32): nesting of text-format blobs followed at most.
        ``max_section_rows`` (int, 200): rows shown in one result table (``result.data`` keeps all).
        ``max_tags`` (int, 500): tags emitted at most.
        ``extract_command_outputs`` (bool, True): also extract command outputs as children.
    """

    name = "OnHubReport"
    version = "1"
    stage = Stage.CORE
    category = "Forensics"
    accepts = r"iot/onhub"
    parameters: dict[str, Any] = {
        "max_report_size": 256 * 1024 * 1024,
        "max_extracted_files": 200,
        "max_file_size": 64 * 1024 * 1024,
        "max_total_decompressed": 256 * 1024 * 1024,
        "max_text_scan": 32 * 1024 * 1024,
        "max_timeline_events": 20_000,
        "max_stations": 5_000,
        "max_json_size": 16 * 1024 * 1024,
        "max_text_depth": 32,
        "max_section_rows": 200,
        "max_tags": 500,
        "extract_command_outputs": True,
    }
    heuristics = (
        Heuristic(
            "onhub.psk_cleartext",
            "Wi-Fi key in clear",
            "The report carries a pre-shared key or password unmasked (it is masked in this result).",
            100,
        ),
        Heuristic(
            "onhub.psk_mismatch",
            "Repeated Wi-Fi key mismatches",
            "hostapd logged several possible pre-shared key mismatches: a device tried a wrong Wi-Fi key.",
            10,
            ("T1110",),
        ),
    )

    def execute(self, request: FileRequest) -> Result:
        options = self.options(request.params)
        result = Result()
        data = request.read(int(options["max_report_size"]))
        if request.size > len(data):
            result.anomalies.append("report_size_limit_reached")
        analysis = analyse(data, OnHubLimits.from_options(options))
        result.anomalies.extend(a for a in analysis.anomalies if a not in result.anomalies)
        result.data = analysis.data
        rows = int(options["max_section_rows"])
        self._summary(result, analysis)
        self._tables(result, analysis, rows)
        self._extract(result, analysis, options)
        self._tag(result, analysis, int(options["max_tags"]))
        return result

    def _summary(self, result: Result, analysis: OnHubAnalysis) -> None:
        report = analysis.data["report"]
        network = analysis.data["network"]
        result.add_section(
            "OnHub diagnostic report",
            {
                "report time (UTC)": report["time"],
                "firmware": report["version"],
                "storm version": report["storm_version"],
                "hardware": report["hardware"],
                "complete": report["complete"],
                "embedded files": len(analysis.files),
                "command outputs": len(analysis.commands),
                "stations": len(analysis.data["stations"]),
            },
            "kv",
        )
        summary = {
            "LAN": f"{network['lan']['ip_address']}/{network['lan']['netmask']}",
            "SSID": network["wireless"]["ssid"],
            "guest SSID": network["guest"]["ssid"],
            "guest enabled": network["guest"]["enabled"],
            "mesh SSID": network["mesh"]["ssid"],
            "2.4 GHz channel": (network["wireless"]["channel_2400mhz"] or {}).get("number"),
            "5 GHz channel": (network["wireless"]["channel_5000mhz"] or {}).get("number"),
            "DHCP pool": f"{network['dhcp']['pool_begin']}-{network['dhcp']['pool_end']}",
            "WAN": f"{network['wan']['connection_type']} {network['wan']['ip_address']} "
            f"via {network['wan']['gateway']}",
            "DNS servers": ", ".join(network["dns_servers"] or network["wan"]["name_servers"]),
            "UPnP": network["upnp"],
            "port forwards": len(network["port_forwards"]),
        }
        section = result.add_section("Network configuration", summary, "kv")
        if analysis.clear_secrets:
            clear = section.add_subsection(
                "Keys found in clear (masked here)", sorted(set(analysis.clear_secrets))
            )
            clear.heuristic = "onhub.psk_cleartext"

    def _tables(self, result: Result, analysis: OnHubAnalysis, rows: int) -> None:
        data = analysis.data
        columns = (
            "mac",
            "vendor",
            "hostname",
            "ips",
            "connection",
            "guest",
            "connected",
            "last_seen",
            "connected_seconds",
            "joined",
        )
        inventory = [{key: station.get(key) for key in columns} for station in data["stations"]]
        tables: tuple[tuple[str, list[dict[str, Any]]], ...] = (
            ("Station inventory", inventory),
            ("DHCP leases", data["dhcp_leases"]),
            ("ARP table", data["arp"]),
            ("Association timeline (hostapd)", data["association_timeline"]),
            ("DHCP timeline (dnsmasq)", data["dhcp_timeline"]),
            ("Router web-API access log", data["web_access_log"]),
            ("Derived events", data["events"]),
            ("Embedded files", data["files"]),
            ("Command outputs", data["commands"]),
        )
        for title, table in tables:
            if table:
                shown = table[:rows]
                suffix = f" (first {rows} of {len(table)})" if len(table) > rows else ""
                result.add_section(title + suffix, shown, "table")
        mismatches = [e for e in data["association_timeline"] if e.get("event") == "psk_mismatch"]
        if len(mismatches) >= _PSK_MISMATCH_MIN:
            macs = sorted({str(e.get("mac")) for e in mismatches})
            section = result.add_section(
                "Wi-Fi key mismatches", {"events": len(mismatches), "stations": macs}, "kv"
            )
            section.heuristic = "onhub.psk_mismatch"

    def _extract(self, result: Result, analysis: OnHubAnalysis, options: dict[str, Any]) -> None:
        budget = int(options["max_extracted_files"])
        items: list[tuple[EmbeddedFile, str]] = [(item, "") for item in analysis.files]
        if options["extract_command_outputs"]:
            items += [(item, "cmd_") for item in analysis.commands]
        used: set[str] = set()
        for item, prefix in items:
            if not item.content:
                continue
            if budget <= 0:
                result.anomalies.append("file_limit_reached")
                return
            name = child_name(item.path, prefix)
            while name in used:
                name = f"{name}_"
            used.add(name)
            what = "command output" if prefix else "embedded file"
            description = f"OnHub {what} {item.path}" + (" (decompressed)" if item.compressed else "")
            result.add_extracted(name, description, data=item.content)
            budget -= 1

    def _tag(self, result: Result, analysis: OnHubAnalysis, limit: int) -> None:
        data = analysis.data
        network = data["network"]
        ips: list[str] = [ip for station in data["stations"] for ip in station["ips"]]
        ips += [
            network["wan"]["ip_address"],
            network["wan"]["gateway"],
            *network["dns_servers"],
            *network["wan"]["name_servers"],
            *(e.get("ip") for e in data["web_access_log"]),
        ]
        names = [n for station in data["stations"] for n in [station["hostname"], *station["names"]]]
        section = Section("Indicators")
        for ip in ips:
            if isinstance(ip, str) and is_ipv4(ip) and len(section.tags) < limit:
                section.add_tag("network.static.ip", ip)
        for name in names:
            if isinstance(name, str) and _is_domain(name) and len(section.tags) < limit:
                section.add_tag("network.static.domain", name.lower())
        if section.tags:
            section.body = f"{len(section.tags)} addresses and names seen by the router"
            result.sections.append(section)
