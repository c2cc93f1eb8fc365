"""Files and results: what is known of a content, its bytes, one service result, the heuristics.

A file or result the caller may not see answers exactly as one that does not exist.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path as FilePath
from typing import IO, Annotated

import cart
import pyzipper
from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import FileResponse, JSONResponse
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.background import BackgroundTask

from assay.access.visibility import Reader
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
ENCODINGS = ("cart", "raw", "zip")
ZIP_PASSWORD = "infected"  # Assemblyline's default zip password


def _file(session: Session, sha256: str, reader: Reader) -> models.File:
    row = session.scalars(select(models.File).where(models.File.sha256 == sha256, reader.sees(models.File))).first()
    if row is None:
        raise ApiError(404, f"SHA256 {sha256} does not exists")
    return row


@router.get("/api/v4/file/info/{sha256}/", summary="What is known of a file")
def file_info(sha256: Sha256, request: Request, user: User) -> JSONResponse:
    state = state_of(request)
    with session_scope(state.engine, readonly=True) as session:
        return ok(views.file_info(_file(session, sha256.lower(), state.reader(user))))


@router.get(
    "/api/v4/file/download/{sha256}/",
    summary="A file's bytes: CaRT unless encoding=raw or zip (AES, password 'infected' unless given)",
)
def file_download(
    sha256: Sha256,
    request: Request,
    user: User,
    encoding: Annotated[str, Query(max_length=16)] = "cart",
    password: Annotated[str, Query(min_length=1, max_length=256)] = ZIP_PASSWORD,
) -> FileResponse:
    """CaRT by default, as Assemblyline's client expects: neutered bytes no scanner or click
    runs by accident. Unknown query parameters are ignored (the client sends a few)."""
    wanted = (encoding or "cart").strip().lower()
    if wanted not in ENCODINGS:
        raise ApiError(400, f"encoding {encoding[:16]!r} is not offered: accepted are {', '.join(ENCODINGS)}")
    state = state_of(request)
    sha = sha256.lower()
    with session_scope(state.engine, readonly=True) as session:
        marking = _file(session, sha, state.reader(user)).classification
    if not state.store.exists(sha):
        raise ApiError(404, f"SHA256 {sha256} does not exists")
    source = state.store.path(sha)
    if wanted == "raw":
        return FileResponse(source, media_type="application/octet-stream", filename=sha)
    if wanted == "zip":
        return _encoded(lambda out: _zip(source, sha, password, out), f"{sha}.zip", "application/zip")
    header = {"name": sha, "classification": marking}
    return _encoded(lambda out: _cart(source, header, out), f"{sha}.cart", "application/octet-stream")


def _cart(source: FilePath, header: dict[str, str], out: IO[bytes]) -> None:
    with source.open("rb") as raw:
        cart.pack_stream(raw, out, optional_header=header)


def _zip(source: FilePath, name: str, password: str, out: IO[bytes]) -> None:
    with pyzipper.AESZipFile(out, "w", compression=pyzipper.ZIP_DEFLATED, encryption=pyzipper.WZ_AES) as archive:
        archive.setpassword(password.encode())
        archive.write(source, arcname=name)


def _encoded(write: Callable[[IO[bytes]], None], filename: str, media_type: str) -> FileResponse:
    """``write``'s output through a temporary file, streamed and then removed: a large file is
    never held in memory, and the store's copy is never touched."""
    handle = tempfile.NamedTemporaryFile(prefix="assay-download-", delete=False)  # noqa: SIM115
    try:
        with handle:
            write(handle)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(handle.name)
        raise
    cleanup = BackgroundTask(os.unlink, handle.name)
    return FileResponse(handle.name, media_type=media_type, filename=filename, background=cleanup)


@router.get("/api/v4/file/result/{sha256}/", summary="Every result recorded for a file")
def file_results(sha256: Sha256, request: Request, user: User) -> JSONResponse:
    """The file's results the caller may see: a file seen at two markings shows each reader its own."""
    state = state_of(request)
    reader = state.reader(user)
    with session_scope(state.engine, readonly=True) as session:
        row = _file(session, sha256.lower(), reader)
        table = models.ResultRecord
        results = session.scalars(select(table).where(table.sha256 == row.sha256, reader.sees(table))).all()
        return ok({"file_info": views.file_info(row), "results": [views.result(r) for r in results]})


@router.get("/api/v4/result/{key}/", summary="One service result by key")
def result(key: Annotated[str, Path(max_length=200)], request: Request, user: User) -> JSONResponse:
    state = state_of(request)
    table = models.ResultRecord
    with session_scope(state.engine, readonly=True) as session:
        row = session.scalars(select(table).where(table.key == key, state.reader(user).sees(table))).first()
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
    state = state_of(request)
    table = models.ResultRecord
    with session_scope(state.engine, readonly=True) as session:
        rows = session.scalars(select(table).where(table.key.in_(keys), state.reader(user).sees(table))).all()
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
def submission_params(username: str, profile: str, request: Request, user: User) -> JSONResponse:
    markings = state_of(request).markings
    return ok(Params(submitter=user.name, classification=markings.default).model_dump())
