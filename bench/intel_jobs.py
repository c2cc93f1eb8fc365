"""Benchmark: a large TcEx-style job through the bulk path, against one ORM row at a time.

For each backend (SQLite file in WAL mode, PostgreSQL on loopback) it creates a fresh database,
runs one job of N indicators (mixed types, each associated with a group, every k-th File with an
occurrence) plus G groups and some name-based group associations, then runs the same job again
(the idempotent re-run). The ORM baseline writes a subset of the same indicators one by one (look-up,
add, association, commit per item) and is extrapolated to N. Prints JSON.

    .venv/bin/python bench/intel_jobs.py --indicators 100000 --groups 200 --orm-subset 2000
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, select
from sqlalchemy.orm import Session

from assay.db.base import Base
from assay.intel import Job
from assay.intel.indicators import parse_indicator, parse_occurrence
from assay.intel.models import INTEL_TABLES, FileOccurrence, Group, GroupIndicator, Indicator, Owner
from assay.intel.store import occurrence_fingerprint


def make_items(n: int, groups: int, every: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict]]:
    group_items = [
        {"name": f"Group {g}", "type": "Adversary", "xid": f"g-{g}", "tag": ["bench"]} for g in range(groups)
    ]
    indicators = []
    for i in range(n):
        kind = i % 4
        base: dict[str, Any] = {
            "rating": i % 6,
            "confidence": i % 101,
            "tag": [{"name": "bench"}, {"name": f"t{i % 7}"}],
            "attribute": [{"type": "Source", "value": "bench"}],
            "associatedGroup": [f"g-{i % groups}"],
        }
        if kind == 0:
            base.update(type="Address", summary=f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}")
        elif kind == 1:
            base.update(type="Host", summary=f"Host{i}.Example.COM")
        elif kind == 2:
            md5 = f"{i:032x}"
            base.update(type="File", summary=f"{md5.upper()} : {i:064x}")
            if i % every == 2:
                base["fileOccurrence"] = [
                    {"fileName": f"f{i}.dll", "path": "C:\\x", "date": "2020-01-01T00:00:00-05:00"}
                ]
        else:
            base.update(type="URL", summary=f"http://site{i}.example/p?q={i}")
        indicators.append(base)
    by_name = [
        {
            "group_name": f"Group {g}",
            "group_type": "Adversary",
            "indicator": indicators[g]["summary"],
            "indicator_type": indicators[g]["type"],
        }
        for g in range(min(groups, n))
    ]
    return group_items, indicators, by_name


def build_job(engine: Engine, items: tuple[list, list, list]) -> Job:
    job = Job(owner="Bench Org", engine=engine)
    for group in items[0]:
        job.group(group)
    for indicator in items[1]:
        job.indicator(indicator)
    for association in items[2]:
        job.group_association(association)
    return job


@contextmanager
def backend(name: str, pg_server: str) -> Iterator[Engine]:
    """A fresh, empty database on the named backend, removed afterwards."""
    if name == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            engine = create_engine(f"sqlite:///{Path(tmp) / 'bench.db'}")

            @event.listens_for(engine, "connect")
            def _wal(dbapi_conn: Any, _record: Any) -> None:
                dbapi_conn.execute("PRAGMA journal_mode=WAL")
                dbapi_conn.execute("PRAGMA synchronous=NORMAL")

            Base.metadata.create_all(engine, tables=INTEL_TABLES)
            yield engine
            engine.dispose()
        return
    import psycopg

    dbname = f"assay_intel_bench_{secrets.token_hex(4)}"
    admin_url = pg_server.replace("postgresql+psycopg://", "postgresql://") + "/test"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{dbname}"')
        engine = create_engine(f"{pg_server}/{dbname}")
        try:
            Base.metadata.create_all(engine, tables=INTEL_TABLES)
            yield engine
        finally:
            engine.dispose()
            admin.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')


def orm_one_by_one(engine: Engine, items: tuple[list, list, list], subset: int) -> float:
    """Seconds to write `subset` indicators one ORM row at a time (same validation, commit per item)."""
    with Session(engine) as session:
        owner = Owner(name="Bench Org")
        session.add(owner)
        session.commit()
        groups = {}
        for g in items[0]:
            row = Group(owner_id=owner.id, type=g["type"], name=g["name"], xid=g["xid"], tags=g["tag"])
            session.add(row)
            session.commit()
            groups[g["xid"]] = row.id
        start = time.perf_counter()
        for raw in items[1][:subset]:
            item = parse_indicator(raw)
            found = session.scalars(
                select(Indicator).where(
                    Indicator.owner_id == owner.id,
                    Indicator.type == item.type,
                    Indicator.summary == item.summary,
                )
            ).first()
            if found is None:
                hashes = item.hashes
                found = Indicator(
                    owner_id=owner.id, type=item.type, summary=item.summary, rating=item.rating,
                    confidence=item.confidence, attributes=item.attributes, tags=item.tags,
                    security_labels=item.labels, external_dates={},
                    md5=hashes.md5 if hashes else None, sha1=hashes.sha1 if hashes else None,
                    sha256=hashes.sha256 if hashes else None,
                )  # fmt: skip
                session.add(found)
                session.flush()
            for ref in item.group_refs:
                session.merge(GroupIndicator(group_id=groups[ref], indicator_id=found.id))
            for occ in raw.get("fileOccurrence", []):
                data = parse_occurrence(occ)
                session.add(
                    FileOccurrence(
                        indicator_id=found.id,
                        fingerprint=occurrence_fingerprint(data),
                        file_name=data["fileName"],
                        path=data["path"],
                    )
                )
            session.commit()
        return time.perf_counter() - start


def measure(name: str, args: argparse.Namespace, items: tuple[list, list, list]) -> dict[str, Any]:
    n = len(items[1])
    load = os.getloadavg()[0]  # other work on the machine shifts every figure: report it alongside
    with backend(name, args.pg_server) as engine:
        start, cpu = time.perf_counter(), time.process_time()
        result = build_job(engine, items).process()
        bulk, bulk_cpu = time.perf_counter() - start, time.process_time() - cpu
        start = time.perf_counter()
        rerun = build_job(engine, items).process()
        again = time.perf_counter() - start
    counts = {k: v.__dict__ for k, v in result.counts.items()}
    total_items = sum(c["submitted"] for c in counts.values())
    subset = min(args.orm_subset, n)
    with backend(name, args.pg_server) as engine:
        orm_seconds = orm_one_by_one(engine, items, subset)
    orm_rate = subset / orm_seconds
    return {
        "backend": name,
        "exit_code": result.exit_code,
        "rerun_exit_code": rerun.exit_code,
        "errors": len(result.errors),
        "counts": counts,
        "load_average_1m_before": round(load, 2),
        "bulk_seconds": round(bulk, 3),
        "bulk_client_cpu_seconds": round(bulk_cpu, 3),
        "phase_seconds": {k: round(v, 3) for k, v in result.timings.items()},
        "indicator_phase_per_s": round(n / result.timings["indicator"]),
        "bulk_indicators_per_s": round(n / bulk),
        "bulk_items_per_s": round(total_items / bulk),
        "rerun_seconds": round(again, 3),
        "rerun_indicators_per_s": round(n / again),
        "orm_subset": subset,
        "orm_indicators_per_s": round(orm_rate),
        "orm_seconds_extrapolated_to_n": round(n / orm_rate, 1),
        "orm_extrapolated": subset < n,
        "speedup_vs_orm": round((n / bulk) / orm_rate, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--indicators", type=int, default=100_000)
    parser.add_argument("--groups", type=int, default=200)
    parser.add_argument("--occurrence-every", type=int, default=10, help="every k-th File gets an occurrence")
    parser.add_argument("--orm-subset", type=int, default=2000, help="indicators written by the ORM baseline")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--pg-server", default="postgresql+psycopg://postgres@127.0.0.1:5432")
    args = parser.parse_args()
    items = make_items(args.indicators, args.groups, args.occurrence_every)
    report = {
        "indicators": args.indicators,
        "groups": args.groups,
        "results": [measure(name, args, items) for name in args.backends.split(",")],
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
