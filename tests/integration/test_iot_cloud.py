"""Cloud accounts: collectors against a local fake of the documented APIs, the DFRWS 2017 Alexa
scrape imported for real, saved answers, the tolerant parser, and the CloudAccount service."""

from __future__ import annotations

import contextlib
import json
import random
import re
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from assay.iot.cloud import (
    CollectorError,
    FetchLimits,
    analyse_bundle,
    bundle_bytes,
    collect_alexa,
    collect_smartthings,
    import_alexa_scrape,
    import_saved_responses,
    jsonish,
    load_bundle,
)
from assay.iot.cloud.http import Fetcher, retry_after
from assay.services import registry
from assay.services.base import FileRequest
from assay.services.cloud_account import CloudAccount
from assay.services.identify import identify_path
from tests.helpers.paths import CASE_DATA

SCRAPE = CASE_DATA / "005-Amazon-Echo-Alexa-Web-Scrape.zip"

TOKEN = "st-Pat-7c1e2f9a-SECRET-4b1d"
COOKIE = "session-id=133-SECRETSESSION-77; csrf=CSRF-SECRET-9911; at-main=Atza|SECRETATZA"
FAST = FetchLimits(timeout=2.0, retries=3, backoff=0.001, max_backoff=0.01, max_seconds=20)

# --- a fake cloud: routes answer like the documented APIs ----------------------------------

Reply = tuple[int, dict[str, str], bytes]
Route = Callable[[dict[str, list[str]], dict[str, str]], Reply]


def reply(value: Any, status: int = 200, **headers: str) -> Reply:
    return status, {"Content-Type": "application/json", **headers}, json.dumps(value).encode()


@dataclass
class FakeCloud:
    """A threaded HTTP server on loopback whose routes and queued failures the test sets."""

    routes: dict[str, Route] = field(default_factory=dict)
    failures: dict[str, list[Reply]] = field(default_factory=dict)
    hits: list[tuple[str, dict[str, list[str]], dict[str, str]]] = field(default_factory=list)
    auth: tuple[str, str] | None = None
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def answer(self, path: str, query: dict[str, list[str]], headers: dict[str, str]) -> Reply:
        self.hits.append((path, query, headers))
        if self.auth and self.auth[1] not in headers.get(self.auth[0].lower(), ""):
            return reply({"error": "unauthorized"}, 401)
        queued = self.failures.get(path)
        if queued:
            return queued.pop(0)
        route = self.routes.get(path)
        return route(query, headers) if route else reply({"message": "not found"}, 404)

    def paths(self) -> list[str]:
        return [hit[0] for hit in self.hits]


