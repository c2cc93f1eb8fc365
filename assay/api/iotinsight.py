"""The IoTInsight task API on Assay's pipeline: a task is a submission, asked for IoTInsight's way.

Routes (all authenticated like the rest of the API; errors answer ``{"message": ...}``):

- ``POST /task/request/image``: ``filetype`` (packet|onhub) and ``filepath`` (a server path
  under ``[tasks] allowed_roots``), or a multipart part ``file``; form-encoded or JSON.
  Answers ``{"task_id"}``; the task id is the submission's ``sid``.
- ``POST /task/request/account``: ``service`` (smartthings|alexa) with ``access_token``,
  ``cookie`` (alexa) or ``username``/``password``; collection runs in the background.
- ``GET /task/status/<id>``: ``{"status": "pending|processing|success|failure"}``.
- ``POST /task/bulk``: ``filepath`` of a directory; every file becomes a task, its type
  detected from its content; the tasks form a case (``X-Case-Id`` header).
- ``GET /task/result/<id>``: each service's structured data, score and file tree. A task
  that is not finished answers 409 ``{"message": "task not finished", "status": ...}`` so a
  client that skipped the status check sees an error rather than an empty result.
- ``GET /task/case/<id>``: a case (by case id or by any of its task ids) merged into one
  device inventory and one timeline.

Every request that makes tasks takes an optional ``classification`` field (Assemblyline's
marking; the configured default when absent): an unknown marking is a 400 naming the accepted
ones, one above the caller's clearance a 403. A task, case or result above the reader answers
404 like one that does not exist.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from assay.access.visibility import StoredMarking
from assay.api.auth import Submitter, User
from assay.api.envelope import ApiError
from assay.api.state import AppState, state_of
from assay.db.session import session_scope
from assay.filestore import FileTooLarge
from assay.intake.ingest import NotCleared, Overloaded
from assay.iotinsight import accounts, files, paths, reports, tasks
from assay.iotinsight.bulk import open_case
from assay.iotinsight.pipeline import Pipeline
from assay.params import BadParams
from assay.users import Principal

router = APIRouter(tags=["IoTInsight tasks"])
TaskId = Annotated[str, PathParam(min_length=1, max_length=64)]
INVALID_TYPE = "Invalid request data type."
FILETYPES = ("packet", "onhub")
MAX_FIELDS = 16
MAX_FIELD_BYTES = 64 * 1024


@contextmanager
def _refusals() -> Iterator[None]:
    """The task layer says why it refused; this dialect says it with a status."""
    try:
        yield
    except (paths.PathRefused, files.EmptyFile, accounts.BadCredentials, BadParams) as exc:
        raise ApiError(400, str(exc)) from None
    except NotCleared as exc:
        raise ApiError(403, str(exc)) from None
    except tasks.NotFound as exc:
        raise ApiError(404, str(exc)) from None
    except FileTooLarge as exc:
        raise ApiError(413, str(exc)) from None
    except (accounts.Unavailable, accounts.Busy) as exc:
        raise ApiError(503, str(exc)) from None
    except Overloaded as exc:
        raise ApiError(503, f"Server busy: {exc}") from None


def _pipeline(state: AppState) -> Pipeline:
    return Pipeline(state.engine, state.settings, state.store, state.intake)


def _marking(state: AppState, user: Principal, fields: dict[str, str]) -> StoredMarking:
    """The marking asked for, checked before anything is stored (raises BadParams, NotCleared)."""
    return state.intake.classify(fields.get("classification", ""), user.clearance)


# -- reading requests ---------------------------------------------------------------------------
async def _read_fields(request: Request) -> tuple[dict[str, str], UploadFile | None, Any]:
    """Form (urlencoded or multipart) or JSON fields as strings, the ``file`` part, the form to close."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type in ("multipart/form-data", "application/x-www-form-urlencoded"):
        try:
            form = await request.form(max_files=1, max_fields=MAX_FIELDS, max_part_size=MAX_FIELD_BYTES)
        except Exception as exc:  # any malformed body is the caller's error
            raise ApiError(400, f"could not read the form: {exc}") from None
        upload = form.get("file")
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        return fields, upload if isinstance(upload, UploadFile) else None, form
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_FIELDS * MAX_FIELD_BYTES:
        raise ApiError(400, "the request body is too large")
    raw = await request.body()
    if len(raw) > MAX_FIELDS * MAX_FIELD_BYTES:
        raise ApiError(400, "the request body is too large")
    if not raw.strip():
        return {}, None, None
    if content_type not in ("application/json", ""):
        raise ApiError(400, "send form fields, a multipart upload or a JSON object")
    return _json_fields(raw), None, None


