"""Recording analyses: everything a batch of runs found, written in a handful of statements.

Writing a batch costs about ten set-based statements whatever its size, instead of a dozen per
submission; the transaction is the caller's, so results, file tree, errors and notification
messages of a submission become visible together. Only submissions still leased to the worker
and not yet completed are written, and the same transaction completes them: a submission is
recorded once, so nothing of an earlier attempt needs replacing. Results are shared by key, and a
submission whose lease was lost is left to its new owner.
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from assay import notify
from assay.access import ClassificationEngine, UnknownMarking
from assay.access.visibility import stored_marking
from assay.db import bulk, models
from assay.db.base import storable, utcnow
from assay.db.upsert import dialect_insert, insert_ignore
from assay.dispatch.analysis import Analysis, ErrorKind

log = logging.getLogger(__name__)

IDENTITY_FIELDS = ("type", "mime", "magic", "ssdeep", "tlsh", "entropy")
Done = list[tuple[models.Submission, Analysis]]


def record(session: Session, worker_id: str, done: Done, markings: ClassificationEngine) -> list[str]:
    """Store finished analyses of submissions ``worker_id`` still owns; returns the sids stored.

    ``markings`` reads the analyses' classifications into the columns read queries filter on.
    """
    owned = _still_owned(session, worker_id, [s.sid for s, _ in done])
    kept = [(s, a) for s, a in done if s.sid in owned]
    for submission, _ in done:
        if submission.sid not in owned:
            log.warning("lost the lease on %s; another worker stores it", submission.sid)
    if not kept:
        return []
    now = utcnow()
    sids = [s.sid for s, _ in kept]
    _complete(session, kept, now, markings)
    _files(session, kept, now, markings)
    _results(session, kept, markings)
    _tree(session, kept)
    _errors(session, kept, now)
    notify.complete_many(session, {s.sid: (a.max_score, "") for s, a in kept})
    return sids


def _still_owned(session: Session, worker_id: str, sids: list[str]) -> set[str]:
    query = select(models.Submission.sid).where(
        models.Submission.sid.in_(sids),
        models.Submission.lease_owner == worker_id,
        models.Submission.state == "submitted",
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update()
    return set(session.scalars(query))


def _complete(session: Session, kept: Done, now: datetime, markings: ClassificationEngine) -> None:
    rows = [
        {
            "sid": s.sid,
            **stored_marking(markings, a.classification).columns(),
            "state": "completed",
            "max_score": a.max_score,
            "file_count": len({n.sha256 for n in a.nodes}),
            "error_count": len(a.errors),
            "completed": now,
            "lease_owner": None,
            "lease_until": None,
        }
        for s, a in kept
    ]
    bulk.update_rows(session, models.Submission.__table__, "sid", rows)


def _files(session: Session, kept: Done, now: datetime, markings: ClassificationEngine) -> None:
    merged: dict[str, dict[str, Any]] = {}
    seen: Counter[str] = Counter()
    marked: dict[str, str] = {}
    for submission, analysis in kept:
        for sha, info in analysis.files.items():
            merged.setdefault(sha, {}).update({k: v for k, v in info.items() if v is not None})
            seen[sha] += 1
            # The submitted file is marked as it was submitted; what was extracted, as the whole run.
            marking = analysis.marking if sha == submission.sha256 else analysis.classification
            marked[sha] = _lowest(markings, marked[sha], marking) if sha in marked else marking
    rows = [
        {
            "sha256": sha,
            "md5": info.get("md5", ""),
            "sha1": info.get("sha1", ""),
            "size": info.get("size", 0),
            "seen_count": seen[sha],
            "seen_first": now,
            "seen_last": now,
            **{name: info.get(name) for name in IDENTITY_FIELDS},
            **stored_marking(markings, marked[sha]).columns(),
        }
        for sha, info in merged.items()
    ]
    table = models.File.__table__
    insert = dialect_insert(session, table)
    keep_known = {name: func.coalesce(insert.excluded[name], table.c[name]) for name in IDENTITY_FIELDS}
    statement = insert.on_conflict_do_update(
        index_elements=[table.c.sha256],
        set_={
            "seen_count": table.c.seen_count + insert.excluded.seen_count,
            "seen_last": insert.excluded.seen_last,
            "md5": func.coalesce(func.nullif(insert.excluded.md5, ""), table.c.md5),
            "sha1": func.coalesce(func.nullif(insert.excluded.sha1, ""), table.c.sha1),
            **keep_known,
        },
    ).returning(table.c.sha256, table.c.classification)
    known = dict(session.execute(statement, rows).all())
    _lower_files(session, markings, known, marked)


def _lowest(markings: ClassificationEngine, held: str, wanted: str) -> str:
    """``min_of``: a file is visible to whoever could see any submission of it."""
    try:
        return markings.min_of(held, wanted)
    except UnknownMarking:  # held from before the levels were changed: the new marking is readable
        return wanted


def _lower_files(
    session: Session, markings: ClassificationEngine, held: dict[str, str], wanted: dict[str, str]
) -> None:
    """Lower files seen before at a higher marking (usually none: the same file, the same marking).

    The upsert left known files' markings alone and locked their rows (PostgreSQL) or the
    database (SQLite) until commit, so what it returned is current and the lowering is exact.
    """
    rows = []
    for sha, marking in held.items():
        lowest = _lowest(markings, marking, wanted[sha])
        if lowest != marking:
            rows.append({"sha256": sha, **stored_marking(markings, lowest).columns()})
    bulk.update_rows(session, models.File.__table__, "sha256", rows)


def _results(session: Session, kept: Done, markings: ClassificationEngine) -> None:
    new = {r.key: r for _, a in kept for r in a.results if r.new}
    created = utcnow()
    inserted = insert_ignore(
        session,
        models.ResultRecord.__table__,
        [
            {
                "key": r.key,
                "sha256": r.sha256,
                "service": r.service.name,
                "service_version": r.service.version,
                "score": r.score,
                "body": r.body,
                "created": created,
                **stored_marking(markings, r.classification).columns(),
            }
            for r in new.values()
        ],
        returning="key",
    )
    tags = [
        {"result_key": key, "sha256": new[key].sha256, "type": tag_type, "value": value}
        for key in inserted
        for tag_type, value in new[key].tags
    ]
    bulk.insert_rows(session, models.TagRecord.__table__, tags)
    links = {(s.sid, r.key) for s, a in kept for r in a.results}
    rows = [{"sid": sid, "result_key": key} for sid, key in sorted(links)]
    bulk.insert_rows(session, models.SubmissionResult.__table__, rows)


def _tree(session: Session, kept: Done) -> None:
    rows = []
    for submission, analysis in kept:
        scores: dict[str, int] = {}
        for node in analysis.nodes:  # a repeated content is analysed once: its first node holds the score
            scores.setdefault(node.sha256, node.score)
        rows.extend(
            {
                "sid": submission.sid,
                "sha256": n.sha256,
                "parent": n.parent,
                "name": n.name,
                "depth": n.depth,
                "score": scores.get(n.sha256, 0),
                "truncated": n.truncated,
            }
            for n in analysis.nodes
        )
    bulk.insert_rows(session, models.SubmissionFile.__table__, rows)


def _errors(session: Session, kept: Done, now: datetime) -> None:
    rows: dict[str, dict[str, Any]] = {}
    crashes: Counter[tuple[str, str]] = Counter()
    for submission, analysis in kept:
        for error in analysis.errors:
            key = f"{submission.sid}.{error.sha256}.{error.service}.{error.kind}"
            rows[key] = {
                "key": key,
                "sid": submission.sid,
                "sha256": error.sha256,
                "service": error.service,
                "error_type": error.kind.value,
                "message": storable(error.message),
                "created": now,
            }
        crashes.update(analysis.crashes)
    bulk.insert_rows(session, models.ServiceError.__table__, list(rows.values()))
    if crashes:
        crash_table = models.ServiceCrash.__table__
        insert = dialect_insert(session, crash_table)
        statement = insert.on_conflict_do_update(
            index_elements=[crash_table.c.sha256, crash_table.c.service],
            set_={"count": crash_table.c.count + insert.excluded["count"]},
        )
        session.execute(
            statement, [{"sha256": sha, "service": service, "count": n} for (sha, service), n in crashes.items()]
        )


def record_failure(session: Session, worker_id: str, sid: str, reason: str) -> None:
    """End a submission that cannot be analysed: state failed, one error, messages with ``failure``."""
    submission = session.get(models.Submission, sid)
    if submission is None or submission.lease_owner != worker_id:
        return
    now = utcnow()
    submission.state = "failed"
    submission.completed = now
    submission.lease_owner = None
    submission.lease_until = None
    submission.error_count = max(submission.error_count, 1)
    session.merge(
        models.ServiceError(
            key=f"{sid}.{submission.sha256}.dispatcher.{ErrorKind.FAILED}",
            sid=sid,
            sha256=submission.sha256,
            service="dispatcher",
            error_type=ErrorKind.FAILED.value,
            message=reason,
            created=now,
        )
    )
    notify.complete_ingests(session, sid, None, reason)
