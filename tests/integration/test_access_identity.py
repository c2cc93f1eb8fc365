"""Who may call, through a live server: sessions and XSRF, logout, API-key ACL, expiry and revocation,
disabled users, roles, user management, and the ``assay user`` command; on SQLite and PostgreSQL.

Every change is made over HTTP by the admin and must hold from the very next request: nothing
that authenticates may be cached past it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.helpers.servers import Server, assay_env, database_env, free_port, run_assay, running_server


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.services)])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    extra = {"ASSAY_QUEUE_WORKERS": "0", "ASSAY_CLASSIFICATION_GROUPS": "ALPHA,BETA"}
    with running_server(tmp_path_factory.mktemp(request.param), request.param, extra) as server:
        yield server


def admin(server: Server) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers=server.headers, timeout=30)


def add_user(server: Server, name: str, role: str, **fields: object) -> None:
    with admin(server) as client:
        added = client.put(f"/api/v4/user/{name}/", json={"type": [role], **fields})
    assert added.status_code == 200, added.text


def add_key(server: Server, user: str, acl: str = "RWE", expiry: datetime | None = None, name: str = "k") -> str:
    body = {"key_name": name, "uname": user, "priv": list(acl), "expiry_ts": expiry.isoformat() if expiry else None}
    with admin(server) as client:
        added = client.put("/api/v4/apikey/add/", json=body)
    assert added.status_code == 200, added.text
    return str(added.json()["api_response"]["keypassword"])


def as_key(server: Server, user: str, key: str) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers={"X-USER": user, "X-APIKEY": key}, timeout=30)


@contextmanager
def logged_in(server: Server, user: str, key: str) -> Iterator[httpx.Client]:
    """A browser-like client: a session cookie after login, and no X-USER/X-APIKEY headers."""
    with httpx.Client(base_url=server.url, timeout=30) as client:
        login = client.post("/api/v4/auth/login/", json={"user": user, "apikey": key})
        assert login.status_code == 200, login.text
        yield client


def ingest(client: httpx.Client, headers: dict[str, str] | None = None) -> httpx.Response:
    data = f"access test {time.time_ns()} {os.urandom(8).hex()}".encode()
    files = {"json": (None, json.dumps({"name": "a.txt"})), "bin": ("a.txt", data)}
    return client.post("/api/v4/ingest/", files=files, headers=headers)


def error(response: httpx.Response) -> str:
    return str(response.json()["api_error_message"])


def test_a_cookie_request_that_changes_something_needs_the_xsrf_header(server: Server) -> None:
    add_user(server, "xsrf1", "submitter")
    with logged_in(server, "xsrf1", add_key(server, "xsrf1")) as web:
        cookies = web.cookies.jar
        session, xsrf = web.cookies["session"], web.cookies["XSRF-TOKEN"]
        forged = ingest(web, {"Origin": "https://elsewhere.example"})
        assert forged.status_code == 403 and "X-XSRF-TOKEN" in error(forged)
        assert ingest(web, {"X-XSRF-TOKEN": "0" * 64}).status_code == 403
        assert ingest(web, {"X-XSRF-TOKEN": xsrf}).status_code == 200
        assert web.get("/api/v4/heuristics/").status_code == 200  # reading needs no token
    assert session and len(list(cookies)) == 2


def test_session_cookies_are_httponly_strict_and_the_xsrf_cookie_readable(server: Server) -> None:
    login = httpx.post(f"{server.url}/api/v4/auth/login/", json={"user": "admin", "apikey": server.apikey})
    found = {line.split("=", 1)[0]: line.lower() for line in login.headers.get_list("set-cookie")}
    assert "httponly" in found["session"] and "samesite=strict" in found["session"]
    assert "httponly" not in found["XSRF-TOKEN"] and "samesite=strict" in found["XSRF-TOKEN"]
    assert "secure" not in found["session"]  # plain HTTP: see the TLS test for Secure


def test_logout_ends_the_session_on_the_server_at_once(server: Server) -> None:
    with logged_in(server, "admin", server.apikey) as web:
        token = web.cookies["session"]
        assert web.get("/api/v4/heuristics/").status_code == 200
        assert web.get("/api/v4/auth/logout/").status_code == 200
    replayed = httpx.get(f"{server.url}/api/v4/heuristics/", cookies={"session": token})
    assert replayed.status_code == 401 and error(replayed) == "Session not found"


def test_a_revoked_key_and_its_sessions_are_refused_on_the_next_request(server: Server) -> None:
    add_user(server, "revoked1", "submitter")
    key = add_key(server, "revoked1")
    with as_key(server, "revoked1", key) as caller, logged_in(server, "revoked1", key) as web:
        assert caller.get("/api/v4/heuristics/").status_code == 200
        assert web.get("/api/v4/heuristics/").status_code == 200
        with admin(server) as client:
            assert client.delete("/api/v4/apikey/k+revoked1/").status_code == 200
            assert client.delete("/api/v4/apikey/k+revoked1/").status_code == 404
        assert caller.get("/api/v4/heuristics/").status_code == 401
        assert web.get("/api/v4/heuristics/").status_code == 401


def test_a_read_only_key_reads_but_cannot_submit_even_through_a_session(server: Server) -> None:
    add_user(server, "reader1", "submitter")
    key = add_key(server, "reader1", "R")
    with as_key(server, "reader1", key) as caller:
        assert caller.get("/api/v4/heuristics/").status_code == 200
        refused = ingest(caller)
        assert refused.status_code == 403 and "ACL R" in error(refused)
    with logged_in(server, "reader1", key) as web:
        assert ingest(web, {"X-XSRF-TOKEN": web.cookies["XSRF-TOKEN"]}).status_code == 403
    with as_key(server, "reader1", add_key(server, "reader1", "RW", name="rw")) as caller:
        assert ingest(caller).status_code == 200


def test_an_expired_key_is_refused(server: Server) -> None:
    add_user(server, "expiry1", "viewer")
    key = add_key(server, "expiry1", "R", expiry=datetime.now(UTC) + timedelta(seconds=2))
    with as_key(server, "expiry1", key) as caller:
        assert caller.get("/api/v4/heuristics/").status_code == 200
        time.sleep(2.5)
        expired = caller.get("/api/v4/heuristics/")
    assert expired.status_code == 401 and "expired" in error(expired)
    with admin(server) as client:
        past = {"key_name": "old", "uname": "expiry1", "priv": ["R"], "expiry_ts": "2001-01-01T00:00:00Z"}
        assert client.put("/api/v4/apikey/add/", json=past).status_code == 400


def test_a_disabled_user_is_refused_until_enabled_again(server: Server) -> None:
    add_user(server, "disabled1", "submitter")
    key = add_key(server, "disabled1")
    with as_key(server, "disabled1", key) as caller, logged_in(server, "disabled1", key) as web, admin(server) as boss:
        assert caller.get("/api/v4/heuristics/").status_code == 200
        assert boss.post("/api/v4/user/disabled1/", json={"is_active": False}).status_code == 200
        refused = caller.get("/api/v4/heuristics/")
        assert refused.status_code == 403 and "disabled" in error(refused)
        assert web.get("/api/v4/heuristics/").status_code == 401  # disabling ended the session
        login = httpx.post(f"{server.url}/api/v4/auth/login/", json={"user": "disabled1", "apikey": key})
        assert login.status_code == 403 and "disabled" in error(login)
        assert boss.post("/api/v4/user/disabled1/", json={"is_active": True}).status_code == 200
        assert caller.get("/api/v4/heuristics/").status_code == 200


def test_a_viewer_cannot_ingest_a_submitter_can_and_a_role_change_holds_at_once(server: Server) -> None:
    add_user(server, "viewer1", "viewer")
    add_user(server, "submitter1", "submitter")
    with as_key(server, "viewer1", add_key(server, "viewer1")) as viewer:
        refused = ingest(viewer)
        assert refused.status_code == 403 and "submit" in error(refused)
        assert viewer.get("/api/v4/heuristics/").status_code == 200
        with as_key(server, "submitter1", add_key(server, "submitter1")) as submitter:
            assert ingest(submitter).status_code == 200
        with admin(server) as client:
            assert client.post("/api/v4/user/viewer1/", json={"type": ["submitter"]}).status_code == 200
        assert ingest(viewer).status_code == 200


def test_a_submitter_deletes_only_its_own_submissions_and_an_admin_anyone_s(server: Server) -> None:
    add_user(server, "owner1", "submitter")
    add_user(server, "other1", "submitter")
    with as_key(server, "owner1", add_key(server, "owner1")) as owner, admin(server) as boss:
        with as_key(server, "other1", add_key(server, "other1")) as other:
            mine, theirs = submit(owner), submit(owner)
            refused = other.delete(f"/api/v4/submission/{mine}/")
            assert refused.status_code == 403 and "owner1" in error(refused)
        assert owner.delete(f"/api/v4/submission/{mine}/").status_code == 200
        assert boss.delete(f"/api/v4/submission/{theirs}/").status_code == 200
        assert owner.get(f"/api/v4/submission/{theirs}/").status_code == 404


def submit(client: httpx.Client) -> str:
    data = f"delete test {time.time_ns()} {os.urandom(8).hex()}".encode()
    files = {"json": (None, json.dumps({"name": "d.txt"})), "bin": ("d.txt", data)}
    saved = client.post("/api/v4/submit/", files=files)
    assert saved.status_code == 200, saved.text
    return str(saved.json()["api_response"]["sid"])


def test_only_admins_manage_users_and_keys(server: Server) -> None:
    for role in ("viewer", "submitter", "intel_writer"):
        add_user(server, f"{role}-2", role)
        with as_key(server, f"{role}-2", add_key(server, f"{role}-2")) as caller:
            me = caller.get("/api/v4/user/whoami/").json()["api_response"]
            assert me["username"] == f"{role}-2" and me["type"] == [role] and not me["is_admin"]
            for method, path in [
                ("GET", "/api/v4/user/list/"),
                ("PUT", "/api/v4/user/intruder/"),
                ("POST", f"/api/v4/user/{role}-2/"),
                ("DELETE", "/api/v4/user/admin/"),
                ("PUT", "/api/v4/apikey/add/"),
                ("GET", f"/api/v4/apikey/username/{role}-2/"),
            ]:
                refused = caller.request(method, path, json={"type": ["admin"], "key_name": "x", "priv": ["R"]})
                assert refused.status_code == 403, (role, method, path)


def test_an_admin_adds_reads_changes_and_deletes_a_user_with_validated_clearance(server: Server) -> None:
    with admin(server) as client:
        add_user(server, "analyst1", "viewer", classification="TLP:A", groups=["alpha"], new_pass="long enough pw")
        record = client.get("/api/v4/user/analyst1/").json()["api_response"]
        assert (record["classification"], record["groups"], record["type"]) == ("TLP:AMBER", ["ALPHA"], ["viewer"])
        bad = client.put("/api/v4/user/analyst2/", json={"type": ["viewer"], "classification": "TLP:PURPLE"})
        assert bad.status_code == 400 and "TLP:AMBER" in error(bad) and "accepted levels" in error(bad)
        assert client.put("/api/v4/user/analyst2/", json={"type": ["viewer"], "groups": ["GAMMA"]}).status_code == 400
        assert client.put("/api/v4/user/analyst1/", json={"type": ["viewer"]}).status_code == 400  # exists
        changed = client.post("/api/v4/user/analyst1/", json={"classification": "TLP:RED", "groups": ["BETA"]})
        assert changed.json()["api_response"]["user"]["groups"] == ["BETA"]
        with as_key(server, "analyst1", add_key(server, "analyst1", "R")) as analyst:
            me = analyst.get("/api/v4/user/whoami/").json()["api_response"]
            assert (me["classification"], me["groups"], me["acl"]) == ("TLP:RED", ["BETA"], "R")
        keys = client.get("/api/v4/apikey/username/analyst1/").json()["api_response"]
        assert [(k["id"], k["acl"]) for k in keys] == [("k+analyst1", ["R"])] and "keypassword" not in keys[0]
        listed = client.get("/api/v4/user/list/", params={"rows": 1000}).json()["api_response"]
        assert "analyst1" in {item["uname"] for item in listed["items"]}
        assert client.delete("/api/v4/user/analyst1/").status_code == 200
        assert client.get("/api/v4/user/analyst1/").status_code == 404
        assert client.delete("/api/v4/user/admin/").status_code == 400  # not oneself


def test_password_login_works_and_its_session_has_the_whole_role(server: Server) -> None:
    add_user(server, "pw1", "submitter", new_pass="correct horse battery")
    web = httpx.Client(base_url=server.url, timeout=30)
    with web:
        assert web.post("/api/v4/auth/login/", json={"user": "pw1", "password": "wrong one!"}).status_code == 401
        assert web.post("/api/v4/auth/login/", json={"user": "pw1", "password": "correct horse battery"}).is_success
        assert ingest(web, {"X-XSRF-TOKEN": web.cookies["XSRF-TOKEN"]}).status_code == 200


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.services)])
def test_the_user_add_command_takes_role_clearance_and_groups(backend: str, tmp_path: Path) -> None:
    with database_env(backend, {"ASSAY_CLASSIFICATION_GROUPS": "G"}) as extra:
        env = assay_env(tmp_path / "data", extra)
        add = ["user", "add", "amber1", "--role", "viewer", "--classification", "TLP:AMBER", "--group", "G"]
        added = run_assay(add, env)
        assert added.returncode == 0, added.stderr
        assert "amber1\tviewer\tTLP:AMBER\tG" in run_assay(["user", "list"], env).stdout
        bad = run_assay(["user", "add", "bad1", "--role", "viewer", "--classification", "TLP:PURPLE"], env)
        assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
        assert "unknown classification" in bad.stderr and "TLP:AMBER" in bad.stderr
        assert "bad1" not in run_assay(["user", "list"], env).stdout


def test_session_cookies_are_secure_under_tls(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    openssl = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"]
    subprocess.run([*openssl, "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    port, data = free_port(), tmp_path / "data"
    args = ["serve", "--port", str(port), "--workers", "0", "--tls-cert", str(cert), "--tls-key", str(key)]
    process = subprocess.Popen([sys.executable, "-m", "assay", *args], env=assay_env(data), stdout=subprocess.DEVNULL)
    try:
        url, deadline = f"https://127.0.0.1:{port}", time.monotonic() + 60
        while not (data / "admin.apikey").exists() or not _answers(url):
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.2)
        apikey = (data / "admin.apikey").read_text().strip()
        login = httpx.post(f"{url}/api/v4/auth/login/", json={"user": "admin", "apikey": apikey}, verify=False)
        assert all("secure" in line.lower() for line in login.headers.get_list("set-cookie"))
    finally:
        process.terminate()
        process.wait(20)


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/api/", verify=False).status_code == 200
    except httpx.TransportError:
        return False
