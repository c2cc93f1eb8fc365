"""The intel dialect: V2-style batches, browsing the store (indicators, groups), owners' members.

Whose intel a caller may write is `assay.intel.owners`' rule, checked here for the batch's owner
(403 with the reason) and by the worker for every owner the batch's items name. What a caller
may read is filtered by their clearance with the platform's one visibility condition
(`Reader.sees`): a row they may not see is answered as if it did not exist (404, left out of
lists and totals), and of an item's security labels they see only those they are cleared for.
A batch's status and errors are its submitter's and administrators'.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from assay.access.visibility import Reader
from assay.api.auth import Admin, Submitter, User
from assay.api.envelope import ApiError, ok
from assay.api.state import state_of
from assay.db import models as core
from assay.db.session import session_scope
from assay.filestore import FileTooLarge
from assay.intel import batch_queue, owners
from assay.intel.marking import visible_labels
from assay.intel.models import FileOccurrence, Group, GroupIndicator, Indicator, Owner
from assay.intel.publish import report_xid
from assay.users import Principal

router = APIRouter(prefix="/api/v4/intel")
BatchId = Annotated[int, Path(ge=1)]
MAX_ROWS = 1000


async def _json(request: Request) -> Any:
    try:
        return await request.json()
    except ValueError:
        raise ApiError(400, "the body must be JSON") from None


def _owner_check(request: Request, session: Session, user: Principal) -> owners.OwnerCheck:
    """The owner rule for this caller, answered on the request's own database session."""
    platform = state_of(request).settings.intel.owner
    return lambda owner: owners.refusal(session.connection(), user, owner, platform)


@router.post("/batch/", summary="Create a batch from its settings (owner, action, haltOnError...)")
async def create_batch(request: Request, user: Submitter) -> JSONResponse:
    settings = await _json(request)
    state = state_of(request)
    try:
        with session_scope(state.engine) as session:
            batch = batch_queue.create(session, user.name, settings, _owner_check(request, session, user))
            batch_id = batch.id
    except batch_queue.BatchError as exc:
        raise ApiError(400, f"batch settings refused: {exc}") from None
    except batch_queue.BatchRefused as exc:
        raise ApiError(403, f"batch refused: {exc}") from None
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
            check = _owner_check(request, session, user)
            batch = batch_queue.upload(session, batch_id, user.name, stored.sha256, check, user.key_acl)
            answer = batch_queue.status(batch)
    except LookupError as exc:
        raise ApiError(404, str(exc)) from None
    except batch_queue.BatchError as exc:
        raise ApiError(409, str(exc)) from None
    except batch_queue.BatchRefused as exc:
        raise ApiError(403, f"batch refused: {exc}") from None
    state.work_added()
    return ok(answer)


def _batch(session: Session, batch_id: int, user: Principal) -> Any:
    """The batch, for its submitter or an administrator; anyone else is told there is none."""
    from assay.intel.models import Batch

    batch = session.get(Batch, batch_id)
    if batch is None or (batch.user != user.name and not user.is_admin()):
        raise ApiError(404, f"no batch {batch_id}")
    return batch


@router.get("/batch/{batch_id}/", summary="A batch's status and counts")
def batch_status(batch_id: BatchId, request: Request, user: User) -> JSONResponse:
    with session_scope(state_of(request).engine, readonly=True) as session:
        return ok(batch_queue.status(_batch(session, batch_id, user)))


@router.get("/batch/{batch_id}/errors/", summary="A batch's errors")
def batch_errors(batch_id: BatchId, request: Request, user: User) -> JSONResponse:
    with session_scope(state_of(request).engine, readonly=True) as session:
        return ok(batch_queue.errors(_batch(session, batch_id, user)))


# -- browsing ----------------------------------------------------------------------------------
def _indicator(row: Indicator, owner: str, reader: Reader) -> dict[str, Any]:
    return {
        "id": row.id,
        "owner": owner,
        "type": row.type,
        "summary": row.summary,
        "rating": row.rating,
        "confidence": row.confidence,
        "tags": row.tags,
        "securityLabels": visible_labels(reader, row.security_labels),
        "classification": row.classification,
        "attributes": row.attributes,
        "xid": row.xid,
        "firstSeen": row.first_seen.isoformat() if row.first_seen else None,
        "lastSeen": row.last_seen.isoformat() if row.last_seen else None,
    }


def _group(row: Group, owner: str, reader: Reader) -> dict[str, Any]:
    return {
        "id": row.id,
        "owner": owner,
        "type": row.type,
        "name": row.name,
        "xid": row.xid,
        "tags": row.tags,
        "securityLabels": visible_labels(reader, row.security_labels),
        "classification": row.classification,
        "attributes": row.attributes,
        "fields": row.fields,
    }


def _no_nul(name: str, value: str | None) -> None:
    if value is not None and "\x00" in value:
        raise ApiError(400, f"{name} must not contain a NUL character")


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
    _no_nul("type", type)
    _no_nul("q", q)
    reader = state_of(request).reader(user)
    query = select(Indicator).where(reader.sees(Indicator))
    if type:
        query = query.where(Indicator.type == type)
    if q:
        query = query.where(Indicator.summary.contains(q.lower()) | Indicator.summary.contains(q))
    return _page(request, query, Indicator, owner, offset, rows, lambda row, name: _indicator(row, name, reader))


