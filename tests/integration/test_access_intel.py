"""Intel access: who may write which owner's intel, and who may read (or export) which labelled item.

Over SQLite and PostgreSQL, in process: the API app (FastAPI's TestClient), a worker of this
process running the batches and publishing the submissions, and the exporters.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import stix2
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from assay import users
from assay.access import Clearance
from assay.access.configured import engine_for
from assay.access.visibility import Reader
from assay.api.app import create_app
from assay.config import Settings
from assay.db.models import Submission
from assay.db.session import get_engine, session_scope
from assay.execution.worker import Worker
from assay.intel import Job, exchange, owners, store
from assay.intel.models import Group, Indicator, Owner
from tests.helpers.servers import assay_env, local_settings, run_assay, submit_file

PLATFORM = "Assay"
RED_NOTE = b"exfil to http://red-only.badhost-example.com/x and http://shared.badhost-example.com/y\n"
GREEN_NOTE = b"beacon to http://shared.badhost-example.com/y\n"
RED_HOST, SHARED_HOST = "red-only.badhost-example.com", "shared.badhost-example.com"
RED_GREEN = ["TLP:GREEN", "TLP:RED"]
ROLES = {
    "root": ("admin", "TLP:RED"),
    "alice": ("intel_writer", "TLP:RED"),  # a member of Alpha
    "mallory": ("intel_writer", "TLP:RED"),  # a member of nothing
    "sam": ("submitter", "TLP:RED"),
    "greta": ("viewer", "TLP:GREEN"),
    "rita": ("viewer", "TLP:RED"),
}


@dataclass
class Platform:
    settings: Settings
    engine: Engine
    client: TestClient
    keys: dict[str, dict[str, str]]
    worker: Worker

    def call(self, who: str, method: str, url: str, **kwargs: Any) -> Any:
        return self.client.request(method, url, headers=self.keys[who], **kwargs)

    def batch(self, who: str, settings: dict[str, Any], document: dict[str, Any]) -> dict[str, Any]:
        """Create, upload and run a batch as `who`; its status and errors."""
        made = self.call(who, "POST", "/api/v4/intel/batch/", json=settings)
        assert made.status_code == 200, made.text
        batch_id = made.json()["api_response"]["batchId"]
        uploaded = self.call(who, "POST", f"/api/v4/intel/batch/{batch_id}/", content=json.dumps(document))
        assert uploaded.status_code == 200, uploaded.text
        assert self.worker.take(1) == 1  # no submission waits: the worker runs the batch
        status = self.call(who, "GET", f"/api/v4/intel/batch/{batch_id}/").json()["api_response"]
        errors = self.call(who, "GET", f"/api/v4/intel/batch/{batch_id}/errors/").json()["api_response"]
        return {"id": batch_id, **status, "errors": errors}

    def summaries(self, owner: str) -> set[str]:
        with session_scope(self.engine, readonly=True) as session:
            stmt = select(Indicator.summary).join(Owner, Owner.id == Indicator.owner_id).where(Owner.name == owner)
            return set(session.scalars(stmt))

    def reader(self, level: str) -> Reader:
        return Reader(engine_for(self.settings.classification), Clearance(level))


@pytest.fixture
def platform(tmp_path: Path, database_environ: dict[str, str]) -> Iterator[Platform]:
    settings = local_settings(tmp_path, {**database_environ, "ASSAY_INTEL_OWNER": PLATFORM})
    engine = get_engine(settings.database_url)
    marking = engine_for(settings.classification)
    keys = {}
    with session_scope(engine) as session:
        for name, (role, level) in ROLES.items():
            users.add_user(session, name, role, marking.clearance(level))
            keys[name] = {"X-USER": name, "X-APIKEY": users.create_apikey(session, name, "k")}
    with engine.begin() as conn:
        owners.add_member(conn, "Alpha", "alice", PLATFORM)
        store.ensure_owner(conn, "Beta")
    worker = Worker(settings, "access-worker")
    with TestClient(create_app(settings, migrate=False, publish=False)) as client:
        yield Platform(settings, engine, client, keys, worker)
    worker.close()


def _write_beta(platform: Platform) -> None:
    job = Job(owner="Beta", engine=platform.engine)
    job.indicator({"summary": "198.51.100.9", "type": "Address", "rating": 1})
    assert job.process().exit_code == 0


# -- who writes which owner ------------------------------------------------------------------------
def test_batches_of_an_owner_one_may_not_write_are_refused_with_the_reason(platform: Platform) -> None:
    refusals = {
        ("mallory", "Alpha"): "not a member of owner 'Alpha'",
        ("mallory", PLATFORM): "platform's own intel",
        ("alice", "Beta"): "not a member of owner 'Beta'",
        ("alice", PLATFORM.lower()): "platform's own intel",  # no look-alike either
        ("root", PLATFORM): "administrators included",
        ("sam", "Alpha"): "lacks the 'intel_write' permission",
        ("rita", "Alpha"): "lacks the 'intel_write' permission",
    }
    for (who, owner), reason in refusals.items():
        for action in ("Create", "Delete"):
            answer = platform.call(who, "POST", "/api/v4/intel/batch/", json={"owner": owner, "action": action})
            assert answer.status_code == 403, (who, owner, answer.text)
            assert reason in answer.json()["api_error_message"], (who, owner)
    assert platform.call("alice", "POST", "/api/v4/intel/batch/", json={"owner": "Alpha"}).status_code == 200
    assert platform.call("root", "POST", "/api/v4/intel/batch/", json={"owner": "Beta"}).status_code == 200


def test_items_of_other_owners_fail_alone_and_a_member_writes_its_own(platform: Platform) -> None:
    _write_beta(platform)
    document = {
        "indicator": [
            {"summary": "198.51.100.1", "type": "Address", "rating": 2},
            {"summary": "198.51.100.66", "type": "Address", "rating": 5, "tag": ["APT"], "ownerName": PLATFORM},
            {"summary": "198.51.100.2", "type": "Address", "ownerName": "Beta"},
        ]
    }
    status = platform.batch("alice", {"owner": "Alpha"}, document)
    assert (status["successCount"], status["errorCount"], status["exitCode"]) == (1, 2, 3), status
    reasons = sorted(e["errorReason"] for e in status["errors"])
    assert [e["errorCode"] for e in status["errors"]] == ["0x1002", "0x1002"]
    assert "not a member of owner 'Beta'" in reasons[1] and "platform's own intel" in reasons[0]
    assert platform.summaries("Alpha") == {"198.51.100.1"}
    assert platform.summaries(PLATFORM) == set() and platform.summaries("Beta") == {"198.51.100.9"}


def test_deletes_are_checked_per_item_owner(platform: Platform) -> None:
    _write_beta(platform)
    published = Job(owner=PLATFORM, engine=platform.engine)  # what the publisher wrote
    published.indicator({"summary": SHARED_HOST, "type": "Host", "rating": 4})
    assert published.process().exit_code == 0
    assert platform.batch("alice", {"owner": "Alpha"}, {"indicator": [{"summary": "203.0.113.5", "type": "Address"}]})
    document = {
        "indicator": [
            {"summary": "203.0.113.5", "type": "Address"},
            {"summary": SHARED_HOST, "type": "Host", "ownerName": PLATFORM},
            {"summary": "198.51.100.9", "type": "Address", "ownerName": "Beta"},
        ]
    }
    status = platform.batch("alice", {"owner": "Alpha", "action": "Delete"}, document)
    assert (status["successCount"], status["errorCount"]) == (1, 2), status
    assert {e["errorCode"] for e in status["errors"]} == {"0x1002"}
    assert platform.summaries("Alpha") == set()
    assert platform.summaries(PLATFORM) == {SHARED_HOST} and platform.summaries("Beta") == {"198.51.100.9"}
    forged = platform.call("mallory", "POST", "/api/v4/intel/batch/", json={"owner": PLATFORM, "action": "Delete"})
    assert forged.status_code == 403


def test_the_worker_checks_again_when_it_runs_the_batch(platform: Platform) -> None:
    made = platform.call("alice", "POST", "/api/v4/intel/batch/", json={"owner": "Alpha"}).json()["api_response"]
    document = json.dumps({"indicator": [{"summary": "192.0.2.10", "type": "Address"}]})
    url = f"/api/v4/intel/batch/{made['batchId']}/"
    assert platform.call("alice", "POST", url, content=document).status_code == 200
    with platform.engine.begin() as conn:
        assert owners.remove_member(conn, "Alpha", "alice")
    assert platform.worker.take(1) == 1
    errors = platform.call("alice", "GET", url + "errors/").json()["api_response"]
    assert [e["errorCode"] for e in errors] == ["0x1002"] and "not a member" in errors[0]["errorReason"]
    assert platform.summaries("Alpha") == set()


def test_a_batch_is_seen_by_its_submitter_and_administrators_only(platform: Platform) -> None:
    status = platform.batch("alice", {"owner": "Alpha"}, {"indicator": [{"summary": "192.0.2.1", "type": "Address"}]})
    url = f"/api/v4/intel/batch/{status['id']}/"
    assert platform.call("mallory", "GET", url).status_code == 404
    assert platform.call("mallory", "GET", url + "errors/").status_code == 404
    assert platform.call("root", "GET", url).json()["api_response"]["successCount"] == 1


def test_administrators_manage_members_over_http(platform: Platform) -> None:
    url = "/api/v4/intel/owners/members/"
    added = platform.call("root", "POST", url, json={"owner": "Beta", "user": "mallory"})
    assert added.status_code == 200 and added.json()["api_response"]["members"] == ["mallory"]
    assert platform.call("mallory", "POST", "/api/v4/intel/batch/", json={"owner": "Beta"}).status_code == 200
    listed = platform.call("root", "GET", url, params={"owner": "Alpha"}).json()["api_response"]
    assert listed["members"] == ["alice"]
    assert platform.call("root", "POST", url, json={"owner": PLATFORM, "user": "mallory"}).status_code == 400
    assert platform.call("root", "POST", url, json={"owner": "Beta", "user": "nobody"}).status_code == 404
    assert platform.call("root", "POST", url, json={"owner": "Beta\u0000", "user": "mallory"}).status_code == 400
    assert platform.call("root", "POST", url, json=["Beta"]).status_code == 400
    assert platform.call("root", "GET", url, params={"owner": "Nobody"}).status_code == 404
    assert platform.call("alice", "POST", url, json={"owner": "Alpha", "user": "mallory"}).status_code == 403
    removed = platform.call("root", "DELETE", url, params={"owner": "Beta", "user": "mallory"})
    assert removed.json()["api_response"] == {"owner": "Beta", "members": [], "changed": True}
    assert platform.call("mallory", "POST", "/api/v4/intel/batch/", json={"owner": "Beta"}).status_code == 403


# -- labels, reads and exports -----------------------------------------------------------------------
@pytest.fixture
def published(platform: Platform) -> dict[str, str]:
    """A TLP:RED and a TLP:GREEN submission, and the GREEN one's file again at RED, published; their sids."""
    red, _ = submit_file(platform.settings, RED_NOTE, "red.txt", params={"classification": "TLP:RED"})
    green, _ = submit_file(platform.settings, GREEN_NOTE, "green.txt", params={"classification": "TLP:G"})
    again, _ = submit_file(platform.settings, GREEN_NOTE, "secret-plans.txt", params={"classification": "TLP:RED"})
    while platform.worker.take(2):
        pass
    platform.worker.publisher.publish_pending()  # if the idle round did not publish them already
    with session_scope(platform.engine, readonly=True) as session:
        assert all(session.get(Submission, sid).published for sid in (red, green, again))
    return {"red": red, "green": green, "again": again}


