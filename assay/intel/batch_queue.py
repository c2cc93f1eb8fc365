"""V2-style batches over HTTP: settings make a batch, an upload queues it, a worker runs it.

The content waits in the file store (by sha256) and the batch row in the database, so a batch
accepted is never lost; the job itself runs in a worker, not in the HTTP request.

Owners are checked three times (`assay.intel.owners`): the batch's owner when it is created and
when its content is uploaded (so a refused batch is refused at once, in the answer), and every
owner its items name when the worker runs it, with the user's role and membership as they are
then and the uploading key's ACL (so a user disabled or removed meanwhile writes nothing).
"""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, or_, select, update
from sqlalchemy.orm import Session

from assay.access.configured import engine_for
from assay.db.base import holds_nul, storable, utcnow
from assay.db.session import session_scope
from assay.filestore import FileStore
from assay.intel import owners
from assay.intel.batch_document import BatchSettings, submit
from assay.intel.errors import Code
from assay.intel.models import Batch
from assay.intel.result import JobResult

if TYPE_CHECKING:
    from assay.config import Settings

log = logging.getLogger(__name__)


class BatchError(ValueError):
    """A batch request that cannot be taken; the message says why."""


class BatchRefused(PermissionError):
    """The caller may not write the batch's owner; the message says why (an API answers 403)."""


def _check_owner(check: owners.OwnerCheck | None, owner: str) -> None:
    why = check(owner) if check is not None else None
    if why is not None:
        raise BatchRefused(why)


def create(session: Session, user: str, raw_settings: Any, check: owners.OwnerCheck | None = None) -> Batch:
    """A batch in state Created; `check` refuses an owner the caller may not write (BatchRefused)."""
    if not isinstance(raw_settings, dict):
        raise BatchError("batch settings must be a JSON object")
    if holds_nul(raw_settings):
        raise BatchError("batch settings must not contain a NUL character")
    try:
        settings = BatchSettings.from_dict(raw_settings)
        settings.job()  # validates the write types and action
    except (TypeError, ValueError) as exc:
        raise BatchError(str(exc)) from None
    if not isinstance(settings.owner, str) or not settings.owner.strip():
        raise BatchError("owner is required")
    _check_owner(check, settings.owner)
    batch = Batch(user=user, owner=settings.owner, settings=raw_settings, state="Created", created=utcnow())
    session.add(batch)
    session.flush()
    return batch


def upload(
    session: Session,
    batch_id: int,
    user: str,
    sha256: str,
    check: owners.OwnerCheck | None = None,
    key_acl: str | None = None,
) -> Batch:
    """Queue the batch's content; the worker will check its items with `key_acl`, the uploading key's."""
    batch = session.get(Batch, batch_id)
    if batch is None or batch.user != user:
        raise LookupError(f"no batch {batch_id}")
    if batch.state != "Created":
        raise BatchError(f"batch {batch_id} is {batch.state}; content can be uploaded once")
    _check_owner(check, batch.owner)
    batch.key_acl = key_acl
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


def run(
    engine: Engine, store: FileStore, batch_id: int, worker_id: str, config: Settings | None = None
) -> JobResult | None:
    """Run a claimed batch. With the platform's `config` (as workers pass it), its items are checked
    against their owners for the batch's user and their labels read by the configured classification;
    without it (tests, tools) the batch runs unchecked, with TLP labels."""
    with session_scope(engine, readonly=True) as session:
        batch = session.get(Batch, batch_id)
        if batch is None or batch.state != "Running" or batch.lease_owner != worker_id:
            return None
        settings, sha256, user, key_acl = dict(batch.settings), batch.content_sha256, batch.user, batch.key_acl
    try:
        content = store.get(sha256) if sha256 else b""
    except OSError as exc:
        content = json.dumps({"error": str(exc)}).encode()
    try:
        result = submit(content, settings, engine, **_run_context(engine, config, user, key_acl))
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


def _run_context(engine: Engine, config: Settings | None, user: str, key_acl: str | None) -> dict[str, Any]:
    """The owner check and classification a batch of `user` runs with under `config`."""
    if config is None:
        return {}
    with engine.connect() as conn:
        writer = owners.stored_writer(conn, user, key_acl)
    check = owners.owner_check(engine, writer, config.intel.owner)
    return {"check": check, "classification": engine_for(config.classification)}


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
