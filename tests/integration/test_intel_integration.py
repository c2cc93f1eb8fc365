"""Intel on the platform: publication of analysis results, the batch API, browsing, the CLI."""

from __future__ import annotations

import io
import json
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from assay.config import Settings
from assay.db.models import Submission
from assay.db.session import dispose_all, get_engine, session_scope
from assay.execution.worker import Worker
from assay.filestore import FileStore
from assay.intel import batch_queue
from assay.intel.models import Batch, FileOccurrence, Group, GroupIndicator, Indicator
from tests.helpers.servers import Server, drop_pg, local_settings, new_pg_url, run_assay, submit_file, work_once

EICAR = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
NOTE = b"stage two from http://payload.badhost-example.com/s2.bin and mail ops@badhost-example.com\n"


@pytest.fixture
def local(tmp_path: Path) -> Iterator[tuple[Settings, Worker]]:
    settings = local_settings(tmp_path, {"ASSAY_INTEL_OWNER": "Sensors"})
    worker = Worker(settings, "intel-worker")
    yield settings, worker
    worker.close()


def bundle() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("drop/eicar.com", EICAR)
        archive.writestr("drop/note.txt", NOTE)
    return buffer.getvalue()


def submit_bundle(settings: Settings) -> str:
    metadata = {"file_path": "C:\\Users\\a\\Downloads\\bundle.zip"}
    return submit_file(settings, bundle(), "bundle.zip", metadata)[0]


def store_counts(engine) -> tuple[int, ...]:
    with session_scope(engine) as session:
        return tuple(
            session.scalar(select(func.count()).select_from(table))
            for table in (Indicator, Group, GroupIndicator, FileOccurrence)
        )


def test_a_completed_submission_is_published_once(local: tuple[Settings, Worker]) -> None:
    settings, worker = local
    engine = get_engine(settings.database_url)
    sid = submit_bundle(settings)
    worker.take(1)
    with session_scope(engine) as session:
        assert not session.get(Submission, sid).published  # a busy round analyses only
    assert worker.take(1) == 0  # an idle round publishes
    with session_scope(engine) as session:
        assert session.get(Submission, sid).published
        indicators = {(i.type, i.summary) for i in session.scalars(select(Indicator))}
        groups = {(g.type, g.xid): g for g in session.scalars(select(Group))}
        occurrences = session.scalars(select(FileOccurrence)).all()
    assert ("Host", "payload.badhost-example.com") in indicators
    assert ("URL", "http://payload.badhost-example.com/s2.bin") in indicators
    assert ("EmailAddress", "ops@badhost-example.com") in indicators
    files = [summary for kind, summary in indicators if kind == "File"]
    assert len(files) == 3 and all(summary.count(" : ") == 2 for summary in files)
    assert ("Report", f"assay-submission-{sid}") in groups
    signatures = [g for (kind, _), g in groups.items() if kind == "Signature"]
    assert signatures and "EICAR" in signatures[0].fields.get("fileText", "").upper()
    paths = {o.path for o in occurrences}
    assert "C:\\Users\\a\\Downloads\\bundle.zip" in paths
    assert {o.file_name for o in occurrences} >= {"bundle.zip", "drop/eicar.com"}
    before = store_counts(engine)
    with session_scope(engine) as session:
        session.get(Submission, sid).published = False
    worker.publisher.publish([sid])
    assert store_counts(engine) == before


def test_a_busy_worker_publishes_what_has_waited_too_long(tmp_path: Path) -> None:
    settings = local_settings(tmp_path, {"ASSAY_INTEL_PUBLISH_MAX_DELAY": "0"})
    engine = get_engine(settings.database_url)
    sid = submit_bundle(settings)
    assert work_once(settings, "busy-worker") == 1
    with session_scope(engine) as session:
        assert session.get(Submission, sid).published


def test_publication_rule_threshold_and_switch(tmp_path: Path) -> None:
    settings = local_settings(
        tmp_path, {"ASSAY_INTEL_MIN_SCORE": "1000", "ASSAY_INTEL_TAG_TYPES": "", "ASSAY_INTEL_PUBLISH_MAX_DELAY": "0"}
    )
    submit_bundle(settings)
    work_once(settings, "threshold-worker")
    with session_scope(get_engine(settings.database_url)) as session:
        files = session.scalars(select(Indicator).where(Indicator.type == "File")).all()
    assert len(files) == 1 and files[0].rating == 5 and files[0].confidence == 100


