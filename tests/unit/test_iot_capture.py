"""NetworkCapture on the real DFRWS 2017 smart-home captures, checked against tshark."""

from __future__ import annotations

import json
import subprocess
import zipfile
from pathlib import Path

import pytest

from assay.iot.capture import analyse_capture
from assay.services.base import FileRequest
from assay.services.network_capture import NetworkCapture
from assay.services.registry import service
from tests.helpers.paths import CASE_DATA

COAP_PCAP = "COAP-filtered-SmartHome-Traffic.pcap"
IP_PCAP = "IP-filtered-SmartHome-Traffic.pcap"


@pytest.fixture(scope="module")
def captures(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("dfrws")
    with zipfile.ZipFile(CASE_DATA / "IoT_Net_Traffic.zip") as archive:
        for name in (COAP_PCAP, IP_PCAP):
            (target / name).write_bytes(archive.read(name))
    return target


@pytest.fixture(scope="module")
def ip_report(captures: Path) -> dict:
    return analyse_capture(captures / IP_PCAP)


@pytest.fixture(scope="module")
def coap_report(captures: Path) -> dict:
    return analyse_capture(captures / COAP_PCAP)


def tshark_values(path: Path, field: str, display_filter: str | None = None) -> set[str]:
    return set(tshark_lines(path, field, display_filter))


def tshark_lines(path: Path, field: str, display_filter: str | None = None) -> list[str]:
    args = [
        "tshark",
        "-n",
        "-r",
        str(path),
        "-T",
        "fields",
        "-E",
        "occurrence=a",
        "-E",
        "aggregator=\n",
        "-e",
        field,
    ]
    if display_filter:
        args += ["-Y", display_filter]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if line]


