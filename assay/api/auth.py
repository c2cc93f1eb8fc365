"""Who is calling: a session cookie (after login), or ``X-USER``/``X-APIKEY`` headers.

The 401 messages are the ones ``assemblyline-client`` answers by logging in again ("Session
expired", "Session not found"). What the caller may do is decided by ``assay.api.rules``.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request, Response
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from assay import users
from assay.api.envelope import ApiError
from assay.api.state import state_of
from assay.config import Settings
from assay.db.session import session_scope
from assay.users import Principal

SESSION_COOKIE = "session"
XSRF_COOKIE = "XSRF-TOKEN"
XSRF_HEADER = "x-xsrf-token"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_PRINCIPAL = "assay.principal"  # scope key: this request's caller, once known
_NOT_SIGNED_IN = "Unauthorized: log in first (POST /api/v4/auth/login/) or send X-USER and X-APIKEY"
_BAD_XSRF = (
    "XSRF token missing or wrong: a request with the session cookie that is not GET, HEAD or OPTIONS "
    "must send the XSRF-TOKEN cookie's value in the X-XSRF-TOKEN header"
)


def refused(exc: users.Refused) -> ApiError:
    """The answer to right credentials that may not be used now: 403 for a disabled user, else 401."""
    return ApiError(403 if exc.disabled else 401, str(exc))


def _from_headers(engine: Engine, user: str, apikey: str) -> Principal:
    with session_scope(engine, readonly=True) as session:
        try:
            principal = users.check_apikey(session, user, apikey)
        except users.Refused as exc:
            raise refused(exc) from None
    if principal is None:
        raise ApiError(401, "Unauthorized: wrong user name or API key")
    return principal


def _from_cookie(engine: Engine, token: str) -> Principal:
    with session_scope(engine, readonly=True) as session:
        try:
            principal = users.session_principal(session, token)
        except users.Refused as exc:
            raise refused(exc) from None
    if principal is None:
        raise ApiError(401, "Session not found")
    return principal


def _check_xsrf(request: Request, token: str) -> None:
    """Assemblyline's scheme: a cookie that changes something must come with the token only the site can read."""
    if request.method in _SAFE_METHODS:
        return
    sent = request.headers.get(XSRF_HEADER, "")
    if not hmac.compare_digest(sent.encode(), users.xsrf_token(token).encode()):
        raise ApiError(403, _BAD_XSRF)


async def authenticate(request: Request) -> Principal:
    """Who is calling, read from the database on every request (one indexed query).

    Nothing is cached across requests, so a revoked key, a closed session, a disabled user or a
    changed role holds from the next request on. Headers win over a cookie, and need no XSRF
    token: another site cannot make a browser send them.
    """
    known = request.scope.get(_PRINCIPAL)
    if known is not None:
        return known  # type: ignore[no-any-return]
    engine = state_of(request).engine
    user, apikey = request.headers.get("x-user"), request.headers.get("x-apikey")
    if user and apikey:
        principal = await run_in_threadpool(_from_headers, engine, user, apikey)
    elif token := request.cookies.get(SESSION_COOKIE):
        principal = await run_in_threadpool(_from_cookie, engine, token)
        _check_xsrf(request, token)
    else:
        raise ApiError(401, _NOT_SIGNED_IN)
    request.scope[_PRINCIPAL] = principal
    return principal


def start_session(response: Response, token: str, settings: Settings) -> None:
    """The session cookie and its XSRF token, which the client reads and echoes as X-XSRF-TOKEN.

    SameSite=Strict: no other site's page, link or form ever sends the session, and Assay has no
    pages another site should link into signed in. Secure whenever the server speaks TLS.
    """
    duration, secure = settings.auth.session_duration, bool(settings.web.tls_cert)
    response.set_cookie(SESSION_COOKIE, token, max_age=duration, httponly=True, samesite="strict", secure=secure)
    response.set_cookie(XSRF_COOKIE, users.xsrf_token(token), max_age=duration, samesite="strict", secure=secure)


def end_session(response: Response, settings: Settings) -> None:
    secure = bool(settings.web.tls_cert)
    for name in (SESSION_COOKIE, XSRF_COOKIE):
        response.delete_cookie(name, httponly=name == SESSION_COOKIE, samesite="strict", secure=secure)


async def current_user(request: Request) -> Principal:
    """The caller, already known once the access rule of the route has been checked."""
    return await authenticate(request)


User = Annotated[Principal, Depends(current_user)]
# What each route may do is decided by assay.api.rules alone; these names only hand the route its caller.
Submitter = User
Admin = User