def _indicators(platform: Platform) -> dict[str, Indicator]:
    with session_scope(platform.engine, readonly=True) as session:
        return {i.summary: i for i in session.scalars(select(Indicator))}


def test_published_intel_carries_its_submissions_labels(platform: Platform, published: dict[str, str]) -> None:
    found = _indicators(platform)
    assert found[RED_HOST].security_labels == ["TLP:RED"] and found[RED_HOST].classification == "TLP:RED"
    assert found[SHARED_HOST].security_labels == ["TLP:GREEN", "TLP:RED"]
    assert found[SHARED_HOST].classification == "TLP:GREEN"  # it was seen at GREEN
    with session_scope(platform.engine, readonly=True) as session:
        reports = {g.xid: g for g in session.scalars(select(Group).where(Group.type == "Report"))}
    assert reports[f"assay-submission-{published['red']}"].security_labels == ["TLP:RED"]
    assert reports[f"assay-submission-{published['green']}"].security_labels == ["TLP:GREEN"]


def _browse(platform: Platform, who: str, path: str, **params: Any) -> list[dict[str, Any]]:
    answer = platform.call(who, "GET", f"/api/v4/intel/{path}/", params=params)
    assert answer.status_code == 200, answer.text
    return answer.json()["api_response"]["items"]


