"""The IoTInsight task API against a live embedded server: real DFRWS evidence, bulk, cases, accounts."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import threading
import time
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from assay.config import load_settings
from assay.iot.capture import analyse_capture
from assay.iot.onhub import OnHubLimits, analyse
from assay.iotinsight import cases, detect, paths
from tests.helpers import captures
from tests.helpers.paths import CASE_DATA
from tests.helpers.servers import Server, make_server

STATUSES = ("pending", "processing", "success", "failure")
SHARED_MAC = "02:5a:11:00:be:ef"
ST_TOKEN = "st-pat-" + os.urandom(12).hex()
T0 = 1_500_200_000.0
JSON = "application/json"


# -- a fake SmartThings cloud on loopback -------------------------------------------------------
class FakeSmartThings(BaseHTTPRequestHandler):
    seen_tokens: list[str] = []

    def log_message(self, *_args: Any) -> None:
        pass

    def do_GET(self) -> None:
        auth = self.headers.get("Authorization", "")
        self.seen_tokens.append(auth)
        if auth != f"Bearer {ST_TOKEN}":
            return self._send(401, {"error": {"code": "UnauthorizedError"}})
        path = self.path.split("?")[0].removeprefix("/v1")
        answers: dict[str, Any] = {
            "/locations": {"items": [{"locationId": "loc-1", "name": "Home"}], "_links": {}},
            "/locations/loc-1": {"locationId": "loc-1", "name": "Home", "timeZoneId": "Asia/Seoul"},
            "/locations/loc-1/rooms": {"items": [{"roomId": "r-1", "name": "Kitchen"}], "_links": {}},
            "/devices": {"items": [{"deviceId": "dev-1", "label": "Kitchen sensor", "locationId": "loc-1",
                                    "manufacturerName": "SmartThings"}], "_links": {}},
            "/devices/dev-1": {"deviceId": "dev-1", "label": "Kitchen sensor"},
            "/devices/dev-1/status": {"components": {}},
            "/devices/dev-1/health": {"state": "ONLINE"},
            "/history/devices": {"items": [{"deviceId": "dev-1", "time": "2017-07-16T08:00:00Z",
                                            "epoch": 1500192000000, "text": "motion active",
                                            "hash": 1}], "_links": {}},
        }
        if path in answers:
            return self._send(200, answers[path])
        return self._send(404, {"error": {"code": "NotFound"}})

    def _send(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture(scope="module")
def smartthings() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), FakeSmartThings)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    httpd.shutdown()
    httpd.server_close()


# -- evidence and the server --------------------------------------------------------------------
@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("tasks")
    root, outside = base / "root", base / "outside"
    (root / "evidence").mkdir(parents=True)
    outside.mkdir()
    with zipfile.ZipFile(CASE_DATA / "IoT_Net_Traffic.zip") as archive:
        archive.extractall(root / "evidence")
    shutil.copy(CASE_DATA / "004-Onhub-diagnostic-report", root / "evidence" / "onhub-report")
    (outside / "secret.txt").write_text("outside the roots\n")
    return {"base": base, "root": root, "outside": outside}


@pytest.fixture(scope="module")
def server(layout: dict[str, Path], smartthings: str) -> Iterator[Server]:
    env = {"ASSAY_TASKS_ALLOWED_ROOTS": str(layout["root"]), "ASSAY_TASKS_SMARTTHINGS_BASE_URL": smartthings}
    srv = make_server(layout["base"] / "data", env)
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture()
def client(server: Server) -> Iterator[httpx.Client]:
    with server.client() as c:
        yield c


def wait_done(client: httpx.Client, task_id: str, timeout: float = 150) -> list[str]:
    """Every status seen until the task ends."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = client.get(f"/task/status/{task_id}")
        assert response.status_code == 200, response.text
        status = response.json()["status"]
        if not seen or seen[-1] != status:
            seen.append(status)
        if status in ("success", "failure"):
            return seen
        time.sleep(0.2)
    raise AssertionError(f"task {task_id} did not finish: {seen}")


def image_task(client: httpx.Client, **fields: str) -> str:
    response = client.post("/task/request/image", data=fields)
    assert response.status_code == 200, response.text
    return str(response.json()["task_id"])


def bad(response: httpx.Response, status: int = 400) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"message"} and body["message"]
    return str(body["message"])


def frame(src_mac: str, src: str, dst: str, name: str) -> bytes:
    packet = captures.ip_packet(src, dst, 17, captures.udp(40000, 53, captures.dns_query(name)))
    return captures.ethernet(src_mac, "02:00:00:00:00:01", packet)


