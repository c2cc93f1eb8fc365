"""Notification queues: one message per ingest, kept as a row until its owner pops it.

Messages are written in the same transaction that completes the submission, so a crash can
neither lose one nor send one twice; a pop deletes what it returns in one transaction.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from assay.db import models
from assay.db.base import utcnow

MAX_PAGE = 10_000


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def complete_ingests(session: Session, sid: str, score: int | None, failure: str) -> int:
    """Finish every ingest waiting on ``sid``; queue a message for each that asked for one."""
    ingests = session.scalars(
        select(models.Ingest).where(models.Ingest.sid == sid, models.Ingest.state == "waiting")
    ).all()
    for ingest in ingests:
        finish_ingest(session, ingest, score, failure)
    return len(ingests)


def finish_ingest(session: Session, ingest: models.Ingest, score: int | None, failure: str) -> None:
    message = dict(ingest.message)
    message["score"] = score
    message["failure"] = failure
    message["notify_time"] = iso(utcnow())
    ingest.message = message
    ingest.state = "dropped" if failure else "notified"
    ingest.failure = failure
    if ingest.queue and not _suppressed(ingest.threshold, score):
        session.add(
            models.Notification(user=ingest.user, queue=ingest.queue, message=message, created=utcnow())
        )


def _suppressed(threshold: int | None, score: int | None) -> bool:
    """Below-threshold results are not sent; failures (score None) always are."""
    return threshold is not None and score is not None and score < threshold


def pop(session: Session, user: str, queue: str, count: int) -> list[dict[str, Any]]:
    """Remove and return up to ``count`` of the oldest messages of ``user``'s ``queue``."""
    query = (
        select(models.Notification.id, models.Notification.message)
        .where(models.Notification.user == user, models.Notification.queue == queue)
        .order_by(models.Notification.id)
        .limit(max(1, min(count, MAX_PAGE)))
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    rows = session.execute(query).all()
    if rows:
        session.execute(delete(models.Notification).where(models.Notification.id.in_([r.id for r in rows])))
    return [row.message for row in rows]
