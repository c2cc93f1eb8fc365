"""Sending files: fire-and-forget ingest with notification queues, and direct submission."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from assay import notify
from assay.api.al_v4.upload import SubmitRequest, read_ingest_request, read_submit_request
from assay.api.auth import Submitter, User
from assay.api.envelope import ApiError, ok
from assay.api.state import AppState, state_of
from assay.db import models
from assay.db.session import reading, session_scope
from assay.intake.ingest import IngestOrder, NotCleared, Overloaded
from assay.params import BadParams
from assay.results import views
from assay.users import Principal

router = APIRouter()
QueueName = Annotated[str, Path(min_length=1, max_length=256, pattern=r"^[\w.\-:@]+$")]


@router.post("/api/v4/ingest/", summary="Ingest a file; the result arrives on the notification queue")
async def ingest(request: Request, user: Submitter) -> JSONResponse:
    state = state_of(request)
    with state.committer.expecting():
        ingest_request = await read_ingest_request(request, state)
    ingest_id = await _ingest(state, ingest_request.order(user.name, user.clearance))
    state.work_added()
    return ok({"ingest_id": ingest_id})


async def _ingest(state: AppState, order: IngestOrder) -> str:
    try:
        return await state.committer.ingest(order)
    except BadParams as exc:
        raise ApiError(400, str(exc)) from None
    except NotCleared as exc:
        raise ApiError(403, str(exc)) from None
    except Overloaded as exc:
        raise ApiError(503, f"Server busy: {exc}") from None


@router.get("/api/v4/ingest/get_message/{nq}/", summary="Pop one message from a notification queue")
def get_message(nq: QueueName, request: Request, user: User) -> JSONResponse:
    messages = _pop(state_of(request), user, nq, 1)
    return ok(messages[0] if messages else None)


@router.get("/api/v4/ingest/get_message_list/{nq}/", summary="Pop messages from a notification queue")
def get_message_list(
    nq: QueueName,
    request: Request,
    user: User,
    page_size: Annotated[int, Query(ge=1, le=notify.MAX_PAGE)] = notify.MAX_PAGE,
) -> JSONResponse:
    return ok(_pop(state_of(request), user, nq, page_size))


def _pop(state: AppState, user: Principal, queue: str, count: int) -> list[dict[str, Any]]:
    """Receivers poll empty queues most of the time: look without the write lock first.

    Messages of submissions above the reader's clearance are neither handed out nor popped.
    """
    visible = state.reader(user).sees(models.Notification.__table__)
    with reading(state.engine) as connection:
        if not notify.waiting(connection, user.name, queue, visible):
            return []
    with session_scope(state.engine) as session:
        return notify.pop(session.connection(), user.name, queue, count, visible)


@router.post("/api/v4/submit/", summary="Submit a file for analysis; returns the saved submission")
async def submit(request: Request, user: Submitter) -> JSONResponse:
    state = state_of(request)
    submit_request = await read_submit_request(request, state)
    record = await run_in_threadpool(_submit, state, user, submit_request)
    state.work_added()
    return ok(record)


def _submit(state: AppState, user: Principal, wanted: SubmitRequest) -> dict[str, Any]:
    try:
        with session_scope(state.engine) as session:
            submission = state.intake.submit(
                session, user.name, wanted.stored, wanted.name, wanted.metadata, wanted.params, user.clearance
            )
            session.flush()
            return views.submission(session, submission, state.reader(user))
    except BadParams as exc:
        raise ApiError(400, str(exc)) from None
    except NotCleared as exc:
        raise ApiError(403, str(exc)) from None
    except Overloaded as exc:
        raise ApiError(503, f"Server busy: {exc}") from None