# -- tasks from server paths and uploads --------------------------------------------------------
def test_dfrws_capture_from_server_path_reaches_success_with_its_hosts(
    client: httpx.Client, layout: dict[str, Path]
) -> None:
    path = layout["root"] / "evidence" / "IP-filtered-SmartHome-Traffic.pcap"
    task_id = image_task(client, filetype="packet", filepath=str(path))
    seen = wait_done(client, task_id)
    assert seen[-1] == "success" and all(s in STATUSES for s in seen)
    assert [STATUSES.index(s) for s in seen] == sorted(STATUSES.index(s) for s in seen)
    result = client.get(f"/task/result/{task_id}").json()
    assert result["sid"] == task_id and result["filetype"] == "packet"
    hosts = result["results"]["NetworkCapture"]["hosts"]
    expected = analyse_capture(path)["hosts"]
    assert hosts and {h["mac"] for h in hosts} == {h["mac"] for h in expected}
    root_node = result["file_tree"][0]
    assert root_node["sha256"] == result["sha256"] and root_node["type"] == "network/tcpdump"
    record = client.get(f"/api/v4/submission/{task_id}/").json()["api_response"]
    assert record["metadata"]["iotinsight.filetype"] == "packet"
    assert record["metadata"]["iotinsight.filepath"] == str(path)
    assert record["params"]["description"] == "IoTInsight packet task"


def test_onhub_report_from_server_path_lists_its_stations(client: httpx.Client, layout: dict[str, Path]
                                                          ) -> None:
    path = layout["root"] / "evidence" / "onhub-report"
    task_id = image_task(client, filetype="onhub", filepath=str(path))
    assert wait_done(client, task_id)[-1] == "success"
    result = client.get(f"/task/result/{task_id}").json()
    stations = result["results"]["OnHubReport"]["stations"]
    expected = analyse(path.read_bytes(), OnHubLimits()).data["stations"]
    assert {s["mac"] for s in stations} == {s["mac"] for s in expected} and len(stations) > 10
    assert len(result["file_tree"]) > 1  # the embedded files came out as children


def test_upload_variant_and_json_body(client: httpx.Client, layout: dict[str, Path]) -> None:
    data = (layout["root"] / "evidence" / "COAP-filtered-SmartHome-Traffic.pcap").read_bytes()
    response = client.post("/task/request/image", data={"filetype": "packet"},
                           files={"file": ("c.pcap", data)})
    assert response.status_code == 200, response.text
    uploaded = response.json()["task_id"]
    assert wait_done(client, uploaded)[-1] == "success"
    result = client.get(f"/task/result/{uploaded}").json()
    assert result["results"]["NetworkCapture"]["coap"] and result["name"] == "c.pcap"
    path = layout["root"] / "evidence" / "COAP-filtered-SmartHome-Traffic.pcap"
    as_json = client.post("/task/request/image", json={"filetype": "packet", "filepath": str(path)})
    assert as_json.status_code == 200 and as_json.json()["task_id"] != uploaded


def test_unfinished_result_is_409_with_status(client: httpx.Client, layout: dict[str, Path]) -> None:
    blob = layout["root"] / "fresh.bin"
    blob.write_bytes(os.urandom(4096))
    task_id = image_task(client, filetype="packet", filepath=str(blob))
    early = client.get(f"/task/result/{task_id}")
    if early.status_code == 409:
        assert early.json()["message"] == "task not finished" and early.json()["status"] in STATUSES[:2]
    assert wait_done(client, task_id)[-1] == "success"
    record = client.get(f"/api/v4/submission/{task_id}/").json()["api_response"]
    assert record["metadata"]["iotinsight.detected"] == "other"  # claimed packet, bytes say otherwise


# -- bulk and cases -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def bulk_dir(layout: dict[str, Path]) -> Path:
    folder = layout["root"] / "bulk"
    (folder / "nested" / "deeper").mkdir(parents=True)
    captures.write_pcap(folder / "capture-a.txt",
                     [(T0 + i, frame(SHARED_MAC, "10.9.0.5", "10.9.0.1", f"a{i}.example.com")) for i in range(3)])
    captures.write_pcap(folder / "nested" / "capture-c.jpg",
                     [(T0 + 0.25, frame(SHARED_MAC.upper(), "10.9.0.6", "10.9.0.1", "c.example.org"))],
                     big_endian=True, nanoseconds=True)
    captures.write_pcapng(folder / "nested" / "capture-b.dat", [(1, 6)],
                       [(0, T0 + 0.5 + i, frame(SHARED_MAC, "10.9.0.5", "10.9.0.1", f"b{i}.example.net"))
                        for i in range(2)])
    (folder / "notes.pcap").write_text("not a capture at all, whatever the name says\n" * 10)
    shutil.copy(CASE_DATA / "004-Onhub-diagnostic-report", folder / "nested" / "deeper" / "router.log")
    (folder / "escape").symlink_to(layout["outside"] / "secret.txt")
    (folder / "escape-dir").symlink_to(layout["outside"], target_is_directory=True)
    return folder


