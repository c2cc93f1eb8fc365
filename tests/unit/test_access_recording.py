"""Markings through the dispatcher, the recording and the views, over the fake services.

A result is made under its submission's marking (part of its key, so it is never reused under
another), rises to what its service marked, and raises the submission with it; a file keeps the
lowest marking it was submitted at; the views drop what lies above their reader.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select, update

from assay.access import Clearance
from assay.access.visibility import Reader, stored_marking
from assay.db import models
from assay.db.session import session_scope
from assay.dispatch.analysis import ErrorKind
from assay.dispatch.dispatcher import key_marking, raised_marking
from assay.results import views
from tests.helpers.fakes import Bench, archive, document, open_bench, sha256_of

EVIL = b"some text with the EVIL marker"
ROOT = archive({"evil.txt": EVIL})


@pytest.fixture
def bench(tmp_path: Path) -> Iterator[Bench]:
    with open_bench(tmp_path / "bench", {"ASSAY_CLASSIFICATION_GROUPS": "G1,G2"}) as bench:
        yield bench


def marked(marking: str) -> dict[str, str]:
    return {"classification": marking}


def reader(bench: Bench, level: str, *groups: str) -> Reader:
    return Reader(bench.dispatcher.markings, Clearance(level, frozenset(groups)))


def recorded(bench: Bench, data: bytes, marking: str) -> str:
    sid = bench.submit(data, "sample", marked(marking))
    bench.run()
    return sid


# -- keys and markings ------------------------------------------------------------------------------
def test_result_keys_differ_per_marking_and_the_unrestricted_one_adds_nothing(bench: Bench) -> None:
    keys = {m: {r.key for r in bench.analyse(ROOT, "a", marked(m)).results} for m in ("TLP:CLEAR", "TLP:GREEN")}
    assert keys["TLP:CLEAR"].isdisjoint(keys["TLP:GREEN"])
    assert key_marking(bench.dispatcher.markings, "TLP:CLEAR") == {}
    assert key_marking(bench.dispatcher.markings, "TLP:GREEN") == {"classification": "TLP:GREEN"}


def test_a_result_rises_to_its_services_marking_and_the_submission_with_it(bench: Bench) -> None:
    analysis = bench.analyse(document("document/fake", marking="tlp:a"), "a", marked("TLP:GREEN"))
    by_service = {r.service.name: r.classification for r in analysis.results}
    assert by_service["Sniffer"] == "TLP:AMBER" and by_service["Typer"] == "TLP:GREEN"
    assert (analysis.marking, analysis.classification) == ("TLP:GREEN", "TLP:AMBER")


def test_groups_sharing_nothing_keep_the_submitters_at_the_higher_level_with_an_error(bench: Bench) -> None:
    data = document("document/fake", marking="TLP:AMBER//REL TO G2")
    analysis = bench.analyse(data, "a", marked("TLP:GREEN//REL TO G1"))
    assert analysis.classification == "TLP:AMBER//REL TO G1"
    [error] = [e for e in analysis.errors if e.kind == ErrorKind.CLASSIFICATION]
    assert error.service == "Sniffer" and "no group is common" in error.message


def test_a_marking_a_service_gets_wrong_is_an_error_and_changes_nothing(bench: Bench) -> None:
    analysis = bench.analyse(document("document/fake", marking="BANANA"), "a", marked("TLP:GREEN"))
    assert analysis.classification == "TLP:GREEN"
    assert [e.kind for e in analysis.errors] == [ErrorKind.CLASSIFICATION]


def test_raised_marking_never_lowers_the_level() -> None:
    from assay.access import ClassificationEngine, GroupDef

    engine = ClassificationEngine.tlp_default(groups=[GroupDef("G1"), GroupDef("G2")])
    assert raised_marking(engine, "TLP:RED//REL TO G1", "TLP:GREEN//REL TO G2")[0] == "TLP:RED//REL TO G1"
    assert raised_marking(engine, "TLP:GREEN", "TLP:AMBER//REL TO G2") == ("TLP:AMBER//REL TO G2", None)


# -- recording ------------------------------------------------------------------------------------
def _marking_of(bench: Bench, model: type, **where: str) -> list[str]:
    with session_scope(bench.engine, readonly=True) as session:
        query = select(model.classification).filter_by(**where)
        return sorted(session.scalars(query))


def test_recorded_rows_carry_their_markings(bench: Bench) -> None:
    sid = recorded(bench, ROOT, "TLP:A")
    assert _marking_of(bench, models.Submission, sid=sid) == ["TLP:AMBER"]
    assert set(_marking_of(bench, models.ResultRecord, sha256=sha256_of(ROOT))) == {"TLP:AMBER"}
    assert _marking_of(bench, models.File, sha256=sha256_of(EVIL)) == ["TLP:AMBER"]
    with session_scope(bench.engine, readonly=True) as session:
        row = session.get(models.Submission, sid)
        assert row is not None and (row.classification_level, row.classification_groups) == (2, "")


def test_a_file_takes_the_lowest_marking_it_was_submitted_at(bench: Bench) -> None:
    recorded(bench, ROOT, "TLP:RED//REL TO G1")
    assert _marking_of(bench, models.File, sha256=sha256_of(ROOT)) == ["TLP:RED//REL TO G1"]
    recorded(bench, ROOT, "TLP:AMBER//REL TO G2")
    assert _marking_of(bench, models.File, sha256=sha256_of(ROOT)) == ["TLP:AMBER//REL TO G1, G2"]
    recorded(bench, ROOT, "TLP:RED")  # without groups: the group restriction goes (Assemblyline's min)
    assert _marking_of(bench, models.File, sha256=sha256_of(ROOT)) == ["TLP:AMBER"]
    recorded(bench, ROOT, "TLP:GREEN")
    assert _marking_of(bench, models.File, sha256=sha256_of(ROOT)) == ["TLP:GREEN"]


# -- the views drop what lies above the reader --------------------------------------------------------
def _mark(bench: Bench, model: type, marking: str, **where: str) -> None:
    columns = stored_marking(bench.dispatcher.markings, marking).columns()
    with session_scope(bench.engine) as session:
        session.execute(update(model).filter_by(**where).values(**columns))


def test_the_views_drop_results_tags_and_files_above_the_reader(bench: Bench) -> None:
    sid = recorded(bench, ROOT, "TLP:GREEN")
    evil = sha256_of(EVIL)
    _mark(bench, models.ResultRecord, "TLP:RED", sha256=evil, service="Sniffer")
    green, red = reader(bench, "TLP:GREEN"), reader(bench, "TLP:RED")
    with session_scope(bench.engine, readonly=True) as session:
        sub = session.get(models.Submission, sid)
        assert sub is not None
        hidden = {k for k in views.submission(session, sub, red)["results"]} - set(
            views.submission(session, sub, green)["results"]
        )
        assert [key.split(".")[:2] for key in hidden] == [[evil, "Sniffer"]]
        assert hidden.isdisjoint(views.full(session, sub, green)["results"])
        assert "file.string.extracted" in views.summary(session, sub, red)["tags"]
        assert "file.string.extracted" not in views.summary(session, sub, green)["tags"]
        found = views.file_in_submission(session, sid, evil, green)
        assert found is not None and not found["tags"] and hidden.isdisjoint(r["key"] for r in found["results"])
    _mark(bench, models.File, "TLP:RED", sha256=evil)
    with session_scope(bench.engine, readonly=True) as session:
        sub = session.get(models.Submission, sid)
        assert sub is not None
        tree = views.tree(session, sub, green)
        assert tree["filtered"] and evil not in tree["tree"][sha256_of(ROOT)]["children"]
        assert evil in views.tree(session, sub, red)["tree"][sha256_of(ROOT)]["children"]
        assert evil not in views.full(session, sub, green)["file_infos"]
        assert views.file_in_submission(session, sid, evil, green) is None