def test_a_green_reader_sees_nothing_of_the_red_submission(platform: Platform, published: dict[str, str]) -> None:
    found = _indicators(platform)
    greens = {i["summary"] for i in _browse(platform, "greta", "indicators", rows=1000)}
    assert SHARED_HOST in greens and RED_HOST not in greens
    assert not any(summary.startswith("http://red-only") for summary in greens)
    assert {i["summary"] for i in _browse(platform, "rita", "indicators", rows=1000)} >= {RED_HOST, SHARED_HOST}
    red_id, shared_id = found[RED_HOST].id, found[SHARED_HOST].id
    assert platform.call("greta", "GET", f"/api/v4/intel/indicators/{red_id}/").status_code == 404
    shared = platform.call("greta", "GET", f"/api/v4/intel/indicators/{shared_id}/").json()["api_response"]
    assert shared["submissions"] == [published["green"]] and shared["securityLabels"] == ["TLP:GREEN"]
    assert [g["xid"] for g in shared["groups"]] == [f"assay-submission-{published['green']}"]
    reports = {g["xid"] for g in _browse(platform, "greta", "groups", type="Report")}
    assert reports == {f"assay-submission-{published['green']}"}
    red_report = platform.call("rita", "GET", "/api/v4/intel/groups/", params={"q": published["red"]})
    [red_group] = red_report.json()["api_response"]["items"]
    assert platform.call("greta", "GET", f"/api/v4/intel/groups/{red_group['id']}/").status_code == 404
    detail = platform.call("rita", "GET", f"/api/v4/intel/indicators/{shared_id}/").json()["api_response"]
    assert sorted(detail["submissions"]) == sorted(published.values())


