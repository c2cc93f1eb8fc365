"""Task bookkeeping: the ``tasks`` rows beside the submissions, and the status IoTInsight reports.

A file task is written in the transaction that writes its submission, so a task never points at
a submission that does not exist. A task carries the marking it was asked for (checked against
the caller's clearance by the API before anything is written); reading one needs the task's
marking and, once it has one, its submission's to be visible, else it is as missing as any.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from assay.access.visibility import Reader, StoredMarking
from assay.config import Settings
from assay.db import models
from assay.db.base import utcnow
from assay.db.session import session_scope
from assay.filestore import Stored
from assay.ids import new_id
from assay.iotinsight import files
from assay.iotinsight.models import Task
from assay.iotinsight.pipeline import Pipeline
from assay.params import DEFAULT_CATEGORIES

INTERRUPTED = "collection was interrupted (server restarted or timed out)"


class NotFound(LookupError):
    """No task, case or submission answers to the id the caller gave; the message says which."""


def submit(
    session: Session,
    pipeline: Pipeline,
    user: str,
    stored: Stored,
    name: str,
    meta: dict[str, str],
    description: str,
    marking: StoredMarking,
) -> models.Submission:
    """A task's submission under its task's marking; IoTInsight names no services, so every
    default category runs.

    Raises the intake's :class:`Overloaded` when too much work is waiting.
    """
    params = {
        "services": {"selected": list(DEFAULT_CATEGORIES)},
        "description": description,
        "classification": marking.text,
    }
    submission = pipeline.intake.submit(session, user, stored, name, meta, params)
    session.flush()
    return submission


def add_file_task(
    session: Session,
    pipeline: Pipeline,
    user: str,
    kind: str,
    filetype: str,
    stored: Stored,
    name: str,
    filepath: str | None,
    marking: StoredMarking,
) -> str:
    """Submit a stored file as a task of ``kind``; the task id is the submission's sid."""
    meta = {"iotinsight.filetype": filetype, "iotinsight.detected": files.detect_stored(pipeline.store, stored)}
    if filepath:
        meta["iotinsight.filepath"] = filepath
    submission = submit(session, pipeline, user, stored, name, meta, f"IoTInsight {filetype} task", marking)
    session.add(
        Task(
            **marking.columns(),
            task_id=submission.sid,
            user=user,
            kind=kind,
            filetype=filetype,
            state="pending",
            sid=submission.sid,
            path=filepath,
            error="",
        )
    )
    return submission.sid


def image_task(
    pipeline: Pipeline,
    user: str,
    filetype: str,
    stored: Stored,
    name: str,
    filepath: str | None,
    marking: StoredMarking,
) -> str:
    """One file the caller sent or named, as a task in its own transaction."""
    with session_scope(pipeline.engine) as session:
        return add_file_task(session, pipeline, user, "image", filetype, stored, name, filepath, marking)


def open_account_task(engine: Engine, user: str, service: str, marking: StoredMarking) -> str:
    """The row of an account task, written before its collection starts (the thread updates it)."""
    task_id = new_id()
    with session_scope(engine) as session:
        session.add(
            Task(
                **marking.columns(),
                task_id=task_id,
                user=user,
                kind="account",
                filetype=service,
                state="pending",
                sid=None,
                path=None,
                error="",
            )
        )
    return task_id


def forget_task(engine: Engine, task_id: str) -> None:
    """Remove a task whose work never started, so no caller waits on it."""
    with session_scope(engine) as session:
        session.delete(session.get(Task, task_id))


def interrupted(task: Task, timeout_seconds: int) -> bool:
    """An unfinished collection older than the timeout: its thread died with a previous process."""
    return (
        task.sid is None
        and task.state in ("pending", "processing")
        and (utcnow() - task.created > timedelta(seconds=timeout_seconds))
    )


def marking_of(task: Task) -> StoredMarking:
    """The marking a task was asked for, as its columns hold it (its submission is made with it)."""
    return StoredMarking(task.classification, task.classification_level, task.classification_groups)


def find(
    session: Session, settings: Settings, task_id: str, reader: Reader
) -> tuple[Task | None, models.Submission | None]:
    """The task and its submission as ``reader`` may see them; a plain submission's sid counts
    as a task id too.

    A task whose submission was deleted, or rose above the reader, is not found: the same
    answer as for an id that never was. A collection whose thread is gone is marked failed
    here, when someone asks: nothing else would ever finish it.
    """
    task = session.scalars(select(Task).where(Task.task_id == task_id, reader.sees(Task))).first()
    sid = task.sid if task is not None else task_id
    submission = None
    if sid:
        table = models.Submission
        submission = session.scalars(select(table).where(table.sid == sid, reader.sees(table))).first()
    if (task is None or task.sid) and submission is None:
        raise NotFound(f"no such task: {task_id}")
    timeout = settings.tasks.account_timeout
    if task is not None and interrupted(task, timeout):
        task.state, task.error = "failure", INTERRUPTED
    return task, submission


def status_of(task: Task | None, submission: models.Submission | None) -> str:
    """IoTInsight's status words for a task's or submission's state."""
    if submission is None:
        return task.state if task is not None else "failure"
    if submission.state == "completed":
        return "success"
    if submission.state == "failed":
        return "failure"
    return "processing" if submission.lease_owner else "pending"