def test_bulk_detects_by_content_and_never_follows_symlinks(client: httpx.Client, bulk_dir: Path) -> None:
    response = client.post("/task/bulk", data={"filepath": str(bulk_dir)})
    assert response.status_code == 200, response.text
    answer = response.json()
    types = {Path(p).relative_to(bulk_dir).as_posix(): v["filetype"] for p, v in answer.items()}
    assert types == {
        "capture-a.txt": "packet",
        "nested/capture-b.dat": "packet",
        "nested/capture-c.jpg": "packet",
        "notes.pcap": "other",
        "nested/deeper/router.log": "onhub",
    }
    assert all(v["task_id"] for v in answer.values())
    assert response.headers["X-Case-Id"]
    for entry in answer.values():
        assert wait_done(client, entry["task_id"])[-1] == "success"


def test_case_merges_the_same_mac_across_two_captures_and_sorts_the_timeline(
    client: httpx.Client, bulk_dir: Path
) -> None:
    response = client.post("/task/bulk", json={"filepath": str(bulk_dir)})
    case_id, answer = response.headers["X-Case-Id"], response.json()
    for entry in answer.values():
        wait_done(client, entry["task_id"])
    case = client.get(f"/task/case/{case_id}").json()
    assert case["complete"] and set(case["tasks"]) == {v["task_id"] for v in answer.values()}
    capture_tasks = {answer[str(bulk_dir / n)]["task_id"] for n in ("capture-a.txt", "nested/capture-c.jpg")}
    [shared] = [d for d in case["inventory"] if d["mac"] == SHARED_MAC]
    assert {s["task_id"] for s in shared["seen_by"]} >= capture_tasks
    assert {"10.9.0.5", "10.9.0.6"} <= set(shared["ips"])
    onhub_task = answer[str(bulk_dir / "nested" / "deeper" / "router.log")]["task_id"]
    assert any(s["task_id"] == onhub_task for d in case["inventory"] for s in d["seen_by"])
    times = [cases.sort_key(e["ts"] if e.get("ts") is not None else e.get("time")) for e in case["timeline"]]
    assert times == sorted(times) and {e["task_id"] for e in case["timeline"]} >= capture_tasks | {onhub_task}
    by_member = client.get(f"/task/case/{onhub_task}").json()
    assert by_member["case_id"] == case_id


def test_case_joins_a_capture_host_with_an_onhub_station(client: httpx.Client, layout: dict[str, Path]
                                                         ) -> None:
    report = analyse((CASE_DATA / "004-Onhub-diagnostic-report").read_bytes(), OnHubLimits())
    station = report.data["stations"][0]["mac"]
    folder = layout["root"] / "joined"
    folder.mkdir()
    captures.write_pcap(folder / "a", [(T0, frame(station, "192.168.86.99", "192.168.86.1", "x.example.org"))])
    shutil.copy(CASE_DATA / "004-Onhub-diagnostic-report", folder / "b")
    response = client.post("/task/bulk", data={"filepath": str(folder)})
    answer = response.json()
    for entry in answer.values():
        wait_done(client, entry["task_id"])
    case = client.get(f"/task/case/{response.headers['X-Case-Id']}").json()
    [device] = [d for d in case["inventory"] if d["mac"] == station]
    assert {s["service"] for s in device["seen_by"]} == {"NetworkCapture", "OnHubReport"}


