"""Connecting: the v3 probe that must fail, login with an API key or password, logout."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from assay import users
from assay.access import ACL_PERMISSIONS
from assay.api.auth import SESSION_COOKIE, User, end_session, refused, start_session
from assay.api.envelope import ApiError, ok
from assay.api.state import state_of
from assay.db.session import session_scope
from assay.users import Principal

router = APIRouter()


@router.get("/api/v3/auth/init/", include_in_schema=False)
def v3_probe() -> JSONResponse:
    """404 tells the client this is a v4 server."""
    raise ApiError(404, "API v3 is not served here; use /api/v4/")


@router.get("/api/", summary="API versions served")
def versions() -> JSONResponse:
    return ok(["v4"])


@router.post("/api/v4/auth/login/", summary="Open a session with an API key or a password")
async def login(request: Request) -> JSONResponse:
    try:
        body: Any = await request.json()
    except ValueError:
        body = None
    if not isinstance(body, dict) or not isinstance(body.get("user"), str):
        raise ApiError(400, 'send {"user": ..., "apikey": ...} or {"user": ..., "password": ...}')
    apikey, password = body.get("apikey"), body.get("password")
    if (
        not isinstance(apikey, str | type(None))
        or not isinstance(password, str | type(None))
        or not (apikey or password)
    ):
        raise ApiError(400, "apikey or password must be given as a string")
    state = state_of(request)
    duration = state.settings.auth.session_duration

    def check() -> tuple[Principal, str] | None:
        with session_scope(state.engine) as session:
            try:
                principal = users.check_login(session, body["user"], apikey, password)
            except users.Refused as exc:
                raise refused(exc) from None
            if principal is None:
                return None
            return principal, users.open_session(session, principal, duration)

    opened = await run_in_threadpool(check)
    if opened is None:
        raise ApiError(401, "Wrong username or password/API key")
    principal, token = opened
    response = ok({"username": principal.name, "privileges": _privileges(principal), "session_duration": duration})
    start_session(response, token, state.settings)
    return response


def _privileges(principal: Principal) -> list[str]:
    """The ACL letters the session can use (Assemblyline's answer to a login)."""
    return [letter for letter, granted in ACL_PERMISSIONS.items() if granted & principal.permissions]


@router.get("/api/v4/auth/logout/", summary="Close the session (the cookie is refused from now on)")
def logout(request: Request, user: User) -> JSONResponse:
    state = state_of(request)
    if token := request.cookies.get(SESSION_COOKIE):
        with session_scope(state.engine) as session:
            users.close_session(session, token)
    response = ok({"success": True})
    end_session(response, state.settings)
    return response
