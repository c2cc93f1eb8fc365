"""Accepting work: an ingest or a submission is durable before anyone is told it was accepted.

An ingest is fire-and-forget: it completes from the cache when an identical analysis
(same scan key) finished recently, joins an identical one still in flight, or starts a new
submission. Either way it gets exactly one message on its notification queue.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from assay import notify
from assay.access import Clearance, UnknownMarking
from assay.access.configured import engine_for
from assay.access.visibility import StoredMarking, stored_marking
from assay.config import Settings
from assay.db import bulk, models
from assay.db.base import utcnow
from assay.filestore import Stored
from assay.ids import new_id
from assay.params import (
    BadParams,
    Params,
    flatten_metadata,
    parse_params,
    priority_bucket,
    refuse_nul,
    scan_key,
)
from assay.timestamps import iso_utc


class Overloaded(RuntimeError):
    """Too much work is queued; callers should come back later (HTTP 503)."""


class NotCleared(PermissionError):
    """The caller asked for a marking above their own clearance (HTTP 403): nobody may mark
    work they could not read back."""


Refusal = BadParams | NotCleared


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
    clearance: Clearance | None = None  # the caller's; None: the server's own work, not checked


class Intake:
    """Turns orders into durable rows; what runs them picks the rows up."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.max_backlog = settings.limits.max_backlog
        self.priority_cap = settings.limits.priority_cap
        self.cache_ttl = timedelta(seconds=settings.cache.ttl_seconds)
        self.error_ttl = timedelta(seconds=settings.cache.error_ttl_seconds)
        self._backlog = (0.0, 0)
        self._backlog_lock = threading.Lock()
        self.markings = engine_for(settings.classification)

    def classify(self, raw: str, clearance: Clearance | None) -> StoredMarking:
        """``params.classification`` in canonical form, the configured default when empty.

        An unknown marking is a :class:`BadParams` naming the accepted ones; one above
        ``clearance`` is :class:`NotCleared`. Both come from the engine's caches: cheap per ingest.
        """
        try:
            marking = stored_marking(self.markings, raw or self.markings.default)
        except UnknownMarking as exc:
            raise BadParams(f"params.classification: {exc}") from None
        if clearance is not None and not self._cleared(clearance, marking.text):
            groups = f" (groups: {', '.join(sorted(clearance.groups))})" if clearance.groups else ""
            raise NotCleared(f"not cleared for {marking.text}: your clearance is {clearance.level}{groups}")
        return marking

    def _cleared(self, clearance: Clearance, marking: str) -> bool:
        try:
            return self.markings.is_accessible(clearance, marking)
        except UnknownMarking:  # a clearance this configuration cannot read clears nothing
            return False

    # -- ingest -----------------------------------------------------------------------------
    def ingest(self, session: Session, order: IngestOrder) -> str:
        """Write one ingest and return its id (raises :class:`BadParams`, :class:`NotCleared`, :class:`Overloaded`)."""
        [outcome] = self.ingest_many(session, [order])
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def ingest_many(self, session: Session, orders: list[IngestOrder]) -> list[str | Refusal | Overloaded]:
        """Write many ingests in a handful of statements: an ingest id, or why one was refused.

        Identical ingests of the batch join one submission, as they would across batches.
        """
        planned: list[_Planned | Refusal] = []
        for order in orders:
            try:
                planned.append(self._plan(order))
            except (BadParams, NotCleared) as exc:
                planned.append(exc)
        backlog = self.backlog(session)
        if backlog >= self.max_backlog:
            refusal = Overloaded(f"{backlog} submissions are waiting; try again later")
            return [refusal if isinstance(plan, _Planned) else plan for plan in planned]
        rows = _Rows()
        earlier = self._earlier(session, {plan.key for plan in planned if isinstance(plan, _Planned)})
        for plan in planned:
            if isinstance(plan, _Planned):
                self._place(plan, backlog, earlier, rows)
        rows.write(session)
        self._count_new(len(rows.submissions))
        return [plan.ingest_id if isinstance(plan, _Planned) else plan for plan in planned]

    def _plan(self, order: IngestOrder) -> _Planned:
        refuse_nul("the file name or notification queue", (order.name, order.queue or "", order.ingest_type))
        params = self._ingest_params(order)
        marking = self.classify(params.classification, order.clearance)
        params.classification = marking.text
        metadata = self._metadata(order.metadata)
        ingest_id = new_id()
        now = utcnow()
        metadata.update({"ingest_id": ingest_id, "type": order.ingest_type, "ts": iso_utc(now)})
        key = scan_key(params, order.stored.sha256)
        return _Planned(order, params, self._dump(params), metadata, key, ingest_id, now, marking)

    def _place(self, plan: _Planned, backlog: int, earlier: dict[str, _Earlier], rows: _Rows) -> None:
        """Decide which submission answers ``plan`` and add the rows that say so."""
        score: int | None = None
        failure = ""
        marking = plan.marking
        if self._should_skip(plan.params, backlog):
            sid, failure = None, "Skipped"
        else:
            found = earlier.setdefault(plan.key, _Earlier())
            cached = None if plan.params.ignore_cache else found.cached
            if cached is not None:
                sid, score, marking = cached  # the message tells of that submission: it carries its marking
            elif found.flight is not None:
                sid = found.flight
            else:
                sid = rows.add_submission(self._submission_row(plan))
                found.flight = sid
        finished = failure != "" or score is not None
        rows.add_ingest(plan, sid, score, failure, finished=finished, marking=marking)

    def _should_skip(self, params: Params, backlog: int) -> bool:
        """Under heavy load, low-priority work that may be dropped is dropped (with a message)."""
        return not params.never_drop and priority_bucket(params.priority) == "low" and backlog > self.max_backlog // 2

    def _earlier(self, session: Session, keys: set[str]) -> dict[str, _Earlier]:
        """For each scan key: an identical submission in flight, and a recent one to complete from."""
        if not keys:
            return {}
        table = models.Submission.__table__
        rows = session.execute(
            select(
                table.c.scan_key,
                table.c.sid,
                table.c.state,
                table.c.completed,
                table.c.error_count,
                table.c.max_score,
                table.c.classification,
                table.c.classification_level,
                table.c.classification_groups,
            )
            .where(table.c.scan_key.in_(sorted(keys)), table.c.state.in_(("submitted", "completed")))
            .order_by(table.c.created.desc())
            .limit(20 * len(keys))
        ).all()
        now = utcnow()
        found: dict[str, _Earlier] = {}
        for row in rows:
            earlier = found.setdefault(row.scan_key, _Earlier())
            if row.state == "submitted":
                earlier.flight = earlier.flight or row.sid
            elif earlier.cached is None and row.completed is not None:
                fresh_for = self.cache_ttl if row.error_count == 0 else self.error_ttl
                if row.completed >= now - fresh_for:
                    marking = StoredMarking(row.classification, row.classification_level, row.classification_groups)
                    earlier.cached = (row.sid, row.max_score, marking)
        return found

    def _ingest_params(self, order: IngestOrder) -> Params:
        params = parse_params(order.params)
        params.priority = min(params.priority, self.priority_cap)
        params.max_extracted = min(params.max_extracted, self.settings.limits.max_extracted_ingest)
        params.max_supplementary = min(params.max_supplementary, 100)
        params.submitter = order.user
        params.type = order.ingest_type
        params.generate_alert = params.generate_alert or order.generate_alert
        if not params.description:
            params.description = f"[{order.ingest_type}] Inspection of file: {order.name}"
        return params

    def _metadata(self, raw: Any) -> dict[str, str]:
        metadata = flatten_metadata(
            raw,
            self.settings.limits.max_metadata_keys,
            self.settings.limits.max_metadata_value,
        )
        refuse_nul("metadata", metadata)
        return metadata

    @staticmethod
    def _dump(params: Params) -> dict[str, Any]:
        dumped = params.model_dump()
        refuse_nul("params", dumped)
        return dumped

    # -- submit -----------------------------------------------------------------------------
    def submit(
        self,
        session: Session,
        user: str,
        stored: Stored,
        name: str,
        metadata: Any,
        raw_params: Any,
        clearance: Clearance | None = None,
    ) -> models.Submission:
        """A direct submission: always analysed afresh, no notification queue.

        ``clearance`` is the caller's (None: the server's own work); raises :class:`BadParams`,
        :class:`NotCleared` or :class:`Overloaded`.
        """
        params = parse_params(raw_params)
        marking = self.classify(params.classification, clearance)
        params.classification = marking.text
        params.submitter = user
        params.max_extracted = min(params.max_extracted, self.settings.limits.max_extracted_submit)
        if not params.description:
            params.description = f"Inspection of file: {name}"
        if self.backlog(session) >= self.max_backlog:
            raise Overloaded("too many submissions are waiting; try again later")
        refuse_nul("the file name", name)
        order = IngestOrder(user, stored, name)
        key = scan_key(params, stored.sha256)
        plan = _Planned(order, params, self._dump(params), self._metadata(metadata), key, "", utcnow(), marking)
        rows = _Rows()
        sid = rows.add_submission(self._submission_row(plan))
        rows.write(session)
        self._count_new(1)
        submission = session.get(models.Submission, sid)
        assert submission is not None
        return submission

    def _submission_row(self, plan: _Planned) -> dict[str, Any]:
        params = plan.params
        return {
            "sid": new_id(),
            "user": plan.order.user,
            "state": "submitted",
            "priority": params.priority,
            "scan_key": plan.key,
            "sha256": plan.order.stored.sha256,
            "name": plan.order.name,
            "size": plan.order.stored.size,
            "params": plan.dumped,
            "metadata": plan.metadata,
            **plan.marking.columns(),
            "created": plan.now,
            "expiry": plan.now + timedelta(days=params.ttl) if params.ttl else None,
        }

    def _count_new(self, count: int) -> None:
        with self._backlog_lock:
            checked, waiting = self._backlog
            self._backlog = (checked, waiting + count)

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


