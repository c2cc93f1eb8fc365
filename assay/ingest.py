"""Accepting work: an ingest or a submission is durable before anyone is told it was accepted.

An ingest is fire-and-forget: it completes from the cache when an identical analysis
(same scan key) finished recently, joins an identical one still in flight, or starts a new
submission. Either way it gets exactly one message on its notification queue.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from assay import notify
from assay.config import Settings
from assay.db import models
from assay.db.base import utcnow
from assay.filestore import Stored
from assay.ids import new_id
from assay.params import Params, flatten_metadata, parse_params, priority_bucket, scan_key


class Overloaded(RuntimeError):
    """Too much work is queued; callers should come back later (HTTP 503)."""


@dataclass(frozen=True)
class IngestOrder:
    """One file a caller wants analysed, with everything said about it."""

    user: str
    stored: Stored
    name: str
    metadata: Any = None
    params: Any = None
    queue: str | None = None
    threshold: int | None = None
    generate_alert: bool = False
    ingest_type: str = "AL_CLIENT"


class Intake:
    """Turns orders into durable rows; what runs them picks the rows up."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.max_backlog = settings.get_int("limits", "max_backlog", 200_000)
        self.priority_cap = settings.get_int("limits", "priority_cap", 250)
        self.cache_ttl = timedelta(seconds=settings.get_int("cache", "ttl_seconds", 172_800))
        self.error_ttl = timedelta(seconds=settings.get_int("cache", "error_ttl_seconds", 1800))
        self._backlog = (0.0, 0)
        self._backlog_lock = threading.Lock()

    # -- ingest -----------------------------------------------------------------------------
    def ingest(self, session: Session, order: IngestOrder, flights: dict[str, str] | None = None) -> str:
        """Write one ingest; ``flights`` (scan key -> sid) joins identical ingests written in the
        same transaction that queries cannot see yet."""
        params = self._ingest_params(order)
        metadata = self._metadata(order.metadata)
        ingest_id = new_id()
        now = utcnow()
        metadata.update({"ingest_id": ingest_id, "type": order.ingest_type, "ts": notify.iso(now)})
        key = scan_key(params, order.stored.sha256)
        message = {
            "ingest_id": ingest_id,
            "ingest_time": notify.iso(now),
            "notify_time": None,
            "score": None,
            "failure": "",
            "retries": 0,
            "submission": {
                "sid": None,
                "time": notify.iso(now),
                "files": [{"name": order.name, "size": order.stored.size, "sha256": order.stored.sha256}],
                "metadata": metadata,
                "notification": {"queue": order.queue, "threshold": order.threshold},
                "params": params.model_dump(),
                "scan_key": key,
            },
        }
        backlog = self.backlog(session)
        if backlog >= self.max_backlog:
            raise Overloaded(f"{backlog} submissions are waiting; try again later")
        skipped = self._should_skip(params, backlog)
        sid, score = (None, None) if skipped else self._attach(session, params, key, order, metadata, flights)
        message["submission"]["sid"] = sid
        ingest = models.Ingest(
            ingest_id=ingest_id,
            user=order.user,
            queue=order.queue,
            threshold=order.threshold,
            sid=sid,
            message=message,
            created=now,
        )
        session.add(ingest)
        if skipped:
            notify.finish_ingest(session, ingest, None, "Skipped")
        elif score is not None:
            notify.finish_ingest(session, ingest, score, "")
        return ingest_id

    def _should_skip(self, params: Params, backlog: int) -> bool:
        """Under heavy load, low-priority work that may be dropped is dropped (with a message)."""
        return not params.never_drop and priority_bucket(params.priority) == "low" and backlog > self.max_backlog // 2

    def _attach(
        self,
        session: Session,
        params: Params,
        key: str,
        order: IngestOrder,
        metadata: dict[str, str],
        flights: dict[str, str] | None,
    ) -> tuple[str, int | None]:
        """The sid that answers this ingest, and its score when it is already known."""
        flights = {} if flights is None else flights
        if key in flights:
            return flights[key], None
        flight, cached = self._earlier(session, key, params.ignore_cache)
        if cached is not None:
            return cached
        if flight is not None:
            return flight, None
        submission = self._new_submission(session, order.user, order.stored, order.name, metadata, params, key)
        flights[key] = submission.sid
        return submission.sid, None

    def _earlier(
        self, session: Session, key: str, ignore_cache: bool
    ) -> tuple[str | None, tuple[str, int] | None]:
        """An identical submission in flight, and a recent one to complete from (one query)."""
        table = models.Submission.__table__
        rows = session.execute(
            select(table.c.sid, table.c.state, table.c.completed, table.c.error_count, table.c.max_score)
            .where(table.c.scan_key == key, table.c.state.in_(("submitted", "completed")))
            .order_by(table.c.created.desc())
            .limit(20)
        ).all()
        now = utcnow()
        flight = next((row.sid for row in rows if row.state == "submitted"), None)
        if ignore_cache:
            return flight, None
        for row in rows:
            if row.state != "completed" or row.completed is None:
                continue
            fresh_for = self.cache_ttl if row.error_count == 0 else self.error_ttl
            if row.completed >= now - fresh_for:
                return flight, (row.sid, row.max_score)
        return flight, None

    def _ingest_params(self, order: IngestOrder) -> Params:
        params = parse_params(order.params)
        params.priority = min(params.priority, self.priority_cap)
        params.max_extracted = min(params.max_extracted, self.settings.get_int("limits", "max_extracted_ingest", 100))
        params.max_supplementary = min(params.max_supplementary, 100)
        params.submitter = order.user
        params.type = order.ingest_type
        params.generate_alert = params.generate_alert or order.generate_alert
        if not params.description:
            params.description = f"[{order.ingest_type}] Inspection of file: {order.name}"
        return params

    def _metadata(self, raw: Any) -> dict[str, str]:
        return flatten_metadata(
            raw,
            self.settings.get_int("limits", "max_metadata_keys", 200),
            self.settings.get_int("limits", "max_metadata_value", 4096),
        )

    # -- submit -----------------------------------------------------------------------------
    def submit(
        self, session: Session, user: str, stored: Stored, name: str, metadata: Any, raw_params: Any
    ) -> models.Submission:
        """A direct submission: always analysed afresh, no notification queue."""
        params = parse_params(raw_params)
        params.submitter = user
        params.max_extracted = min(params.max_extracted, self.settings.get_int("limits", "max_extracted_submit", 500))
        if not params.description:
            params.description = f"Inspection of file: {name}"
        if self.backlog(session) >= self.max_backlog:
            raise Overloaded("too many submissions are waiting; try again later")
        flat = self._metadata(metadata)
        return self._new_submission(session, user, stored, name, flat, params, scan_key(params, stored.sha256))

    def _new_submission(
        self,
        session: Session,
        user: str,
        stored: Stored,
        name: str,
        metadata: dict[str, str],
        params: Params,
        key: str,
    ) -> models.Submission:
        now = utcnow()
        submission = models.Submission(
            sid=new_id(),
            user=user,
            state="submitted",
            priority=params.priority,
            scan_key=key,
            sha256=stored.sha256,
            name=name,
            size=stored.size,
            params=params.model_dump(),
            meta=metadata,
            classification=params.classification,
            created=now,
            expiry=now + timedelta(days=params.ttl) if params.ttl else None,
            attempts=0,
            max_score=0,
            file_count=0,
            error_count=0,
        )
        session.add(submission)
        session.add_all(models.SubmissionMeta(sid=submission.sid, key=k[:256], value=v) for k, v in metadata.items())
        with self._backlog_lock:
            checked, count = self._backlog
            self._backlog = (checked, count + 1)
        return submission

    def backlog(self, session: Session) -> int:
        """Submissions waiting for a worker, counted at most once a second."""
        with self._backlog_lock:
            checked, count = self._backlog
        if time.monotonic() - checked < 1.0:
            return count
        count = (
            session.scalar(
                select(func.count()).select_from(models.Submission).where(models.Submission.state == "submitted")
            )
            or 0
        )
        with self._backlog_lock:
            self._backlog = (time.monotonic(), count)
        return count
