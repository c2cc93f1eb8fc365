"""OnHubReport: the DFRWS 2017 router report read for real, and crafted reports good and hostile."""

from __future__ import annotations

import gzip
import json
import random
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from assay.iot.onhub import OnHubLimits, analyse, looks_like_onhub
from assay.iot.onhub import textproto as tp
from assay.services import registry
from assay.services.base import FileRequest, Result
from assay.services.identify import classify
from assay.services.onhub_report import OnHubReport
from tests.helpers.paths import CASE_DATA

REPORT = CASE_DATA / "004-Onhub-diagnostic-report"


# --- a tiny protobuf wire reader and writer, independent of the code under test -------------


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[pos]
        value |= (byte & 0x7F) << shift
        pos += 1
        if byte < 0x80:
            return value, pos
        shift += 7


def wire_fields(data: bytes) -> list[tuple[int, int | bytes]]:
    out: list[tuple[int, int | bytes]] = []
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        if key & 7 == 0:
            value, pos = _varint(data, pos)
            out.append((key >> 3, value))
        else:
            assert key & 7 == 2
            size, pos = _varint(data, pos)
            out.append((key >> 3, data[pos : pos + size]))
            pos += size
    return out


def enc_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def vi(number: int, value: int) -> bytes:
    return enc_varint(number << 3) + enc_varint(value)


def ld(number: int, payload: bytes | str) -> bytes:
    raw = payload.encode() if isinstance(payload, str) else payload
    return enc_varint(number << 3 | 2) + enc_varint(len(raw)) + raw


def file_entry(path: str, content: bytes) -> bytes:
    return ld(2, ld(1, path) + ld(2, content))


def command(cmd: str, output: str, status: int = 0) -> bytes:
    return ld(9, ld(1, cmd) + ld(2, output) + vi(3, status))


REPORT_TIME = 1_600_000_000
_STA = "INFO hostapd[10]: wlan-5000mhz: STA aa:bb:cc:00:00:01 IEEE 802.11:"
SYSLOG = (
    f"2020-09-13T11:00:00.000001+00:00 {_STA} associated\n"
    f"2020-09-13T11:00:01.000001+00:00 {_STA} Connected\n"
    "2020-09-13T11:00:02.000001+00:00 INFO dnsmasq-dhcp[20]: "
    "DHCPACK(br-lan) 192.168.86.40 aa:bb:cc:00:00:01 phone\n"
    f"2020-09-13T11:05:00.000001+00:00 {_STA} disassociated (reason=8)\n"
    "2020-09-13T11:05:00.000001+00:00 INFO kernel: unrelated line\n"
)
CONFIG = (
    'local_network { ip_address: "192.168.86.1" netmask: "255.255.255.0" }\n'
    'wireless_network { ssid: "Lab" primary_psk: "hunter2-clear-key" primary_psk_enabled: true\n'
    "  channel_2400mhz { number: 11 } }\n"
    'guest_network { enabled: true ssid: "Lab-guest" psk: "guest-clear-key" }\n'
    'mesh_network { ssid: "MESH1" psk: "****" }\n'
    "port_forwarding { external_port: 8443 internal_port: 443 }\n"
    "dhcp { pool_begin: 20 pool_end: 250 }\n"
)
WAN = (
    'wan_ipv4_address: "203.0.113.7"\nwan_ipv4_gateway: "203.0.113.1"\nupstream_name_server: "9.9.9.9"\n'
    'dhcp_lease { mac_address: "aabbcc000001" ip_address: "192.168.86.40" }\n'
    "station_info {\n"
    '  station_id: "ABCD" mdns_name: "tv.local" connected: true ip_addresses: "192.168.86.50"\n'
    '  dhcp_hostname: "livingroom-tv" last_seen_seconds_since_epoch: 1599999000\n'
    '  wireless_interface: "wlan-2400mhz" oui: "f4f5d8" guest: false\n'
    "}\n"
)
STATION_DUMP = (
    "Station aa:bb:cc:00:00:01 (on wlan-5000mhz)\n\tsignal:  \t-40 dBm\n\tconnected time:\t300 seconds\n"
)