@dataclass
class _Planned:
    """An order validated and keyed, ready to be written."""

    order: IngestOrder
    params: Params
    dumped: dict[str, Any]  # params as stored and sent back in messages
    metadata: dict[str, str]
    key: str
    ingest_id: str
    now: datetime
    marking: StoredMarking


@dataclass
class _Earlier:
    """What the database, or the batch being written, already holds for one scan key."""

    flight: str | None = None
    cached: tuple[str, int, StoredMarking] | None = None  # sid, max_score, its marking


@dataclass
class _Rows:
    """The rows of one batch, inserted table by table in a few statements."""

    submissions: list[dict[str, Any]] = field(default_factory=list)
    meta: list[dict[str, Any]] = field(default_factory=list)
    ingests: list[dict[str, Any]] = field(default_factory=list)
    notifications: list[dict[str, Any]] = field(default_factory=list)

    def add_submission(self, row: dict[str, Any]) -> str:
        self.submissions.append(row)
        self.meta.extend({"sid": row["sid"], "key": key, "value": value} for key, value in row["metadata"].items())
        return str(row["sid"])

    def add_ingest(
        self, plan: _Planned, sid: str | None, score: int | None, failure: str, finished: bool, marking: StoredMarking
    ) -> None:
        order = plan.order
        message = _message(plan, sid)
        state = "waiting"
        if finished:
            done = notify.finish(
                message, order.user, order.queue, order.threshold, score, failure, plan.now, marking.columns()
            )
            message, state = done.message, done.state
            if done.notification is not None:
                self.notifications.append(done.notification)
        self.ingests.append(
            {
                "ingest_id": plan.ingest_id,
                "user": order.user,
                "queue": order.queue,
                "threshold": order.threshold,
                "sid": sid,
                "state": state,
                "failure": failure,
                "message": message,
                "created": plan.now,
            }
        )

    def write(self, session: Session) -> None:
        tables = (
            (models.Submission, self.submissions),
            (models.SubmissionMeta, self.meta),
            (models.Ingest, self.ingests),
            (models.Notification, self.notifications),
        )
        for model, rows in tables:
            bulk.insert_rows(session, model.__table__, rows)


def _message(plan: _Planned, sid: str | None) -> dict[str, Any]:
    """The notification message as Assemblyline shapes it; completion fills in score and failure."""
    order, when = plan.order, iso_utc(plan.now)
    return {
        "ingest_id": plan.ingest_id,
        "ingest_time": when,
        "notify_time": None,
        "score": None,
        "failure": "",
        "retries": 0,
        "submission": {
            "sid": sid,
            "time": when,
            "files": [{"name": order.name, "size": order.stored.size, "sha256": order.stored.sha256}],
            "metadata": plan.metadata,
            "notification": {"queue": order.queue, "threshold": order.threshold},
            "params": plan.dumped,
            "scan_key": plan.key,
        },
    }