def wait_batch(client, batch_id: int) -> dict:
    deadline = time.monotonic() + 60
    while True:
        status = client.get(f"/api/v4/intel/batch/{batch_id}/").json()["api_response"]
        if status["status"] == "Completed":
            return status
        assert time.monotonic() < deadline, status
        time.sleep(0.2)


def test_v2_batch_over_http_runs_in_a_worker(embedded_server: Server) -> None:
    with embedded_server.client() as client:
        refused = client.post("/api/v4/intel/batch/", json={"owner": "Org", "action": "Explode"})
        assert refused.status_code == 400 and "action" in refused.json()["api_error_message"]
        made = client.post("/api/v4/intel/batch/", json={"owner": "Org", "haltOnError": False})
        batch_id = made.json()["api_response"]["data"]["batchId"]
        assert client.get(f"/api/v4/intel/batch/{batch_id}/").json()["api_response"]["status"] == "Created"
        document = {
            "group": [{"name": "Crimeware Wave", "type": "Campaign", "xid": "camp-1"}],
            "indicator": [
                {
                    "summary": "203.0.113.7",
                    "type": "Address",
                    "rating": 3,
                    "confidence": 60,
                    "associatedGroups": [{"groupXid": "camp-1"}],
                },
                {"summary": "bad.example.org", "type": "Host", "rating": 9},
            ],
        }
        uploaded = client.post(f"/api/v4/intel/batch/{batch_id}/", content=json.dumps(document))
        assert uploaded.status_code == 200
        again = client.post(f"/api/v4/intel/batch/{batch_id}/", content=b"{}")
        assert again.status_code == 409
        status = wait_batch(client, batch_id)
        assert status["successCount"] >= 2 and status["errorCount"] == 1 and status["exitCode"] == 3
        errors = client.get(f"/api/v4/intel/batch/{batch_id}/errors/").json()["api_response"]
        assert errors[0]["errorCode"] == "0x1005" and "bad.example.org" in errors[0]["errorSource"]
        found = client.get("/api/v4/intel/indicators/", params={"owner": "Org", "q": "203.0.113"}).json()
        [item] = found["api_response"]["items"]
        detail = client.get(f"/api/v4/intel/indicators/{item['id']}/").json()["api_response"]
        assert [g["name"] for g in detail["groups"]] == ["Crimeware Wave"]
        assert client.get("/api/v4/intel/batch/999999/").status_code == 404
        assert client.get("/api/v4/intel/indicators/999999/").status_code == 404


def test_published_indicator_points_back_to_its_submission(embedded_server: Server) -> None:
    from tests.helpers.servers import ingest_bytes, wait_for_messages

    with embedded_server.client() as client:
        ingest_bytes(
            client,
            bundle() + b"",
            "bundle.zip",
            notification_queue="intel-q",
            metadata={"file_path": "/srv/in/bundle.zip"},
        )
        [message] = wait_for_messages(client, "intel-q", 1)
        sid = message["submission"]["sid"]
        deadline = time.monotonic() + 60
        while True:
            found = client.get(
                "/api/v4/intel/indicators/", params={"q": "payload.badhost-example.com", "type": "Host"}
            ).json()["api_response"]
            if found["items"]:
                break
            assert time.monotonic() < deadline
            time.sleep(0.3)
        detail = client.get(f"/api/v4/intel/indicators/{found['items'][0]['id']}/").json()["api_response"]
        assert sid in detail["submissions"]
        reports = client.get("/api/v4/intel/groups/", params={"type": "Report", "q": sid}).json()["api_response"]
        assert reports["total"] == 1