def _handler(cloud: FakeCloud) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, extra, body = cloud.answer(parts.path, parse_qs(parts.query), headers)
            if status == 0:  # a route asked to stay silent for a while
                time.sleep(float(body))
                status, extra, body = reply({"late": True})
            self.send_response(status)
            for key, value in extra.items():
                self.send_header(key, value)
            if "Content-Length" not in extra and "X-No-Length" not in extra:
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            with contextlib.suppress(OSError):
                self.wfile.write(body)

        def log_message(self, *_args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def cloud() -> Iterator[FakeCloud]:
    fake = FakeCloud()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    server.daemon_threads = True
    server.block_on_close = False
    fake.server = server
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield fake
    server.shutdown()
    server.server_close()


# --- SmartThings -------------------------------------------------------------------------------

ST_DEVICES = [
    {
        "deviceId": f"dev-{n}",
        "label": f"Sensor {n}",
        "name": "c2c-motion",
        "locationId": "loc-1",
        "roomId": "room-1" if n % 2 else "room-2",
        "manufacturerName": "SmartThings",
        "type": "ZIGBEE",
        "createTime": f"2024-03-0{n}T10:00:00Z",
        "components": [{"id": "main", "capabilities": [{"id": "motionSensor"}, {"id": "battery"}]}],
    }
    for n in range(1, 8)
]
ST_DEVICES[0]["lan"] = {"networkId": "D052A8001F0B"}
HISTORY = [
    {
        "deviceId": "dev-1",
        "deviceName": "Sensor 1",
        "locationName": "Home",
        "time": "2024-03-10T08:00:00.000Z",
        "epoch": 1710057600000 - n * 60_000,
        "hash": 1000 + n,
        "capability": "motionSensor",
        "attribute": "motion",
        "value": "active" if n % 2 else "inactive",
        "text": f"Sensor 1 motion event {n}",
    }
    for n in range(5)
]


def smartthings_routes(cloud: FakeCloud) -> None:
    def devices(query: dict[str, list[str]], _h: dict[str, str]) -> Reply:
        page = int(query.get("page", ["1"])[0])
        chunk = ST_DEVICES[(page - 1) * 3 : page * 3]
        links: dict[str, Any] = {}
        if page == 1:  # an absolute link, as the real API gives
            links["next"] = {"href": f"{cloud.url}/v1/devices?locationId=loc-1&page=2"}
        elif page == 2:  # and a relative one
            links["next"] = {"href": "/v1/devices?locationId=loc-1&page=3"}
        return reply({"items": chunk, "_links": links})

    def history(query: dict[str, list[str]], _h: dict[str, str]) -> Reply:
        if "pagingBeforeEpoch" not in query:
            href = f"{cloud.url}/v1/history/devices?locationId=loc-1&pagingBeforeEpoch=1&pagingBeforeHash=2"
            return reply({"items": HISTORY[:3], "_links": {"next": {"href": href}}})
        return reply({"items": HISTORY[3:], "_links": {}})

    cloud.routes.update(
        {
            "/v1/locations": lambda q, h: reply({"items": [{"locationId": "loc-1", "name": "Home"}], "_links": {}}),
            "/v1/locations/loc-1": lambda q, h: reply({"locationId": "loc-1", "name": "Home", "countryCode": "KOR"}),
            "/v1/locations/loc-1/rooms": lambda q, h: reply(
                {"items": [{"roomId": "room-1", "name": "Kitchen"}, {"roomId": "room-2", "name": "Bedroom"}]}
            ),
            "/v1/devices": devices,
            "/v1/history/devices": history,
        }
    )
    for device in ST_DEVICES:
        ident = device["deviceId"]
        cloud.routes[f"/v1/devices/{ident}/status"] = lambda q, h: reply({"components": {"main": {}}})
        cloud.routes[f"/v1/devices/{ident}/health"] = lambda q, h: reply(
            {"state": "ONLINE", "lastUpdatedDate": "2024-03-11T00:00:00Z"}
        )


def assert_no_secret(blob: str | bytes, *secrets: str) -> None:
    text = blob.decode("utf-8", "replace") if isinstance(blob, bytes) else blob
    for secret in secrets:
        assert secret not in text


def test_smartthings_collects_every_page_retrying_429_and_500(cloud: FakeCloud) -> None:
    smartthings_routes(cloud)
    cloud.auth = ("Authorization", f"Bearer {TOKEN}")
    cloud.failures["/v1/locations/loc-1/rooms"] = [reply({"e": 1}, 500), reply({"e": 2}, 500)]
    cloud.failures["/v1/history/devices"] = [reply({"e": "slow down"}, 429, **{"Retry-After": "0"})]
    bundle = collect_smartthings(TOKEN, cloud.url + "/v1", limits=FAST)

    assert bundle["errors"] == []
    assert [d["deviceId"] for d in bundle["responses"]["/devices"]] == [d["deviceId"] for d in ST_DEVICES]
    assert cloud.paths().count("/v1/devices") == 3
    assert cloud.paths().count("/v1/locations/loc-1/rooms") == 3  # two 500s, then the answer
    assert len(bundle["responses"]["/history/devices"]) == len(HISTORY)
    assert all(h[2]["authorization"] == f"Bearer {TOKEN}" for h in cloud.hits)
    raw = bundle_bytes(bundle)
    assert_no_secret(raw, TOKEN)

    analysis = analyse_bundle(load_bundle(raw) or {})
    inventory = {e["device_id"]: e for e in analysis["inventory"]}
    assert set(inventory) == {d["deviceId"] for d in ST_DEVICES}
    assert inventory["dev-1"]["room"] == "Kitchen" and inventory["dev-2"]["room"] == "Bedroom"
    assert inventory["dev-1"]["mac"] == "d0:52:a8:00:1f:0b"
    assert inventory["dev-3"]["health"] == "ONLINE"
    motions = [e for e in analysis["timeline"] if e["event"] == "motionSensor.motion"]
    assert len(motions) == len(HISTORY)
    times = [e["time"] for e in analysis["timeline"]]
    assert times == sorted(times)
    assert all(t.endswith("+00:00") for t in times)


def test_smartthings_history_follows_paging_cursor_without_links(cloud: FakeCloud) -> None:
    from assay.iot.cloud import smartthings

    events = [dict(HISTORY[0], epoch=2_000_000 - n, hash=n) for n in range(smartthings.HISTORY_PAGE + 7)]

    def history(query: dict[str, list[str]], _h: dict[str, str]) -> Reply:
        before = int(query.get("pagingBeforeEpoch", ["99999999"])[0])
        older = [e for e in events if e["epoch"] < before]
        return reply({"items": older[: smartthings.HISTORY_PAGE]})

    smartthings_routes(cloud)
    cloud.routes["/v1/history/devices"] = history
    bundle = collect_smartthings(TOKEN, cloud.url + "/v1", limits=FAST, device_details=False)
    assert len(bundle["responses"]["/history/devices"]) == len(events)


def test_unauthorized_token_is_a_clear_error_that_never_shows_the_token(cloud: FakeCloud) -> None:
    smartthings_routes(cloud)
    cloud.auth = ("Authorization", "Bearer some-other-token")
    with pytest.raises(CollectorError) as caught:
        collect_smartthings(TOKEN, cloud.url + "/v1", limits=FAST)
    assert caught.value.kind == "unauthorized"
    assert_no_secret(str(caught.value) + repr(caught.value) + caught.value.message, TOKEN)


def test_forbidden_endpoint_is_recorded_and_collection_goes_on(cloud: FakeCloud) -> None:
    smartthings_routes(cloud)
    cloud.failures["/v1/history/devices"] = [reply({"error": "missing scope"}, 403)]
    bundle = collect_smartthings(TOKEN, cloud.url + "/v1", limits=FAST, device_details=False)
    assert [(e["endpoint"], e["kind"]) for e in bundle["errors"]] == [("/history/devices", "forbidden")]
    assert len(bundle["responses"]["/devices"]) == len(ST_DEVICES)


def test_time_budget_stops_the_collection_and_keeps_what_was_gathered(cloud: FakeCloud) -> None:
    smartthings_routes(cloud)
    cloud.routes["/v1/locations/loc-1"] = lambda q, h: (0, {}, b"1.0")
    limits = FetchLimits(timeout=5.0, retries=2, backoff=0.001, max_backoff=0.01, max_seconds=0.4)
    bundle = collect_smartthings(TOKEN, cloud.url + "/v1", limits=limits)
    assert bundle["responses"]["/locations"][0]["locationId"] == "loc-1"
    budget = [e for e in bundle["errors"] if e["kind"] == "time_budget"]
    assert [e["endpoint"] for e in budget].count("collection") == 1
    assert "/v1/devices" not in cloud.paths()


def test_missing_token_and_bad_base_url_are_refused() -> None:
    with pytest.raises(CollectorError) as caught:
        collect_smartthings("  ")
    assert caught.value.kind == "no_credentials"
    with pytest.raises(CollectorError) as caught:
        collect_smartthings(TOKEN + "\r\nX-Injected: 1")
    assert caught.value.kind == "bad_credentials"
    assert_no_secret(str(caught.value), TOKEN)
    with pytest.raises(CollectorError) as caught:
        collect_smartthings(TOKEN, "file:///etc/passwd")
    assert caught.value.kind == "bad_base_url"
    assert_no_secret(str(caught.value), TOKEN)


# --- hostile answers -------------------------------------------------------------------------


def fetcher(cloud: FakeCloud, limits: FetchLimits = FAST, sleeps: list[float] | None = None) -> Fetcher:
    record = sleeps.append if sleeps is not None else (lambda _s: None)
    return Fetcher(cloud.url, {"Authorization": f"Bearer {TOKEN}"}, secrets=(TOKEN,), limits=limits, sleep=record)


def test_retry_after_is_honoured_but_bounded_and_backoff_doubles(cloud: FakeCloud) -> None:
    cloud.routes["/x"] = lambda q, h: reply({"ok": True})
    cloud.failures["/x"] = [reply({}, 429, **{"Retry-After": "3600"})]
    sleeps: list[float] = []
    limits = FetchLimits(retries=3, backoff=0.001, max_backoff=0.02)
    with fetcher(cloud, limits, sleeps) as f:
        assert f.get_json("/x") == {"ok": True}
        assert sleeps == [0.02]
        sleeps.clear()
        cloud.failures["/x"] = [reply({}, 500), reply({}, 503)]
        assert f.get_json("/x") == {"ok": True}
        assert sleeps == [0.001, 0.002]
    assert retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 5.0) == 0.0
    assert retry_after("nonsense", 5.0) is None