def crafted_report(*, extra: bytes = b"", config: str = CONFIG, info: str | None = None) -> bytes:
    info_json = (
        info
        if info is not None
        else json.dumps(
            {
                "_apState": {
                    "_stations": [
                        {
                            "_id": "EF01",
                            "_dhcpHostname": "laptop",
                            "_ipAddresses": ["192.168.86.60"],
                            "_connected": True,
                            "_guest": True,
                            "_wireless": True,
                            "_wirelessBand": "5000_mhz",
                            "_mdnsNames": ["laptop.example.org"],
                            "_lastSeenSecondsSinceEpoch": 0,
                            "_oui": "3c5ab4",
                        }
                    ]
                }
            }
        )
    )
    return b"".join(
        [
            ld(1, "1.2.3 (Official Build) stable-channel gale"),
            file_entry("/var/log/messages", gzip.compress(SYSLOG.encode())),
            file_entry("/etc/plain.txt", b"plain text"),
            ld(3, "Storm.1"),
            ld(4, "GALE X"),
            ld(5, config),
            ld(8, WAN),
            command("/usr/sbin/iw dev wlan-5000mhz station dump", STATION_DUMP),
            command("/sbin/ip neigh", "192.168.86.60 dev br-lan lladdr 3c:5a:b4:00:00:09 REACHABLE\n"),
            ld(10, info_json),
            ld(12, ld(1, "ABCD") + ld(2, "f4f5d8000002")),
            ld(12, ld(1, "ef01") + ld(2, "3c5ab4000009")),
            extra,
            vi(13, REPORT_TIME),
        ]
    )


def run_service(tmp_path: Path, data: bytes, **params: object) -> Result:
    path = tmp_path / "report.bin"
    path.write_bytes(data)
    service = OnHubReport()
    request = FileRequest(
        path=path,
        sha256="0" * 64,
        name=path.name,
        size=len(data),
        file_type="iot/onhub",
        params=service.options(params),
    )
    return service.execute(request)


def station(result: Result, mac: str) -> dict:
    return next(s for s in result.data["stations"] if s["mac"] == mac)


# --- the real DFRWS 2017 report --------------------------------------------------------------


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, Result]:
    data = REPORT.read_bytes()
    return data, run_service(tmp_path_factory.mktemp("onhub"), data)


def test_real_report_time_and_versions_match_the_raw_wire(real: tuple[bytes, Result]) -> None:
    data, result = real
    fields = dict(wire_fields(data))
    report = result.data["report"]
    assert report["version"] == fields[1].decode()
    assert report["storm_version"] == fields[3].decode()
    assert report["hardware"] == fields[4].decode()
    assert report["time_epoch"] == fields[13]
    assert report["time"] == datetime.fromtimestamp(fields[13], UTC).isoformat()
    assert report["time"].startswith("2017-07-17")
    assert report["complete"] and not result.anomalies
    assert looks_like_onhub(data)
    json.dumps(result.data)


def test_real_embedded_files_become_decompressed_children(real: tuple[bytes, Result]) -> None:
    data, result = real
    entries = [dict(wire_fields(v)) for n, v in wire_fields(data) if n == 2]
    expected = []
    for entry in entries:
        content = entry.get(2, b"")
        expected.append(gzip.decompress(content) if content[:2] == b"\x1f\x8b" else content)
    children = {e.name: e.data for e in result.extracted}
    files = [c for name, c in children.items() if not name.startswith("cmd_")]
    assert sorted(files) == sorted(c for c in expected if c)
    assert any(b"hostapd" in c for c in files)
    assert len(children) == len(result.extracted)  # unique names
    commands = [v for n, v in wire_fields(data) if n == 9]
    assert len([n for n in children if n.startswith("cmd_")]) == sum(
        1 for c in commands if dict(wire_fields(c))[2]
    )


def test_real_timelines_count_the_syslog_lines(real: tuple[bytes, Result]) -> None:
    _, result = real
    texts = [e.data.decode("utf-8", "replace") for e in result.extracted if not e.name.startswith("cmd_")]
    hostapd, dhcp = set(), set()
    for text in texts:
        for line in text.splitlines():
            parts = line.split(" ", 3)
            if len(parts) < 4:
                continue
            program, message = parts[2], parts[3]
            if program.startswith("hostapd[") and (" IEEE 802.11: " in message or "AP-STA-" in message):
                hostapd.add((parts[0], message))
            elif program.startswith("dnsmasq") and re.match(r"DHCP[A-Z]+\(", message):
                dhcp.add((parts[0], message))
    association = result.data["association_timeline"]
    assert len(association) == len(hostapd) > 100
    assert len(result.data["dhcp_timeline"]) == len(dhcp) > 10
    times = [e["time"] for e in association]
    assert times == sorted(times)
    connects = sum(
        1 for _, msg in hostapd if msg.endswith("IEEE 802.11: Connected") or " AP-STA-CONNECT " in msg
    )
    assert sum(1 for e in association if e["event"] == "connected") == connects
    acks = [e for e in result.data["dhcp_timeline"] if e["event"] == "ack"]
    assert all(e["mac"] and e["ip"] for e in acks)


