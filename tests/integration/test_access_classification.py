"""Classification on every read path, through a live server over SQLite and PostgreSQL.

Users with lower clearances than the admin are made with ``assay user add``; whatever lies above
a reader's clearance or outside their groups must answer as if it did not exist (404, absent
from lists and counts), on the way in a marking is checked against the submitter's clearance,
and what a submission marks (results, tags, notification messages, tasks) follows it.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, func, select

from assay.db.models import Notification
from tests.helpers.servers import Server, drop_pg, make_server, new_pg_url, run_assay

GROUPS = "G1,G2"
USERS = {  # name: (role, clearance, groups)
    "green": ("viewer", "TLP:GREEN", ()),
    "green_sub": ("submitter", "TLP:GREEN", ()),
    "amber_sub": ("submitter", "TLP:AMBER", ()),
    "red_g1": ("viewer", "TLP:RED", ("G1",)),
    "red_g2": ("viewer", "TLP:RED", ("G2",)),
}


@dataclass
class Site:
    """A running server, a client for each user, and where its database is."""

    server: Server
    clients: dict[str, httpx.Client]
    database_url: str

    def __getitem__(self, name: str) -> httpx.Client:
        return self.clients[name]


def _add_users(server: Server) -> dict[str, httpx.Client]:
    clients = {"admin": server.client()}
    for name, (role, level, groups) in USERS.items():
        extra = [arg for group in groups for arg in ("--group", group)]
        added = run_assay(["user", "add", name, "--role", role, "--classification", level, *extra], server.env)
        assert added.returncode == 0, added.stderr
        made = run_assay(["apikey", "create", name, "k"], server.env)
        assert made.returncode == 0, made.stderr
        key = made.stdout.strip().splitlines()[-1]
        clients[name] = httpx.Client(base_url=server.url, headers={"X-USER": name, "X-APIKEY": key}, timeout=60)
    return clients


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.services)])
def site(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    data_dir = tmp_path_factory.mktemp(f"access-{request.param}")
    (data_dir / "evidence").mkdir()
    env = {
        "ASSAY_CLASSIFICATION_GROUPS": GROUPS,
        "ASSAY_SERVICES_EXTRA_MODULES": "tests.plugins.marking",
        "ASSAY_TASKS_ALLOWED_ROOTS": str(data_dir / "evidence"),
        "ASSAY_TASKS_SMARTTHINGS_BASE_URL": "http://127.0.0.1:9",  # nothing listens: collections fail at once
    }
    pg_name = None
    if request.param == "postgresql":
        pg_name, env["ASSAY_DATABASE_URL"] = new_pg_url()
    server = make_server(data_dir, env)
    server.start()
    clients = _add_users(server)
    try:
        yield Site(server, clients, env.get("ASSAY_DATABASE_URL", f"sqlite:///{data_dir / 'assay.db'}"))
    finally:
        for client in clients.values():
            client.close()
        server.stop()
        if pg_name:
            drop_pg(pg_name)


def unique(tag: str) -> bytes:
    return f"{tag} {time.time_ns()} {os.urandom(8).hex()}\n".encode() * 10


def send(client: httpx.Client, route: str, data: bytes, name: str, **description: Any) -> httpx.Response:
    files = {"json": (None, json.dumps({"name": name, **description})), "bin": (name, data)}
    return client.post(route, files=files)


def submit(site: Site, data: bytes, marking: str, user: str = "admin", **description: Any) -> dict[str, Any]:
    """Submit ``data`` under ``marking`` and wait for its analysis; the finished record (as admin)."""
    params = {"classification": marking, **description.pop("params", {})}
    response = send(site[user], "/api/v4/submit/", data, "sample.txt", params=params, **description)
    assert response.status_code == 200, response.text
    return finished(site, response.json()["api_response"]["sid"])


def finished(site: Site, sid: str, timeout: float = 90) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while not site["admin"].get(f"/api/v4/submission/is_completed/{sid}/").json()["api_response"]:
        assert time.monotonic() < deadline, f"{sid} was never analysed"
        time.sleep(0.1)
    return site["admin"].get(f"/api/v4/submission/full/{sid}/").json()["api_response"]


def search(client: httpx.Client, query: str) -> dict[str, Any]:
    response = client.post("/api/v4/search/submission/", json={"query": query, "rows": 100})
    assert response.status_code == 200, response.text
    return response.json()["api_response"]


def error_of(response: httpx.Response) -> str:
    body = response.json()
    return str(body.get("api_error_message") or body.get("message"))


READS = (
    "/api/v4/submission/{sid}/",
    "/api/v4/submission/full/{sid}/",
    "/api/v4/submission/summary/{sid}/",
    "/api/v4/submission/tree/{sid}/",
    "/api/v4/submission/is_completed/{sid}/",
    "/api/v4/submission/{sid}/file/{sha}/",
)


# -- reading ---------------------------------------------------------------------------------------
def test_a_green_reader_reads_green_but_a_red_submission_does_not_exist_for_them(site: Site) -> None:
    case = os.urandom(4).hex()
    green = submit(site, unique("green"), "TLP:G", metadata={"case": case})
    red = submit(site, unique("red"), "tlp:red", metadata={"case": case})
    assert (green["classification"], red["classification"]) == ("TLP:GREEN", "TLP:RED")
    for route in READS:
        for record, status in ((green, 200), (red, 404)):
            url = route.format(sid=record["sid"], sha=record["files"][0]["sha256"])
            answer = site["green"].get(url)
            assert answer.status_code == status, (url, answer.text)
    missing = site["green"].get(f"/api/v4/submission/{red['sid']}/")
    assert error_of(missing) == error_of(site["green"].get("/api/v4/submission/no-such-sid/")).replace(
        "no-such-sid", red["sid"]
    )
    assert all(r["classification"] == "TLP:GREEN" for r in green["results"].values())


def test_search_lists_and_counts_only_what_the_reader_may_see(site: Site) -> None:
    case = os.urandom(4).hex()
    green = submit(site, unique("s-green"), "TLP:GREEN", metadata={"case": case})
    submit(site, unique("s-red"), "TLP:RED", metadata={"case": case})
    assert search(site["admin"], f'metadata.case:"{case}"')["total"] == 2
    seen = search(site["green"], f'metadata.case:"{case}"')
    assert seen["total"] == 1 and [item["sid"] for item in seen["items"]] == [green["sid"]]
    assert search(site["green"], f'metadata.case:"{case}" AND classification:"TLP:RED"')["total"] == 0


def test_files_results_and_downloads_above_the_reader_are_404(site: Site) -> None:
    data = unique("download-red")
    red = submit(site, data, "TLP:RED")
    sha = red["files"][0]["sha256"]
    key = next(iter(red["results"]))
    viewer = site["green"]
    for url in (f"/api/v4/file/info/{sha}/", f"/api/v4/file/result/{sha}/", f"/api/v4/file/download/{sha}/"):
        assert viewer.get(url).status_code == 404, url
    assert viewer.get(f"/api/v4/result/{key}/").status_code == 404
    assert viewer.post("/api/v4/result/multiple_keys/", json=[key]).json()["api_response"] == {}
    assert site["red_g1"].get(f"/api/v4/file/download/{sha}/").status_code == 200


def test_a_download_is_cart_by_default_raw_or_zip_when_asked(site: Site) -> None:
    import io

    import cart
    import pyzipper

    data = unique("download-green")
    sha = submit(site, data, "TLP:GREEN")["files"][0]["sha256"]
    viewer = site["green"]
    carted = viewer.get(f"/api/v4/file/download/{sha}/")
    assert carted.status_code == 200 and cart.is_cart(carted.content[:64])
    unpacked = io.BytesIO()
    header, _ = cart.unpack_stream(io.BytesIO(carted.content), unpacked)
    assert unpacked.getvalue() == data and header["name"] == sha and header["classification"] == "TLP:GREEN"
    assert viewer.get(f"/api/v4/file/download/{sha}/", params={"encoding": "raw"}).content == data
    zipped = viewer.get(f"/api/v4/file/download/{sha}/", params={"encoding": "zip"})
    with pyzipper.AESZipFile(io.BytesIO(zipped.content)) as archive:
        archive.setpassword(b"infected")
        assert archive.read(sha) == data
    wrong = viewer.get(f"/api/v4/file/download/{sha}/", params={"encoding": "base64"})
    assert wrong.status_code == 400 and "cart, raw, zip" in error_of(wrong)


def test_rel_to_groups_hide_an_item_from_a_red_reader_outside_them(site: Site) -> None:
    case = os.urandom(4).hex()
    marked = submit(site, unique("rel"), "TLP:A//REL TO G1", metadata={"case": case})
    assert marked["classification"] == "TLP:AMBER//REL TO G1"
    assert site["red_g1"].get(f"/api/v4/submission/{marked['sid']}/").status_code == 200
    assert site["red_g2"].get(f"/api/v4/submission/{marked['sid']}/").status_code == 404
    assert search(site["red_g1"], f'metadata.case:"{case}"')["total"] == 1
    assert search(site["red_g2"], f'metadata.case:"{case}"')["total"] == 0
    sha = marked["files"][0]["sha256"]
    assert site["red_g2"].get(f"/api/v4/file/info/{sha}/").status_code == 404


def test_a_file_seen_at_red_then_green_is_visible_but_not_its_red_submission(site: Site) -> None:
    data = unique("two-levels")
    red = submit(site, data, "TLP:RED")
    sha = red["files"][0]["sha256"]
    viewer = site["green"]
    assert viewer.get(f"/api/v4/file/info/{sha}/").status_code == 404
    green = submit(site, data, "TLP:GREEN")
    info = viewer.get(f"/api/v4/file/info/{sha}/")
    assert info.status_code == 200 and info.json()["api_response"]["classification"] == "TLP:GREEN"
    assert viewer.get(f"/api/v4/file/download/{sha}/").status_code == 200
    assert viewer.get(f"/api/v4/submission/{red['sid']}/").status_code == 404
    assert viewer.get(f"/api/v4/submission/{green['sid']}/").status_code == 200
    results = viewer.get(f"/api/v4/file/result/{sha}/").json()["api_response"]["results"]
    assert {r["key"] for r in results} == set(green["results"])
    assert all(viewer.get(f"/api/v4/result/{key}/").status_code == 404 for key in red["results"])


def test_the_cached_result_of_a_red_run_is_not_served_to_a_green_submission(site: Site) -> None:
    data = unique("cache")
    red = submit(site, data, "TLP:RED")
    green = submit(site, data, "TLP:GREEN")
    assert set(red["results"]).isdisjoint(green["results"])
    assert {r["classification"] for r in green["results"].values()} == {"TLP:GREEN"}
    assert {r["classification"] for r in red["results"].values()} == {"TLP:RED"}
    again = submit(site, data, "TLP:GREEN")
    assert set(again["results"]) == set(green["results"])  # the same marking still reuses its results


# -- what a submission inherits ---------------------------------------------------------------------
MARKED = {"services": {"selected": ["Marker"]}}  # with Identify and Digests, which always run


def test_a_submission_rises_to_what_its_services_marked_with_its_tags(site: Site) -> None:
    raised = submit(site, b"MARK TLP:AMBER\n" + unique("raised"), "TLP:GREEN", params=MARKED)
    assert raised["classification"] == "TLP:AMBER"
    marker = next(r for r in raised["results"].values() if r["response"]["service_name"] == "Marker")
    assert marker["classification"] == "TLP:AMBER"
    assert raised["file_infos"][raised["files"][0]["sha256"]]["classification"] == "TLP:GREEN"
    assert site["green"].get(f"/api/v4/submission/summary/{raised['sid']}/").status_code == 404
    summary = site["red_g1"].get(f"/api/v4/submission/summary/{raised['sid']}/").json()["api_response"]
    assert summary["tags"]["file.string.extracted"] == ["marked-finding"]


def test_groups_that_share_nothing_keep_the_submitters_groups_and_say_so(site: Site) -> None:
    clash = submit(site, b"MARK TLP:AMBER//REL TO G2\n" + unique("clash"), "TLP:GREEN//REL TO G1", params=MARKED)
    assert clash["classification"] == "TLP:AMBER//REL TO G1"
    [error] = [e for e in clash["errors"].values() if e["type"] == "CLASSIFICATION"]
    assert "no group is common" in error["response"]["message"]


def test_messages_of_a_submission_above_the_reader_are_neither_handed_out_nor_popped(site: Site) -> None:
    queue = f"q-{os.urandom(4).hex()}"
    case = os.urandom(4).hex()
    receiver = site["green_sub"]
    for data, name in ((b"MARK TLP:RED\n" + unique("hidden"), "hidden.txt"), (unique("plain"), "plain.txt")):
        sent = send(
            receiver, "/api/v4/ingest/", data, name, notification_queue=queue, params=MARKED, metadata={"case": case}
        )
        assert sent.status_code == 200, sent.text
    deadline = time.monotonic() + 90
    while search(site["admin"], f'metadata.case:"{case}" AND state:completed')["total"] < 2:
        assert time.monotonic() < deadline, "the ingests were never analysed"
        time.sleep(0.1)
    messages = receiver.get(f"/api/v4/ingest/get_message_list/{queue}/").json()["api_response"]
    assert [m["submission"]["files"][0]["name"] for m in messages] == ["plain.txt"]
    assert receiver.get(f"/api/v4/ingest/get_message/{queue}/").json()["api_response"] is None
    database = create_engine(site.database_url)
    try:
        with database.connect() as connection:
            waiting = select(func.count()).where(Notification.user == "green_sub", Notification.queue == queue)
            assert connection.scalar(waiting) == 1  # still queued, for nobody who may see it
    finally:
        database.dispose()


# -- on the way in --------------------------------------------------------------------------------
@pytest.mark.parametrize("marking", ["BANANA//NOFORN", "x" * 200, "TLP:AMBER//REL TO G3"])
def test_an_unknown_marking_is_a_400_naming_the_accepted_ones(site: Site, marking: str) -> None:
    params = {"classification": marking}
    for route in ("/api/v4/submit/", "/api/v4/ingest/"):
        refused = send(site["admin"], route, unique("bad"), "bad.txt", params=params)
        assert refused.status_code == 400, refused.text
        assert "accepted levels" in error_of(refused) and "TLP:AMBER+STRICT" in error_of(refused)
    task = site["admin"].post(
        "/task/request/image", data={"filetype": "packet", "classification": marking}, files={"file": ("a", b"x")}
    )
    assert task.status_code == 400 and "accepted levels" in error_of(task)


def test_a_marking_that_is_not_text_is_a_400(site: Site) -> None:
    refused = send(site["admin"], "/api/v4/submit/", unique("bad"), "bad.txt", params={"classification": 4})
    assert refused.status_code == 400 and "classification" in error_of(refused)


def test_submitting_above_ones_clearance_is_403(site: Site) -> None:
    amber = site["amber_sub"]
    for route in ("/api/v4/submit/", "/api/v4/ingest/"):
        refused = send(amber, route, unique("above"), "above.txt", params={"classification": "TLP:RED"})
        assert refused.status_code == 403 and "TLP:AMBER" in error_of(refused), refused.text
        assert send(amber, route, unique("at"), "at.txt", params={"classification": "TLP:AMBER"}).status_code == 200
    task = amber.post(
        "/task/request/image", data={"filetype": "packet", "classification": "TLP:RED"}, files={"file": ("a", b"x")}
    )
    assert task.status_code == 403


def test_a_marking_is_stored_canonical_and_none_given_is_the_default(site: Site) -> None:
    for given, canonical in ((None, "TLP:CLEAR"), (" tlp:a // rel g2, g1 ", "TLP:AMBER//REL TO G1, G2")):
        params = {} if given is None else {"classification": given}
        response = send(site["admin"], "/api/v4/submit/", unique("canonical"), "c.txt", params=params)
        record = response.json()["api_response"]  # as written, before any analysis
        assert record["classification"] == record["params"]["classification"] == canonical


# -- IoTInsight -------------------------------------------------------------------------------------
def test_tasks_and_cases_above_the_reader_are_not_found(site: Site) -> None:
    admin, viewer = site["admin"], site["green"]
    ids = {}
    for marking in ("TLP:RED", "TLP:GREEN"):
        made = admin.post(
            "/task/request/image",
            data={"filetype": "packet", "classification": marking},
            files={"file": ("capture.pcap", unique(marking))},
        )
        assert made.status_code == 200, made.text
        ids[marking] = made.json()["task_id"]
    assert viewer.get(f"/task/status/{ids['TLP:GREEN']}").status_code == 200
    for route in ("/task/status/{}", "/task/result/{}"):
        assert viewer.get(route.format(ids["TLP:RED"])).status_code == 404
    folder = Path(site.server.data_dir) / "evidence" / os.urandom(4).hex()
    folder.mkdir()
    (folder / "capture.pcap").write_bytes(unique("case"))
    bulk = admin.post("/task/bulk", data={"filepath": str(folder), "classification": "TLP:RED"})
    assert bulk.status_code == 200, bulk.text
    case_id = bulk.headers["X-Case-Id"]
    assert admin.get(f"/task/case/{case_id}").status_code == 200
    assert viewer.get(f"/task/case/{case_id}").status_code == 404
    [task_id] = [entry["task_id"] for entry in bulk.json().values()]
    assert viewer.get(f"/task/case/{task_id}").status_code == 404


def test_an_account_task_is_marked_before_it_has_a_submission(site: Site) -> None:
    fields = {"service": "smartthings", "access_token": "not-a-real-token", "classification": "TLP:RED"}
    task_id = site["admin"].post("/task/request/account", data=fields).json()["task_id"]
    assert site["admin"].get(f"/task/status/{task_id}").status_code == 200
    hidden = site["green"].get(f"/task/status/{task_id}")
    assert hidden.status_code == 404 and error_of(hidden) == f"no such task: {task_id}"
