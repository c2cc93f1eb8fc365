"""The read side: a recorded submission as the Assemblyline client reads it.

``client.submission(sid)``, ``.full``, ``.summary``, ``.tree`` and ``.file`` answer with these
views; a sensor reading its notification queue then asks for ``max_score``, ``state``, ``files``,
``results``, ``errors``, ``times``, ``params`` and ``metadata``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from assay.access.visibility import Reader
from assay.db import models
from assay.db.session import session_scope
from assay.dispatch.analysis import ErrorKind
from assay.results import views
from tests.helpers.fakes import Bench, archive, document, open_bench, sha256_of

EVIL = b"some text with the EVIL marker"
MACROS = document("document/fake", macros=True)
EVIL_SHA = sha256_of(EVIL)
ROOT = archive({"evil.txt": EVIL, "copy.txt": EVIL, "macros.doc": MACROS})
ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")
WHAT_THE_CLIENT_READS = {
    "sid",
    "state",
    "max_score",
    "file_count",
    "error_count",
    "files",
    "results",
    "errors",
    "times",
    "params",
    "metadata",
    "classification",
    "scan_key",
    "expiry_ts",
    "verdict",
}


@pytest.fixture
def bench(tmp_path: Path) -> Iterator[Bench]:
    with open_bench(tmp_path / "bench") as bench:
        yield bench


@pytest.fixture
def recorded(bench: Bench) -> str:
    """An ingested archive, analysed and recorded; Refiner times out on the macro document."""
    bench.sandbox.fail("Refiner", ErrorKind.TIMEOUT, "Refiner did not finish within 60 s", sha256=sha256_of(MACROS))
    ingest_id = bench.ingest(
        ROOT,
        "bundle.fak",
        params={"description": "a bundle from the field", "deep_scan": False},
        metadata={"file_path": "/evidence/bundle.fak", "case": {"number": 17}},
    )
    bench.run()
    with session_scope(bench.engine, readonly=True) as session:
        ingest = session.get(models.Ingest, ingest_id)
        assert ingest is not None and ingest.sid is not None
        return ingest.sid


def everyone(bench: Bench) -> Reader:
    """A reader cleared for every marking: what the views hold before anything is filtered out."""
    return Reader.cleared_for_all(bench.dispatcher.markings)


def view(bench: Bench, build: Any, sid: str) -> Any:
    with session_scope(bench.engine, readonly=True) as session:
        submission = session.get(models.Submission, sid)
        assert submission is not None
        return build(session, submission, everyone(bench))


def stored_keys(bench: Bench, model: Any, sid: str) -> set[str]:
    column = model.result_key if model is models.SubmissionResult else model.key
    with session_scope(bench.engine, readonly=True) as session:
        return set(session.scalars(select(column).where(model.sid == sid)))


# -- the submission record -------------------------------------------------------------------------
def test_a_recorded_submission_shows_what_the_client_reads(bench: Bench, recorded: str) -> None:
    record = view(bench, views.submission, recorded)
    assert set(record) >= WHAT_THE_CLIENT_READS
    assert record["sid"] == recorded and record["state"] == "completed"
    assert record["max_score"] == 100  # EVIL: Sniffer; the macro document was never refined (timeout)
    assert record["score_verdict"] == "info"
    assert record["file_count"] == 3  # the archive, EVIL (twice), the macro document
    assert record["files"] == [{"name": "bundle.fak", "size": len(ROOT), "sha256": sha256_of(ROOT)}]
    assert set(record["results"]) == stored_keys(bench, models.SubmissionResult, recorded)
    assert all(key.startswith(tuple(sha256_of(d) for d in (ROOT, EVIL, MACROS))) for key in record["results"])
    assert record["error_count"] == 1
    assert record["errors"] == list(stored_keys(bench, models.ServiceError, recorded))
    assert record["params"]["description"] == "a bundle from the field"
    assert record["params"]["deep_scan"] is False and "Extraction" in record["params"]["services"]["selected"]
    assert record["metadata"]["file_path"] == "/evidence/bundle.fak"
    assert record["metadata"]["case.number"] == "17"  # flattened, as Assemblyline does
    assert ISO.fullmatch(record["times"]["submitted"]) and ISO.fullmatch(record["times"]["completed"])
    assert record["times"]["completed"] >= record["times"]["submitted"]
    assert record["classification"] == "TLP:CLEAR"
    assert record["scan_key"] == bench.submission(recorded).scan_key


def test_a_submission_still_being_analysed_has_no_verdict_and_no_completion_time(bench: Bench) -> None:
    sid = bench.submit(ROOT, "waiting.fak")
    record = view(bench, views.submission, sid)
    assert record["state"] == "submitted"
    assert record["score_verdict"] is None
    assert record["times"]["completed"] is None and ISO.fullmatch(record["times"]["submitted"])
    assert record["results"] == [] and record["errors"] == []


@pytest.mark.parametrize(
    ("score", "verdict"),
    [
        (None, "info"),
        (-1000, "safe"),
        (-1, "safe"),
        (0, "info"),
        (299, "info"),
        (300, "suspicious"),
        (699, "suspicious"),
        (700, "highly_suspicious"),
        (999, "highly_suspicious"),
        (1000, "malicious"),
        (5000, "malicious"),
    ],
)
def test_scores_fall_in_assemblylines_verdict_bands(score: int | None, verdict: str) -> None:
    assert views.verdict(score) == verdict


# -- full, tree, summary, one file -----------------------------------------------------------------
def test_the_full_submission_holds_every_result_error_and_file(bench: Bench, recorded: str) -> None:
    full = view(bench, views.full, recorded)
    results = full["results"]
    assert set(results) == stored_keys(bench, models.SubmissionResult, recorded)
    unpacked = next(r for r in results.values() if r["response"]["service_name"] == "Unpacker")
    assert unpacked["sha256"] == sha256_of(ROOT)
    assert {(c["name"], c["sha256"]) for c in unpacked["response"]["extracted"]} == {
        ("copy.txt", sha256_of(EVIL)),
        ("evil.txt", sha256_of(EVIL)),
        ("macros.doc", sha256_of(MACROS)),
    }
    sniffed = next(
        r for r in results.values() if r["response"]["service_name"] == "Sniffer" and r["sha256"] == sha256_of(EVIL)
    )
    assert sniffed["result"]["score"] == 100
    assert [h["heur_id"] for h in sniffed["result"]["heuristics"]] == ["sniffer.evil"]
    assert sniffed["response"]["service_version"] == "1" and ISO.fullmatch(sniffed["created"])
    [error] = full["errors"].values()
    assert error["type"] == "TIMEOUT" and error["sha256"] == sha256_of(MACROS)
    assert error["response"]["service_name"] == "Refiner" and "60 s" in error["response"]["message"]
    assert set(full["file_infos"]) == {sha256_of(ROOT), sha256_of(EVIL), sha256_of(MACROS)}
    evil = full["file_infos"][sha256_of(EVIL)]
    assert evil["type"] == "text/plain" and evil["size"] == len(EVIL) and len(evil["md5"]) == 32
    assert list(full["file_tree"]) == [sha256_of(ROOT)]


def test_the_tree_nests_children_under_their_parent_and_merges_names_of_one_content(
    bench: Bench, recorded: str
) -> None:
    tree = view(bench, views.tree, recorded)["tree"]
    root = tree[sha256_of(ROOT)]
    assert root["name"] == ["bundle.fak"] and root["type"] == "archive/fake" and root["score"] == 0
    children = root["children"]
    assert set(children) == {sha256_of(EVIL), sha256_of(MACROS)}
    assert sorted(children[sha256_of(EVIL)]["name"]) == ["copy.txt", "evil.txt"]
    assert children[sha256_of(EVIL)]["score"] == 100 and children[sha256_of(EVIL)]["children"] == {}
    assert children[sha256_of(MACROS)]["type"] == "document/fake"


def test_the_summary_gathers_tags_heuristics_by_verdict_and_attack_ids(bench: Bench) -> None:
    bench.ingest(archive({"evil.txt": EVIL, "macros.doc": MACROS}), "bundle.fak")
    [sid] = bench.run()
    summary = view(bench, views.summary, sid)
    assert summary["tags"] == {"file.string.extracted": ["EVIL"]}
    assert summary["heuristics"] == {
        "info": [{"heur_id": "sniffer.evil", "name": "Evil marker", "score": 100}],
        "suspicious": [{"heur_id": "judge.macro", "name": "Macro document", "score": 500}],
    }
    assert summary["attack_matrix"] == {"T1204": ["Macro document"]}
    assert summary["partial"] is False
    assert view(bench, views.submission, sid)["score_verdict"] == "suspicious"


def test_one_file_of_a_submission_shows_only_its_own_results_errors_and_tags(bench: Bench, recorded: str) -> None:
    with session_scope(bench.engine, readonly=True) as session:
        evil = views.file_in_submission(session, recorded, sha256_of(EVIL), everyone(bench))
        macros = views.file_in_submission(session, recorded, sha256_of(MACROS), everyone(bench))
        assert views.file_in_submission(session, recorded, "0" * 64, everyone(bench)) is None
    assert evil is not None and macros is not None
    assert evil["file_info"]["sha256"] == sha256_of(EVIL)
    assert {r["response"]["service_name"] for r in evil["results"]} == {"Typer", "Gate", "Sniffer", "Reporter"}
    assert all(r["sha256"] == sha256_of(EVIL) for r in evil["results"])
    assert evil["errors"] == [] and evil["tags"] == {"file.string.extracted": ["EVIL"]}
    assert [e["response"]["service_name"] for e in macros["errors"]] == ["Refiner"]


def test_times_are_the_recorded_moments(bench: Bench, recorded: str) -> None:
    record = view(bench, views.submission, recorded)
    submission = bench.submission(recorded)
    assert submission.completed is not None
    parsed = {name: datetime.fromisoformat(value.replace("Z", "+00:00")) for name, value in record["times"].items()}
    assert parsed == {"submitted": submission.created, "completed": submission.completed}


def test_results_above_the_readers_clearance_are_left_out(bench: Bench) -> None:
    marked = document("document/fake", marking="TLP:AMBER", note="EVIL")
    bench.ingest(archive({"marked.doc": marked, "evil.txt": EVIL}), "bundle.fak")
    [sid] = bench.run()
    clear_only = Reader(bench.dispatcher.markings, bench.dispatcher.markings.clearance("TLP:CLEAR"))
    with session_scope(bench.engine, readonly=True) as session:
        submission = session.get(models.Submission, sid)
        assert submission is not None
        for_everyone = views.submission(session, submission, everyone(bench))
        for_clear = views.submission(session, submission, clear_only)
        summary = views.summary(session, submission, clear_only)
    hidden = set(for_everyone["results"]) - set(for_clear["results"])
    assert hidden == {k for k in for_everyone["results"] if k.startswith(f"{sha256_of(marked)}.Sniffer.")}
    assert for_everyone["classification"] == "TLP:AMBER"
    assert summary["tags"] == {"file.string.extracted": ["EVIL"]}  # from evil.txt, which stays visible
