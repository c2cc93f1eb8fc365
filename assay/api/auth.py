"""Who is calling: a session cookie (after login), or ``X-USER``/``X-APIKEY`` headers.

The 401 messages are the ones ``assemblyline-client`` answers by logging in again.
"""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from assay import users
from assay.api.envelope import ApiError
from assay.api.state import AppState, state_of
from assay.db.session import session_scope
from assay.users import Principal

SESSION_COOKIE = "session"
_CACHE_SECONDS = 30.0
_CACHE_ENTRIES = 10_000
_APIKEY_CACHE: dict[tuple[str, str], tuple[Principal, float]] = {}


def _from_headers(state: AppState, user: str, apikey: str) -> Principal:
    cached = _APIKEY_CACHE.get((user, apikey))
    if cached and cached[1] > time.monotonic():
        return cached[0]
    with session_scope(state.engine, readonly=True) as session:
        principal = users.check_apikey(session, user, apikey)
    if principal is None:
        raise ApiError(401, "Unauthorized: wrong user name or API key")
    if len(_APIKEY_CACHE) > _CACHE_ENTRIES:
        _APIKEY_CACHE.clear()
    _APIKEY_CACHE[(user, apikey)] = (principal, time.monotonic() + _CACHE_SECONDS)
    return principal


def _from_cookie(state: AppState, token: str) -> Principal:
    cached = state.sessions.get(token)
    if cached and cached[1] > time.monotonic():
        return cached[0]  # type: ignore[return-value]
    with session_scope(state.engine, readonly=True) as session:
        principal, expired = users.session_principal(session, token)
    if principal is None:
        raise ApiError(401, "Session expired" if expired else "Session not found")
    if len(state.sessions) > _CACHE_ENTRIES:
        state.sessions.clear()  # a bound on memory; entries are re-read from the database
    state.sessions[token] = (principal, time.monotonic() + _CACHE_SECONDS)
    return principal


async def current_user(request: Request) -> Principal:
    """Answered from a short in-process cache on the event loop; the database only on a miss."""
    state = state_of(request)
    user, apikey = request.headers.get("x-user"), request.headers.get("x-apikey")
    if user and apikey:
        cached = _APIKEY_CACHE.get((user, apikey))
        if cached and cached[1] > time.monotonic():
            return cached[0]
        return await run_in_threadpool(_from_headers, state, user, apikey)
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        known = state.sessions.get(token)
        if known and known[1] > time.monotonic():
            return known[0]  # type: ignore[return-value]
        return await run_in_threadpool(_from_cookie, state, token)
    raise ApiError(401, "Unauthorized: log in first (POST /api/v4/auth/login/) or send X-USER and X-APIKEY")


async def submitter(user: Annotated[Principal, Depends(current_user)]) -> Principal:
    if not user.can_submit():
        raise ApiError(403, f"user {user.name} may not submit files (role {user.role})")
    return user


async def admin(user: Annotated[Principal, Depends(current_user)]) -> Principal:
    if not user.is_admin():
        raise ApiError(403, f"user {user.name} is not an administrator")
    return user


User = Annotated[Principal, Depends(current_user)]
Submitter = Annotated[Principal, Depends(submitter)]
Admin = Annotated[Principal, Depends(admin)]
