"""NetworkCapture on captures the tests build: every link type, both formats, each protocol, hostile input."""

from __future__ import annotations

import hashlib
import random
import subprocess
from pathlib import Path

import pytest

from assay.iot.capture import CaptureAnalysis, analyse_capture
from assay.services.base import FileRequest
from assay.services.network_capture import NetworkCapture
from tests.helpers import captures

A_MAC, B_MAC = "00:24:54:30:84:79", "90:9f:33:d5:32:07"
A, B = "192.0.2.10", "192.0.2.20"
A6, B6 = "2001:db8::10", "2001:db8::20"
T0 = 1_500_282_058.123456789


def eth(src: str, dst: str, proto: int, segment: bytes, src_mac: str = A_MAC, dst_mac: str = B_MAC,
        vlan: int | None = None) -> bytes:
    return captures.ethernet(src_mac, dst_mac, captures.ip_packet(src, dst, proto, segment), vlan)


def dns_frame(name: str, src: str = A, dst: str = B) -> bytes:
    return eth(src, dst, 17, captures.udp(40000, 53, captures.dns_query(name)))


def write(path: Path, frames: list[bytes]) -> Path:
    return captures.write_pcap(path, [(T0 + i, f) for i, f in enumerate(frames)])


def service_result(path: Path) -> tuple:
    svc = NetworkCapture()
    result = svc.execute(FileRequest(path, "0" * 64, path.name, path.stat().st_size, "network/tcpdump"))
    return svc, result


@pytest.mark.parametrize("big_endian", [False, True])
@pytest.mark.parametrize("nanoseconds", [False, True])
def test_pcap_byte_orders_and_resolutions(tmp_path: Path, big_endian: bool, nanoseconds: bool) -> None:
    packets = [(T0 + i, dns_frame(f"host{i}.example.org")) for i in range(3)]
    path = captures.write_pcap(tmp_path / "x.pcap", packets, big_endian=big_endian, nanoseconds=nanoseconds)
    report = analyse_capture(path)
    names = [q["name"] for d in report["dns"] for q in d["questions"]]
    assert names == [f"host{i}.example.org" for i in range(3)]
    precision = 1e-6 if nanoseconds else 1e-5
    assert all(abs(d["ts"] - (T0 + i)) < precision for i, d in enumerate(report["dns"]))
    assert report["errors"] == []


def test_pcapng_two_interfaces_with_own_link_types_resolutions_and_comments(tmp_path: Path) -> None:
    raw_packet = captures.ip_packet(A6, B6, 17, captures.udp(40001, 53, captures.dns_query("v6.example.org")))
    path = captures.write_pcapng(tmp_path / "x.pcapng", [(1, 6), (229, 9)], [
        (0, T0, dns_frame("eth.example.org")),
        (1, T0 + 1.000000001, raw_packet),
    ], comment="taken at the scene")
    report = analyse_capture(path)
    assert report["stats"]["format"] == "pcapng" and report["stats"]["interfaces"] == 2
    assert set(report["stats"]["link_types"]) == {"ethernet", "ipv6"}
    assert "taken at the scene" in report["stats"]["comments"]
    names = {q["name"]: d for d in report["dns"] for q in d["questions"]}
    assert names["v6.example.org"]["src"] == A6
    assert abs(names["v6.example.org"]["ts"] - (T0 + 1.000000001)) < 1e-6
    assert abs(names["eth.example.org"]["ts"] - T0) < 2e-6


@pytest.mark.parametrize(("linktype", "frame_of"), [
    (113, lambda p: captures.sll(A_MAC, p)),
    (276, lambda p: captures.sll2(A_MAC, p)),
    (101, lambda p: p),
    (12, lambda p: p),
    (0, lambda p: captures.null_loopback(p)),
    (0, lambda p: captures.null_loopback(p, big_endian=True)),
    (108, lambda p: captures.null_loopback(p, big_endian=True)),
])
@pytest.mark.parametrize(("src", "dst"), [(A, B), (A6, B6)])
def test_link_types_carry_ipv4_and_ipv6(tmp_path: Path, linktype: int, frame_of, src: str, dst: str) -> None:
    packet = captures.ip_packet(src, dst, 17, captures.udp(40000, 53, captures.dns_query("link.example.org")))
    path = captures.write_pcap(tmp_path / "x.pcap", [(T0, frame_of(packet))], linktype=linktype)
    report = analyse_capture(path)
    assert report["stats"]["undecoded_packets"] == 0
    assert report["dns"][0]["questions"][0]["name"] == "link.example.org"
    assert report["conversations"][0]["a"] == src and report["conversations"][0]["b_port"] == 53
    if linktype in (113, 276):
        assert report["hosts"][0]["mac"] == A_MAC