def tshark_conversations(path: Path, proto: str) -> set[frozenset[str]]:
    out = subprocess.run(
        ["tshark", "-n", "-r", str(path), "-q", "-z", f"conv,{proto}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {
        frozenset((parts[0], parts[2]))
        for line in out.splitlines()
        if len(parts := line.split()) > 3 and parts[1] == "<->"
    }


def ours_conversations(report: dict, proto: str) -> set[frozenset[str]]:
    return {
        frozenset((f"{c['a']}:{c['a_port']}", f"{c['b']}:{c['b_port']}"))
        for c in report["conversations"]
        if c["protocol"] == proto
    }


def test_both_dfrws_captures_read_whole_without_errors(ip_report: dict, coap_report: dict) -> None:
    assert ip_report["stats"]["packets"] == 6508 and coap_report["stats"]["packets"] == 4830
    assert ip_report["errors"] == [] and coap_report["errors"] == []
    assert ip_report["stats"]["undecoded_packets"] == 0


@pytest.mark.parametrize("proto", ["tcp", "udp"])
def test_conversations_agree_with_tshark(captures: Path, ip_report: dict, proto: str) -> None:
    theirs = tshark_conversations(captures / IP_PCAP, proto)
    assert theirs and ours_conversations(ip_report, proto) == theirs


def test_dns_names_agree_with_tshark(captures: Path, ip_report: dict) -> None:
    ours = {q["name"] for d in ip_report["dns"] for q in d["questions"]}
    theirs = tshark_values(captures / IP_PCAP, "dns.qry.name", "dns && !icmp")
    assert theirs and ours == theirs
    assert "rkhunter.sourceforge.net" in ip_report["indicators"]["domain"]


def test_http_hosts_and_uris_agree_with_tshark(captures: Path, ip_report: dict) -> None:
    requests = [r for r in ip_report["http"] if r["kind"] == "request"]
    over_tcp = "http && tcp"  # tshark also shows SSDP (HTTP over UDP) as http
    assert {r["host"] for r in requests} == tshark_values(captures / IP_PCAP, "http.host", over_tcp)
    assert {r["uri"] for r in requests} == tshark_values(captures / IP_PCAP, "http.request.uri", over_tcp)
    assert {r["user_agent"] for r in requests} == tshark_values(
        captures / IP_PCAP, "http.user_agent", over_tcp
    )
    assert {r["status"] for r in ip_report["http"] if r["kind"] == "response"} == {
        int(v) for v in tshark_values(captures / IP_PCAP, "http.response.code", over_tcp)
    }


def test_tls_snis_agree_with_tshark(captures: Path, ip_report: dict) -> None:
    theirs = tshark_values(captures / IP_PCAP, "tls.handshake.extensions_server_name")
    assert {t["sni"] for t in ip_report["tls"]} == theirs


def test_coap_messages_and_paths_agree_with_tshark(captures: Path, coap_report: dict) -> None:
    path = captures / COAP_PCAP
    assert len(coap_report["coap"]) == len(tshark_values(path, "frame.number", "coap"))
    ours = {c["uri_path"] for c in coap_report["coap"] if c["uri_path"]}
    assert ours == tshark_values(path, "coap.opt.uri_path_recon")
    mids = {str(c["message_id"]) for c in coap_report["coap"]}
    assert mids == tshark_values(path, "coap.mid")


def test_coap_names_lwm2m_objects_and_observe(coap_report: dict) -> None:
    by_path = {c["uri_path"]: c for c in coap_report["coap"] if c["uri_path"]}
    assert by_path["/3312/1/5850"]["lwm2m_object"] == "Power Control"
    assert by_path["/3201/0/5550"]["lwm2m_object"] == "Digital Output"
    notifications = [c for c in coap_report["coap"] if c["observe"] is not None]
    assert notifications and all(c["code"] == "2.05" for c in notifications)


def test_event_stream_events_are_read_mid_stream(ip_report: dict) -> None:
    events = ip_report["sse"]
    assert len(events) > 100
    assert {e["event"] for e in events} == {"NOTIFICATION"}
    assert {json.loads(e["data"])["ep"] for e in events} == {"DollHouse_Secu5", "DollHouse_Reader5"}
    for stream in {e["stream"] for e in events}:
        times = [e["ts"] for e in events if e["stream"] == stream]
        assert times == sorted(times)


def test_event_stream_count_matches_the_payload_tshark_sees(captures: Path, ip_report: dict) -> None:
    payloads = tshark_lines(
        captures / IP_PCAP, "tcp.payload", "tcp.srcport == 8080 && !tcp.analysis.retransmission"
    )
    text = b"".join(bytes.fromhex(p.replace(":", "")) for p in payloads)
    assert text.count(b"event: NOTIFICATION") == len(ip_report["sse"])


def test_http_pairs_requests_with_responses_and_carves_bodies(ip_report: dict) -> None:
    puts = [r for r in ip_report["http"] if r["kind"] == "request" and r["method"] == "PUT"]
    assert puts and all(r["response_status"] == 200 for r in puts)
    assert all(r["host"] == "203.253.250.32:8080" for r in puts)
    names = {c["name"] for c in ip_report["carved"]}
    assert all(r["carved"] in names for r in puts)
    assert any(n.endswith(".json") for n in names) and any(n.endswith(".txt") for n in names)


def test_host_table_has_vendors_by_mac(ip_report: dict) -> None:
    hosts = {h["mac"]: h for h in ip_report["hosts"]}
    assert hosts["00:24:54:30:84:79"]["vendor"].startswith("Samsung")
    assert "203.253.250.32" in hosts["00:24:54:30:84:79"]["ips"]
    assert "203.253.250.34" in hosts["90:9f:33:d5:32:07"]["ips"]


def test_timeline_merges_protocols_in_time_order(ip_report: dict) -> None:
    timeline = ip_report["timeline"]
    assert {"coap", "dns", "http", "sse", "ssdp"} <= {e["protocol"] for e in timeline}
    assert [e["ts"] for e in timeline] == sorted(e["ts"] for e in timeline)


def test_service_is_discovered_and_fills_data_children_and_tags(captures: Path) -> None:
    svc = service("NetworkCapture")
    assert isinstance(svc, NetworkCapture) and svc.accepts_type("network/tcpdump")
    assert svc.accepts_type("network/pcapng") and not svc.accepts_type("archive/zip")
    path = captures / IP_PCAP
    result = svc.execute(FileRequest(path, "0" * 64, path.name, path.stat().st_size, "network/tcpdump"))
    assert set(result.data) >= {
        "hosts",
        "conversations",
        "dns",
        "http",
        "tls",
        "coap",
        "mqtt",
        "sse",
        "timeline",
        "stats",
        "errors",
    }
    assert result.extracted and all(e.name.startswith("http_") for e in result.extracted)
    tags = {(t.type, t.value) for t in result.tags()}
    assert ("network.dynamic.domain", "rkhunter.sourceforge.net") in tags
    assert ("network.dynamic.ip", "203.253.250.32") in tags
    assert ("network.dynamic.uri", "http://rkhunter.sourceforge.net/1.3/mirrors.dat") in tags
    assert result.heuristic_ids() == []
