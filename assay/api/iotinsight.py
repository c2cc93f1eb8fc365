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
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from assay.api.auth import Submitter, User
from assay.api.envelope import ApiError
from assay.api.state import AppState, state_of
from assay.db import models
from assay.db.session import session_scope
from assay.filestore import FileTooLarge, Stored
from assay.ids import new_id
from assay.intake.ingest import Overloaded
from assay.iotinsight import accounts, cases, detect, paths
from assay.iotinsight.models import Case, CaseTask, Task
from assay.params import DEFAULT_CATEGORIES
from assay.results import views

router = APIRouter(tags=["IoTInsight tasks"])
TaskId = Annotated[str, PathParam(min_length=1, max_length=64)]
INVALID_TYPE = "Invalid request data type."
FILETYPES = ("packet", "onhub")
MAX_FIELDS = 16
MAX_FIELD_BYTES = 64 * 1024
MAX_TREE_ROWS = 1000


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


def _limit(state: AppState) -> int:
    return state.settings.get_int("limits", "max_file_size", 100 << 20)


def _roots(state: AppState) -> list[Path]:
    return paths.allowed_roots(state.settings)


# -- creating tasks ---------------------------------------------------------------------------
@router.post("/task/request/{kind}", summary="Ask for an image (file) or account task")
async def request_task(kind: str, request: Request, user: Submitter) -> JSONResponse:
    if kind not in ("image", "account"):
        raise ApiError(400, INVALID_TYPE)
    state = state_of(request)
    fields, upload, form = await _read_fields(request)
    try:
        if kind == "account":
            task_id = await run_in_threadpool(_account_task, request, state, user.name, fields)
        else:
            task_id = await _image_task(state, user.name, fields, upload)
    finally:
        if form is not None:
            await form.close()
    state.work_added()
    return JSONResponse({"task_id": task_id})


async def _image_task(state: AppState, user: str, fields: dict[str, str], upload: UploadFile | None) -> str:
    filetype = fields.get("filetype", "").strip().lower()
    if filetype not in FILETYPES:
        raise ApiError(400, f"filetype must be one of {', '.join(FILETYPES)}")
    filepath = fields.get("filepath", "")
    if upload is not None and filepath:
        raise ApiError(400, "send either filepath or a file part, not both")
    if upload is not None:
        stored = await run_in_threadpool(_store_upload, state, upload)
        name = os.path.basename(upload.filename or "") or stored.sha256
        return await run_in_threadpool(_new_file_task, state, user, "image", filetype, stored, name, None)
    if not filepath:
        raise ApiError(400, "send filepath (a server path) or a multipart part named 'file'")
    stored, real = await run_in_threadpool(_store_server_file, state, filepath)
    return await run_in_threadpool(_new_file_task, state, user, "image", filetype, stored, real.name, str(real))


def _store_upload(state: AppState, upload: UploadFile) -> Stored:
    upload.file.seek(0)
    try:
        stored = state.store.put_stream(upload.file, _limit(state))
    except FileTooLarge as exc:
        raise ApiError(413, str(exc)) from None
    if stored.size == 0:
        raise ApiError(400, "the file is empty")
    return stored


def _store_server_file(state: AppState, raw: str) -> tuple[Stored, Path]:
    roots = _roots(state)
    try:
        real = paths.resolve_allowed(raw, roots)
        fd, size = paths.open_regular(real, roots)
    except paths.PathRefused as exc:
        raise ApiError(400, str(exc)) from None
    with os.fdopen(fd, "rb") as handle:
        if size == 0:
            raise ApiError(400, f"filepath {raw} is an empty file")
        try:
            return state.store.put_stream(handle, _limit(state)), real
        except FileTooLarge as exc:
            raise ApiError(413, str(exc)) from None


def _submit(
    session: Session, state: AppState, user: str, stored: Stored, name: str, meta: dict[str, str], description: str
) -> models.Submission:
    params = {"services": {"selected": list(DEFAULT_CATEGORIES)}, "description": description}
    try:
        submission = state.intake.submit(session, user, stored, name, meta, params)
    except Overloaded as exc:
        raise ApiError(503, f"Server busy: {exc}") from None
    session.flush()
    return submission


def _detect_stored(state: AppState, stored: Stored) -> detect.FileType:
    """Detection reads the stored copy: the bytes analysed are the bytes judged."""
    with state.store.path(stored.sha256).open("rb") as handle:
        return detect.detect_stream(handle, stored.size)


def _file_task(
    session: Session,
    state: AppState,
    user: str,
    kind: str,
    filetype: str,
    stored: Stored,
    name: str,
    filepath: str | None,
) -> str:
    detected = _detect_stored(state, stored)
    meta = {"iotinsight.filetype": filetype, "iotinsight.detected": detected}
    if filepath:
        meta["iotinsight.filepath"] = filepath
    submission = _submit(session, state, user, stored, name, meta, f"IoTInsight {filetype} task")
    session.add(
        Task(
            task_id=submission.sid,
            user=user,
            kind=kind,
            filetype=filetype,
            state="pending",
            sid=submission.sid,
            path=filepath,
            error="",
        )
    )
    return submission.sid


