"""What IoTInsight reads back: a finished task's structured results, and a case merged.

A task's own file gives ``results`` by service; files extracted from it give ``extracted`` by
hash, so a client that wants only the top-level data does not have to sort them apart. Both read
with the caller's :class:`Reader`: a case shows only the tasks and results they may see.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from assay.access.visibility import Reader
from assay.config import Settings
from assay.db import models
from assay.iotinsight import cases, tasks
from assay.iotinsight.models import Case, CaseTask, Task
from assay.results import views

MAX_TREE_ROWS = 1000


def _result_rows(session: Session, sid: str, reader: Reader) -> list[models.ResultRecord]:
    keys = views.visible_result_keys(session, sid, reader)
    return list(session.scalars(select(models.ResultRecord).where(models.ResultRecord.key.in_(keys))))


def _tree_rows(session: Session, submission: models.Submission, reader: Reader) -> list[dict[str, Any]]:
    """The file tree flattened depth first, each row with its depth; at most :data:`MAX_TREE_ROWS`."""
    rows: list[dict[str, Any]] = []

    def visit(level: dict[str, Any], depth: int) -> None:
        for entry in level.values():
            if len(rows) >= MAX_TREE_ROWS:
                return
            rows.append(
                {
                    "sha256": entry["sha256"],
                    "name": entry["name"],
                    "type": entry["type"],
                    "size": entry["size"],
                    "score": entry["score"],
                    "depth": depth,
                }
            )
            visit(entry["children"], depth + 1)

    visit(views.tree(session, submission, reader)["tree"], 0)
    return rows


def task(session: Session, found: Task | None, submission: models.Submission, reader: Reader) -> dict[str, Any]:
    """A finished task's answer: each service's data, the score and verdict, the file tree, errors."""
    results: dict[str, Any] = {}
    extracted: dict[str, dict[str, Any]] = {}
    for row in _result_rows(session, submission.sid, reader):
        data = row.body.get("data") or {}
        if row.sha256 == submission.sha256:
            results[row.service] = data
        elif data:
            extracted.setdefault(row.sha256, {})[row.service] = data
    errors = session.scalars(select(models.ServiceError).where(models.ServiceError.sid == submission.sid))
    return {
        "task_id": found.task_id if found is not None else submission.sid,
        "sid": submission.sid,
        "status": "success",
        "filetype": found.filetype if found else submission.meta.get("iotinsight.filetype", "other"),
        "name": submission.name,
        "sha256": submission.sha256,
        "score": submission.max_score,
        "verdict": views.verdict(submission.max_score),
        "results": results,
        "extracted": extracted,
        "file_tree": _tree_rows(session, submission, reader),
        "errors": [{"service": e.service, "sha256": e.sha256, "message": e.message} for e in errors],
    }


def find_case(session: Session, ident: str, reader: Reader) -> Case:
    """A case ``reader`` may see by its id, or the newest such case holding the task ``ident``
    (which they must see too); raises :class:`tasks.NotFound` otherwise."""
    case = session.scalars(select(Case).where(Case.case_id == ident, reader.sees(Case))).first()
    if case is None:
        case = session.scalars(
            select(Case)
            .join(CaseTask, Case.case_id == CaseTask.case_id)
            .join(Task, Task.task_id == CaseTask.task_id)
            .where(CaseTask.task_id == ident, reader.sees(Case), reader.sees(Task))
            .order_by(Case.created.desc())
            .limit(1)
        ).first()
    if case is None:
        raise tasks.NotFound(f"no such case: {ident}")
    return case


def case(session: Session, settings: Settings, found: Case, reader: Reader) -> dict[str, Any]:
    """The case's tasks ``reader`` may see with their status, and the finished ones merged into
    one inventory and timeline; a task they may not see is left out as if never added."""
    members = session.execute(select(CaseTask.task_id, CaseTask.path).where(CaseTask.case_id == found.case_id)).all()
    statuses: dict[str, Any] = {}
    sources: list[cases.Source] = []
    for task_id, path in members:
        try:
            member, submission = tasks.find(session, settings, task_id, reader)
        except tasks.NotFound:
            continue
        status = tasks.status_of(member, submission)
        statuses[task_id] = {"status": status, "path": path, "filetype": member.filetype if member else "other"}
        if status == "success" and submission is not None:
            sources.extend(
                cases.Source(task_id, {row.service: row.body.get("data") or {}})
                for row in _result_rows(session, submission.sid, reader)
            )
    max_timeline = settings.tasks.case_max_timeline
    merged = cases.merge(sources, max_timeline)
    complete = all(t["status"] in ("success", "failure") for t in statuses.values())
    return {"case_id": found.case_id, "root": found.root, "complete": complete, "tasks": statuses, **merged}