def test_ipv4_and_ipv6_single_link_variants(tmp_path: Path) -> None:
    frames = [captures.ip_packet(A, B, 17, captures.udp(1, 53, captures.dns_query("four.example"))),
              captures.ip_packet(A6, B6, 17, captures.udp(1, 53, captures.dns_query("six.example")))]
    for linktype, frame in zip((228, 229), frames, strict=True):
        path = captures.write_pcap(tmp_path / f"{linktype}.pcap", [(T0, frame)], linktype=linktype)
        report = analyse_capture(path)
        assert report["dns"] and report["stats"]["undecoded_packets"] == 0


def test_vlan_tagged_frames_are_decoded(tmp_path: Path) -> None:
    frame = eth(A, B, 17, captures.udp(40000, 53, captures.dns_query("vlan.example.org")), vlan=42)
    report = analyse_capture(captures.write_pcap(tmp_path / "x.pcap", [(T0, frame)]))
    assert report["dns"][0]["questions"][0]["name"] == "vlan.example.org"
    assert report["hosts"][0]["mac"] == A_MAC and report["hosts"][0]["vendor"].startswith("Samsung")


def tls_capture(tmp_path: Path, split: bool) -> Path:
    hello = captures.tls_client_hello("iot.example.com", ["h2", "http/1.1"], [4865, 4866, 49195], [29, 23], [0])
    cut = 60 if split else len(hello)
    frames = [eth(A, B, 6, captures.tcp(50000, 443, 1000, hello[:cut]))]
    if split:
        frames.append(eth(A, B, 6, captures.tcp(50000, 443, 1000 + cut, hello[cut:])))
    return captures.write_pcap(tmp_path / "tls.pcap", [(T0 + i, f) for i, f in enumerate(frames)])


@pytest.mark.parametrize("split", [False, True])
def test_tls_client_hello_sni_alpn_and_ja3(tmp_path: Path, split: bool) -> None:
    report = analyse_capture(tls_capture(tmp_path, split))
    (hello,) = report["tls"]
    # version 0x0303; GREASE cipher, extension and group dropped; extension order kept
    expected = "771,4865-4866-49195,0-10-11-16,29-23,0"
    assert hello["ja3"] == expected
    assert hello["ja3_hash"] == hashlib.md5(expected.encode()).hexdigest()
    assert hello["sni"] == "iot.example.com" and hello["alpn"] == ["h2", "http/1.1"]


def test_tls_sni_and_ja3_agree_with_tshark(tmp_path: Path) -> None:
    path = tls_capture(tmp_path, split=False)
    out = subprocess.run(["tshark", "-n", "-r", str(path), "-T", "fields", "-e",
                          "tls.handshake.extensions_server_name", "-e", "tls.handshake.ja3"],
                         capture_output=True, text=True, check=True).stdout.split()
    hello = analyse_capture(path)["tls"][0]
    assert out[0] == hello["sni"]
    if len(out) > 1:  # tshark 4.0 has the JA3 field; keep the check where it exists
        assert out[1] == hello["ja3_hash"]


def test_mqtt_connect_publish_and_cleartext_login_heuristic(tmp_path: Path) -> None:
    connect = captures.mqtt_connect("thermo-01", username="admin", password="hunter2")
    publish = captures.mqtt_publish("home/livingroom/temp", b"21.5", qos=1, packet_id=7)
    frames = [eth(A, B, 6, captures.tcp(50001, 1883, 500, connect + publish[:5])),
              eth(A, B, 6, captures.tcp(50001, 1883, 500 + len(connect) + 5, publish[5:]))]
    path = captures.write_pcap(tmp_path / "mqtt.pcap", [(T0 + i, f) for i, f in enumerate(frames)])
    svc, result = service_result(path)
    first, second = result.data["mqtt"]
    assert (first["type"], first["client_id"], first["username"], first["password_present"]) == (
        "CONNECT", "thermo-01", "admin", True)
    assert (second["type"], second["topic"], second["payload"], second["qos"], second["packet_id"]) == (
        "PUBLISH", "home/livingroom/temp", "21.5", 1, 7)
    assert second["ts"] == pytest.approx(T0 + 1)
    assert result.heuristic_ids() == ["pcap.mqtt_cleartext_login"]
    assert {h.id for h in svc.heuristics} >= set(result.heuristic_ids())
    assert "thermo-01" in result.data["hosts"][0]["mqtt_client_ids"]