def test_server_errors_give_up_after_the_retries(cloud: FakeCloud) -> None:
    cloud.routes["/x"] = lambda q, h: reply({"e": 1}, 500)
    with fetcher(cloud) as f, pytest.raises(CollectorError) as caught:
        f.get_json("/x")
    assert caught.value.kind == "server_error"
    assert cloud.paths().count("/x") == FAST.retries + 1


def test_slow_server_times_out(cloud: FakeCloud) -> None:
    cloud.routes["/slow"] = lambda q, h: (0, {}, b"1.0")
    limits = FetchLimits(timeout=0.2, retries=1, backoff=0.001, max_backoff=0.01)
    with fetcher(cloud, limits) as f, pytest.raises(CollectorError) as caught:
        f.get_json("/slow")
    assert caught.value.kind == "timeout"
    assert cloud.paths().count("/slow") == 2


def test_non_json_and_oversized_bodies_are_refused(cloud: FakeCloud) -> None:
    big = b"[" + b"1," * 40_000 + b"1]"
    cloud.routes["/html"] = lambda q, h: (200, {"Content-Type": "text/html"}, b"<html>login</html>")
    cloud.routes["/big"] = lambda q, h: (200, {}, big)
    cloud.routes["/big-chunked"] = lambda q, h: (200, {"X-No-Length": "1", "Connection": "close"}, big)
    limits = FetchLimits(max_bytes=10_000, retries=0)
    with fetcher(cloud, limits) as f:
        for path, kind in (("/html", "bad_response"), ("/big", "too_large"), ("/big-chunked", "too_large")):
            with pytest.raises(CollectorError) as caught:
                f.get_json(path)
            assert caught.value.kind == kind, path