def _new_file_task(
    state: AppState, user: str, kind: str, filetype: str, stored: Stored, name: str, filepath: str | None
) -> str:
    with session_scope(state.engine) as session:
        return _file_task(session, state, user, kind, filetype, stored, name, filepath)


def _runner(request: Request, state: AppState) -> accounts.AccountRunner:
    runner = getattr(request.app.state, "task_accounts", None)
    if runner is None:
        runner = accounts.AccountRunner(
            state,
            workers=state.settings.get_int("tasks", "account_workers", 4),
            max_waiting=state.settings.get_int("tasks", "account_max_waiting", 64),
        )
        request.app.state.task_accounts = runner
    return runner


def _account_task(request: Request, state: AppState, user: str, fields: dict[str, str]) -> str:
    try:
        creds = accounts.parse_credentials(fields)
    except accounts.BadCredentials as exc:
        raise ApiError(400, str(exc)) from None
    except accounts.Unavailable as exc:
        raise ApiError(503, str(exc)) from None
    base_url = state.settings.get("tasks", f"{creds.service}_base_url")
    task_id = new_id()
    with session_scope(state.engine) as session:
        session.add(
            Task(
                task_id=task_id,
                user=user,
                kind="account",
                filetype=creds.service,
                state="pending",
                sid=None,
                path=None,
                error="",
            )
        )
    try:
        _runner(request, state).start(task_id, creds, base_url)
    except accounts.Busy as exc:
        with session_scope(state.engine) as session:
            session.delete(session.get(Task, task_id))
        raise ApiError(503, str(exc)) from None
    return task_id


# -- bulk -------------------------------------------------------------------------------------
@router.post("/task/bulk", summary="Each file of a server directory as a task typed by content; forms a case")
async def bulk(request: Request, user: Submitter) -> JSONResponse:
    state = state_of(request)
    fields, upload, form = await _read_fields(request)
    if form is not None:
        await form.close()
    if upload is not None or not fields.get("filepath"):
        raise ApiError(400, "send filepath: a server directory")
    case_id, answer = await run_in_threadpool(_bulk, state, user.name, fields["filepath"])
    state.work_added()
    return JSONResponse(answer, headers={"X-Case-Id": case_id, "Location": f"/task/case/{case_id}"})


def _bulk(state: AppState, user: str, raw: str) -> tuple[str, dict[str, Any]]:
    roots = _roots(state)
    settings = state.settings
    try:
        directory = paths.resolve_allowed(raw, roots)
        found = paths.walk(
            directory, settings.get_int("tasks", "bulk_max_files", 1000), settings.get_int("tasks", "bulk_max_depth", 8)
        )
    except paths.PathRefused as exc:
        raise ApiError(400, str(exc)) from None
    if not found.files:
        raise ApiError(400, f"{raw} holds no regular files")
    answer: dict[str, Any] = {}
    case_id = new_id()
    with session_scope(state.engine) as session:
        session.add(Case(case_id=case_id, user=user, root=str(directory)))
        session.flush()
        for path in found.files:
            answer[str(path)] = _bulk_file(session, state, user, path, roots)
        session.flush()  # the tasks exist before the rows that point at them
        session.add_all(
            CaseTask(case_id=case_id, task_id=entry["task_id"], path=path)
            for path, entry in answer.items()
            if entry["task_id"]
        )
    return case_id, answer


def _bulk_file(session: Session, state: AppState, user: str, path: Path, roots: list[Path]) -> dict[str, Any]:
    try:
        fd, size = paths.open_regular(path, roots)
    except paths.PathRefused as exc:
        return {"filetype": "other", "task_id": None, "error": str(exc)}
    with os.fdopen(fd, "rb") as handle:
        if size == 0:
            return {"filetype": "other", "task_id": None, "error": "empty file"}
        try:
            stored = state.store.put_stream(handle, _limit(state))
        except FileTooLarge as exc:
            return {"filetype": "other", "task_id": None, "error": str(exc)}
    filetype = _detect_stored(state, stored)
    task_id = _file_task(session, state, user, "bulk", filetype, stored, path.name, str(path))
    return {"filetype": filetype, "task_id": task_id}


# -- status and results -----------------------------------------------------------------------
def _find(session: Session, state: AppState, task_id: str) -> tuple[Task | None, models.Submission | None]:
    """The task and its submission; a plain submission's sid counts as a task id too."""
    task = session.get(Task, task_id)
    sid = task.sid if task is not None else task_id
    submission = session.get(models.Submission, sid) if sid else None
    if task is None and submission is None:
        raise ApiError(404, f"no such task: {task_id}")
    if task is not None and task.sid and submission is None:
        raise ApiError(404, f"task {task_id}'s submission was deleted")
    timeout = state.settings.get_int("tasks", "account_timeout", 1800)
    if task is not None and accounts.interrupted(task, timeout):
        task.state, task.error = "failure", "collection was interrupted (server restarted or timed out)"
    return task, submission