def test_cli_processes_tcex_structures_and_exits_with_the_job_code(tmp_path: Path) -> None:
    from tests.helpers.servers import assay_env

    env = assay_env(tmp_path / "data")
    document = {
        "group": [
            {
                "attribute": [{"type": "Description", "value": "Test Description"}],
                "name": "Robin Sparkles",
                "tag": ["APT", "Crimeware"],
                "type": "Adversary",
            }
        ],
        "indicator": [
            {
                "attribute": [{"type": "Description", "value": "x"}],
                "confidence": 5,
                "rating": "3",
                "summary": "1.1.1.1",
                "tag": [{"name": "APT"}, {"name": "Crimeware"}],
                "type": "Address",
            }
        ],
        "group_association": [
            {
                "group_name": "Robin Sparkles",
                "group_type": "Adversary",
                "indicator": "1.1.1.1",
                "indicator_type": "Address",
            }
        ],
        "file_occurrence": [
            {
                "date": "2014-11-03T00:00:00-05:00",
                "fileName": "win999301.dll",
                "hash": "BE7DE2F0CF48294400C714C9E28ECD01",
                "path": "C:\\Windows\\System",
            }
        ],
        "association": [],
    }
    document["indicator"].append({"summary": "BE7DE2F0CF48294400C714C9E28ECD01", "type": "File", "rating": 2})
    path = tmp_path / "job.json"
    path.write_text(json.dumps(document))
    done = run_assay(["intel", "process", str(path), "--owner", "Example Org"], env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "exit code 0" in done.stdout
    document["indicator"].append({"summary": "2.2.2.2", "type": "Address", "confidence": 101})
    path.write_text(json.dumps(document))
    partial = run_assay(["intel", "process", str(path), "--owner", "Example Org"], env)
    assert partial.returncode == 3 and "0x1005" in partial.stderr
    path.write_text("[1, 2]")
    broken = run_assay(["intel", "process", str(path), "--owner", "Example Org"], env)
    assert broken.returncode == 2 and "Traceback" not in broken.stderr


def test_cli_exports_stix_and_misp_and_imports_a_bundle(tmp_path: Path) -> None:
    import stix2
    from pymisp import MISPEvent

    from tests.helpers.servers import assay_env

    env = assay_env(tmp_path / "data")
    document = {
        "group": [{"name": "Wave", "type": "Campaign", "xid": "wave-1"}],
        "indicator": [
            {"summary": "198.51.100.4", "type": "Address", "rating": 4, "associatedGroups": [{"groupXid": "wave-1"}]},
            {"summary": "evil.example.net", "type": "Host", "rating": 2},
        ],
    }
    job = tmp_path / "job.json"
    job.write_text(json.dumps(document))
    assert run_assay(["intel", "process", str(job), "--owner", "Org"], env).returncode == 0
    stix_file = tmp_path / "org.stix.json"
    exported = run_assay(["intel", "export", "--owner", "Org", "--format", "stix", "--out", str(stix_file)], env)
    assert exported.returncode == 0, exported.stderr
    bundle = stix2.parse(stix_file.read_text(), allow_custom=True)
    patterns = {o.pattern for o in bundle.objects if o.type == "indicator"}
    assert "[ipv4-addr:value = '198.51.100.4']" in patterns
    again = run_assay(["intel", "export", "--owner", "Org", "--format", "stix"], env)
    assert again.stdout.strip() == stix_file.read_text().strip()
    misp = run_assay(["intel", "export", "--owner", "Org", "--format", "misp", "--group", "wave-1"], env)
    event = MISPEvent()
    event.load(misp.stdout)
    assert "198.51.100.4" in {a.value for a in event.attributes}
    imported = run_assay(["intel", "import", str(stix_file), "--owner", "Copy"], env)
    assert imported.returncode == 0, imported.stdout + imported.stderr
    missing = run_assay(["intel", "export", "--owner", "Nobody"], env)
    assert missing.returncode == 2 and "Traceback" not in missing.stderr


@pytest.mark.services
def test_a_batch_quoting_nul_characters_completes_on_postgresql(tmp_path: Path) -> None:
    pg_name, url = new_pg_url()
    try:
        settings = local_settings(tmp_path, {"ASSAY_DATABASE_URL": url})
        engine = get_engine(settings.database_url)
        document = {
            "group": [{"name": "Wave\x00", "type": "Campaign"}],
            "indicator": [{"summary": "t\x00", "type": "Host"}],
        }
        stored = FileStore(settings.storage_path).put_bytes(json.dumps(document).encode())
        with session_scope(engine) as session:
            batch_id = batch_queue.create(session, "admin", {"owner": "Org", "haltOnError": False}).id
            batch_queue.upload(session, batch_id, "admin", stored.sha256)
        assert batch_queue.claim(engine, "nul-worker", 60) == batch_id
        batch_queue.run(engine, FileStore(settings.storage_path), batch_id, "nul-worker")
        with session_scope(engine, readonly=True) as session:
            batch = session.get(Batch, batch_id)
            assert batch is not None and batch.state == "Completed"  # its errors quote the items, NUL and all
            errors = batch_queue.errors(batch)
        assert len(errors) == 2 and all("NUL" in e["errorReason"] for e in errors)
    finally:
        dispose_all()
        drop_pg(pg_name)
