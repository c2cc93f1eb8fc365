"""Reading submissions: the record, its full results, summary, file tree, completion; search."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse
from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from assay.access.visibility import Reader
from assay.api.auth import User
from assay.api.envelope import ApiError, ok
from assay.api.state import state_of
from assay.db import models
from assay.db.session import session_scope
from assay.intake import deletion
from assay.results import views
from assay.results.search import QueryError, submissions_query
from assay.timestamps import iso_utc
from assay.users import Principal

router = APIRouter()
Sid = Annotated[str, Path(min_length=1, max_length=64)]
Sha256 = Annotated[str, Path(pattern=r"^[0-9a-fA-F]{64}$")]
MAX_ROWS = 10_000


def _missing(sid: str) -> ApiError:
    return ApiError(404, f"Submission ID {sid} does not exists.")


def _get(session: Session, sid: str, reader: Reader) -> models.Submission:
    """The submission if ``reader`` may see it; one above them is as missing as one that never was."""
    table = models.Submission
    submission = session.scalars(select(table).where(table.sid == sid, reader.sees(table))).first()
    if submission is None:
        raise _missing(sid)
    return submission


def _read(request: Request, sid: str, user: Principal, build: Any) -> JSONResponse:
    state = state_of(request)
    reader = state.reader(user)
    with session_scope(state.engine, readonly=True) as session:
        return ok(build(session, _get(session, sid, reader), reader))


@router.get("/api/v4/submission/{sid}/", summary="A submission's record")
def get_submission(sid: Sid, request: Request, user: User) -> JSONResponse:
    return _read(request, sid, user, views.submission)


@router.get("/api/v4/submission/full/{sid}/", summary="A submission with every result, error and file")
def get_full(sid: Sid, request: Request, user: User) -> JSONResponse:
    return _read(request, sid, user, views.full)


@router.get("/api/v4/submission/summary/{sid}/", summary="Tags, heuristics and ATT&CK ids of a submission")
def get_summary(sid: Sid, request: Request, user: User) -> JSONResponse:
    return _read(request, sid, user, views.summary)


@router.get("/api/v4/submission/tree/{sid}/", summary="A submission's file tree")
def get_tree(sid: Sid, request: Request, user: User) -> JSONResponse:
    return _read(request, sid, user, views.tree)


@router.get("/api/v4/submission/is_completed/{sid}/", summary="Whether the analysis has finished")
def is_completed(sid: Sid, request: Request, user: User) -> JSONResponse:
    return _read(request, sid, user, lambda _session, sub, _reader: sub.state in {"completed", "failed"})


@router.get("/api/v4/submission/{sid}/file/{sha256}/", summary="One file's results within a submission")
def get_file(sid: Sid, sha256: Sha256, request: Request, user: User) -> JSONResponse:
    state = state_of(request)
    reader = state.reader(user)
    with session_scope(state.engine, readonly=True) as session:
        _get(session, sid, reader)
        found = views.file_in_submission(session, sid, sha256.lower(), reader)
    if found is None:
        raise ApiError(404, f"File {sha256} is not part of submission {sid}")
    return ok(found)


@router.delete("/api/v4/submission/{sid}/", summary="Delete a submission (results of shared files stay)")
def delete_submission(sid: Sid, request: Request, user: User) -> JSONResponse:
    """Its submitter may delete it, an admin any (the route's rule already asked for delete_own)."""
    state = state_of(request)
    with session_scope(state.engine) as session:
        owner = _get(session, sid, state.reader(user)).user
        if owner != user.name and not user.is_admin():
            raise ApiError(403, f"Forbidden: submission {sid} is {owner}'s; only they or an admin may delete it")
        deletion.delete_submission(session, sid)
    return ok({"success": True})


# -- search ------------------------------------------------------------------------------------
def _search_body(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise ApiError(400, "send a JSON object with 'query' and optionally rows, offset, fl, filters, deep_paging_id")
    query = raw.get("query", "*:*")
    filters = raw.get("filters") or []
    if isinstance(filters, str):
        filters = [filters]
    if not isinstance(query, str) or not isinstance(filters, list) or not all(isinstance(f, str) for f in filters):
        raise ApiError(400, "query must be a string and filters a list of strings")
    try:
        rows = int(raw.get("rows", 25))
        offset = int(raw.get("offset", 0))
    except (TypeError, ValueError, OverflowError):
        raise ApiError(400, "rows and offset must be whole numbers") from None
    if not 0 <= rows <= MAX_ROWS or offset < 0:
        raise ApiError(400, f"rows must be between 0 and {MAX_ROWS} and offset at least 0")
    return {
        "query": query,
        "filters": filters,
        "rows": rows,
        "offset": offset,
        "fl": raw.get("fl"),
        "deep_paging_id": raw.get("deep_paging_id"),
    }


def _cursor(token: str) -> tuple[str, str] | None:
    if token == "*":
        return None
    try:
        created, sid = json.loads(base64.urlsafe_b64decode(token.encode()))
        return str(created), str(sid)
    except (ValueError, binascii.Error, TypeError):
        raise ApiError(400, "deep_paging_id is not one this server gave out") from None


@router.post("/api/v4/search/submission/", summary="Search submissions with the query language")
async def search_submissions(request: Request, user: User) -> JSONResponse:
    try:
        raw = await request.json()
    except ValueError:
        raise ApiError(400, "the body must be JSON") from None
    body = _search_body(raw)
    state = state_of(request)
    with session_scope(state.engine, readonly=True) as session:
        return ok(_search(session, body, state.reader(user)))


def _search(session: Session, body: dict[str, Any], reader: Reader) -> dict[str, Any]:
    """Items and total alike count only what ``reader`` may see."""
    try:
        query = submissions_query(body["query"], body["filters"], reader)
    except QueryError as exc:
        raise ApiError(400, f"Invalid query: {exc}") from None
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    ordered = query.order_by(models.Submission.created.desc(), models.Submission.sid.desc())
    deep = body["deep_paging_id"]
    if deep:
        cursor = _cursor(str(deep))
        if cursor is not None:
            created = views.parse_iso(cursor[0])
            ordered = ordered.where(
                or_(
                    models.Submission.created < created,
                    and_(models.Submission.created == created, models.Submission.sid < cursor[1]),
                )
            )
    else:
        ordered = ordered.offset(body["offset"])
    found = session.scalars(ordered.limit(body["rows"])).all()
    items = [_fields(views.submission(session, s, reader), body["fl"]) for s in found]
    answer: dict[str, Any] = {"total": total, "offset": body["offset"], "rows": len(items), "items": items}
    if deep and len(found) == body["rows"] and found:
        last = found[-1]
        token = json.dumps([iso_utc(last.created), last.sid]).encode()
        answer["next_deep_paging_id"] = base64.urlsafe_b64encode(token).decode()
    return answer


def _fields(item: dict[str, Any], fl: Any) -> dict[str, Any]:
    if not fl or not isinstance(fl, str) or fl.strip() == "*":
        return item
    wanted = [f.strip() for f in fl.split(",") if f.strip()]
    out: dict[str, Any] = {}
    for name in wanted:
        head, _, rest = name.partition(".")
        if head in item:
            value = item[head]
            if rest and isinstance(value, dict):
                out.setdefault(head, {})[rest] = value.get(rest)
            else:
                out[head] = value
    return out
