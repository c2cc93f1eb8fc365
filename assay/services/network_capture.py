"""NetworkCapture: the IoTInsight ``packet`` analyser for pcap and pcapng files.

It wraps :func:`assay.iot.capture.analyse_capture`'s engine: the whole structured report goes
to ``result.data`` (hosts keyed by MAC for the case inventory, conversations, protocol
records, a merged timeline), HTTP bodies come back as extracted child files, and a few
readable sections carry the tags. Scoring stays modest: only cleartext credentials are
scored, since everything else in a capture is context, not a verdict.
"""

from __future__ import annotations

from typing import Any

from assay.iot.capture import DEFAULTS, CaptureAnalysis
from assay.services.base import FileRequest, Heuristic, Result, Section, Service, Stage

_TAGS = {
    "domain": "network.dynamic.domain", "ip": "network.dynamic.ip", "uri": "network.dynamic.uri",
    "protocol": "network.protocol", "ja3_hash": "network.tls.ja3_hash", "sni": "network.tls.sni",
    "user_agent": "network.user_agent",
}
_TABLE_ROWS = 50


class NetworkCapture(Service):
    """Hosts, conversations, DNS/HTTP/TLS/CoAP/MQTT/SSE/DHCP/SSDP records and a timeline from a capture.

    Parameters (every bound is one of them):
    ``max_packets`` (10,000,000) packets read; ``max_bytes`` (4 GiB) file bytes read;
    ``max_records`` (10,000) rows per table, timeline and indicator kind; ``max_conversations``
    (200,000); ``max_hosts`` (10,000); ``max_streams`` (20,000) TCP directions kept for
    reassembly; ``max_stream_bytes`` (4 MiB) per direction; ``max_reassembly_bytes`` (256 MiB)
    in all; ``max_carve_size`` (4 MiB) per carved HTTP body; ``max_carve_count`` (200) bodies;
    ``time_limit`` (50 s) of walking before the rest is skipped.
    """

    name = "NetworkCapture"
    version = "1"
    stage = Stage.CORE
    category = "Networking"
    accepts = r"network/(tcpdump|pcapng)"
    parameters = dict(DEFAULTS)
    timeout = 120.0
    heuristics = (
        Heuristic("pcap.http_basic_auth", "Cleartext HTTP credentials",
                  "An HTTP request carried Basic authentication over an unencrypted connection.", 100,
                  ("T1040",)),
        Heuristic("pcap.mqtt_cleartext_login", "Cleartext MQTT login",
                  "An MQTT CONNECT carried a username or password over plain TCP.", 50, ("T1040",)),
    )

    def execute(self, request: FileRequest) -> Result:
        options = self.options(request.params)
        analysis = CaptureAnalysis(request.path, options)
        analysis.run()
        report = analysis.report.as_dict()
        result = Result()
        for name, description, body in analysis.report.carved:
            result.add_extracted(name, description, data=body)
        report["carved"] = [{"name": n, "description": d, "size": len(b)}
                            for n, d, b in analysis.report.carved]
        result.data = report
        result.anomalies.extend(report["anomalies"])
        result.file_info["capture_format"] = report["stats"].get("format")
        self._summary(result, report)
        self._credentials(result, report)
        return result

    @staticmethod
    def _summary(result: Result, report: dict[str, Any]) -> None:
        stats = report["stats"]
        summary = result.add_section("Capture summary", {
            "format": stats.get("format"), "link types": ", ".join(stats.get("link_types", [])),
            "packets": stats.get("packets", 0), "hosts": stats.get("hosts", 0),
            "conversations": stats.get("conversations", {}), "records": stats.get("records", {}),
            "errors": "; ".join(report["errors"]) or "none",
        }, "kv")
        for kind, values in report["indicators"].items():
            for value in values:
                summary.add_tag(_TAGS[kind], value)
        host_keys = "mac vendor ips dhcp_hostname mdns_names lwm2m_endpoints packets"
        _table(summary, "Hosts", _pick(report["hosts"], host_keys))
        convs = sorted(report["conversations"], key=lambda c: -c["bytes"])
        _table(summary, "Top conversations", _pick(convs, "protocol a a_port b b_port packets bytes"))
        queries = [{"time": d["time"], "src": d["src"], "names": ", ".join(q["name"] for q in d["questions"])}
                   for d in report["dns"] if not d["response"]]
        _table(summary, "DNS queries", queries)
        requests = [r for r in report["http"] if r["kind"] == "request"]
        http_keys = "time src method host uri user_agent response_status"
        _table(summary, "HTTP requests", _pick(requests, http_keys))
        _table(summary, "TLS ClientHello", _pick(report["tls"], "time src dst sni ja3_hash"))
        _table(summary, "CoAP", _pick(report["coap"], "time src type code uri_path lwm2m_object payload"))
        _table(summary, "MQTT", _pick(report["mqtt"], "time src type client_id topic payload"))
        _table(summary, "Event stream", _pick(report["sse"], "time src event data"))

    @staticmethod
    def _credentials(result: Result, report: dict[str, Any]) -> None:
        basic = [r for r in report["http"]
                 if r["kind"] == "request" and r.get("auth_scheme", "").lower() == "basic"]
        if basic:
            section = result.add_section("Cleartext HTTP Basic credentials", [
                {"time": r["time"], "src": r["src"], "host": r.get("host"), "user": r.get("basic_user")}
                for r in basic[:_TABLE_ROWS]], "table")
            section.heuristic = "pcap.http_basic_auth"
        logins = [r for r in report["mqtt"] if r["type"] == "CONNECT" and (r.get("username") or
                                                                            r.get("password_present"))]
        if logins:
            rows = _pick(logins[:_TABLE_ROWS], "time src client_id username")
            section = result.add_section("Cleartext MQTT logins", rows, "table")
            section.heuristic = "pcap.mqtt_cleartext_login"


def _table(parent: Section, title: str, rows: list[dict[str, Any]]) -> None:
    if rows:
        parent.add_subsection(f"{title} ({len(rows)})", rows[:_TABLE_ROWS], "table")


def _pick(rows: list[dict[str, Any]], keys: str) -> list[dict[str, Any]]:
    names = keys.split()
    return [{k: row.get(k) for k in names} for row in rows]