def test_real_inventory_follows_the_json_state_and_station_ids(real: tuple[bytes, Result]) -> None:
    data, result = real
    fields = wire_fields(data)
    id_to_mac = {}
    for number, value in fields:
        if number == 12:
            pair = dict(wire_fields(value))
            hexmac = pair[2].decode().strip()
            id_to_mac[pair[1].decode()] = ":".join(hexmac[i : i + 2] for i in range(0, 12, 2))
    info = json.loads(dict(fields)[10])
    for entry in info["_apState"]["_stations"]:
        item = station(result, id_to_mac[entry["_id"]])
        assert set(entry["_ipAddresses"]) <= set(item["ips"])
        assert item["connected"] is entry["_connected"]
        assert item["guest"] is entry["_guest"]
        if entry["_dhcpHostname"]:
            assert item["hostname"] == entry["_dhcpHostname"]
        assert set(entry["_mdnsNames"]) <= set(item["names"])
        assert (item["connection"] == "wired") is (not entry["_wireless"])
        for key in ("mac", "ips", "hostname", "vendor", "names"):
            assert key in item


def test_real_station_dump_gives_join_times(real: tuple[bytes, Result]) -> None:
    data, result = real
    fields = wire_fields(data)
    report_time = dict(fields)[13]
    seen = 0
    for number, value in fields:
        if number != 9:
            continue
        cmd = dict(wire_fields(value))
        for mac, seconds in re.findall(
            r"Station (\w{12})\s.*?connected time:\s*(\d+)", cmd[2].decode(), re.S
        ):
            item = station(result, ":".join(mac[i : i + 2] for i in range(0, 12, 2)))
            assert item["connected_seconds"] == int(seconds)
            assert item["joined"] == datetime.fromtimestamp(report_time - int(seconds), UTC).isoformat()
            seen += 1
    assert seen >= 3


def test_real_configuration_leases_arp_and_web_log(real: tuple[bytes, Result]) -> None:
    data, result = real
    fields = dict(wire_fields(data))
    config_text, wan_text = fields[5].decode(), fields[8].decode()
    network = result.data["network"]
    assert network["wireless"]["ssid"] == re.search(r'ssid: "([^"]*)"', config_text).group(1)
    assert network["guest"]["ssid"] == re.search(
        r'guest_network \{\s+enabled: \w+\s+ssid: "([^"]*)"', config_text
    ).group(1)
    assert network["wan"]["ip_address"] == re.search(r'wan_ipv4_address: "([^"]*)"', wan_text).group(1)
    assert len(result.data["dhcp_leases"]) == wan_text.count("dhcp_lease {")
    arp_children = [e.data for e in result.extracted if e.name.endswith("net_arp")]
    assert len(result.data["arp"]) == len(arp_children[0].decode().strip().splitlines())
    web = b"".join(e.data for e in result.extracted if "webservd" in e.name).decode()
    assert len(result.data["web_access_log"]) == len(web.strip().splitlines())
    assert {t.value for t in result.tags() if t.type == "network.static.ip"} >= {network["wan"]["ip_address"]}
    kek = json.loads(fields[10])["_apGroup"]["_currentMeshKey"]["_bundleKek"]
    assert kek not in json.dumps([result.data, [s.as_dict() for s in result.sections]])


def test_real_identification_agrees() -> None:
    head = REPORT.read_bytes()[:4096]
    assert classify("application/octet-stream", "data", head) == "iot/onhub"
    assert registry.service("OnHubReport").accepts_type("iot/onhub")


# --- crafted reports --------------------------------------------------------------------------