def test_where_a_red_submission_saw_a_shared_file_stays_red(platform: Platform, published: dict[str, str]) -> None:
    [shared_file] = [i for i in _indicators(platform).values() if i.type == "File" and i.security_labels == RED_GREEN]
    url = f"/api/v4/intel/indicators/{shared_file.id}/"
    seen = platform.call("greta", "GET", url).json()["api_response"]
    assert [o["fileName"] for o in seen["fileOccurrences"]] == ["green.txt"]
    assert seen["submissions"] == [published["green"]]
    everything = platform.call("rita", "GET", url).json()["api_response"]
    assert sorted(o["fileName"] for o in everything["fileOccurrences"]) == ["green.txt", "secret-plans.txt"]
    assert "secret-plans" not in exchange.export_owner(PLATFORM, "misp", platform.engine, platform.reader("TLP:GREEN"))
    bundle = _stix(platform, "TLP:RED")
    [secret] = [o for o in bundle.objects if o.type == "file" and getattr(o, "name", "") == "secret-plans.txt"]
    [observed] = [o for o in bundle.objects if o.type == "observed-data" and secret.id in o.object_refs]
    assert observed.object_marking_refs == [stix2.TLP_RED.id]


def _stix(platform: Platform, level: str) -> Any:
    text = exchange.export_owner(PLATFORM, "stix", platform.engine, platform.reader(level))
    return stix2.parse(text, allow_custom=True)