def test_dhcp_fingerprint_lands_in_the_host_table(tmp_path: Path) -> None:
    request = captures.dhcp_request(B_MAC, "nest-thermostat", "dhcpcd-6.8.2:Linux", [1, 3, 6, 15, 28, 51])
    frame = captures.ethernet(B_MAC, "ff:ff:ff:ff:ff:ff", captures.ipv4("0.0.0.0", "255.255.255.255", 17,
                                                                  captures.udp(68, 67, request)))
    report = analyse_capture(captures.write_pcap(tmp_path / "dhcp.pcap", [(T0, frame)]))
    host = {h["mac"]: h for h in report["hosts"]}[B_MAC]
    assert host["dhcp_hostname"] == "nest-thermostat"
    assert host["dhcp_vendor_class_id"] == "dhcpcd-6.8.2:Linux"
    assert host["dhcp_parameter_request_list"] == "1,3,6,15,28,51"
    assert report["dhcp"][0]["message_type"] == "REQUEST"


def test_mdns_and_ssdp_names_land_in_the_host_table(tmp_path: Path) -> None:
    frames = [
        eth(A, "224.0.0.251", 17,
            captures.udp(5353, 5353, captures.mdns_announce("kitchen-cam", A, "_hap._tcp.local"))),
        eth(A, "239.255.255.250", 17, captures.udp(1900, 1900, captures.ssdp_notify(
            "http://192.0.2.10:49152/desc.xml", "uuid:cam-1::upnp:rootdevice", "Linux/3.10 UPnP/1.0 Cam/2"))),
        eth(B, "239.255.255.250", 17, captures.udp(50000, 1900, captures.ssdp_search("urn:dial-multiscreen-org:1")),
            src_mac=B_MAC),
    ]
    report = analyse_capture(write(tmp_path / "disc.pcap", frames))
    hosts = {h["mac"]: h for h in report["hosts"]}
    assert "kitchen-cam.local" in hosts[A_MAC]["mdns_names"]
    assert "kitchen-cam._hap._tcp.local" in hosts[A_MAC]["mdns_names"]
    assert hosts[A_MAC]["ssdp_server"] == ["Linux/3.10 UPnP/1.0 Cam/2"]
    assert hosts[B_MAC]["ssdp_user_agent"] == ["synth/1 UPnP/1.1"]
    kinds = [(s["kind"], s.get("nt") or s.get("st")) for s in report["ssdp"]]
    assert kinds == [("NOTIFY", "upnp:rootdevice"), ("M-SEARCH", "urn:dial-multiscreen-org:1")]
    assert report["dns"][0]["mdns"] is True
    assert "kitchen-cam.local" not in report["indicators"]["domain"]