def test_crafted_report_full_picture(tmp_path: Path) -> None:
    result = run_service(tmp_path, crafted_report())
    data = result.data
    assert data["report"]["time"] == "2020-09-13T12:26:40+00:00"
    assert data["network"]["wireless"]["ssid"] == "Lab"
    assert data["network"]["wireless"]["channel_2400mhz"]["number"] == 11
    assert data["network"]["port_forwards"] == [{"external_port": 8443, "internal_port": 443}]
    phone = station(result, "aa:bb:cc:00:00:01")
    assert phone["connected_seconds"] == 300
    assert phone["joined"] == datetime.fromtimestamp(REPORT_TIME - 300, UTC).isoformat()
    assert phone["hostname"] == "phone" and "192.168.86.40" in phone["ips"]
    assert [e["event"] for e in data["association_timeline"]] == ["associated", "connected", "disassociated"]
    assert data["dhcp_timeline"][0]["hostname"] == "phone"
    laptop = station(result, "3c:5a:b4:00:00:09")
    assert laptop["guest"] is True and laptop["connection"] == "5GHz" and "arp" in laptop["sources"]
    children = {e.name: e.data for e in result.extracted}
    assert children["var_log_messages"] == SYSLOG.encode()
    assert children["etc_plain.txt"] == b"plain text"
    assert any(name.startswith("cmd_") for name in children)
    domains = {t.value for t in result.tags() if t.type == "network.static.domain"}
    assert domains == {"laptop.example.org"}


def test_text_format_station_info_is_merged(tmp_path: Path) -> None:
    result = run_service(tmp_path, crafted_report())
    tv = station(result, "f4:f5:d8:00:00:02")
    assert tv["hostname"] == "livingroom-tv"
    assert tv["names"] == ["tv.local"] and tv["ips"] == ["192.168.86.50"]
    assert tv["connection"] == "2.4GHz" and tv["connected"] is True and tv["guest"] is False
    assert tv["last_seen"] == datetime.fromtimestamp(1599999000, UTC).isoformat()


def test_info_blob_in_text_format_is_read(tmp_path: Path) -> None:
    info = (
        'station_info { mac_address: "00:11:22:33:44:55" dhcp_hostname: "printer" ip_addresses: "10.0.0.9" }'
    )
    result = run_service(tmp_path, crafted_report(info=info))
    assert station(result, "00:11:22:33:44:55")["hostname"] == "printer"


def test_keys_never_leave_masked_and_clear_ones_are_flagged(tmp_path: Path) -> None:
    info = json.dumps(
        {
            "_apConfiguration": {"_groupSetupNetworkConfiguration": {"_psk": "json-clear-key"}},
            "_apGroup": {"_currentMeshKey": {"_bundleKek": "kek-secret"}},
            "_apState": {"_setup": {"_encodedSsidPsk": "ABCDEF0123"}},
        }
    )
    result = run_service(tmp_path, crafted_report(info=info))
    everything = json.dumps([result.data, [s.as_dict() for s in result.sections]])
    for secret in ("hunter2-clear-key", "guest-clear-key", "json-clear-key", "kek-secret", "ABCDEF0123"):
        assert secret not in everything
    assert "onhub.psk_cleartext" in result.heuristic_ids()
    clear = next(s for s in result.walk() if s.heuristic == "onhub.psk_cleartext").body
    assert any("primary_psk" in path for path in clear) and any("_psk" in path for path in clear)
    masked_only = run_service(tmp_path, crafted_report(config='wireless_network { ssid: "x" psk: "****" }'))
    assert "onhub.psk_cleartext" not in masked_only.heuristic_ids()


def test_unknown_fields_are_tolerated_and_reported(tmp_path: Path) -> None:
    extra = ld(99, b"future blob") + vi(77, 5) + ld(6, "anything")
    result = run_service(tmp_path, crafted_report(extra=extra))
    assert {u["field"] for u in result.data["unknown_fields"]} == {99, 77, 6}
    assert "unknown_fields" in result.anomalies
    assert result.data["network"]["wireless"]["ssid"] == "Lab"


def test_station_info_in_an_unknown_field_is_found(tmp_path: Path) -> None:
    extra = ld(20, 'station_info { station_id: "77" dhcp_hostname: "cam" }')
    extra += ld(12, ld(1, "77") + ld(2, "001122aabbcc"))
    result = run_service(tmp_path, crafted_report(extra=extra))
    assert station(result, "00:11:22:aa:bb:cc")["hostname"] == "cam"


def test_psk_mismatches_raise_the_heuristic(tmp_path: Path) -> None:
    lines = "".join(
        f"2020-09-13T11:0{i}:00+00:00 INFO hostapd[1]: wlan-2400mhz: STA 11:22:33:44:55:66 "
        "IEEE 802.11: AP-STA-POSSIBLE-PSK-MISMATCH\n"
        for i in range(4)
    )
    data = ld(1, "1 (Official Build)") + file_entry("/var/log/messages", lines.encode()) + vi(13, REPORT_TIME)
    result = run_service(tmp_path, data)
    assert "onhub.psk_mismatch" in result.heuristic_ids()
    assert len(result.data["association_timeline"]) == 4