def test_exports_for_a_green_reader_leave_the_red_intel_out(platform: Platform, published: dict[str, str]) -> None:
    bundle = _stix(platform, "TLP:GREEN")
    names = {getattr(o, "name", "") for o in bundle.objects}
    assert SHARED_HOST in names and RED_HOST not in names
    assert not any(published["red"] in name for name in names)
    assert stix2.TLP_RED.id not in {o.id for o in bundle.objects}
    [shared] = [o for o in bundle.objects if getattr(o, "name", "") == SHARED_HOST]
    assert shared.object_marking_refs == [stix2.TLP_GREEN.id]
    misp = exchange.export_owner(PLATFORM, "misp", platform.engine, platform.reader("TLP:GREEN"))
    assert RED_HOST not in misp and published["red"] not in misp and "tlp:red" not in misp
    event = json.loads(misp)["Event"]
    assert {t["name"] for t in event["Tag"]} == {"tlp:green"}
    with pytest.raises(exchange.SelectionError):
        exchange.export_submission(published["red"], "stix", PLATFORM, platform.engine, platform.reader("TLP:GREEN"))


def test_exports_for_a_red_reader_are_marked_red(platform: Platform, published: dict[str, str]) -> None:
    bundle = _stix(platform, "TLP:RED")
    by_name = {getattr(o, "name", ""): o for o in bundle.objects}
    assert by_name[RED_HOST].object_marking_refs == [stix2.TLP_RED.id]
    assert by_name[SHARED_HOST].object_marking_refs == [stix2.TLP_GREEN.id]
    [red_report] = [o for o in bundle.objects if o.type == "report" and published["red"] in o.name]
    assert red_report.object_marking_refs == [stix2.TLP_RED.id]
    event = json.loads(exchange.export_owner(PLATFORM, "misp", platform.engine, platform.reader("TLP:RED")))["Event"]
    tags = {a["value"]: {t["name"] for t in a.get("Tag", [])} for a in event["Attribute"]}
    assert "tlp:red" in tags[RED_HOST] and "tlp:green" in tags[SHARED_HOST]
    assert {t["name"] for t in event["Tag"]} == {"tlp:red"}


# -- the command line ---------------------------------------------------------------------------------
def test_cli_manages_owners_members(tmp_path: Path, database_environ: dict[str, str]) -> None:
    env = assay_env(tmp_path / "data", database_environ)
    assert run_assay(["user", "add", "carol", "--role", "intel_writer"], env).returncode == 0
    added = run_assay(["intel", "owner", "add-member", "Gamma", "carol"], env)
    assert added.returncode == 0 and "now a member" in added.stdout, added.stderr
    assert run_assay(["intel", "owner", "members", "Gamma"], env).stdout.split() == ["carol"]
    refused = run_assay(["intel", "owner", "add-member", PLATFORM, "carol"], env)
    assert refused.returncode == 2 and "platform's own intel" in refused.stderr
    assert run_assay(["intel", "owner", "add-member", "Gamma", "nobody"], env).returncode == 2
    removed = run_assay(["intel", "owner", "remove-member", "Gamma", "carol"], env)
    assert removed.returncode == 0 and "no longer" in removed.stdout
    assert run_assay(["intel", "owner", "members", "Gamma"], env).stdout.split() == []
