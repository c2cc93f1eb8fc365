"""Priorities, load shedding, drops and scores, exercised in process on a real SQLite database."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select, true

from assay import notify
from assay.config import Settings
from assay.db.models import Ingest, ResultRecord, Submission, SubmissionFile, SubmissionResult, TagRecord
from assay.db.session import get_engine, session_scope
from assay.execution import queue
from assay.execution.worker import Worker
from assay.filestore import FileStore
from assay.intake.ingest import IngestOrder, Intake, Overloaded
from assay.params import BadParams
from tests.helpers.servers import local_settings, submit_file, work_once

EICAR = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"


@pytest.fixture
def settings(tmp_path: Path) -> Iterator[Settings]:
    yield local_settings(tmp_path, {"ASSAY_LIMITS_MAX_BACKLOG": "6"})


def order(settings: Settings, data: bytes, priority: int = 150, queue_name: str = "q") -> IngestOrder:
    stored = FileStore(settings.storage_path).put_bytes(data)
    return IngestOrder("admin", stored, "f", {}, {"priority": priority}, queue_name)


def test_higher_priority_is_claimed_first(settings: Settings) -> None:
    intake = Intake(settings)
    engine = get_engine(settings.database_url)
    with session_scope(engine) as session:
        low = intake.ingest(session, order(settings, b"low", 50))
        high = intake.ingest(session, order(settings, b"high", 250))
        medium = intake.ingest(session, order(settings, b"medium", 150))
    with session_scope(engine) as session:
        sid_of = {i.ingest_id: i.sid for i in session.scalars(select(Ingest))}
        claimed = [queue.claim(session, "w", 1, 60)[0].sid for _ in range(3)]
    assert claimed == [sid_of[high], sid_of[medium], sid_of[low]]


def test_ingest_caps_priority_at_the_configured_limit(settings: Settings) -> None:
    with session_scope(get_engine(settings.database_url)) as session:
        Intake(settings).ingest(session, order(settings, b"vip", 1500))
        assert session.scalar(select(Submission.priority)) == 250


def test_a_full_backlog_sheds_load_and_low_priority_work_is_skipped_with_a_message(
    settings: Settings,
) -> None:
    intake = Intake(settings)
    engine = get_engine(settings.database_url)
    for index in range(4):  # more than half the backlog of 6
        with session_scope(engine) as session:
            intake.ingest(session, order(settings, b"fill %d" % index, 150))
    intake._backlog = (0.0, 0)  # recount now rather than within the second
    with session_scope(engine) as session:
        intake.ingest(session, order(settings, b"cheap", 10, "drops"))
        [message] = notify.pop(session.connection(), "admin", "drops", 10, true())
    assert message["failure"] == "Skipped" and message["score"] is None
    for index in range(2):
        with session_scope(engine) as session:
            intake.ingest(session, order(settings, b"more %d" % index, 150))
    intake._backlog = (0.0, 0)
    with pytest.raises(Overloaded) as refused, session_scope(engine) as session:
        intake.ingest(session, order(settings, b"one too many", 150))
    assert "daily" not in str(refused.value)


def test_max_score_is_the_highest_file_total_including_extracted_children(settings: Settings) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("inner/eicar.com", EICAR)
        archive.writestr("readme.txt", b"nothing to see")
    engine = get_engine(settings.database_url)
    sid, stored = submit_file(settings, buffer.getvalue(), "bundle.zip")
    assert work_once(settings, "score-worker") == 1
    with session_scope(engine) as session:
        submission = session.get(Submission, sid)
        nodes = session.scalars(select(SubmissionFile).where(SubmissionFile.sid == sid)).all()
    names = {node.name: node for node in nodes}
    assert {"bundle.zip", "inner/eicar.com", "readme.txt"} <= set(names)
    assert names["inner/eicar.com"].parent == stored.sha256 and names["inner/eicar.com"].depth == 1
    assert submission.max_score == max(node.score for node in nodes) == names["inner/eicar.com"].score >= 1000
    assert submission.file_count == 3


def test_a_submission_that_keeps_failing_ends_failed_with_a_message(settings: Settings) -> None:
    engine = get_engine(settings.database_url)
    with session_scope(engine) as session:
        Intake(settings).ingest(session, order(settings, b"doomed", 150, "fail-q"))
        session.flush()
        submission = session.scalars(select(Submission)).one()
        submission.attempts = 3  # three workers died on it before
    work_once(settings, "last-worker")
    with session_scope(engine) as session:
        submission = session.scalars(select(Submission)).one()
        [message] = notify.pop(session.connection(), "admin", "fail-q", 10, true())
    assert submission.state == "failed" and submission.error_count == 1
    assert message["score"] is None and "not retried" in message["failure"]


def test_results_are_reused_for_known_files_unless_ignore_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ASSAY_TEST_SLOW_SECONDS", "0")
    settings = local_settings(tmp_path, {"ASSAY_SERVICES_EXTRA_MODULES": "tests.plugins.faulty"})
    engine = get_engine(settings.database_url)
    marker = tmp_path / "runs"
    stored = FileStore(settings.storage_path).put_bytes(f"SLOW {marker}\n".encode())
    worker = Worker(settings, "cache-worker")
    keys = []
    try:
        for params in ({}, {}, {"ignore_cache": True}):
            with session_scope(engine) as session:
                selected = {"services": {"selected": ["Slow"]}, **params}
                sid = Intake(settings).submit(session, "admin", stored, "slow.txt", {}, selected).sid
            worker.take(1)
            with session_scope(engine) as session:
                submission = session.get(Submission, sid)
                assert submission.state == "completed" and submission.max_score == 42
                keys.append(
                    sorted(
                        r.result_key
                        for r in session.scalars(select(SubmissionResult).where(SubmissionResult.sid == sid))
                    )
                )
    finally:
        worker.close()
    assert keys[0] == keys[1] == keys[2]
    assert len(marker.read_text().split()) == 2  # ran, reused, ran again because of ignore_cache


def test_a_content_found_twice_keeps_its_score_in_every_place_of_the_tree(settings: Settings) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("a/eicar.com", EICAR)
        archive.writestr("b/copy.com", EICAR)
    engine = get_engine(settings.database_url)
    sid, _ = submit_file(settings, buffer.getvalue(), "twice.zip")
    work_once(settings, "twice-worker")
    with session_scope(engine) as session:
        nodes = session.scalars(select(SubmissionFile).where(SubmissionFile.sid == sid)).all()
    copies = [n for n in nodes if n.name in ("a/eicar.com", "b/copy.com")]
    assert len(copies) == 2 and copies[0].sha256 == copies[1].sha256
    assert copies[0].score == copies[1].score >= 1000


def test_nul_characters_in_analysis_output_do_not_sink_the_batch(tmp_path: Path, database_environ: dict) -> None:
    settings = local_settings(tmp_path, {**database_environ, "ASSAY_SERVICES_EXTRA_MODULES": "tests.plugins.faulty"})
    selected = {"services": {"selected": ["NulQuoter"]}}
    hostile, _ = submit_file(settings, b"NUL quoted here\n", "nul.bin", params=selected)
    plain, _ = submit_file(settings, b"plain neighbour\n", "plain.txt", params=selected)
    assert work_once(settings, "nul-worker", limit=2) == 2  # both in one recording transaction
    with session_scope(get_engine(settings.database_url)) as session:
        states = {s.sid: s.state for s in session.scalars(select(Submission))}
        quoted = session.scalars(select(ResultRecord).where(ResultRecord.service == "NulQuoter")).all()
        tags = session.scalars(select(TagRecord.value).where(TagRecord.type == "file.string.extracted")).all()
    assert states == {hostile: "completed", plain: "completed"}
    [body] = [r.body for r in quoted if r.body["sections"]]
    assert body["sections"][0]["title"] == "quoted\ufffdtitle"
    assert body["sections"][0]["body"] == {"key\ufffd": ["value\ufffd", 1]}
    assert body["data"] == {"nested": {"deep\ufffd": "x\ufffdy"}}
    assert tags == ["tag\ufffdvalue"]


@pytest.mark.parametrize(
    ("field", "description"),
    [
        ("name", {"name": "a\x00b"}),
        ("metadata", {"metadata": {"file_path": "/tmp/a\x00b"}}),
        ("metadata", {"metadata": {"k\x00": "v"}}),
        ("params", {"params": {"description": "d\x00"}}),
        ("notification queue", {"notification_queue": "q\x00"}),
    ],
)
def test_nul_characters_in_an_ingest_are_refused_alone(settings: Settings, field: str, description: dict) -> None:
    stored = FileStore(settings.storage_path).put_bytes(b"nul ingest test")
    good = IngestOrder("admin", stored, "good.txt", queue="nul-q")
    bad = IngestOrder(
        "admin",
        stored,
        description.get("name", "bad.txt"),
        metadata=description.get("metadata"),
        params=description.get("params", {}),
        queue=description.get("notification_queue", "nul-q"),
    )
    with session_scope(get_engine(settings.database_url)) as session:
        outcomes = Intake(settings).ingest_many(session, [good, bad])
    assert isinstance(outcomes[0], str)
    assert isinstance(outcomes[1], BadParams) and field in str(outcomes[1]) and "NUL" in str(outcomes[1])


@pytest.mark.services
def test_an_analysis_the_database_refuses_fails_alone(tmp_path: Path, database_environ: dict) -> None:
    settings = local_settings(tmp_path, {**database_environ, "ASSAY_SERVICES_EXTRA_MODULES": "tests.plugins.faulty"})
    selected = {"services": {"selected": ["LongTagger"]}}
    refused, _ = submit_file(settings, b"LONGTAG here\n", "long.bin", params=selected)
    plain, _ = submit_file(settings, b"a plain neighbour\n", "plain.txt", params=selected)
    assert work_once(settings, "long-worker", limit=2) == 2
    with session_scope(get_engine(settings.database_url)) as session:
        states = {s.sid: s.state for s in session.scalars(select(Submission))}
    # PostgreSQL refuses the 200-character tag type (SQLite does not check lengths): only that
    # submission fails, at the first attempt, and its neighbour in the batch is stored.
    on_postgresql = "ASSAY_DATABASE_URL" in database_environ
    assert states == {refused: "failed" if on_postgresql else "completed", plain: "completed"}
