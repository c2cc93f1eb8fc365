"""Managing the safelist: known-good hashes and network indicators."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from assay import safelist
from assay.api.auth import Admin, User
from assay.api.envelope import ApiError, ok
from assay.api.state import state_of
from assay.db.session import session_scope

router = APIRouter()


def _entries(body: Any) -> tuple[list[safelist.Entry], str, str]:
    """Assemblyline's shapes: ``{"type": "file", "hashes": {...}}`` or ``{"type": "tag", "tag": {...}}``,
    plus a plain ``{"value": ..., "kind": ...}``."""
    if not isinstance(body, dict):
        raise ApiError(400, "send a JSON object describing the safelist entry")
    sources = body.get("sources") or [{}]
    source = sources[0] if isinstance(sources, list) and sources and isinstance(sources[0], dict) else {}
    name, reason = str(source.get("name", "")), source.get("reason", "")
    reason = ", ".join(map(str, reason)) if isinstance(reason, list) else str(reason)
    kind = body.get("type")
    try:
        if kind == "file":
            hashes = body.get("hashes")
            if not isinstance(hashes, dict) or not hashes:
                raise ApiError(400, "a file entry needs 'hashes' with md5, sha1 and/or sha256")
            entries = [safelist.classify(str(v), k) for k, v in hashes.items() if k in ("md5", "sha1", "sha256") and v]
            if not entries:
                raise ApiError(400, "a file entry needs at least one of md5, sha1, sha256")
        elif kind == "tag":
            tag = body.get("tag")
            if not isinstance(tag, dict) or not tag.get("type") or not tag.get("value"):
                raise ApiError(400, "a tag entry needs 'tag': {'type': ..., 'value': ...}")
            entries = [safelist.classify(str(tag["value"]), str(tag["type"]))]
        elif "value" in body:
            entries = [safelist.classify(str(body["value"]), body.get("kind"))]
        else:
            raise ApiError(400, "type must be 'file' or 'tag' (or give 'value')")
    except safelist.SafelistError as exc:
        raise ApiError(400, str(exc)) from None
    return entries, name, reason


@router.put("/api/v4/safelist/", summary="Add to the safelist")
@router.post("/api/v4/safelist/", include_in_schema=False)
async def add(request: Request, user: Admin) -> JSONResponse:
    try:
        body = await request.json()
    except ValueError:
        raise ApiError(400, "the body must be JSON") from None
    entries, source, reason = _entries(body)
    with session_scope(state_of(request).engine) as session:
        added = safelist.add(session, entries, source, reason, user.name)
    return ok({"success": True, "op": "add" if added else "update", "added": added})


@router.get("/api/v4/safelist/", summary="List the safelist")
def listing(
    request: Request,
    user: User,
    offset: Annotated[int, Query(ge=0)] = 0,
    rows: Annotated[int, Query(ge=1, le=10_000)] = 100,
    kind: str | None = None,
) -> JSONResponse:
    with session_scope(state_of(request).engine, readonly=True) as session:
        return ok(safelist.listing(session, offset, rows, kind))


@router.get("/api/v4/safelist/check/{value}/", summary="Whether a hash or indicator is safelisted")
def check(value: str, request: Request, user: User, kind: str | None = None) -> JSONResponse:
    entry = _entry(value, kind)
    with session_scope(state_of(request).engine, readonly=True) as session:
        if entry.kind in ("md5", "sha1", "sha256"):
            return ok(safelist.match_file(session, {entry.kind: entry.value}))
    covered = safelist.NetworkSafelist(state_of(request).engine, ttl=0).covers(entry.kind, entry.value)
    return ok({"kind": entry.kind, "value": entry.value} if covered else None)


@router.delete("/api/v4/safelist/{value}/", summary="Remove from the safelist")
def remove(value: str, request: Request, user: Admin, kind: str | None = None) -> JSONResponse:
    entry = _entry(value, kind)
    with session_scope(state_of(request).engine) as session:
        if not safelist.remove(session, entry):
            raise ApiError(404, f"{value} is not on the safelist")
    return ok({"success": True})


def _entry(value: str, kind: str | None) -> safelist.Entry:
    try:
        return safelist.classify(value, kind)
    except safelist.SafelistError as exc:
        raise ApiError(400, str(exc)) from None