def http_capture(tmp_path: Path, reorder: bool = True) -> Path:
    request = captures.http_request("POST", "cloud.example.net", "/api/v1/login", body=b'{"user":"x"}',
                                 extra="Authorization: Basic YWRtaW46c2VjcmV0\r\n")
    body = b"data: one\n\nid: 7\nevent: alarm\ndata: door\ndata: open\n\n"
    chunked = (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
               + f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n")
    c2s = [(0, request[:30]), (30, request[30:])]
    halves = [eth(A, B, 6, captures.tcp(50002, 80, 7000 + off, part)) for off, part in c2s]
    frames = [
        *(halves[::-1] if reorder else halves),
        halves[0],  # retransmission
        eth(B, A, 6, captures.tcp(80, 50002, 9000, chunked), src_mac=B_MAC, dst_mac=A_MAC),
        eth(A, B, 6, captures.tcp(50003, 8080, 1, captures.http_request("GET", "cam.local:8080", "/snap.png"))),
        eth(B, A, 6, captures.tcp(8080, 50003, 1, captures.http_response(b"\x89PNG" + b"\0" * 64, "image/png")),
            src_mac=B_MAC, dst_mac=A_MAC),
    ]
    return captures.write_pcap(tmp_path / "http.pcap", [(T0 + i, f) for i, f in enumerate(frames)])


def test_http_reassembly_event_stream_carving_and_basic_auth(tmp_path: Path) -> None:
    _svc, result = service_result(http_capture(tmp_path))
    data = result.data
    login = next(r for r in data["http"] if r.get("uri") == "/api/v1/login")
    assert (login["method"], login["host"], login["basic_user"], login["response_status"]) == (
        "POST", "cloud.example.net", "admin", 200)
    assert [(e.get("id"), e.get("event"), e["data"]) for e in data["sse"]] == [
        (None, None, "one"), ("7", "alarm", "door\nopen")]
    names = {e.name: e for e in result.extracted}
    assert "http_0_0.json" in names and names["http_0_0.json"].data == b'{"user":"x"}'
    png = next(e for n, e in names.items() if n.endswith(".png"))
    assert png.data.startswith(b"\x89PNG") and png.name.startswith("http_1_")
    assert result.heuristic_ids() == ["pcap.http_basic_auth"]
    tags = {(t.type, t.value) for t in result.tags()}
    assert ("network.dynamic.uri", "http://cloud.example.net/api/v1/login") in tags
    assert ("network.dynamic.domain", "cloud.example.net") in tags


def test_generated_http_agrees_with_tshark(tmp_path: Path) -> None:
    path = http_capture(tmp_path, reorder=False)  # tshark does not reorder a stream it saw no SYN for
    out = subprocess.run(["tshark", "-n", "-r", str(path),
                          "-Y", "http.request", "-T", "fields",
                          "-e", "http.host", "-e", "http.request.uri"], capture_output=True, text=True,
                         check=True).stdout
    theirs = {tuple(line.split("\t")) for line in out.splitlines() if line}
    ours = {(r["host"], r["uri"]) for r in analyse_capture(path)["http"] if r["kind"] == "request"}
    assert ours == theirs


def test_coap_lwm2m_paths_observe_and_registration(tmp_path: Path) -> None:
    frames = [
        eth(A, B, 17, captures.udp(5683, 5683, captures.coap_message(0, 2, 1, b"\x01", "/rd", None, b"</3/0>",
                                                              query="ep=node-7&lt=300"))),
        eth(B, A, 17, captures.udp(5683, 5683, captures.coap_message(0, 1, 2, b"\xab\xcd", "/3/0/1", 0)),
            src_mac=B_MAC, dst_mac=A_MAC),
        eth(A, B, 17, captures.udp(5683, 5683, captures.coap_message(2, 69, 2, b"\xab\xcd", "", 5, b"Acme"))),
    ]
    report = analyse_capture(write(tmp_path / "coap.pcap", frames))
    register, observe, notify = report["coap"]
    assert (register["code"], register["uri_path"]) == ("POST", "/rd")
    assert register["uri_query"] == "ep=node-7&lt=300"
    assert (observe["code"], observe["uri_path"], observe["observe"], observe["lwm2m_object"]) == (
        "GET", "/3/0/1", 0, "Device")
    assert (notify["type"], notify["code"], notify["token"]) == ("ACK", "2.05", "abcd")
    assert notify["payload"] == "Acme"
    assert "node-7" in {h["mac"]: h for h in report["hosts"]}[A_MAC]["lwm2m_endpoints"]


def test_limits_are_parameters_and_flag_anomalies(tmp_path: Path) -> None:
    packets = [(T0 + i, dns_frame(f"n{i}.example.org")) for i in range(20)]
    path = captures.write_pcap(tmp_path / "x.pcap", packets)
    report = analyse_capture(path, max_packets=5)
    assert report["stats"]["packets"] == 5 and "packet_limit_reached" in report["anomalies"]
    report = analyse_capture(path, max_records=3)
    assert len(report["dns"]) == 3 and report["stats"]["records"]["dns"] == 20
    assert "table_limit_reached:dns" in report["anomalies"]
    report = analyse_capture(path, max_bytes=24 + 5 * len(packets[0][1]) + 80)
    assert report["stats"]["packets"] == 5 and "byte_limit_reached" in report["anomalies"]
    analysis = CaptureAnalysis(http_capture(tmp_path), {"max_carve_count": 1, "max_carve_size": 4})
    analysis.run()
    assert len(analysis.report.carved) == 1 and len(analysis.report.carved[0][2]) == 4
    assert {"carve_count_limit_reached", "carve_size_limit_reached"} <= set(analysis.report.anomalies)


def test_truncated_capture_keeps_what_was_read(tmp_path: Path) -> None:
    packets = [(T0 + i, dns_frame(f"t{i}.example.org")) for i in range(10)]
    whole = captures.write_pcap(tmp_path / "whole.pcap", packets).read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(whole[: len(whole) - 20])
    _svc, result = service_result(cut)
    assert len(result.data["dns"]) == 9
    assert result.data["errors"] and "truncated_or_corrupt_capture" in result.anomalies
    blocks = [(0, T0 + i, f) for i, (_, f) in enumerate(packets)]
    ng = captures.write_pcapng(tmp_path / "x.pcapng", [(1, 6)], blocks)
    ng.write_bytes(ng.read_bytes()[:-30])
    report = analyse_capture(ng)
    assert len(report["dns"]) == 9 and report["errors"]


@pytest.mark.parametrize("seed", range(3))
def test_random_bytes_and_corrupted_captures_never_raise(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    noise = tmp_path / "noise.bin"
    noise.write_bytes(rng.randbytes(4096))
    assert analyse_capture(noise)["errors"]
    for header in (b"\xd4\xc3\xb2\xa1\x02\x00\x04\x00" + b"\0" * 8 + b"\xff\xff\0\0\x01\0\0\0",
                   b"\x0a\x0d\x0d\x0a\x1c\x00\x00\x00\x4d\x3c\x2b\x1a"):
        noise.write_bytes(header + rng.randbytes(2048))
        analyse_capture(noise)
    template = bytearray(http_capture(tmp_path).read_bytes() + tls_capture(tmp_path, True).read_bytes()[24:])
    for _ in range(60):
        mutated = bytearray(template)
        for _ in range(rng.randint(1, 12)):
            mutated[rng.randrange(24, len(mutated))] = rng.randrange(256)
        noise.write_bytes(bytes(mutated))
        report = analyse_capture(noise)
        assert not any(e.startswith("analysis stopped") for e in report["errors"])
    empty = tmp_path / "empty.pcap"
    empty.write_bytes(b"")
    assert analyse_capture(empty)["errors"] == ["empty file"]


def test_dns_over_tcp_and_answers_with_compressed_names(tmp_path: Path) -> None:
    query = captures.dns_query("tcp.example.org", ident=9)
    answer = captures.dns_answer("tcp.example.org", "198.51.100.7", ident=9)
    framed_q = len(query).to_bytes(2, "big") + query
    framed_a = len(answer).to_bytes(2, "big") + answer
    frames = [eth(A, B, 6, captures.tcp(50010, 53, 100, framed_q)),
              eth(B, A, 6, captures.tcp(53, 50010, 900, framed_a), src_mac=B_MAC, dst_mac=A_MAC),
              eth(B, A, 17, captures.udp(53, 40000, answer), src_mac=B_MAC, dst_mac=A_MAC)]
    report = analyse_capture(write(tmp_path / "dns.pcap", frames))
    tcp_query, tcp_answer, udp_answer = sorted(report["dns"], key=lambda d: d["ts"])
    assert tcp_query["questions"] == [{"name": "tcp.example.org", "type": "A"}] and not tcp_query["response"]
    for message in (tcp_answer, udp_answer):
        assert message["response"] and message["answers"][0]["data"] == "198.51.100.7"
        assert message["answers"][0]["name"] == "tcp.example.org"


def test_ip_fragments_count_in_conversations_without_misreading_ports(tmp_path: Path) -> None:
    packet = bytearray(captures.ipv4(A, B, 17, captures.udp(40000, 53, captures.dns_query("frag.example.org"))))
    packet[6:8] = (0x0010).to_bytes(2, "big")  # fragment offset 16 * 8 bytes: not the first fragment
    frame = captures.ethernet(A_MAC, B_MAC, bytes(packet))
    report = analyse_capture(write(tmp_path / "frag.pcap", [frame]))
    assert report["dns"] == [] and report["conversations"][0]["a_port"] == 0
