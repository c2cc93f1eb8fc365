"""Benchmark: what classification checks cost per ingest and per search, in one run.

Two parts. The check functions' own cost per call: normalising a marking (from the engine's
cache, and uncached), the intake's whole check of one ingest (normalise, then ``is_accessible``
against the submitter's clearance) and building the visibility condition a read query adds.
Then a search (count and first page, as ``POST /api/v4/search/submission/`` runs them) over a
database of N submissions with mixed markings, without the condition, with it for a reader
cleared for everything and with it for a TLP:GREEN reader. Prints JSON.

    .venv/bin/python bench/access_cost.py --submissions 5000 --repeat 50 [--postgres]
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, select

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this tree's assay and test helpers

from assay.access import ClassificationEngine, Clearance, GroupDef
from assay.access.visibility import Reader, stored_marking, visible_to
from assay.config import ClassificationSettings, Settings
from assay.db import bulk
from assay.db.base import utcnow
from assay.db.models import Submission, SubmissionMeta
from assay.db.session import get_engine, session_scope, upgrade
from assay.intake.ingest import Intake
from assay.results.search import parse, submissions_query
from tests.helpers.servers import drop_pg, new_pg_url

GROUPS = ("G1", "G2", "G3")
MARKINGS = ("TLP:CLEAR", "TLP:GREEN", "TLP:AMBER", "TLP:AMBER//REL TO G1", "TLP:RED", "TLP:RED//REL TO G2, G3")
QUERIES = ("*:*", "max_score:>=500", 'metadata.case:"c7"')


def per_call_us(function: Callable[[], object], calls: int) -> float:
    """Microseconds per call, the best of three runs of ``calls`` (the least disturbed)."""
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        for _ in range(calls):
            function()
        best = min(best, time.perf_counter() - started)
    return round(best / calls * 1e6, 3)


def spellings(count: int) -> list[str]:
    """``count`` distinct spellings of one marking (case and spacing), so none comes from a cache."""
    base = "tlp:amber//rel to g1, g2"
    variants = ("".join(chars) for chars in itertools.product(*((c.lower(), c.upper()) for c in base)))
    return [f"{' ' * (n % 3)}{text}" for n, text in zip(range(count), variants, strict=False)]


def check_costs(calls: int) -> dict[str, float]:
    settings_section = ClassificationSettings(groups=GROUPS)
    intake = Intake(Settings(data_dir=Path(tempfile.gettempdir()), classification=settings_section))
    engine = intake.markings
    clearance = Clearance("TLP:AMBER", frozenset({"G1"}))
    known = itertools.cycle(["tlp:a//rel g1", "TLP:GREEN", "TLP:A", "TLP:CLEAR"])
    asked = itertools.cycle(["tlp:a//rel g1", "TLP:GREEN", "", "TLP:CLEAR"])  # "": the default
    fresh = ClassificationEngine.tlp_default(groups=[GroupDef(g) for g in GROUPS])
    unseen = iter(spellings(calls * 3))
    return {
        "normalise_cached_us": per_call_us(lambda: stored_marking(engine, next(known)), calls),
        "normalise_uncached_us": per_call_us(lambda: fresh.normalise(next(unseen)), calls),
        "ingest_check_us": per_call_us(lambda: intake.classify(next(asked), clearance), calls),
        "visible_to_us": per_call_us(lambda: visible_to(engine, clearance, Submission), calls),
    }


@contextmanager
def database(postgres: bool, root: Path) -> Iterator[Engine]:
    name = None
    if postgres:
        name, url = new_pg_url()
    else:
        url = f"sqlite:///{root / 'bench.db'}"
    engine = get_engine(url)
    try:
        upgrade(engine)
        yield engine
    finally:
        engine.dispose()
        if name:
            drop_pg(name)


def fill(engine: Engine, count: int, markings: ClassificationEngine) -> None:
    now = utcnow()
    rows, meta = [], []
    for n in range(count):
        sid = f"s{n:08d}"
        rows.append(
            {
                "sid": sid,
                "user": "bench",
                "state": "completed",
                "priority": 150,
                "scan_key": f"{n:032x}v0",
                "sha256": f"{n:064x}",
                "name": f"file{n}.bin",
                "size": n,
                "params": {},
                "metadata": {"case": f"c{n % 10}"},
                "max_score": (n * 37) % 1001,
                "created": now - timedelta(seconds=n),
                **stored_marking(markings, MARKINGS[n % len(MARKINGS)]).columns(),
            }
        )
        meta.append({"sid": sid, "key": "case", "value": f"c{n % 10}"})
    with session_scope(engine) as session:
        bulk.insert_rows(session, Submission.__table__, rows)
        bulk.insert_rows(session, SubmissionMeta.__table__, meta)


def one_search(engine: Engine, query: Any) -> int:
    """What the search route runs: the total, then the first page newest first."""
    with session_scope(engine, readonly=True) as session:
        total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
        ordered = query.order_by(Submission.created.desc(), Submission.sid.desc()).limit(25)
        session.scalars(ordered).all()
        return total


def query_for(text: str, reader: Reader | None) -> Any:
    """The search's query as the route builds it, or without the visibility condition (None)."""
    return select(Submission).where(parse(text)) if reader is None else submissions_query(text, [], reader)


def search_costs(engine: Engine, markings: ClassificationEngine, repeat: int) -> dict[str, Any]:
    readers = {
        "unfiltered": None,
        "cleared_for_all": Reader.cleared_for_all(markings),
        "green": Reader(markings, Clearance("TLP:GREEN")),
    }
    figures: dict[str, Any] = {}
    for text in QUERIES:
        for label, reader in readers.items():
            total = one_search(engine, query_for(text, reader))  # warms the statement cache and the pages
            times = []
            for _ in range(repeat):
                started = time.perf_counter()
                one_search(engine, query_for(text, reader))
                times.append(time.perf_counter() - started)
            figures[f"{text} [{label}]"] = {"ms": round(statistics.median(times) * 1e3, 3), "total": total}
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--submissions", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=50, help="searches timed per query and reader")
    parser.add_argument("--calls", type=int, default=20000, help="calls timed per check function")
    parser.add_argument("--postgres", action="store_true", help="also search a PostgreSQL database on loopback")
    args = parser.parse_args()
    markings = ClassificationEngine.tlp_default(groups=[GroupDef(g) for g in GROUPS])
    report: dict[str, Any] = {"checks": check_costs(args.calls), "submissions": args.submissions, "search": {}}
    backends = ["sqlite", "postgresql"] if args.postgres else ["sqlite"]
    for backend in backends:
        with tempfile.TemporaryDirectory() as root, database(backend == "postgresql", Path(root)) as engine:
            fill(engine, args.submissions, markings)
            report["search"][backend] = search_costs(engine, markings, args.repeat)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
