"""Notification queues: one message per ingest, kept as a row until its owner pops it.

Messages are written in the same transaction that completes the submission, so a crash can
neither lose one nor send one twice; a pop deletes what it returns in one transaction. A message
carries its submission's marking: readers pass the condition of what they may see, and a
message above it stays in the queue, unseen and unpopped.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, Connection, bindparam, delete, select
from sqlalchemy.orm import Session

from assay.db import bulk, models
from assay.db.base import utcnow
from assay.timestamps import iso_utc

MAX_PAGE = 10_000
MARKING_COLUMNS = ("classification", "classification_level", "classification_groups")


def complete_ingests(session: Session, sid: str, score: int | None, failure: str) -> int:
    """Finish every ingest waiting on ``sid``; queue a message for each that asked for one."""
    return complete_many(session, {sid: (score, failure)})


def complete_many(session: Session, outcomes: dict[str, tuple[int | None, str]]) -> int:
    """:func:`complete_ingests` for many submissions in three statements."""
    table = models.Ingest.__table__
    marked = models.Submission.__table__
    waiting = session.execute(
        select(
            table.c.ingest_id,
            table.c.sid,
            table.c.user,
            table.c.queue,
            table.c.threshold,
            table.c.message,
            *_marking_of(marked),
        )
        .join(marked, marked.c.sid == table.c.sid)
        .where(table.c.sid.in_(list(outcomes)), table.c.state == "waiting")
    ).all()
    if not waiting:
        return 0
    now = utcnow()
    updates, messages = [], []
    for row in waiting:
        score, failure = outcomes[row.sid]
        marking = {column: getattr(row, column) for column in MARKING_COLUMNS}
        done = finish(row.message, row.user, row.queue, row.threshold, score, failure, now, marking)
        updates.append({"ingest_id": row.ingest_id, "state": done.state, "failure": failure, "message": done.message})
        if done.notification is not None:
            messages.append(done.notification)
    bulk.update_rows(session, table, "ingest_id", updates)
    bulk.insert_rows(session, models.Notification.__table__, messages)
    return len(waiting)


class Finished(NamedTuple):
    message: dict[str, Any]  # the final message, with score, failure and notify_time
    state: str  # of the ingest: notified, or dropped when it failed
    notification: dict[str, Any] | None  # the notifications row to add; None when nothing is sent


def finish(
    message: dict[str, Any],
    user: str,
    queue: str | None,
    threshold: int | None,
    score: int | None,
    failure: str,
    now: datetime,
    marking: dict[str, Any],
) -> Finished:
    """How an ingest ends, whether at once (cache hit, skip) or when its submission completes.

    ``marking`` holds the classification columns of the submission the message tells of.
    """
    final = {**message, "score": score, "failure": failure, "notify_time": iso_utc(now)}
    sent = bool(queue) and not suppressed(threshold, score)
    notification = {"user": user, "queue": queue, "message": final, "created": now, **marking} if sent else None
    return Finished(final, "dropped" if failure else "notified", notification)


def suppressed(threshold: int | None, score: int | None) -> bool:
    """Below-threshold results are not sent; failures (score None) always are."""
    return threshold is not None and score is not None and score < threshold


_TABLE = models.Notification.__table__
_QUEUE = (_TABLE.c.user == bindparam("user")) & (_TABLE.c.queue == bindparam("queue"))
_PEEK = select(_TABLE.c.id).where(_QUEUE).limit(1)


def _marking_of(table: Any) -> list[Any]:
    """The classification columns of ``table``, which notifications copy from their submission."""
    return [table.c[column] for column in MARKING_COLUMNS]


def waiting(connection: Connection, user: str, queue: str, visible: ColumnElement[bool]) -> bool:
    """Whether ``user``'s ``queue`` holds a message they may see: a Core read, for polls that
    mostly find nothing. ``visible`` is the reader's condition on the notifications table."""
    return connection.execute(_PEEK.where(visible), {"user": user, "queue": queue}).first() is not None


def pop(
    connection: Connection, user: str, queue: str, count: int, visible: ColumnElement[bool]
) -> list[dict[str, Any]]:
    """Remove and return up to ``count`` of the oldest messages of ``user``'s ``queue`` that
    ``visible`` lets through; the others stay where they are.

    One statement picks and deletes them (``DELETE ... WHERE id IN (SELECT ... FOR UPDATE SKIP
    LOCKED) RETURNING``): two receivers of one queue never get the same message.
    """
    limit = max(1, min(count, MAX_PAGE))
    picked = select(_TABLE.c.id).where(_QUEUE, visible).order_by(_TABLE.c.id).limit(limit)
    if connection.dialect.name == "postgresql":
        picked = picked.with_for_update(skip_locked=True)
    statement = delete(_TABLE).where(_TABLE.c.id.in_(picked.scalar_subquery())).returning(_TABLE.c.id, _TABLE.c.message)
    rows = connection.execute(statement, {"user": user, "queue": queue}).all()
    return [message for _, message in sorted(rows, key=lambda row: row[0])]
