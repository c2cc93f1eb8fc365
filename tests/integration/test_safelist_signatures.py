"""Safelist and YARA rule sets, managed through the API and the CLI, change what analysis finds."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

from tests.helpers.servers import Server, ingest_bytes, run_assay, wait_for_messages


def analyse(server: Server, data: bytes, queue: str, **params: object) -> dict:
    with server.client() as client:
        ingest_bytes(client, data, "sample.txt", notification_queue=queue, params=params)
        [message] = wait_for_messages(client, queue, 1)
        sid = message["submission"]["sid"]
        return {
            "message": message,
            "record": client.get(f"/api/v4/submission/{sid}/").json()["api_response"],
            "summary": client.get(f"/api/v4/submission/summary/{sid}/").json()["api_response"],
        }


def test_a_safelisted_file_is_not_analysed_further_and_scores_safe(embedded_server: Server) -> None:
    data = b"known good build artefact " + os.urandom(16)
    sha1 = hashlib.sha1(data).hexdigest()
    with embedded_server.client() as client:
        added = client.put(
            "/api/v4/safelist/",
            json={"type": "file", "hashes": {"sha1": sha1}, "sources": [{"name": "build", "reason": ["ours"]}]},
        )
        assert added.status_code == 200 and added.json()["api_response"]["added"] == 1
        checked = client.get(f"/api/v4/safelist/check/{sha1}/").json()["api_response"]
        assert checked["source"] == "build"
    found = analyse(embedded_server, data, "safe-q")
    record = found["record"]
    assert record["max_score"] < 0 and record["score_verdict"] == "safe"
    services = {key.split(".")[1] for key in record["results"]}
    assert services == {"Identify", "Digests", "Safelist"}


def test_safelisted_domains_are_not_tagged(embedded_server: Server) -> None:
    text = f"beacon http://cdn.trusted-example.com/a and http://evil-{os.urandom(3).hex()}.com/b\n".encode()
    with embedded_server.client() as client:
        assert (
            client.put(
                "/api/v4/safelist/",
                json={"type": "tag", "tag": {"type": "network.static.domain", "value": "trusted-example.com"}},
            ).status_code
            == 200
        )
    time.sleep(2.1)  # workers re-read the network safelist every 2 s
    tags = analyse(embedded_server, text, "dom-q")["summary"]["tags"]
    domains = tags.get("network.static.domain", [])
    assert any(d.startswith("evil-") for d in domains)
    assert not any("trusted-example.com" in value for values in tags.values() for value in values)


def test_bad_safelist_requests_are_400(embedded_server: Server) -> None:
    with embedded_server.client() as client:
        for body in ({"type": "file", "hashes": {"md5": "xyz"}}, {"type": "tag"}, {"type": "other"}, [1]):
            response = client.put("/api/v4/safelist/", json=body)
            assert response.status_code == 400 and response.json()["api_error_message"]
        assert client.delete(f"/api/v4/safelist/{'0' * 64}/").status_code == 404


def test_safelist_cli_imports_an_nsrl_style_csv(embedded_server: Server, tmp_path: Path) -> None:
    payloads = [os.urandom(40) for _ in range(3)]
    rows = ['"SHA-1","MD5","CRC32","FileName","FileSize","ProductCode","OpSystemCode","SpecialCode"']
    for index, data in enumerate(payloads):
        rows.append(
            f'"{hashlib.sha1(data).hexdigest().upper()}","{hashlib.md5(data).hexdigest().upper()}","0",'
            f'"f{index}.dll","{len(data)}","1","2",""'
        )
    csv_file = tmp_path / "nsrl.csv"
    csv_file.write_text("\n".join(rows) + "\n")
    imported = run_assay(["safelist", "import", str(csv_file), "--source", "NSRL"], embedded_server.env)
    assert imported.returncode == 0, imported.stderr
    assert "imported 6 new hashes" in imported.stdout
    again = run_assay(["safelist", "import", str(csv_file)], embedded_server.env)
    assert "imported 0 new hashes" in again.stdout
    assert analyse(embedded_server, payloads[1], "nsrl-q")["record"]["score_verdict"] == "safe"
    listed = run_assay(["safelist", "list", "--kind", "md5"], embedded_server.env).stdout
    assert hashlib.md5(payloads[0]).hexdigest() in listed
    bad = run_assay(["safelist", "add", "not-a-hash", "--kind", "sha256"], embedded_server.env)
    assert bad.returncode == 2 and "not an sha256" in bad.stderr


RULE = """rule assay_test_marker_{suffix} {{
  meta:
    score = 700
    description = "marker for the test"
  strings:
    $m = "ASSAY-TEST-MARKER-{suffix}"
  condition:
    $m
}}
"""


def test_yara_rule_sets_are_added_used_and_removed_without_restart(embedded_server: Server) -> None:
    suffix = os.urandom(3).hex()
    data = f"prefix ASSAY-TEST-MARKER-{suffix} suffix\n".encode()
    with embedded_server.client() as client:
        refused = client.put("/api/v4/signature/yara/broken/", json={"source": "rule { nope"})
        assert refused.status_code == 400 and "refused" in refused.json()["api_error_message"]
        saved = client.put(f"/api/v4/signature/yara/marker{suffix}/", json={"source": RULE.format(suffix=suffix)})
        assert saved.status_code == 200, saved.text
        names = [s["name"] for s in client.get("/api/v4/signature/yara/").json()["api_response"]]
        assert f"marker{suffix}" in names
    time.sleep(2.1)  # the workers' view of the rules directory refreshes every 2 s
    hit = analyse(embedded_server, data, "yara-q")
    assert hit["record"]["max_score"] >= 700
    assert f"marker{suffix}.assay_test_marker_{suffix}" in hit["summary"]["tags"]["file.rule.yara"]
    with embedded_server.client() as client:
        assert client.delete(f"/api/v4/signature/yara/marker{suffix}/").status_code == 200
    time.sleep(2.1)
    # A fresh submission of the same bytes: the cached YARA result was keyed on the old rules.
    with embedded_server.client() as client:
        sid = client.post("/api/v4/submit/", files={"json": (None, "{}"), "bin": ("again.txt", data)}).json()[
            "api_response"
        ]["sid"]
        deadline = time.monotonic() + 60
        while not client.get(f"/api/v4/submission/is_completed/{sid}/").json()["api_response"]:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        record = client.get(f"/api/v4/submission/{sid}/").json()["api_response"]
    assert record["max_score"] < 700
    assert set(record["results"]) != set(hit["record"]["results"])


def test_yara_cli(embedded_server: Server, tmp_path: Path) -> None:
    rules = tmp_path / "cli.yar"
    rules.write_text(RULE.format(suffix="cli"))
    assert run_assay(["yara", "add", "clirules", str(rules)], embedded_server.env).returncode == 0
    assert "clirules" in run_assay(["yara", "list"], embedded_server.env).stdout
    assert run_assay(["yara", "remove", "clirules"], embedded_server.env).returncode == 0
    missing = run_assay(["yara", "remove", "clirules"], embedded_server.env)
    assert missing.returncode == 2 and "no YARA rule set" in missing.stderr
    broken = tmp_path / "broken.yar"
    broken.write_text("rule {")
    refused = run_assay(["yara", "add", "broken", str(broken)], embedded_server.env)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
