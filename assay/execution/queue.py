"""The submissions table as the queue of record: claiming, leases and publication marks.

Both execution modes take work the same way: the highest-priority, oldest submission that no
live lease holds. Celery messages only say "take one"; the database decides which.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from assay.db.base import utcnow
from assay.db.models import Submission


def _available(now: object) -> object:
    return (Submission.state == "submitted") & or_(
        Submission.lease_until.is_(None), Submission.lease_until < now
    )


def claim(session: Session, worker_id: str, limit: int, lease_seconds: int) -> list[Submission]:
    """Take up to ``limit`` submissions for ``worker_id``; commit to make the claim visible.

    One statement picks and leases them (``UPDATE ... WHERE sid IN (SELECT ... FOR UPDATE SKIP
    LOCKED) RETURNING``): claiming costs a round trip, and workers never wait on each other's picks.
    """
    now = utcnow()
    picked = (
        select(Submission.sid)
        .where(_available(now))
        .order_by(Submission.priority.desc(), Submission.created)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        picked = picked.with_for_update(skip_locked=True)
    claimed = list(
        session.scalars(
            update(Submission)
            .where(Submission.sid.in_(picked.scalar_subquery()))
            .values(
                lease_owner=worker_id,
                lease_until=now + timedelta(seconds=lease_seconds),
                attempts=Submission.attempts + 1,
            )
            .returning(Submission)
            .execution_options(synchronize_session=False)
        )
    )
    session.commit()
    return sorted(claimed, key=lambda s: (-s.priority, s.created))


def release(session: Session, worker_id: str) -> int:
    """Hand back every lease of a worker known to be dead."""
    count = session.execute(
        update(Submission)
        .where(Submission.lease_owner == worker_id, Submission.state == "submitted")
        .values(lease_owner=None, lease_until=None)
    ).rowcount
    session.commit()
    return count


def to_publish(session: Session, limit: int, redispatch_seconds: int) -> list[tuple[str, int]]:
    """Submissions that need a Celery message: never sent, or sent long ago and still unowned."""
    now = utcnow()
    stale = now - timedelta(seconds=redispatch_seconds)
    query = (
        select(Submission.sid, Submission.priority)
        .where(_available(now))
        .where(or_(Submission.dispatched_at.is_(None), Submission.dispatched_at < stale))
        .order_by(Submission.priority.desc(), Submission.created)
        .limit(limit)
    )
    return [(row.sid, row.priority) for row in session.execute(query)]


def mark_published(session: Session, sids: list[str]) -> None:
    session.execute(update(Submission).where(Submission.sid.in_(sids)).values(dispatched_at=utcnow()))
    session.commit()


def queued_batches(session: Session) -> list[int]:
    """Intel batches waiting for a worker (each needs one Celery message)."""
    from assay.intel.models import Batch

    return list(session.scalars(select(Batch.id).where(Batch.state == "Queued").limit(1000)))