def test_next_link_to_another_host_is_not_followed(cloud: FakeCloud) -> None:
    port = urlsplit(cloud.url).port

    def pages(query: dict[str, list[str]], _h: dict[str, str]) -> Reply:
        if query.get("page") == ["2"]:
            return reply({"items": ["leak"]})
        return reply({"items": [1, 2], "_links": {"next": {"href": f"http://localhost:{port}/p?page=2"}}})

    cloud.routes["/p"] = pages
    with fetcher(cloud) as f:
        paged = f.paginate("/p")
        with pytest.raises(CollectorError) as caught:
            f.get_json(f"http://evil.example:{port}/p")
    assert paged.items == [1, 2]
    assert paged.stopped is not None and paged.stopped.kind == "foreign_host"
    assert caught.value.kind == "foreign_host"
    assert all(hit[1].get("page") != ["2"] for hit in cloud.hits)


def test_pagination_is_bounded_by_pages_items_and_loops(cloud: FakeCloud) -> None:
    def endless(query: dict[str, list[str]], _h: dict[str, str]) -> Reply:
        page = int(query.get("page", ["0"])[0])
        return reply({"items": [page] * 5, "_links": {"next": {"href": f"/e?page={page + 1}"}}})

    cloud.routes["/e"] = endless
    cloud.routes["/loop"] = lambda q, h: reply({"items": [1], "_links": {"next": {"href": "/loop?a=1"}}})
    with fetcher(cloud, FetchLimits(max_pages=4, max_items=1000)) as f:
        paged = f.paginate("/e")
        assert paged.pages == 4 and paged.stopped is not None and paged.stopped.kind == "page_limit"
        looped = f.paginate("/loop")
        assert looped.stopped is not None and looped.stopped.kind == "page_loop"
    with fetcher(cloud, FetchLimits(max_pages=100, max_items=12)) as f:
        paged = f.paginate("/e")
        assert len(paged.items) == 12 and paged.stopped is not None and paged.stopped.kind == "item_limit"


