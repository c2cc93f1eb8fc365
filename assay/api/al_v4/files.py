"""Files and results: what is known of a content, its bytes, one service result, the heuristics."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import FileResponse, JSONResponse
from sqlalchemy import select

from assay.api.auth import User
from assay.api.envelope import ApiError, ok
from assay.api.state import state_of
from assay.db import models
from assay.db.session import session_scope
from assay.params import Params
from assay.results import views
from assay.services import registry

router = APIRouter()
Sha256 = Annotated[str, Path(pattern=r"^[0-9a-fA-F]{64}$")]


@router.get("/api/v4/file/info/{sha256}/", summary="What is known of a file")
def file_info(sha256: Sha256, request: Request, user: User) -> JSONResponse:
    with session_scope(state_of(request).engine, readonly=True) as session:
        row = session.get(models.File, sha256.lower())
        if row is None:
            raise ApiError(404, f"SHA256 {sha256} does not exists")
        return ok(views.file_info(row))


@router.get("/api/v4/file/download/{sha256}/", summary="A file's bytes (unknown query parameters are ignored)")
def file_download(sha256: Sha256, request: Request, user: User) -> FileResponse:
    store = state_of(request).store
    if not store.exists(sha256.lower()):
        raise ApiError(404, f"SHA256 {sha256} does not exists")
    return FileResponse(store.path(sha256.lower()), media_type="application/octet-stream", filename=sha256.lower())


@router.get("/api/v4/file/result/{sha256}/", summary="Every result recorded for a file")
def file_results(sha256: Sha256, request: Request, user: User) -> JSONResponse:
    with session_scope(state_of(request).engine, readonly=True) as session:
        row = session.get(models.File, sha256.lower())
        if row is None:
            raise ApiError(404, f"SHA256 {sha256} does not exists")
        results = session.scalars(select(models.ResultRecord).where(models.ResultRecord.sha256 == row.sha256)).all()
        return ok({"file_info": views.file_info(row), "results": [views.result(r) for r in results]})


@router.get("/api/v4/result/{key}/", summary="One service result by key")
def result(key: Annotated[str, Path(max_length=200)], request: Request, user: User) -> JSONResponse:
    with session_scope(state_of(request).engine, readonly=True) as session:
        row = session.get(models.ResultRecord, key)
        if row is None:
            raise ApiError(404, f"Result {key} does not exists")
        return ok(views.result(row))


@router.post("/api/v4/result/multiple_keys/", summary="Several results by key")
async def multiple(request: Request, user: User) -> JSONResponse:
    try:
        keys = await request.json()
    except ValueError:
        raise ApiError(400, "the body must be a JSON list of result keys") from None
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys) or len(keys) > 1000:
        raise ApiError(400, "the body must be a JSON list of at most 1000 result keys")
    with session_scope(state_of(request).engine, readonly=True) as session:
        rows = session.scalars(select(models.ResultRecord).where(models.ResultRecord.key.in_(keys))).all()
        return ok({r.key: views.result(r) for r in rows})


@router.get("/api/v4/heuristics/", summary="The heuristics catalogue every score comes from")
def heuristics(user: User) -> JSONResponse:
    return ok([h.as_dict() for h in sorted(registry.heuristics().values(), key=lambda h: h.id)])


@router.get("/api/v4/service/all/", summary="The analysis services")
def services(user: User) -> JSONResponse:
    return ok(
        [
            {
                "name": s.name,
                "version": s.version,
                "stage": s.stage.name,
                "category": s.category,
                "accepts": s.accepts,
                "rejects": s.rejects,
                "enabled": s.default_enabled,
                "submission_params": [{"name": k, "default": v} for k, v in s.parameters.items()],
            }
            for s in registry.services()
        ]
    )


@router.get("/api/v4/user/submission_params/{username}/{profile}/", summary="Default submission parameters")
def submission_params(username: str, profile: str, user: User) -> JSONResponse:
    return ok(Params(submitter=user.name).model_dump())