# -- refusals -----------------------------------------------------------------------------------
def test_paths_outside_the_roots_are_refused(client: httpx.Client, layout: dict[str, Path]) -> None:
    root, outside = layout["root"], layout["outside"]
    (root / "link-out").symlink_to(outside / "secret.txt")
    (root / "dir-out").symlink_to(outside, target_is_directory=True)
    attempts = [
        str(root / ".." / "outside" / "secret.txt"),
        str(root / "link-out"),
        str(root / "dir-out" / "secret.txt"),
        str(outside / "secret.txt"),
        "/etc/hostname",
        "evidence/onhub-report",
        str(root / "no-such-file"),
        str(root / "evidence"),
        str(root) + "/\x00x",
    ]
    for attempt in attempts:
        bad(client.post("/task/request/image", data={"filetype": "packet", "filepath": attempt}))
    for attempt in (str(root / ".."), str(outside), str(root / "dir-out"), "/"):
        bad(client.post("/task/bulk", data={"filepath": attempt}))
    fifo = root / "pipe"
    os.mkfifo(fifo)
    refused = bad(client.post("/task/request/image", data={"filetype": "packet", "filepath": str(fifo)}))
    assert "regular" in refused


def test_malformed_requests_are_400_with_a_message(client: httpx.Client, layout: dict[str, Path]) -> None:
    pcap = str(layout["root"] / "evidence" / "IP-filtered-SmartHome-Traffic.pcap")
    unknown = client.post("/task/request/video", data={"filetype": "packet"})
    assert bad(unknown) == "Invalid request data type."
    bad(client.post("/task/request/image", data={"filetype": "jpeg", "filepath": pcap}))
    bad(client.post("/task/request/image", data={"filepath": pcap}))
    bad(client.post("/task/request/image", data={"filetype": "packet"}))
    bad(client.post("/task/request/image", content=b"{not json", headers={"content-type": JSON}))
    bad(client.post("/task/request/image", json=["filetype", "packet"]))
    bad(client.post("/task/request/image", json={"filetype": {"x": 1}, "filepath": pcap}))
    bad(client.post("/task/request/image", content=b"\x00\x01", headers={"content-type": "text/x-thing"}))
    bad(client.post("/task/request/image", data={"filetype": "packet", "filepath": pcap},
                    files={"file": ("x.pcap", b"\xd4\xc3\xb2\xa1")}))
    bad(client.post("/task/request/image", data={"filetype": "packet"}, files={"file": ("e.pcap", b"")}))
    bad(client.post("/task/request/account", data={"service": "nest", "access_token": "x"}))
    bad(client.post("/task/request/account", data={"service": "smartthings"}))
    bad(client.post("/task/request/account", data={"service": "smartthings", "cookie": "c=1"}))
    bad(client.post("/task/request/account", data={"service": "alexa", "username": "u"}))
    bad(client.post("/task/bulk", data={}))
    bad(client.post("/task/bulk", content=b"[]", headers={"content-type": JSON}))
    empty = layout["root"] / "empty-dir"
    empty.mkdir(exist_ok=True)
    bad(client.post("/task/bulk", data={"filepath": str(empty)}))


def test_unknown_tasks_are_404_and_anonymous_calls_401(client: httpx.Client, server: Server) -> None:
    for route in ("status", "result", "case"):
        assert "no such" in bad(client.get(f"/task/{route}/NoSuchTask0000000000000"), 404)
    assert bad(httpx.get(f"{server.url}/task/status/x"), 401)
    assert bad(httpx.post(f"{server.url}/task/request/image", data={"filetype": "packet"}), 401)


# -- account tasks ------------------------------------------------------------------------------
def db_text(server: Server) -> str:
    with sqlite3.connect(f"file:{server.data_dir / 'assay.db'}?mode=ro", uri=True) as conn:
        return "\n".join(conn.iterdump())


def test_account_task_collects_from_a_fake_smartthings_and_keeps_no_token(
    client: httpx.Client, server: Server
) -> None:
    FakeSmartThings.seen_tokens.clear()
    response = client.post("/task/request/account", data={"service": "smartthings", "access_token": ST_TOKEN})
    assert response.status_code == 200, response.text
    task_id = response.json()["task_id"]
    seen = wait_done(client, task_id)
    assert seen[-1] == "success" and seen[0] in ("pending", "processing")
    assert f"Bearer {ST_TOKEN}" in FakeSmartThings.seen_tokens
    result = client.get(f"/task/result/{task_id}").json()
    assert result["sid"] != task_id and result["name"] == "smartthings-account.json"
    inventory = result["results"]["CloudAccount"]["inventory"]
    assert any("Kitchen sensor" in device.get("names", []) for device in inventory), inventory
    stored = (server.data_dir / "files").rglob("*")
    bundle_text = next(p.read_text() for p in stored if p.is_file() and b"Kitchen sensor" in p.read_bytes())
    assert "dev-1" in bundle_text and ST_TOKEN not in bundle_text
    wrong = client.post("/task/request/account",
                        json={"service": "smartthings", "access_token": ST_TOKEN + "x"})
    failed = wrong.json()["task_id"]
    assert wait_done(client, failed)[-1] == "failure"
    status = client.get(f"/task/status/{failed}").json()
    assert status["message"] and ST_TOKEN not in status["message"]
    refused = client.get(f"/task/result/{failed}")
    assert refused.status_code == 409 and refused.json()["status"] == "failure"
    assert refused.json()["message"].startswith("task failed") and ST_TOKEN not in refused.text
    assert ST_TOKEN not in db_text(server)
    assert ST_TOKEN not in (server.log.read_text() if server.log else "")