def test_secrets_are_scrubbed_from_echoed_error_text(cloud: FakeCloud) -> None:
    with fetcher(cloud) as f, pytest.raises(CollectorError) as caught:
        f.get_json(f"/echo/{TOKEN}")
    assert caught.value.kind == "not_found"
    assert_no_secret(str(caught.value), TOKEN)


# --- Alexa -------------------------------------------------------------------------------------

ALEXA_DEVICES = {
    "devices": [
        {
            "accountName": "Kitchen Echo",
            "serialNumber": "G090LF1174440ABC",
            "deviceType": "AB72C64C86AW2",
            "deviceFamily": "ECHO",
            "macAddress": "68-54-FD-11-22-33",
            "softwareVersion": 595543620,
            "online": True,
        }
    ]
}
PHOENIX = {
    "networkDetail": json.dumps(
        {
            "locationDetails": {
                "Default": {
                    "amazonBridgeDetails": {
                        "bridge": {
                            "applianceDetails": {
                                "a1": {
                                    "applianceId": "SmartThings_dev-1",
                                    "friendlyName": "Hall light",
                                    "manufacturerName": "SmartThings",
                                    "modelName": "Bulb",
                                }
                            }
                        }
                    }
                }
            }
        }
    )
}


def alexa_routes(cloud: FakeCloud) -> None:
    cloud.routes.update(
        {
            "/api/bootstrap": lambda q, h: reply({"authentication": {"customerName": "Simon", "customerId": "A3"}}),
            "/api/household": lambda q, h: reply({"accounts": [{"fullName": "Simon", "role": "ADULT"}]}),
            "/api/devices-v2/device": lambda q, h: reply(ALEXA_DEVICES),
            "/api/device-preferences": lambda q, h: reply({"devicePreferences": []}),
            "/api/phoenix": lambda q, h: reply(PHOENIX),
            "/api/notifications": lambda q, h: reply(
                {
                    "notifications": [
                        {
                            "type": "Alarm",
                            "status": "ON",
                            "createdDate": 1500260000000,
                            "deviceSerialNumber": "G090LF1174440ABC",
                            "originalDate": "2017-07-18",
                            "originalTime": "07:00:00.000",
                        }
                    ]
                }
            ),
            "/api/namedLists": lambda q, h: reply({"lists": [{"itemId": "list-1", "type": "SHOPPING_LIST"}]}),
            "/api/namedLists/list-1/items": lambda q, h: reply(
                {"list": [{"value": "milk", "createdDateTime": 1500261000000}]}
            ),
            "/api/wifi/configs": lambda q, h: reply(
                {"values": [{"ssid": "HomeNet", "securityMethod": "WPA_PSK", "preSharedKey": "hunter22"}]}
            ),
            "/api/cards": lambda q, h: reply({"cards": []}),
            "/api/todos": lambda q, h: reply({"values": [{"text": "call mum", "createdDate": 1500262000000}]}),
        }
    )


