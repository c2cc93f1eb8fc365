"""The dispatcher, with a fake sandbox over a SQLite data directory: how one submission is analysed.

Stage by stage and file by file, as the dispatcher asks the sandbox; what each service is told;
which children are analysed within the depth, count and size limits; what a failing service costs;
how scores add up; and when a stored result is reused instead of asking the service again.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from assay import safelist
from assay.db import models
from assay.db.session import session_scope
from assay.dispatch.analysis import Analysis, ErrorKind, ErrorRecord
from assay.services import registry
from assay.services.base import Stage
from tests.helpers.fakes import Bench, archive, document, open_bench, sha256_of

EVIL = b"some text with the EVIL marker"
MACROS = document("document/fake", macros=True)


@pytest.fixture
def bench(tmp_path: Path) -> Iterator[Bench]:
    with open_bench(tmp_path / "bench") as bench:
        yield bench


def stage_of(name: str) -> Stage:
    service = registry.service(name)
    assert service is not None
    return service.stage


def errors_on(analysis: Analysis, data: bytes) -> list[ErrorRecord]:
    return [e for e in analysis.errors if e.sha256 == sha256_of(data)]


def node_of(analysis: Analysis, data: bytes) -> tuple[str | None, int, int, bool]:
    """(parent, depth, score, truncated) of the first node holding ``data``."""
    node = next(n for n in analysis.nodes if n.sha256 == sha256_of(data))
    return node.parent, node.depth, node.score, node.truncated


# -- stages ----------------------------------------------------------------------------------------
def test_each_stage_goes_to_the_sandbox_in_one_trip_and_in_stage_order(bench: Bench) -> None:
    bench.analyse(MACROS, "macros.doc")
    trips = [[call.service for call in trip] for trip in bench.sandbox.trips]
    assert trips == [["Typer"], ["Gate"], ["Refiner", "Sniffer"], ["Judge"], ["Reporter"]]
    stages = [stage_of(trip[0]) for trip in trips]
    assert stages == sorted(stages) and all(len({stage_of(s) for s in trip}) == 1 for trip in trips)


def test_a_stage_sees_what_earlier_stages_found_but_not_what_its_own_services_find(bench: Bench) -> None:
    analysis = bench.analyse(MACROS, "macros.doc")
    # Refiner (CORE) finds the document carries macros: the SECONDARY Judge, which takes only such
    # documents, runs and is told the refined type; Peeker takes them too but is CORE itself.
    ran = bench.sandbox.ran_on(sha256_of(MACROS))
    assert "Judge" in ran and "Peeker" not in ran
    assert bench.sandbox.last_request("Sniffer").file_type == "document/fake"
    assert bench.sandbox.last_request("Judge").file_type == "document/fake/macro"
    assert bench.sandbox.last_request("Reporter").file_type == "document/fake/macro"
    assert analysis.files[sha256_of(MACROS)]["type"] == "document/fake/macro"


def test_services_that_do_not_accept_the_identified_type_are_not_called(bench: Bench) -> None:
    bench.analyse(b"plain words", "notes.txt")
    assert bench.sandbox.ran_on(sha256_of(b"plain words")) == ["Typer", "Gate", "Sniffer", "Reporter"]
    bench.sandbox.forget()
    bench.analyse(b"", "empty")
    assert bench.sandbox.ran_on(sha256_of(b"")) == ["Typer"]  # every other service rejects "empty"


def test_a_filter_that_drops_the_file_ends_its_analysis_unless_filtering_is_ignored(bench: Bench) -> None:
    data = document("document/fake", known_good=True, macros=True)
    bench.analyse(data, "known.doc")
    assert bench.sandbox.ran_on(sha256_of(data)) == ["Typer", "Gate"]
    bench.sandbox.forget()
    bench.analyse(data, "known.doc", {"ignore_filtering": True})
    assert bench.sandbox.ran_on(sha256_of(data)) == ["Typer", "Refiner", "Sniffer", "Judge", "Reporter"]


def test_disabled_services_are_not_called_unless_named(tmp_path: Path) -> None:
    with open_bench(tmp_path / "disabled", {"ASSAY_SERVICES_DISABLED": "sniffer, Judge"}) as bench:
        bench.analyse(MACROS, "macros.doc")
        assert bench.sandbox.ran_on(sha256_of(MACROS)) == ["Typer", "Gate", "Refiner", "Reporter"]
        bench.sandbox.forget()
        bench.analyse(MACROS, "macros.doc", {"services": {"selected": ["Static Analysis", "Sniffer"]}})
        assert "Sniffer" in bench.sandbox.ran_on(sha256_of(MACROS))
        assert "Judge" not in bench.sandbox.ran_on(sha256_of(MACROS))


def test_a_service_is_given_its_parameters_and_the_file_as_stored(bench: Bench) -> None:
    params = {"services": {"selected": ["Matcher"]}, "service_spec": {"Matcher": {"sensitivity": "high"}}}
    bench.analyse(EVIL, "evil.txt", params)
    request = bench.sandbox.last_request("Matcher")
    assert request.params["sensitivity"] == "high"
    assert request.read() == EVIL and request.size == len(EVIL) and request.name == "evil.txt"
    assert request.depth == 0 and request.deep_scan is False
    assert request.workdir == bench.dispatcher.scratch


# -- children and limits ---------------------------------------------------------------------------
def test_extracted_children_are_analysed_under_their_parent(bench: Bench) -> None:
    inner = archive({"evil.txt": EVIL})
    outer = archive({"macros.doc": MACROS, "inner.fak": inner, "disk/notes.txt": b"written to the workdir"})
    analysis = bench.analyse(outer, "outer.fak")
    assert node_of(analysis, outer)[:2] == (None, 0)
    assert node_of(analysis, MACROS)[:2] == (sha256_of(outer), 1)
    assert node_of(analysis, inner)[:2] == (sha256_of(outer), 1)
    assert node_of(analysis, EVIL)[:2] == (sha256_of(inner), 2)
    assert node_of(analysis, b"written to the workdir")[:2] == (sha256_of(outer), 1)
    assert {n.name for n in analysis.nodes} == {"outer.fak", "macros.doc", "inner.fak", "evil.txt", "disk/notes.txt"}
    assert bench.store.get(sha256_of(EVIL)) == EVIL  # children are in the file store
    assert not analysis.errors
    assert list(bench.dispatcher.scratch.iterdir()) == []  # the workdir is emptied after each file


def test_children_deeper_than_max_depth_are_not_analysed_and_their_parent_is_marked(tmp_path: Path) -> None:
    inner = archive({"evil.txt": EVIL})
    outer = archive({"inner.fak": inner})
    with open_bench(tmp_path / "shallow", {"ASSAY_LIMITS_MAX_DEPTH": "1"}) as bench:
        analysis = bench.analyse(outer, "outer.fak")
        assert node_of(analysis, inner) == (sha256_of(outer), 1, 0, True)
        assert sha256_of(EVIL) not in {n.sha256 for n in analysis.nodes}
        assert bench.sandbox.ran_on(sha256_of(EVIL)) == []
        assert node_of(analysis, outer)[3] is False


def test_no_more_children_than_max_extracted_are_analysed(bench: Bench) -> None:
    members = {f"member{i}.txt": f"member {i}".encode() for i in range(5)}
    analysis = bench.analyse(archive(members), "five.fak", {"max_extracted": 3})
    children = [n for n in analysis.nodes if n.depth == 1]
    assert len(children) == 3
    assert analysis.nodes[0].truncated is True
    assert len({call.request.sha256 for call in bench.sandbox.calls}) == 4  # the archive and three members


def test_max_extracted_counts_children_across_the_whole_tree(bench: Bench) -> None:
    inner = archive({"a.txt": b"a", "b.txt": b"b"})
    analysis = bench.analyse(archive({"inner.fak": inner, "c.txt": b"c"}), "tree.fak", {"max_extracted": 3})
    assert len(analysis.nodes) == 4  # the root, its two children, and one of the inner archive's
    assert node_of(analysis, inner)[3] is True


def test_a_child_larger_than_the_file_size_limit_is_an_extract_error(tmp_path: Path) -> None:
    big = b"x" * 600
    with open_bench(tmp_path / "small", {"ASSAY_LIMITS_MAX_FILE_SIZE": "500"}) as bench:
        data = archive({"big.bin": big, "small.txt": b"fits"})
        analysis = bench.analyse(data, "mixed.fak")
        assert {n.name for n in analysis.nodes} == {"mixed.fak", "small.txt"}
        [error] = analysis.errors
        assert (error.sha256, error.service, error.kind) == (sha256_of(data), "Unpacker", ErrorKind.EXTRACT)
        assert "big.bin" in error.message
        assert not bench.store.exists(sha256_of(big))


def test_content_seen_twice_in_a_submission_is_analysed_once(bench: Bench) -> None:
    analysis = bench.analyse(archive({"one.txt": EVIL, "copy.txt": EVIL}), "twins.fak")
    assert [n.name for n in analysis.nodes if n.sha256 == sha256_of(EVIL)] == ["copy.txt", "one.txt"]
    assert bench.sandbox.ran_on(sha256_of(EVIL)) == ["Typer", "Gate", "Sniffer", "Reporter"]


# -- failures ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", [ErrorKind.TIMEOUT, ErrorKind.CRASH, ErrorKind.EXCEPTION])
def test_a_failing_service_becomes_an_error_of_its_kind_and_the_others_carry_on(bench: Bench, kind: ErrorKind) -> None:
    bench.sandbox.fail("Refiner", kind, "Refiner went wrong", sha256=sha256_of(MACROS))
    analysis = bench.analyse(archive({"macros.doc": MACROS, "evil.txt": EVIL}), "pair.fak")
    assert errors_on(analysis, MACROS) == [ErrorRecord(sha256_of(MACROS), "Refiner", kind, "Refiner went wrong")]
    assert [e for e in analysis.errors if e.sha256 != sha256_of(MACROS)] == []
    ran = {r.service.name for r in analysis.results if r.sha256 == sha256_of(MACROS)}
    assert ran == {"Typer", "Gate", "Sniffer", "Reporter"}  # its stage sibling, and the stages after
    assert bench.sandbox.last_request("Reporter").file_type == "document/fake"  # never refined
    assert {r.service.name for r in analysis.results if r.sha256 == sha256_of(EVIL)} >= {"Sniffer"}
    crashed = [(sha256_of(MACROS), "Refiner")] if kind in {ErrorKind.TIMEOUT, ErrorKind.CRASH} else []
    assert analysis.crashes == crashed


def test_a_service_that_raises_becomes_an_exception_error(bench: Bench) -> None:
    analysis = bench.analyse(b"UNCATALOGUED", "odd.txt")
    assert not analysis.errors  # a finding the catalogue does not know is no error ...
    assert analysis.max_score == 0  # ... and scores nothing
    bench.sandbox.fail("Sniffer", ErrorKind.EXCEPTION, "ValueError: bad bytes")
    analysis = bench.analyse(EVIL, "evil.txt")
    assert [(e.service, e.kind) for e in analysis.errors] == [("Sniffer", ErrorKind.EXCEPTION)]
    assert analysis.max_score == 0


def test_a_service_that_crashed_on_a_file_as_often_as_allowed_is_not_tried_again(bench: Bench) -> None:
    bench.sandbox.fail("Sniffer", ErrorKind.CRASH, "Sniffer crashed its process (exit code -11)")
    for _ in range(bench.settings.limits.service_attempts):
        bench.submit(EVIL, "crashy.txt")
        bench.run()
    bench.sandbox.forget()
    sid = bench.submit(EVIL, "crashy.txt", {"ignore_cache": True})
    bench.run()
    assert "Sniffer" not in bench.sandbox.ran_on(sha256_of(EVIL))
    assert bench.sandbox.ran_on(sha256_of(EVIL)) == ["Typer", "Gate", "Reporter"]
    with session_scope(bench.engine, readonly=True) as session:
        [error] = session.scalars(select(models.ServiceError).where(models.ServiceError.sid == sid)).all()
    assert (error.service, error.error_type) == ("Sniffer", "crash") and "not retried" in error.message


# -- scores ------------------------------------------------------------------------------------------
def test_a_files_score_is_the_sum_of_its_services_and_max_score_the_highest_file(bench: Bench) -> None:
    evil_macros = document("document/fake", macros=True, note="EVIL")
    analysis = bench.analyse(archive({"evil.txt": EVIL, "both.doc": evil_macros}, note="EVIL"), "scored.fak")
    assert node_of(analysis, EVIL)[2] == 100  # Sniffer
    assert node_of(analysis, evil_macros)[2] == 600  # Sniffer 100 + Judge 500
    assert analysis.nodes[0].score == 100
    assert analysis.max_score == 600  # the highest file total, not the sum of every file


def test_a_submission_of_nothing_scoring_has_max_score_zero(bench: Bench) -> None:
    analysis = bench.analyse(archive({"a.txt": b"harmless"}), "quiet.fak")
    assert analysis.max_score == 0 and all(n.score == 0 for n in analysis.nodes)


def test_a_service_marking_its_result_raises_the_submissions_marking(bench: Bench) -> None:
    marked = document("document/fake", marking="TLP:AMBER")
    analysis = bench.analyse(archive({"marked.doc": marked, "evil.txt": EVIL}), "bundle.fak")
    assert analysis.marking == "TLP:CLEAR" and analysis.classification == "TLP:AMBER"
    markings = {(r.sha256, r.service.name): r.classification for r in analysis.results}
    assert markings[(sha256_of(marked), "Sniffer")] == "TLP:AMBER"
    assert {m for key, m in markings.items() if key != (sha256_of(marked), "Sniffer")} == {"TLP:CLEAR"}
    assert not analysis.errors


def test_an_unreadable_marking_from_a_service_is_a_classification_error(bench: Bench) -> None:
    analysis = bench.analyse(document("document/fake", marking="TOP SECRET//NOFORN"), "odd.doc")
    assert [(e.service, e.kind) for e in analysis.errors] == [("Sniffer", ErrorKind.CLASSIFICATION)]
    assert analysis.classification == "TLP:CLEAR"


# -- the result cache --------------------------------------------------------------------------------
def test_a_stored_result_is_reused_instead_of_calling_the_service_again(bench: Bench) -> None:
    data = archive({"evil.txt": EVIL, "macros.doc": MACROS})
    bench.submit(data, "first.fak")
    bench.run()
    first_trips = len(bench.sandbox.trips)
    bench.sandbox.forget()
    again = bench.analyse(data, "second.fak")
    assert first_trips > 0 and bench.sandbox.trips == []
    assert again.results and not any(r.new for r in again.results)
    assert again.max_score == 500 and node_of(again, EVIL)[2] == 100
    assert {n.sha256 for n in again.nodes} == {sha256_of(data), sha256_of(EVIL), sha256_of(MACROS)}


def test_ignore_cache_and_changed_parameters_ask_the_services_again(bench: Bench) -> None:
    bench.submit(EVIL, "evil.txt")
    bench.run()
    bench.sandbox.forget()
    bench.analyse(EVIL, "evil.txt", {"ignore_cache": True})
    assert bench.sandbox.ran_on(sha256_of(EVIL)) == ["Typer", "Gate", "Sniffer", "Reporter"]
    bench.sandbox.forget()
    bench.analyse(EVIL, "evil.txt", {"deep_scan": True})
    assert bench.sandbox.ran_on(sha256_of(EVIL)) == ["Typer", "Gate", "Sniffer", "Reporter"]
    assert bench.sandbox.last_request("Sniffer").deep_scan is True


def test_a_failed_service_is_asked_again_next_time(bench: Bench) -> None:
    bench.sandbox.fail("Sniffer", ErrorKind.EXCEPTION, "flaky")
    bench.submit(EVIL, "evil.txt")
    bench.run()
    bench.sandbox.failures.clear()
    bench.sandbox.forget()
    analysis = bench.analyse(EVIL, "evil.txt")
    assert bench.sandbox.ran_on(sha256_of(EVIL)) == ["Sniffer"]  # the others come from the cache
    assert analysis.max_score == 100 and not analysis.errors


def test_safelisted_network_indicators_are_not_tagged(bench: Bench) -> None:
    with session_scope(bench.engine) as session:
        safelist.add(session, [safelist.classify("example.org", "domain")])
    data = document("document/fake", domains=["cdn.example.org", "evil.example.net"])
    analysis = bench.analyse(data, "links.doc")
    [sniffed] = [r for r in analysis.results if r.service.name == "Sniffer"]
    assert sniffed.tags == [("network.static.domain", "evil.example.net")]