# -- units: detection, paths, merge, configuration ----------------------------------------------
def test_detection_reads_magic_not_names(tmp_path: Path) -> None:
    for magic in (*detect.PCAP_MAGICS, detect.PCAPNG_MAGIC):
        assert detect.detect_bytes(magic + b"\0" * 20) == "packet"
    assert detect.detect_bytes(b"\x0a\x0d\x0d") == "other"
    assert detect.detect_bytes(b"\x0a\x05hello", b"\x0a\x05hello") == "other"
    onhub = (CASE_DATA / "004-Onhub-diagnostic-report").read_bytes()
    assert detect.detect_bytes(onhub[:16], onhub) == "onhub"
    assert detect.detect_bytes(onhub[:16], onhub[: len(onhub) // 3]) in ("onhub", "other")
    for seed in range(50):
        junk = b"\x0a" + os.urandom(200 + seed)
        assert detect.detect_bytes(junk[:16], junk) in ("other", "onhub")


def test_walk_is_bounded(tmp_path: Path) -> None:
    deep = tmp_path / "a" / "b" / "c"
    deep.mkdir(parents=True)
    for i in range(5):
        (tmp_path / f"f{i}").write_text("x")
    (deep / "hidden").write_text("x")
    found = paths.walk(tmp_path, max_files=10, max_depth=2)
    assert len(found.files) == 5 and found.skipped == 1
    with pytest.raises(paths.PathRefused):
        paths.walk(tmp_path, max_files=3, max_depth=5)


def test_merge_rules_mask_and_conflicting_macs() -> None:
    merged = cases.merge([
        cases.Source("t1", {"S": {"stations": [
            {"mac": "AA-BB-CC-00-00-01", "hostname": "android-****"},
            {"mac": "aa:bb:cc:00:00:02", "hostname": "android-****"},
            {"mac": "aa:bb:cc:00:00:03", "hostname": "lamp"},
        ]}}),
        cases.Source("t2", {"C": {"inventory": {"devices": [
            {"serial": "SN1", "hostname": "Lamp.local", "name": "Lamp"},
            {"mac": "aabb.cc00.0004", "hostname": "lamp"},
            {"serial": "SN1", "mac": "aa:bb:cc:00:00:05"},
        ]}, "timeline": [{"time": "2017-07-16T08:00:00+09:00"}, {"time": "nonsense"}]}}),
        cases.Source("t3", {"N": {"timeline": [{"ts": T0}]}}),
    ])
    by_mac = {d["mac"]: d for d in merged["inventory"]}
    assert by_mac["aa:bb:cc:00:00:01"] is not by_mac["aa:bb:cc:00:00:02"]
    lamp = by_mac["aa:bb:cc:00:00:03"]
    assert {s["task_id"] for s in lamp["seen_by"]} == {"t1", "t2"} and lamp["serial"] == "SN1"
    assert "aa:bb:cc:00:00:04" in by_mac and "aa:bb:cc:00:00:05" in by_mac  # a different MAC never joins
    assert [e["task_id"] for e in merged["timeline"]] == ["t2", "t3", "t2"]


def test_iotinsight_web_and_redis_sections_still_work(tmp_path: Path) -> None:
    ini = tmp_path / "config.ini"
    ini.write_text("[web]\nhost = 0.0.0.0\nport = 31337\nthreaded = true\n\n"
                   "[redis]\nhost = 10.1.2.3\nport = 6380\ndb = 4\n")
    settings = load_settings(ini, tmp_path, environ={})
    assert settings.web.host == "0.0.0.0" and settings.web.port == 31337
    assert settings.web.threaded is True
    assert settings.broker_url == "redis://10.1.2.3:6380/4" and not settings.embedded
    from_env = load_settings(None, tmp_path, environ={"ASSAY_CONFIG": str(ini), "ASSAY_REDIS_DB": "7"})
    assert from_env.broker_url == "redis://10.1.2.3:6380/7"
