"""The query language against real rows, on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from assay.access import ClassificationEngine
from assay.access.visibility import Reader
from assay.db.base import utcnow
from assay.db.models import Submission, SubmissionMeta
from assay.db.session import get_engine, session_scope, upgrade
from assay.results.search import submissions_query
from tests.helpers.servers import drop_pg, new_pg_url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.services)], scope="module")
def engine(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    if request.param == "sqlite":
        url, name = f"sqlite:///{tmp_path_factory.mktemp('search') / 'a.db'}", None
    else:
        name, url = new_pg_url()
    engine = get_engine(url)
    upgrade(engine)
    with session_scope(engine) as session:
        now = utcnow()
        rows = [
            ("s1", "/tmp/x", 0, "completed", "a.exe", now - timedelta(days=3)),
            ("s2", "/tmp/y", 500, "completed", "b.doc", now - timedelta(days=2)),
            ("s3", "/tmp/x", 1000, "completed", "c.exe", now - timedelta(days=1)),
            ("s4", "/srv/100%_real", 300, "submitted", "d_e.txt", now),
        ]
        for sid, path, score, state, name_, created in rows:
            session.add(
                Submission(
                    sid=sid,
                    user="u",
                    state=state,
                    priority=150,
                    scan_key=sid,
                    sha256=sid * 16,
                    name=name_,
                    size=1,
                    params={},
                    meta={"file_path": path},
                    max_score=score,
                    created=created,
                )
            )
            session.flush()
            session.add(SubmissionMeta(sid=sid, key="file_path", value=path))
    yield engine
    engine.dispose()
    if name:
        drop_pg(name)


EVERYONE = Reader.cleared_for_all(ClassificationEngine.tlp_default())


def sids(engine: Engine, query: str) -> list[str]:
    with session_scope(engine) as session:
        return sorted(s.sid for s in session.scalars(submissions_query(query, [], EVERYONE)))


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ('metadata.file_path:"/tmp/x" AND max_score:>=500', ["s3"]),
        ("metadata.file_path:/tmp/*", ["s1", "s2", "s3"]),
        ("name:*.exe OR max_score:[400 TO 600]", ["s1", "s2", "s3"]),
        ("NOT state:completed", ["s4"]),
        ("-state:completed", ["s4"]),
        ("max_score:{300 TO 1000]", ["s2", "s3"]),
        ('metadata.file_path:"/srv/100%_real"', ["s4"]),
        ("name:d_e.txt", ["s4"]),
        ("name:d?e.txt", ["s4"]),
        ("exe", ["s1", "s3"]),
        ("*:*", ["s1", "s2", "s3", "s4"]),
        ("(state:completed AND max_score:<500) OR sid:s4", ["s1", "s4"]),
    ],
)
def test_queries_find_what_they_say(engine: Engine, query: str, expected: list[str]) -> None:
    assert sids(engine, query) == expected


def test_time_ranges(engine: Engine) -> None:
    with session_scope(engine) as session:
        newest = session.scalar(select(Submission.created).where(Submission.sid == "s4"))
    since = (newest - timedelta(hours=36)).strftime("%Y-%m-%dT%H:%M:%S")
    assert sids(engine, f"times.submitted:[{since} TO *]") == ["s3", "s4"]


def test_path_is_not_a_wildcard_when_quoted_or_escaped(tmp_path: Path, engine: Engine) -> None:
    assert sids(engine, 'metadata.file_path:"/tmp/*"') == []
