"""Recording: a finished analysis becomes rows in one transaction, with its notification messages.

Analysis is at least once (a lost lease or a crash means another attempt); recording must make
the effect exactly once: a submission is completed once, its messages are written once, results
are shared by key, and one analysis the database refuses does not take its batch down with it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from assay.db import models
from assay.db.session import session_scope, write_isolating
from assay.dispatch.analysis import Analysis, ErrorKind, ErrorRecord, FileNode, StoredResult
from assay.dispatch.record import Done, record
from assay.services.base import Service
from tests.helpers.fakes import Bench, Judge, Sniffer, Typer, archive, document, open_bench, sha256_of

EVIL = b"some text with the EVIL marker"
ROOT = archive({"evil.txt": EVIL, "copy.txt": EVIL})
R, C = sha256_of(ROOT), sha256_of(EVIL)


@pytest.fixture
def bench(tmp_path: Path) -> Iterator[Bench]:
    with open_bench(tmp_path / "bench") as bench:
        yield bench


def info(data: bytes, kind: str) -> dict[str, Any]:
    return {
        "sha256": sha256_of(data),
        "size": len(data),
        "md5": hashlib.md5(data).hexdigest(),
        "sha1": hashlib.sha1(data).hexdigest(),
        "type": kind,
    }


def stored(sha256: str, service: Service, score: int, tags: list[tuple[str, str]], new: bool = True) -> StoredResult:
    body = {"sections": [{"title": f"{service.name} on {sha256[:8]}"}], "heuristics": [], "children": []}
    return StoredResult(f"{sha256}.{service.name}.v1.cfixed", sha256, service, score, body, tags, new)


def prepared() -> Analysis:
    """What the dispatcher would hold after analysing ROOT: its two copies of EVIL, a timeout."""
    analysis = Analysis()
    analysis.nodes = [
        FileNode(R, "bundle.fak", None, 0, len(ROOT), score=0),
        FileNode(C, "copy.txt", R, 1, len(EVIL), score=600),
        FileNode(C, "evil.txt", R, 1, len(EVIL), score=0),  # the same content again: analysed once
    ]
    analysis.files = {R: info(ROOT, "archive/fake"), C: info(EVIL, "text/plain")}
    analysis.results = [
        stored(R, Typer(), 0, []),
        stored(C, Sniffer(), 100, [("file.string.extracted", "EVIL")]),
        stored(C, Judge(), 500, []),
    ]
    analysis.errors = [ErrorRecord(C, "Refiner", ErrorKind.TIMEOUT, "Refiner did not finish within 60 s")]
    analysis.crashes = [(C, "Refiner")]
    return analysis


def write(bench: Bench, done: Done, worker_id: str | None = None) -> list[str]:
    with session_scope(bench.engine) as session:
        return record(session, worker_id or bench.worker_id, done, bench.dispatcher.markings)


def claimed(bench: Bench, sid: str) -> models.Submission:
    return next(s for s in bench.claim() if s.sid == sid)


def count(session: Session, model: type[models.Base], **where: Any) -> int:
    query = select(func.count()).select_from(model)
    for column, value in where.items():
        query = query.where(getattr(model, column) == value)
    return session.scalar(query) or 0


def sid_of(bench: Bench, ingest_id: str) -> str:
    with session_scope(bench.engine, readonly=True) as session:
        ingest = session.get(models.Ingest, ingest_id)
        assert ingest is not None and ingest.sid is not None
        return ingest.sid


def messages(bench: Bench, queue_name: str) -> list[dict[str, Any]]:
    with session_scope(bench.engine, readonly=True) as session:
        rows = session.scalars(select(models.Notification).where(models.Notification.queue == queue_name)).all()
        return [row.message for row in rows]


# -- one analysis ------------------------------------------------------------------------------------
def test_recording_completes_the_submission_with_its_score_and_counts(bench: Bench) -> None:
    sid = bench.submit(ROOT, "bundle.fak")
    assert write(bench, [(claimed(bench, sid), prepared())]) == [sid]
    submission = bench.submission(sid)
    assert submission.state == "completed" and submission.completed is not None
    assert submission.max_score == 600  # the highest file, not the sum of files
    assert submission.file_count == 2  # distinct contents
    assert submission.error_count == 1
    assert submission.lease_owner is None and submission.lease_until is None


def test_recording_writes_results_tags_the_file_tree_files_and_errors(bench: Bench) -> None:
    sid = bench.submit(ROOT, "bundle.fak")
    write(bench, [(claimed(bench, sid), prepared())])
    with session_scope(bench.engine, readonly=True) as session:
        results = {r.key: r for r in session.scalars(select(models.ResultRecord))}
        assert {(r.sha256, r.service, r.score) for r in results.values()} == {
            (R, "Typer", 0),
            (C, "Sniffer", 100),
            (C, "Judge", 500),
        }
        assert results[f"{C}.Sniffer.v1.cfixed"].body["sections"] == [{"title": f"Sniffer on {C[:8]}"}]
        tags = session.execute(select(models.TagRecord.result_key, models.TagRecord.type, models.TagRecord.value))
        assert list(tags) == [(f"{C}.Sniffer.v1.cfixed", "file.string.extracted", "EVIL")]
        links = session.scalars(select(models.SubmissionResult.result_key).where(models.SubmissionResult.sid == sid))
        assert set(links) == set(results)
        node = models.SubmissionFile
        tree = session.execute(select(node.name, node.parent, node.depth, node.score).where(node.sid == sid))
        assert sorted(tree) == [("bundle.fak", None, 0, 0), ("copy.txt", R, 1, 600), ("evil.txt", R, 1, 600)]
        child = session.get(models.File, C)
        assert child is not None
        assert (child.md5, child.size, child.type) == (hashlib.md5(EVIL).hexdigest(), len(EVIL), "text/plain")
        [error] = session.scalars(select(models.ServiceError).where(models.ServiceError.sid == sid)).all()
        assert (error.sha256, error.service, error.error_type) == (C, "Refiner", "timeout")
        crash = session.get(models.ServiceCrash, (C, "Refiner"))
        assert crash is not None and crash.count == 1


def test_every_ingest_waiting_on_the_submission_gets_one_message(bench: Bench) -> None:
    first = bench.ingest(ROOT, "bundle.fak", queue_name="sensor-a", metadata={"file_path": "/a/bundle.fak"})
    second = bench.ingest(ROOT, "bundle.fak", queue_name="sensor-b")
    quiet = bench.ingest(ROOT, "bundle.fak", queue_name="sensor-c", threshold=1000)  # 600 is below it
    silent = bench.ingest(ROOT, "bundle.fak", queue_name=None)
    sid = sid_of(bench, first)
    assert {sid_of(bench, i) for i in (second, quiet, silent)} == {sid}  # identical ingests share one analysis
    assert messages(bench, "sensor-a") == []  # nothing before the analysis is recorded
    write(bench, [(claimed(bench, sid), prepared())])
    [message] = messages(bench, "sensor-a")
    assert message["ingest_id"] == first and message["submission"]["sid"] == sid
    assert message["score"] == 600 and message["failure"] == "" and message["notify_time"]
    assert message["submission"]["metadata"]["file_path"] == "/a/bundle.fak"
    assert [m["ingest_id"] for m in messages(bench, "sensor-b")] == [second]
    assert messages(bench, "sensor-c") == []
    with session_scope(bench.engine, readonly=True) as session:
        states = {i.ingest_id: i.state for i in session.scalars(select(models.Ingest))}
    assert states == {first: "notified", second: "notified", quiet: "notified", silent: "notified"}


# -- exactly once --------------------------------------------------------------------------------------
def row_counts(bench: Bench) -> dict[str, int]:
    tables = [
        models.ResultRecord,
        models.TagRecord,
        models.SubmissionResult,
        models.SubmissionFile,
        models.ServiceError,
        models.Notification,
        models.File,
    ]
    with session_scope(bench.engine, readonly=True) as session:
        counts = {model.__tablename__: count(session, model) for model in tables}
        counts["crashes"] = sum(session.scalars(select(models.ServiceCrash.count)))
        counts["seen"] = sum(session.scalars(select(models.File.seen_count)))
        return counts


def test_recording_the_same_analysis_twice_has_the_effect_of_once(bench: Bench) -> None:
    sid = sid_of(bench, bench.ingest(ROOT, "bundle.fak", queue_name="sensor"))
    submission = claimed(bench, sid)
    assert write(bench, [(submission, prepared())]) == [sid]
    once = row_counts(bench)
    completed = bench.submission(sid).completed
    assert write(bench, [(submission, prepared())]) == []  # e.g. a retry after a lost commit answer
    assert row_counts(bench) == once
    assert bench.submission(sid).completed == completed
    assert len(messages(bench, "sensor")) == 1


def test_a_worker_that_lost_its_lease_records_nothing(bench: Bench) -> None:
    sid = bench.submit(ROOT, "bundle.fak")
    submission = claimed(bench, sid)
    assert write(bench, [(submission, prepared())], worker_id="worker-that-timed-out") == []
    assert bench.submission(sid).state == "submitted"
    assert row_counts(bench)["results"] == 0
    assert write(bench, [(submission, prepared())]) == [sid]  # the owner still can


def test_a_result_found_by_two_submissions_of_a_batch_is_stored_once_and_linked_to_both(bench: Bench) -> None:
    one, two = bench.submit(ROOT, "one.fak"), bench.submit(ROOT, "two.fak")
    leased = {s.sid: s for s in bench.claim()}
    assert write(bench, [(leased[one], prepared()), (leased[two], prepared())]) == [one, two]
    with session_scope(bench.engine, readonly=True) as session:
        assert count(session, models.ResultRecord) == 3
        assert count(session, models.TagRecord) == 1
        assert count(session, models.SubmissionResult, sid=one) == count(session, models.SubmissionResult, sid=two) == 3
        child = session.get(models.File, C)
        assert child is not None and child.seen_count == 2
        crash = session.get(models.ServiceCrash, (C, "Refiner"))
        assert crash is not None and crash.count == 2  # each submission's timeout counts


def test_a_result_two_workers_found_at_once_is_stored_and_tagged_once(bench: Bench) -> None:
    # Both analysed the content before either had recorded: both hold the result as new.
    first, second = bench.submit(ROOT, "one.fak"), bench.submit(ROOT, "two.fak")
    leased = {s.sid: s for s in bench.claim()}
    write(bench, [(leased[first], prepared())])
    write(bench, [(leased[second], prepared())])
    with session_scope(bench.engine, readonly=True) as session:
        assert count(session, models.ResultRecord) == 3
        assert count(session, models.TagRecord) == 1
        assert count(session, models.SubmissionResult, sid=second) == 3
    assert bench.submission(second).state == "completed"


def test_a_result_reused_from_the_cache_is_linked_not_written_again(bench: Bench) -> None:
    first = bench.submit(ROOT, "first.fak")
    write(bench, [(claimed(bench, first), prepared())])
    second = bench.submit(ROOT, "second.fak")
    again = prepared()
    again.results = [
        StoredResult(r.key, r.sha256, r.service, r.score, {"sections": ["from the cache"]}, r.tags, new=False)
        for r in again.results
    ]
    write(bench, [(claimed(bench, second), again)])
    with session_scope(bench.engine, readonly=True) as session:
        assert count(session, models.ResultRecord) == 3 and count(session, models.TagRecord) == 1
        bodies = [r.body for r in session.scalars(select(models.ResultRecord))]
        links = session.scalars(select(models.SubmissionResult.result_key).where(models.SubmissionResult.sid == second))
        assert len(set(links)) == 3
    assert all(body["sections"] != ["from the cache"] for body in bodies)
    assert bench.submission(second).max_score == 600


# -- what the database refuses -------------------------------------------------------------------------
def unserialisable(analysis: Analysis) -> None:
    analysis.results[1].body["data"] = {"a set is not JSON": {1, 2}}


def message_missing(analysis: Analysis) -> None:
    analysis.errors[0].message = None  # type: ignore[assignment]  # service_errors.message is NOT NULL


@pytest.mark.parametrize("spoil", [unserialisable, message_missing])
def test_a_batch_with_an_analysis_the_database_refuses_records_the_others(bench: Bench, spoil: Any) -> None:
    good, bad, also_good = (bench.submit(ROOT, name) for name in ("good.fak", "bad.fak", "also.fak"))
    leased = {s.sid: s for s in bench.claim()}
    culprit = prepared()
    culprit.results[1].key += ".bad"  # a result of its own, not one the good analyses share
    spoil(culprit)
    batch = [(leased[good], prepared()), (leased[bad], culprit), (leased[also_good], prepared())]
    refused: list[tuple[str, Exception]] = []
    write_isolating(batch, lambda items: write(bench, items), lambda item, exc: refused.append((item[0].sid, exc)))
    assert [sid for sid, _ in refused] == [bad]
    assert bench.submission(good).state == bench.submission(also_good).state == "completed"
    assert bench.submission(bad).state == "submitted"  # left to the refusal handler
    with session_scope(bench.engine, readonly=True) as session:
        assert count(session, models.SubmissionResult, sid=bad) == 0
        assert count(session, models.SubmissionFile, sid=bad) == 0
        assert count(session, models.SubmissionResult, sid=good) == 3


def test_the_dispatcher_fails_only_the_submission_whose_results_cannot_be_stored(bench: Bench) -> None:
    fine = bench.ingest(document("document/fake", note="EVIL"), "fine.doc", queue_name="sensor")
    spoilt = bench.ingest(document("document/fake", unstorable=True), "spoilt.doc", queue_name="sensor")
    bench.run()
    assert bench.submission(sid_of(bench, fine)).state == "completed"
    failed = bench.submission(sid_of(bench, spoilt))
    assert failed.state == "failed"
    by_ingest = {m["ingest_id"]: m for m in messages(bench, "sensor")}
    assert by_ingest[fine]["score"] == 100 and by_ingest[fine]["failure"] == ""
    assert "could not be stored" in by_ingest[spoilt]["failure"]
    with session_scope(bench.engine, readonly=True) as session:
        [error] = session.scalars(select(models.ServiceError).where(models.ServiceError.sid == failed.sid)).all()
    assert error.error_type == ErrorKind.FAILED and "could not be stored" in error.message


def test_nul_characters_a_service_quotes_are_stored_as_replacement_characters(bench: Bench) -> None:
    sid = bench.submit(document("document/fake", quote="before\x00after", domains=["nul\x00.example"]), "nul.doc")
    bench.run()
    assert bench.submission(sid).state == "completed"
    with session_scope(bench.engine, readonly=True) as session:
        [body] = session.scalars(select(models.ResultRecord.body).where(models.ResultRecord.service == "Sniffer"))
        tags = list(session.scalars(select(models.TagRecord.value)))
    assert body["sections"][1]["title"] == "before\ufffdafter"
    assert body["sections"][1]["body"] == {"quoted": "before\ufffdafter"}
    assert tags == ["nul\ufffd.example"]