@router.get("/indicators/{indicator_id}/", summary="An indicator with its groups, occurrences and submissions")
def get_indicator(indicator_id: Annotated[int, Path(ge=1)], request: Request, user: User) -> JSONResponse:
    """The indicator with what the caller may see of its groups, occurrences and submissions."""
    reader = state_of(request).reader(user)
    with session_scope(state_of(request).engine, readonly=True) as session:
        row = session.scalar(select(Indicator).where(Indicator.id == indicator_id, reader.sees(Indicator)))
        if row is None:
            raise ApiError(404, f"no indicator {indicator_id}")
        names = _owners(session)
        groups = session.scalars(
            select(Group)
            .join(GroupIndicator, GroupIndicator.group_id == Group.id)
            .where(GroupIndicator.indicator_id == indicator_id, reader.sees(Group))
        ).all()
        seen = (FileOccurrence.indicator_id == indicator_id, reader.sees(FileOccurrence))
        occurrences = session.scalars(select(FileOccurrence).where(*seen)).all()
        prefix = report_xid("")
        sids = [g.xid[len(prefix) :] for g in groups if g.type == "Report" and g.xid and g.xid.startswith(prefix)]
        known = set(session.scalars(select(core.Submission.sid).where(core.Submission.sid.in_(sids))))
        answer = _indicator(row, names.get(row.owner_id, ""), reader)
        answer["groups"] = [_group(g, names.get(g.owner_id, ""), reader) for g in groups]
        answer["fileOccurrences"] = [_occurrence(o) for o in occurrences]
        answer["submissions"] = [sid for sid in sids if sid in known]
    return ok(answer)


def _occurrence(row: FileOccurrence) -> dict[str, Any]:
    return {
        "fileName": row.file_name,
        "path": row.path,
        "date": row.date.isoformat() if row.date else None,
        "classification": row.classification,
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
    _no_nul("type", type)
    _no_nul("q", q)
    reader = state_of(request).reader(user)
    query = select(Group).where(reader.sees(Group))
    if type:
        query = query.where(Group.type == type)
    if q:
        query = query.where(or_(Group.name.contains(q), Group.xid.contains(q)))
    return _page(request, query, Group, owner, offset, rows, lambda row, name: _group(row, name, reader))


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
    """The group with the indicators associated with it that the caller may see."""
    reader = state_of(request).reader(user)
    with session_scope(state_of(request).engine, readonly=True) as session:
        row = session.scalar(select(Group).where(Group.id == group_id, reader.sees(Group)))
        if row is None:
            raise ApiError(404, f"no group {group_id}")
        names = _owners(session)
        indicators = session.scalars(
            select(Indicator)
            .join(GroupIndicator, GroupIndicator.indicator_id == Indicator.id)
            .where(GroupIndicator.group_id == group_id, reader.sees(Indicator))
            .limit(MAX_ROWS)
        ).all()
        answer = _group(row, names.get(row.owner_id, ""), reader)
        answer["indicators"] = [_indicator(i, names.get(i.owner_id, ""), reader) for i in indicators]
    return ok(answer)


# -- owners' members (administrators: see assay.api.rules) ---------------------------------------
OwnerName = Annotated[str, Query(min_length=1, max_length=255, description="the owner's name")]
MemberName = Annotated[str, Query(alias="user", min_length=1, max_length=64, description="the user's name")]


def _members(request: Request, owner: str, change: Any) -> JSONResponse:
    """Run a membership change (or read) and answer the owner's members; OwnerError is the caller's."""
    try:
        with session_scope(state_of(request).engine) as session:
            changed = change(session.connection())
            answer = {"owner": owner.strip(), "members": owners.members(session.connection(), owner)}
    except owners.UnknownName as exc:
        raise ApiError(404, str(exc)) from None
    except owners.OwnerError as exc:
        raise ApiError(400, str(exc)) from None
    return ok({**answer, **({} if changed is None else {"changed": changed})})


@router.get("/owners/members/", summary="An owner's members: the intel writers who may write its intel")
def owner_members(request: Request, user: Admin, owner: OwnerName) -> JSONResponse:
    return _members(request, owner, lambda conn: None)


@router.post("/owners/members/", summary='Make a user a member of an owner: {"owner": ..., "user": ...}')
async def add_owner_member(request: Request, user: Admin) -> JSONResponse:
    body = await _json(request)
    if not isinstance(body, dict) or not all(isinstance(body.get(k), str) for k in ("owner", "user")):
        raise ApiError(400, 'the body must be {"owner": "<owner name>", "user": "<user name>"}')
    platform = state_of(request).settings.intel.owner
    owner, member = body["owner"], body["user"]
    return await run_in_threadpool(
        _members, request, owner, lambda conn: owners.add_member(conn, owner, member, platform)
    )


@router.delete("/owners/members/", summary="Take a user off an owner's members")
def remove_owner_member(request: Request, user: Admin, owner: OwnerName, member: MemberName) -> JSONResponse:
    return _members(request, owner, lambda conn: owners.remove_member(conn, owner, member))