def test_alexa_collects_and_reports_the_retired_voice_history(cloud: FakeCloud) -> None:
    alexa_routes(cloud)
    cloud.auth = ("Cookie", "SECRETSESSION")
    bundle = collect_alexa(cookie=COOKIE, base_url=cloud.url, limits=FAST)

    assert "/api/namedLists/list-1/items" in bundle["responses"]
    gone = [e for e in bundle["errors"] if e["endpoint"] == "/api/activities"]
    assert len(gone) == 1 and gone[0]["kind"] == "not_found"
    assert "customer-history-records" in gone[0]["message"]
    assert all(h[2].get("csrf") == "CSRF-SECRET-9911" for h in cloud.hits)
    raw = bundle_bytes(bundle)
    assert_no_secret(raw, COOKIE, "SECRETSESSION", "CSRF-SECRET-9911", "SECRETATZA")

    analysis = analyse_bundle(load_bundle(raw) or {})
    echo = next(e for e in analysis["inventory"] if e.get("serial") == "G090LF1174440ABC")
    assert echo["mac"] == "68:54:fd:11:22:33" and echo["names"] == ["Kitchen Echo"]
    light = next(e for e in analysis["inventory"] if e.get("kind") == "smart_home_appliance")
    assert light["names"] == ["Hall light"] and light["vendor"] == "SmartThings"
    events = {e["event"] for e in analysis["timeline"]}
    assert {"alarm_set", "list_item_created", "todo_created"} <= events
    assert analysis["wifi"] == [{"ssid": "HomeNet", "securityMethod": "WPA_PSK"}]
    assert "hunter22" not in json.dumps(analysis)


def test_alexa_voice_history_pages_by_offset(cloud: FakeCloud) -> None:
    alexa_routes(cloud)
    activities = [
        {"id": f"A#{1500000000000 + n}#T#S1", "creationTimestamp": 1500000000000 + n, "description": '{"summary":"hi"}'}
        for n in range(23)
    ]

    def page(query: dict[str, list[str]], _h: dict[str, str]) -> Reply:
        offset, size = int(query["offset"][0]), int(query["size"][0])
        return reply({"activities": activities[offset : offset + size]})

    cloud.routes["/api/activities"] = page
    bundle = collect_alexa(token="bearer-SECRET-1234", base_url=cloud.url, limits=FAST, activity_page_size=10)
    assert len(bundle["responses"]["/api/activities"]["activities"]) == len(activities)
    assert cloud.paths().count("/api/activities") == 3
    assert analyse_bundle(bundle)["counts"]["activities"] == len(activities)
    assert_no_secret(bundle_bytes(bundle), "bearer-SECRET-1234")


def test_alexa_password_login_is_refused_clearly() -> None:
    with pytest.raises(CollectorError) as caught:
        collect_alexa(username="simon@example.com", password="pa55-SECRET-word")
    assert caught.value.kind == "login_required"
    assert "cookie" in caught.value.message
    assert_no_secret(str(caught.value), "pa55-SECRET-word")
    with pytest.raises(CollectorError) as caught:
        collect_alexa()
    assert caught.value.kind == "no_credentials"


def test_alexa_expired_session_is_unauthorized(cloud: FakeCloud) -> None:
    alexa_routes(cloud)
    cloud.auth = ("Cookie", "another-session")
    with pytest.raises(CollectorError) as caught:
        collect_alexa(cookie=COOKIE, base_url=cloud.url, limits=FAST)
    assert caught.value.kind == "unauthorized"
    assert_no_secret(str(caught.value), COOKIE, "SECRETSESSION")


# --- the DFRWS 2017 scrape, imported for real -----------------------------------------------


def _scrape_members() -> dict[str, bytes]:
    with zipfile.ZipFile(SCRAPE) as archive:
        return {i.filename: archive.read(i) for i in archive.infolist() if not i.is_dir()}


