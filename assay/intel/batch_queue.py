"""V2-style batches over HTTP: settings make a batch, an upload queues it, a worker runs it.

The content waits in the file store (by sha256) and the batch row in the database, so a batch
accepted is never lost; the job itself runs in a worker, not in the HTTP request.
"""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine, or_, select, update
from sqlalchemy.orm import Session

from assay.db.base import storable, utcnow
from assay.db.session import session_scope
from assay.filestore import FileStore
from assay.intel.batch_document import BatchSettings, submit
from assay.intel.errors import Code
from assay.intel.models import Batch
from assay.intel.result import JobResult

log = logging.getLogger(__name__)


class BatchError(ValueError):
    """A batch request that cannot be taken; the message says why."""


def create(session: Session, user: str, raw_settings: Any) -> Batch:
    if not isinstance(raw_settings, dict):
        raise BatchError("batch settings must be a JSON object")
    try:
        settings = BatchSettings.from_dict(raw_settings)
        settings.job()  # validates the write types and action
    except (TypeError, ValueError) as exc:
        raise BatchError(str(exc)) from None
    if not isinstance(settings.owner, str) or not settings.owner.strip():
        raise BatchError("owner is required")
    batch = Batch(user=user, owner=settings.owner, settings=raw_settings, state="Created", created=utcnow())
    session.add(batch)
    session.flush()
    return batch


def upload(session: Session, batch_id: int, user: str, sha256: str) -> Batch:
    batch = session.get(Batch, batch_id)
    if batch is None or batch.user != user:
        raise LookupError(f"no batch {batch_id}")
    if batch.state != "Created":
        raise BatchError(f"batch {batch_id} is {batch.state}; content can be uploaded once")
    batch.content_sha256 = sha256
    batch.state = "Queued"
    return batch


def claim(engine: Engine, worker_id: str, lease_seconds: int) -> int | None:
    """Take the oldest queued batch (or one whose runner died)."""
    now = utcnow()
    with session_scope(engine) as session:
        query = (
            select(Batch.id)
            .where(
                or_(
                    Batch.state == "Queued",
                    (Batch.state == "Running") & (Batch.lease_until < now),
                )
            )
            .order_by(Batch.id)
            .limit(1)
        )
        if session.get_bind().dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        batch_id = session.scalar(query)
        if batch_id is None:
            return None
        session.execute(
            update(Batch)
            .where(Batch.id == batch_id)
            .values(state="Running", lease_owner=worker_id, lease_until=now + timedelta(seconds=lease_seconds))
        )
    return int(batch_id)


def run(engine: Engine, store: FileStore, batch_id: int, worker_id: str) -> JobResult | None:
    with session_scope(engine, readonly=True) as session:
        batch = session.get(Batch, batch_id)
        if batch is None or batch.state != "Running" or batch.lease_owner != worker_id:
            return None
        settings, sha256 = dict(batch.settings), batch.content_sha256
    try:
        content = store.get(sha256) if sha256 else b""
    except OSError as exc:
        content = json.dumps({"error": str(exc)}).encode()
    try:
        result = submit(content, settings, engine)
    except Exception as exc:  # a batch that breaks the runner must end, not crash its worker each lease
        log.exception("batch %s could not be run", batch_id)
        result = JobResult()
        result.critical("indicator", Code.INTERNAL, f"the batch could not be run: {exc}")
    # Errors quote the items as sent, and PostgreSQL stores no NUL character.
    stored = storable(result.to_dict())
    with session_scope(engine) as session:
        session.execute(
            update(Batch)
            .where(Batch.id == batch_id, Batch.lease_owner == worker_id)
            .values(state="Completed", result=stored, completed=utcnow(), lease_owner=None, lease_until=None)
        )
    return result


def status(batch: Batch) -> dict[str, Any]:
    """ThreatConnect's shape: status plus success, error and unprocessed counts."""
    answer: dict[str, Any] = {"id": batch.id, "batchId": batch.id, "status": batch.state, "owner": batch.owner}
    if batch.result:
        counts = batch.result.get("counts", {})
        answer["successCount"] = sum(
            c.get("saved", 0) + c.get("existing", 0) + c.get("merged", 0) for c in counts.values()
        )
        answer["errorCount"] = sum(c.get("failed", 0) for c in counts.values()) + sum(
            1 for e in batch.result.get("errors", []) if e.get("item") is None
        )
        answer["unprocessCount"] = sum(c.get("not_saved", 0) for c in counts.values())
        answer["exitCode"] = batch.result.get("exit_code")
        answer["counts"] = counts
    return answer


def errors(batch: Batch) -> list[dict[str, Any]]:
    return [
        {
            "errorCode": e.get("code"),
            "errorReason": e.get("reason"),
            "errorSource": json.dumps(e.get("item"), default=str)[:2000]
            if e.get("item") is not None
            else e.get("kind"),
        }
        for e in (batch.result or {}).get("errors", [])
    ]
