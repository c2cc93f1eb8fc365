"""The intel dialect: V2-style batches and browsing the store (indicators, groups)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from assay.api.auth import Submitter, User
from assay.api.envelope import ApiError, ok
from assay.api.state import state_of
from assay.db import models as core
from assay.db.session import session_scope
from assay.filestore import FileTooLarge
from assay.intel import batch_queue
from assay.intel.models import FileOccurrence, Group, GroupIndicator, Indicator, Owner
from assay.intel.publish import report_xid

router = APIRouter(prefix="/api/v4/intel")
BatchId = Annotated[int, Path(ge=1)]
MAX_ROWS = 1000


async def _json(request: Request) -> Any:
    try:
        return await request.json()
    except ValueError:
        raise ApiError(400, "the body must be JSON") from None


@router.post("/batch/", summary="Create a batch from its settings (owner, action, haltOnError...)")
async def create_batch(request: Request, user: Submitter) -> JSONResponse:
    settings = await _json(request)
    state = state_of(request)
    try:
        with session_scope(state.engine) as session:
            batch = batch_queue.create(session, user.name, settings)
            batch_id = batch.id
    except batch_queue.BatchError as exc:
        raise ApiError(400, f"batch settings refused: {exc}") from None
    return ok({"status": "Success", "data": {"batchId": batch_id}, "batchId": batch_id})


@router.post("/batch/{batch_id}/", summary="Upload a batch's JSON content; a worker runs it")
async def upload_batch(batch_id: BatchId, request: Request, user: Submitter) -> JSONResponse:
    state = state_of(request)
    body = await request.body()
    if not body:
        raise ApiError(400, "the batch content is empty")
    try:
        stored = state.store.put_bytes(body, state.settings.limits.max_file_size)
    except FileTooLarge as exc:
        raise ApiError(413, str(exc)) from None
    try:
        with session_scope(state.engine) as session:
            batch = batch_queue.upload(session, batch_id, user.name, stored.sha256)
            answer = batch_queue.status(batch)
    except LookupError as exc:
        raise ApiError(404, str(exc)) from None
    except batch_queue.BatchError as exc:
        raise ApiError(409, str(exc)) from None
    state.work_added()
    return ok(answer)


def _batch(session: Session, batch_id: int, user: str) -> Any:
    from assay.intel.models import Batch

    batch = session.get(Batch, batch_id)
    if batch is None or batch.user != user:
        raise ApiError(404, f"no batch {batch_id}")
    return batch


@router.get("/batch/{batch_id}/", summary="A batch's status and counts")
def batch_status(batch_id: BatchId, request: Request, user: User) -> JSONResponse:
    with session_scope(state_of(request).engine, readonly=True) as session:
        return ok(batch_queue.status(_batch(session, batch_id, user.name)))


@router.get("/batch/{batch_id}/errors/", summary="A batch's errors")
def batch_errors(batch_id: BatchId, request: Request, user: User) -> JSONResponse:
    with session_scope(state_of(request).engine, readonly=True) as session:
        return ok(batch_queue.errors(_batch(session, batch_id, user.name)))


# -- browsing ----------------------------------------------------------------------------------
def _indicator(row: Indicator, owner: str) -> dict[str, Any]:
    return {
        "id": row.id,
        "owner": owner,
        "type": row.type,
        "summary": row.summary,
        "rating": row.rating,
        "confidence": row.confidence,
        "tags": row.tags,
        "securityLabels": row.security_labels,
        "attributes": row.attributes,
        "xid": row.xid,
        "firstSeen": row.first_seen.isoformat() if row.first_seen else None,
        "lastSeen": row.last_seen.isoformat() if row.last_seen else None,
    }


def _group(row: Group, owner: str) -> dict[str, Any]:
    return {
        "id": row.id,
        "owner": owner,
        "type": row.type,
        "name": row.name,
        "xid": row.xid,
        "tags": row.tags,
        "attributes": row.attributes,
        "fields": row.fields,
    }


def _owners(session: Session) -> dict[int, str]:
    return dict(session.execute(select(Owner.id, Owner.name)).all())


@router.get("/indicators/", summary="Search indicators")
def list_indicators(
    request: Request,
    user: User,
    owner: str | None = None,
    type: str | None = None,
    q: Annotated[str | None, Query(max_length=2048, description="substring of the summary")] = None,
    offset: Annotated[int, Query(ge=0)] = 0,
    rows: Annotated[int, Query(ge=1, le=MAX_ROWS)] = 100,
) -> JSONResponse:
    query = select(Indicator)
    if type:
        query = query.where(Indicator.type == type)
    if q:
        query = query.where(Indicator.summary.contains(q.lower()) | Indicator.summary.contains(q))
    return _page(request, query, Indicator, owner, offset, rows, _indicator)


@router.get("/indicators/{indicator_id}/", summary="An indicator with its groups, occurrences and submissions")
def get_indicator(indicator_id: Annotated[int, Path(ge=1)], request: Request, user: User) -> JSONResponse:
    with session_scope(state_of(request).engine, readonly=True) as session:
        row = session.get(Indicator, indicator_id)
        if row is None:
            raise ApiError(404, f"no indicator {indicator_id}")
        owners = _owners(session)
        groups = session.scalars(
            select(Group)
            .join(GroupIndicator, GroupIndicator.group_id == Group.id)
            .where(GroupIndicator.indicator_id == indicator_id)
        ).all()
        occurrences = session.scalars(select(FileOccurrence).where(FileOccurrence.indicator_id == indicator_id)).all()
        prefix = report_xid("")
        sids = [g.xid[len(prefix) :] for g in groups if g.type == "Report" and g.xid and g.xid.startswith(prefix)]
        known = set(session.scalars(select(core.Submission.sid).where(core.Submission.sid.in_(sids))))
        answer = _indicator(row, owners.get(row.owner_id, ""))
        answer["groups"] = [_group(g, owners.get(g.owner_id, "")) for g in groups]
        answer["fileOccurrences"] = [_occurrence(o) for o in occurrences]
        answer["submissions"] = [sid for sid in sids if sid in known]
    return ok(answer)


def _occurrence(row: FileOccurrence) -> dict[str, Any]:
    return {
        "fileName": row.file_name,
        "path": row.path,
        "date": row.date.isoformat() if row.date else None,
    }


@router.get("/groups/", summary="Search groups")
def list_groups(
    request: Request,
    user: User,
    owner: str | None = None,
    type: str | None = None,
    q: Annotated[str | None, Query(max_length=512, description="substring of the name or the xid")] = None,
    offset: Annotated[int, Query(ge=0)] = 0,
    rows: Annotated[int, Query(ge=1, le=MAX_ROWS)] = 100,
) -> JSONResponse:
    query = select(Group)
    if type:
        query = query.where(Group.type == type)
    if q:
        query = query.where(or_(Group.name.contains(q), Group.xid.contains(q)))
    return _page(request, query, Group, owner, offset, rows, _group)


def _page(
    request: Request, query: Any, model: Any, owner: str | None, offset: int, rows: int, render: Any
) -> JSONResponse:
    """One page of a browse query, restricted to an owner by name when given."""
    with session_scope(state_of(request).engine, readonly=True) as session:
        owners = _owners(session)
        if owner:
            query = query.where(model.owner_id.in_([i for i, n in owners.items() if n == owner]))
        total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
        found = session.scalars(query.order_by(model.id).offset(offset).limit(rows)).all()
        items = [render(row, owners.get(row.owner_id, "")) for row in found]
    return ok({"total": total, "offset": offset, "rows": len(items), "items": items})


@router.get("/groups/{group_id}/", summary="A group with its indicators")
def get_group(group_id: Annotated[int, Path(ge=1)], request: Request, user: User) -> JSONResponse:
    with session_scope(state_of(request).engine, readonly=True) as session:
        row = session.get(Group, group_id)
        if row is None:
            raise ApiError(404, f"no group {group_id}")
        owners = _owners(session)
        indicators = session.scalars(
            select(Indicator)
            .join(GroupIndicator, GroupIndicator.indicator_id == Indicator.id)
            .where(GroupIndicator.group_id == group_id)
            .limit(MAX_ROWS)
        ).all()
        answer = _group(row, owners.get(row.owner_id, ""))
        answer["indicators"] = [_indicator(i, owners.get(i.owner_id, "")) for i in indicators]
    return ok(answer)