def test_dfrws_scrape_import_reads_every_activity_file() -> None:
    members = _scrape_members()
    activity_files = {n: d for n, d in members.items() if n.lower().endswith(".json") and d.strip()}
    empty_files = [n for n, d in members.items() if n.lower().endswith(".json") and not d.strip()]
    recordings = [n for n in members if n.lower().endswith(".wav")]

    bundle, attachments = import_alexa_scrape(SCRAPE)
    analysis = analyse_bundle(bundle)
    voice = [e for e in analysis["timeline"] if e["event"] == "voice_activity"]
    assert len(voice) == len(activity_files)
    assert sorted(e["file"] for e in voice) == sorted(activity_files)
    assert sorted(e["endpoint"] for e in bundle["errors"] if e["kind"] == "empty") == sorted(empty_files)
    assert sorted(name for name, _ in attachments) == sorted(recordings)
    assert all(len(data) == len(members[name]) for name, data in attachments)

    # one known activity, read from the raw file with plain regular expressions
    name = next(n for n in activity_files if n.endswith("/9.json"))
    raw = activity_files[name].decode()
    stamp = int(re.search(r"creationTimestamp:\s*(\d+)", raw).group(1))  # type: ignore[union-attr]
    said = re.search(r'"summary":"([^"]*)"', raw).group(1)  # type: ignore[union-attr]
    serial = re.search(r'serialNumber:\s*"([^"]+)"', raw).group(1)  # type: ignore[union-attr]
    ident = re.search(r'\bid:\s*"([^"]+)"', raw).group(1)  # type: ignore[union-attr]
    entry = next(e for e in voice if e["file"] == name)
    assert entry["detail"] == said and entry["serial"] == serial and entry["activity_id"] == ident
    assert entry["time"].startswith(time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(stamp / 1000)))
    wav = next(a for a in bundle["attachments"] if re.search(r"/9\.wav$", a["name"], re.IGNORECASE))
    assert wav["activity_id"] == ident
    assert entry["recording"] == wav["name"]
    assert any(e.get("serial") == serial and e.get("seen_in") for e in analysis["inventory"])


def test_dfrws_scrape_through_the_service(tmp_path: Path) -> None:
    bundle, _ = import_alexa_scrape(SCRAPE.read_bytes())
    path = tmp_path / "bundle.json"
    path.write_bytes(bundle_bytes(bundle))
    service = registry.service("CloudAccount")
    assert isinstance(service, CloudAccount)
    assert service.accepts_type(identify_path(path).file_type)
    result = service.execute(FileRequest(path=path, sha256="0" * 64, name=path.name, size=path.stat().st_size))
    discarded = sum(d.count(b"DISCARDED_NON_DEVICE_DIRECTED_INTENT") for d in _scrape_members().values())
    assert result.data["service"] == "alexa"
    assert result.data["counts"]["activities"] == len(
        [e for e in result.data["timeline"] if e["event"] == "voice_activity"]
    )
    assert ("cloud.unintended_recording" in result.heuristic_ids()) == (discarded > 0)
    json.dumps(result.data)
    assert [s.title for s in result.sections][:2] == ["Cloud account bundle", "Device inventory"]


# --- saved answers -------------------------------------------------------------------------------


def test_saved_responses_from_a_directory_and_a_zip(tmp_path: Path) -> None:
    folder = tmp_path / "alexa"
    folder.mkdir()
    (folder / "devices-v2_device.json").write_text(json.dumps(ALEXA_DEVICES))
    (folder / "api_notifications.json").write_text("{notifications: []}")
    (folder / "broken.json").write_text("{{{")
    bundle = import_saved_responses(folder, "alexa")
    assert set(bundle["responses"]) == {"/api/devices-v2/device", "/api/notifications"}
    assert [e["endpoint"] for e in bundle["errors"]] == ["broken.json"]

    archive = tmp_path / "st.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("devices_1.json", json.dumps({"items": ST_DEVICES[:4]}))
        zf.writestr("devices_2.json", json.dumps({"items": ST_DEVICES[4:]}))
        zf.writestr("locations.json", json.dumps({"items": [{"locationId": "loc-1", "name": "Home"}]}))
    bundle = import_saved_responses(archive, "smartthings")
    assert len(analyse_bundle(bundle)["inventory"]) == len(ST_DEVICES)
    assert import_saved_responses(b"not a zip", "smartthings")["errors"][0]["kind"] == "bad_archive"