def status_of(task: Task | None, submission: models.Submission | None) -> str:
    """IoTInsight's status words for a task's or submission's state."""
    if submission is None:
        return task.state if task is not None else "failure"
    if submission.state == "completed":
        return "success"
    if submission.state == "failed":
        return "failure"
    return "processing" if submission.lease_owner else "pending"


@router.get("/task/status/{task_id}", summary="pending, processing, success or failure")
def task_status(task_id: TaskId, request: Request, user: User) -> JSONResponse:
    state = state_of(request)
    with session_scope(state.engine) as session:
        task, submission = _find(session, state, task_id)
        answer: dict[str, Any] = {"status": status_of(task, submission)}
        if task is not None and task.error:
            answer["message"] = task.error
    return JSONResponse(answer)


def _result_rows(session: Session, sid: str) -> list[models.Result]:
    keys = list(session.scalars(select(models.SubmissionResult.result_key).where(models.SubmissionResult.sid == sid)))
    return list(session.scalars(select(models.Result).where(models.Result.key.in_(keys))))


def _tree_rows(session: Session, sid: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []

    def visit(level: dict[str, Any], depth: int) -> None:
        for entry in level.values():
            if len(rows) >= MAX_TREE_ROWS:
                return
            rows.append(
                {
                    "sha256": entry["sha256"],
                    "name": entry["name"],
                    "type": entry["type"],
                    "size": entry["size"],
                    "score": entry["score"],
                    "depth": depth,
                }
            )
            visit(entry["children"], depth + 1)

    visit(views.tree(session, sid)["tree"], 0)
    return rows


def _result(session: Session, task: Task | None, submission: models.Submission) -> dict[str, Any]:
    results: dict[str, Any] = {}
    extracted: dict[str, dict[str, Any]] = {}
    for row in _result_rows(session, submission.sid):
        data = row.body.get("data") or {}
        if row.sha256 == submission.sha256:
            results[row.service] = data
        elif data:
            extracted.setdefault(row.sha256, {})[row.service] = data
    errors = session.scalars(select(models.ServiceError).where(models.ServiceError.sid == submission.sid))
    return {
        "task_id": task.task_id if task is not None else submission.sid,
        "sid": submission.sid,
        "status": "success",
        "filetype": task.filetype if task else submission.meta.get("iotinsight.filetype", "other"),
        "name": submission.name,
        "sha256": submission.sha256,
        "score": submission.max_score,
        "verdict": views.verdict(submission.max_score),
        "results": results,
        "extracted": extracted,
        "file_tree": _tree_rows(session, submission.sid),
        "errors": [{"service": e.service, "sha256": e.sha256, "message": e.message} for e in errors],
    }


@router.get("/task/result/{task_id}", summary="The parsed result of a finished task")
def task_result(task_id: TaskId, request: Request, user: User) -> JSONResponse:
    state = state_of(request)
    with session_scope(state.engine) as session:
        task, submission = _find(session, state, task_id)
        status = status_of(task, submission)
        if status != "success" or submission is None:
            message = "task not finished" if status in ("pending", "processing") else "task failed"
            if task is not None and task.error:
                message = f"{message}: {task.error}"
            return JSONResponse({"message": message, "status": status}, status_code=409)
        return JSONResponse(_result(session, task, submission))


# -- cases --------------------------------------------------------------------------------------
def _case(session: Session, ident: str) -> Case:
    case = session.get(Case, ident)
    if case is None:
        case_id = session.scalars(
            select(CaseTask.case_id)
            .join(Case, Case.case_id == CaseTask.case_id)
            .where(CaseTask.task_id == ident)
            .order_by(Case.created.desc())
            .limit(1)
        ).first()
        case = session.get(Case, case_id) if case_id else None
    if case is None:
        raise ApiError(404, f"no such case: {ident}")
    return case


def _case_answer(session: Session, state: AppState, case: Case) -> dict[str, Any]:
    members = session.execute(select(CaseTask.task_id, CaseTask.path).where(CaseTask.case_id == case.case_id)).all()
    tasks: dict[str, Any] = {}
    sources: list[cases.Source] = []
    for task_id, path in members:
        task, submission = _find(session, state, task_id)
        status = status_of(task, submission)
        tasks[task_id] = {"status": status, "path": path, "filetype": task.filetype if task else "other"}
        if status == "success" and submission is not None:
            sources.extend(
                cases.Source(task_id, {row.service: row.body.get("data") or {}})
                for row in _result_rows(session, submission.sid)
            )
    max_timeline = state.settings.get_int("tasks", "case_max_timeline", cases.DEFAULT_MAX_TIMELINE)
    merged = cases.merge(sources, max_timeline)
    complete = all(t["status"] in ("success", "failure") for t in tasks.values())
    return {"case_id": case.case_id, "root": case.root, "complete": complete, "tasks": tasks, **merged}


@router.get("/task/case/{case_id}", summary="A case's tasks merged: one device inventory, one timeline")
def task_case(case_id: TaskId, request: Request, user: User) -> JSONResponse:
    state = state_of(request)
    with session_scope(state.engine) as session:
        return JSONResponse(_case_answer(session, state, _case(session, case_id)))