def _json_fields(raw: bytes) -> dict[str, str]:
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ApiError(400, "the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, "the JSON body must be an object")
    fields = {}
    for key, value in body.items():
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise ApiError(400, f"{key} must be a string")
        fields[str(key)] = str(value)
    return fields


# -- creating tasks ---------------------------------------------------------------------------
@router.post("/task/request/{kind}", summary="Ask for an image (file) or account task")
async def request_task(kind: str, request: Request, user: Submitter) -> JSONResponse:
    if kind not in ("image", "account"):
        raise ApiError(400, INVALID_TYPE)
    state = state_of(request)
    fields, upload, form = await _read_fields(request)
    try:
        with _refusals():
            marking = _marking(state, user, fields)
            if kind == "account":
                task_id = await run_in_threadpool(_account_task, state, user.name, fields, marking)
            else:
                task_id = await _image_task(state, user.name, fields, upload, marking)
    finally:
        if form is not None:
            await form.close()
    state.work_added()
    return JSONResponse({"task_id": task_id})


async def _image_task(
    state: AppState, user: str, fields: dict[str, str], upload: UploadFile | None, marking: StoredMarking
) -> str:
    filetype = fields.get("filetype", "").strip().lower()
    if filetype not in FILETYPES:
        raise ApiError(400, f"filetype must be one of {', '.join(FILETYPES)}")
    filepath = fields.get("filepath", "")
    if upload is not None and filepath:
        raise ApiError(400, "send either filepath or a file part, not both")
    pipeline = _pipeline(state)
    if upload is not None:
        stored = await run_in_threadpool(files.store_upload, pipeline, upload.file)
        name = os.path.basename(upload.filename or "") or stored.sha256
        return await run_in_threadpool(tasks.image_task, pipeline, user, filetype, stored, name, None, marking)
    if not filepath:
        raise ApiError(400, "send filepath (a server path) or a multipart part named 'file'")
    stored, real = await run_in_threadpool(files.store_server_file, pipeline, filepath)
    return await run_in_threadpool(tasks.image_task, pipeline, user, filetype, stored, real.name, str(real), marking)


def _account_task(state: AppState, user: str, fields: dict[str, str], marking: StoredMarking) -> str:
    creds = accounts.parse_credentials(fields)
    return state.accounts().open(user, creds, marking)


# -- bulk -------------------------------------------------------------------------------------
@router.post("/task/bulk", summary="Each file of a server directory as a task typed by content; forms a case")
async def bulk(request: Request, user: Submitter) -> JSONResponse:
    state = state_of(request)
    fields, upload, form = await _read_fields(request)
    if form is not None:
        await form.close()
    if upload is not None or not fields.get("filepath"):
        raise ApiError(400, "send filepath: a server directory")
    with _refusals():
        marking = _marking(state, user, fields)
        case_id, answer = await run_in_threadpool(open_case, _pipeline(state), user.name, fields["filepath"], marking)
    state.work_added()
    return JSONResponse(answer, headers={"X-Case-Id": case_id, "Location": f"/task/case/{case_id}"})


# -- status and results -----------------------------------------------------------------------
@router.get("/task/status/{task_id}", summary="pending, processing, success or failure")
def task_status(task_id: TaskId, request: Request, user: User) -> JSONResponse:
    state = state_of(request)
    with session_scope(state.engine) as session, _refusals():
        task, submission = tasks.find(session, state.settings, task_id, state.reader(user))
        answer: dict[str, Any] = {"status": tasks.status_of(task, submission)}
        if task is not None and task.error:
            answer["message"] = task.error
    return JSONResponse(answer)


@router.get("/task/result/{task_id}", summary="The parsed result of a finished task")
def task_result(task_id: TaskId, request: Request, user: User) -> JSONResponse:
    state = state_of(request)
    reader = state.reader(user)
    with session_scope(state.engine) as session, _refusals():
        task, submission = tasks.find(session, state.settings, task_id, reader)
        status = tasks.status_of(task, submission)
        if status != "success" or submission is None:
            message = "task not finished" if status in ("pending", "processing") else "task failed"
            if task is not None and task.error:
                message = f"{message}: {task.error}"
            return JSONResponse({"message": message, "status": status}, status_code=409)
        return JSONResponse(reports.task(session, task, submission, reader))


# -- cases --------------------------------------------------------------------------------------
@router.get("/task/case/{case_id}", summary="A case's tasks merged: one device inventory, one timeline")
def task_case(case_id: TaskId, request: Request, user: User) -> JSONResponse:
    state = state_of(request)
    reader = state.reader(user)
    with session_scope(state.engine) as session, _refusals():
        return JSONResponse(reports.case(session, state.settings, reports.find_case(session, case_id, reader), reader))