# --- the tolerant parser ---------------------------------------------------------------------


def test_tolerant_parser_reads_scraped_shapes_and_survives_garbage() -> None:
    text = 'x = 1\n{\nid: "A#1",\ndescription: "{"summary":"hi "there""}",\nlist: [1, 2,],\nnone: null\n}\n'
    value = jsonish.loads(text.split("\n", 1)[1])
    assert value["id"] == "A#1" and value["list"] == [1, 2] and value["none"] is None
    assert value["description"] == '{"summary":"hi "there""}'
    assert jsonish.loads("{'a': 'b\\n'}") == {"a": "b\n"}
    with pytest.raises(jsonish.TolerantJSONError):
        jsonish.loads("[" * 100_000)
    with pytest.raises(jsonish.TolerantJSONError):
        jsonish.loads("{a: " + "9" * 5000 + "}")
    with pytest.raises(jsonish.TolerantJSONError):
        jsonish.loads("x" * 100, max_size=10)
    rng = random.Random(7)
    alphabet = "{}[]:,\"' \nabc123-.\\"
    for _ in range(2000):
        junk = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
        with contextlib.suppress(jsonish.TolerantJSONError):
            jsonish.loads(junk)


# --- the service on odd input --------------------------------------------------------------


def _run(tmp_path: Path, data: bytes, **params: Any) -> Any:
    path = tmp_path / "input"
    path.write_bytes(data)
    request = FileRequest(path=path, sha256="0" * 64, name="input", size=len(data), params=params)
    return CloudAccount().execute(request)


def test_service_ignores_other_json_and_flags_broken_bundles(tmp_path: Path) -> None:
    assert _run(tmp_path, b'{"hello": "world"}').data == {}
    assert _run(tmp_path, b'{"assay_cloud_bundle": 1, "service": "alexa", "resp').anomalies == ["bundle_unreadable"]
    bundle = import_saved_responses(b"", "alexa")
    bundle["responses"]["/api/devices-v2/device"] = ALEXA_DEVICES
    bundle["base_url"] = "https://alexa.amazon.com"
    data = bundle_bytes(bundle)
    small = _run(tmp_path, data, max_bundle_size=100)
    assert small.anomalies == ["bundle_size_limit_reached"] and small.data == {}
    result = _run(tmp_path, data)
    assert result.data["counts"]["inventory"] == 1
    assert ("network.static.domain", "alexa.amazon.com") in [(t.type, t.value) for t in result.tags()]
    hostile = dict(bundle, responses={"/api/devices-v2/device": {"devices": [1, None, {"macAddress": []}]}})
    assert _run(tmp_path, bundle_bytes(hostile)).data["counts"]["inventory"] == 1


def test_analysis_survives_answers_of_every_wrong_shape() -> None:
    odd: list[Any] = [None, 1, "x", "{broken", [], {}, [1, "a", None], {"items": [{"deviceId": []}]}]
    odd += [{"devices": [{"macAddress": 5, "serialNumber": {}}]}, {"activities": [{"creationTimestamp": "1e999"}]}]
    odd += [{"notifications": [{"createdDate": -5}, {"createdDate": 10**400}]}, {"networkDetail": "[" * 5000}]
    keys = ["/api/activities", "/api/devices-v2/device", "/api/phoenix", "/api/notifications", "/api/cards"]
    keys += ["/locations", "/devices", "/history/devices", "/devices/x/health", "/locations/l/rooms", "/api/todos"]
    for service in ("alexa", "smartthings"):
        for value in odd:
            bundle = {"assay_cloud_bundle": 1, "service": service, "responses": dict.fromkeys(keys, value)}
            bundle["errors"] = value
            json.dumps(analyse_bundle(bundle))
