"""Benchmark: NetworkCapture's engine against tshark field extraction and scapy dissection.

Builds one pcap of ``--packets`` packets in a temporary directory by replaying the DFRWS 2017
captures and generated DNS/HTTP/TLS/MQTT/DHCP/SSDP/mDNS/CoAP traffic, then times, in one run:
``analyse_capture`` over the whole file, ``tshark -T fields`` extracting the same fields over
the whole file, and scapy's ``PcapReader`` (full dissection) over the first ``--scapy-packets``
packets, extrapolated to the whole file. Prints JSON.

    .venv/bin/python bench/pcap.py --packets 1000000
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import shutil
import subprocess
import tempfile
import time
import zipfile
from pathlib import Path

from assay.iot.capture import analyse_capture
from assay.iot.capture.reader import CaptureReader
from tests.helpers import captures
from tests.helpers.paths import CASE_DATA

DFRWS_ZIP = CASE_DATA / "IoT_Net_Traffic.zip"
TSHARK_FIELDS = (
    "ip.src", "ip.dst", "tcp.srcport", "tcp.dstport", "udp.srcport", "udp.dstport", "dns.qry.name",
    "http.host", "http.request.uri", "http.user_agent", "tls.handshake.extensions_server_name",
    "coap.opt.uri_path_recon", "mqtt.topic", "dhcp.option.hostname",
)
CLIENT, SERVER = ("02:00:00:00:00:01", "10.0.0.2"), ("00:24:54:30:84:79", "10.0.0.1")


def dfrws_frames(workdir: Path) -> list[bytes]:
    frames: list[bytes] = []
    with zipfile.ZipFile(DFRWS_ZIP) as archive:
        for name in archive.namelist():
            target = workdir / Path(name).name
            target.write_bytes(archive.read(name))
            frames += [bytes(frame) for _ts, _lt, frame, _orig in CaptureReader(target)]
    return frames


def _frame(src: tuple[str, str], dst: tuple[str, str], proto: int, segment: bytes) -> bytes:
    return captures.ethernet(src[0], dst[0], captures.ip_packet(src[1], dst[1], proto, segment))


def generated_frames() -> list[bytes]:
    """One small conversation of each protocol the analyser parses."""
    c, s = CLIENT, SERVER
    hello = captures.tls_client_hello("device.example.net", ["h2"], [4865, 49195], [29, 23], [0])
    request = captures.http_request("GET", "api.example.net", "/v1/status")
    response = captures.http_response(b'{"ok":true}', "application/json")
    connect = captures.mqtt_connect("sensor-1")
    publish = captures.mqtt_publish("home/kitchen/temp", b"21.5")
    return [
        _frame(c, s, 17, captures.udp(40000, 53, captures.dns_query("api.example.net"))),
        _frame(s, c, 17, captures.udp(53, 40000, captures.dns_answer("api.example.net", "10.0.0.1"))),
        _frame(c, s, 6, captures.tcp(40001, 80, 1000, request)),
        _frame(s, c, 6, captures.tcp(80, 40001, 5000, response)),
        _frame(c, s, 6, captures.tcp(40002, 443, 2000, hello)),
        _frame(c, s, 6, captures.tcp(40003, 1883, 3000, connect)),
        _frame(c, s, 6, captures.tcp(40003, 1883, 3000 + len(connect), publish)),
        _frame(c, ("ff:ff:ff:ff:ff:ff", "255.255.255.255"), 17,
               captures.udp(68, 67, captures.dhcp_request(c[0], "thermostat", "udhcp 1.30", [1, 3, 6, 15]))),
        _frame(c, ("01:00:5e:7f:ff:fa", "239.255.255.250"), 17,
               captures.udp(1900, 1900, captures.ssdp_notify("http://10.0.0.2/d.xml", "uuid:1", "Linux UPnP/1.0"))),
        _frame(c, ("01:00:5e:00:00:fb", "224.0.0.251"), 17,
               captures.udp(5353, 5353, captures.mdns_announce("cam", c[1], "_http._tcp.local"))),
        _frame(c, s, 17, captures.udp(5683, 5683, captures.coap_message(0, 2, 7, b"\x01", "/3/0/1", 0, b"x"))),
    ]


def build_capture(path: Path, count: int, workdir: Path) -> int:
    templates = dfrws_frames(workdir) + generated_frames() * 50
    frames = zip(range(count), itertools.cycle(templates))
    packets = ((1_500_000_000 + i * 0.001, frame) for i, frame in frames)
    captures.write_pcap(path, packets)
    return len(templates)


def time_analyser(path: Path) -> dict[str, float]:
    start, cpu = time.perf_counter(), time.process_time()
    report = analyse_capture(path, time_limit=3600, max_packets=1 << 40)
    elapsed = time.perf_counter() - start
    return {"seconds": round(elapsed, 3), "cpu_seconds": round(time.process_time() - cpu, 3),
            "packets": report["stats"]["packets"]}


def time_tshark(path: Path) -> dict[str, float] | None:
    if shutil.which("tshark") is None:
        return None
    args = ["tshark", "-n", "-r", str(path), "-T", "fields"]
    for field in TSHARK_FIELDS:
        args += ["-e", field]
    start, cpu = time.perf_counter(), _children_cpu()
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return {"seconds": round(time.perf_counter() - start, 3), "cpu_seconds": round(_children_cpu() - cpu, 3)}


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def time_scapy(path: Path, subset: int) -> dict[str, float]:
    from scapy.all import PcapReader

    start, cpu = time.perf_counter(), time.process_time()
    seen = 0
    with PcapReader(str(path)) as reader:
        for _packet in reader:  # reading dissects every layer
            seen += 1
            if seen >= subset:
                break
    return {"seconds_subset": round(time.perf_counter() - start, 3),
            "cpu_seconds_subset": round(time.process_time() - cpu, 3), "subset_packets": seen}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=int, default=1_000_000)
    parser.add_argument("--scapy-packets", type=int, default=20_000)
    parser.add_argument("--skip-tshark", action="store_true")
    args = parser.parse_args()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        path = workdir / "bench.pcap"
        templates = build_capture(path, args.packets, workdir)
        size_mb = path.stat().st_size / 1e6
        ours = time_analyser(path)
        tshark = None if args.skip_tshark else time_tshark(path)
        scapy = time_scapy(path, args.scapy_packets)
    ours_pps = ours["packets"] / ours["seconds"]
    ours_cpu_pps = ours["packets"] / ours["cpu_seconds"]
    out: dict[str, object] = {
        "packets": args.packets, "file_mb": round(size_mb, 1), "distinct_frames": templates,
        "load_average_1_5_15": {"before": [round(x, 2) for x in load_before],
                                "after": [round(x, 2) for x in os.getloadavg()]},
        "analyse_capture": {**ours, "packets_per_s": round(ours_pps),
                            "packets_per_cpu_s": round(ours_cpu_pps),
                            "cpu_us_per_packet": round(1e6 / ours_cpu_pps, 2),
                            "mb_per_s": round(size_mb / ours["seconds"], 1)},
    }
    scapy_pps = scapy["subset_packets"] / scapy["seconds_subset"]
    scapy_cpu_pps = scapy["subset_packets"] / scapy["cpu_seconds_subset"]
    out["scapy_extrapolated"] = {
        **scapy, "packets_per_s": round(scapy_pps),
        "estimated_seconds_for_all": round(args.packets / scapy_pps, 1),
        "note": "PcapReader full dissection on the first subset_packets packets, extrapolated",
    }
    out["ratio_vs_scapy"] = {"wall": round(ours_pps / scapy_pps, 1),
                             "cpu": round(ours_cpu_pps / scapy_cpu_pps, 1)}
    if tshark is not None:
        tshark_pps = args.packets / tshark["seconds"]
        out["tshark_fields"] = {**tshark, "packets_per_s": round(tshark_pps),
                                "cpu_us_per_packet": round(1e6 * tshark["cpu_seconds"] / args.packets, 2),
                                "mb_per_s": round(size_mb / tshark["seconds"], 1),
                                "fields": list(TSHARK_FIELDS)}
        tshark_cpu_pps = args.packets / tshark["cpu_seconds"]
        out["ratio_vs_tshark"] = {"wall": round(ours_pps / tshark_pps, 1),
                                  "cpu": round(ours_cpu_pps / tshark_cpu_pps, 1)}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