# --- hostile input --------------------------------------------------------------------------


def test_every_truncation_gives_a_partial_result(tmp_path: Path) -> None:
    data = crafted_report()
    step = max(1, len(data) // 150)
    for cut in range(1, len(data), step):
        analysis = analyse(data[:cut], OnHubLimits())
        # a cut between two fields is a valid, shorter report: only the missing time tells
        assert {"report_truncated_or_corrupt", "report_time_missing"} & set(analysis.anomalies)
        json.dumps(analysis.data)
    late = analyse(data[:-3], OnHubLimits())
    assert late.data["network"]["wireless"]["ssid"] == "Lab"
    assert late.data["report"]["complete"] is False


def test_random_bytes_and_wrong_wire_types(tmp_path: Path) -> None:
    rng = random.Random(1234)
    for size in (0, 1, 7, 100, 5000):
        for _ in range(5):
            blob = bytes(rng.getrandbits(8) for _ in range(size))
            result = run_service(tmp_path, blob)
            json.dumps(result.data)
            assert not looks_like_onhub(blob) or blob[:1] == b"\x0a"
    wrong = vi(1, 5) + vi(2, 7) + ld(13, "not a number") + ld(12, b"\xff\xff") + vi(5, 1)
    result = run_service(tmp_path, wrong)
    assert result.data["report"]["version"] is None
    assert result.data["report"]["time"] is None
    assert result.data["stations"] == []


def test_gzip_bomb_is_bounded(tmp_path: Path) -> None:
    bomb = gzip.compress(b"\0" * (8 * 1024 * 1024), compresslevel=9)
    data = ld(1, "1 (Official Build)") + file_entry("/tmp/bomb", bomb) + vi(13, REPORT_TIME)
    result = run_service(tmp_path, data, max_file_size=1024 * 1024)
    assert "decompression_limit_reached" in result.anomalies
    assert [len(e.data) for e in result.extracted] == [1024 * 1024]
    broken = ld(1, "1 (Official Build)") + file_entry("/tmp/broken", bomb[:200]) + vi(13, REPORT_TIME)
    assert "gzip_corrupt" in run_service(tmp_path, broken).anomalies


def test_deeply_nested_garbage_is_survived(tmp_path: Path) -> None:
    deep_text = "a { " * 50_000 + "}" * 10
    deep_json = "[" * 100_000
    deep_group = b"\x0b" * 200_000  # start-group tags, nested
    data = ld(1, "1 (Official Build)") + ld(5, deep_text) + ld(10, deep_json) + ld(2, deep_group) + vi(13, 1)
    result = run_service(tmp_path, data)
    assert "network_config:textproto_too_deep" in result.anomalies
    assert "info_json_invalid" in result.anomalies or "report_truncated_or_corrupt" in result.anomalies
    json.dumps(result.data)


def test_file_count_limit(tmp_path: Path) -> None:
    files = b"".join(file_entry(f"/f/{i}", b"x") for i in range(10))
    result = run_service(tmp_path, ld(1, "1 (Official Build)") + files, max_extracted_files=3)
    assert len(result.extracted) == 3 and "file_limit_reached" in result.anomalies


def test_looks_like_onhub_tells_reports_from_other_bytes() -> None:
    assert looks_like_onhub(crafted_report())
    assert not looks_like_onhub(b"\x0a\x05hello")  # a version alone is not a report
    assert not looks_like_onhub(b"\nplain text file\nwith lines\n")
    assert not looks_like_onhub(b"\xd4\xc3\xb2\xa1" + bytes(20))
    assert not looks_like_onhub(b"")


def test_textproto_reader_tolerates_junk() -> None:
    parsed = tp.parse('a: "x\\101\\x42" "y" b { c: [1, 2, 0x10] d < e: -1.5 > } }} @@ f: enum_value')
    assert tp.first(parsed.message, "a") == "xABy"
    inner = tp.first(parsed.message, "b")
    assert tp.many(inner, "c") == [1, 2, 16]
    assert tp.first(tp.first(inner, "d"), "e") == -1.5
    assert tp.first(parsed.message, "f") == "enum_value"
    assert "textproto_unparsed_tokens" in parsed.anomalies
