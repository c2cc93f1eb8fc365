"""Users over HTTP, in Assemblyline's shapes: whoami for everyone; add, list, read, change, delete for admins.

A user's ``classification`` is their clearance (a level) and ``groups`` the REL TO groups they
are in; both are checked against the configured markings. ``type`` holds the role (one of
viewer, submitter, intel_writer, admin). The database writes are in ``assay.users``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError
from starlette.concurrency import run_in_threadpool

from assay import users
from assay.access import Clearance, UnknownMarking
from assay.access.configured import engine_for
from assay.api.auth import User
from assay.api.envelope import ApiError, ok
from assay.api.state import AppState, state_of
from assay.db import models
from assay.db.session import session_scope
from assay.timestamps import iso_utc

router = APIRouter()
UserName = Annotated[str, Path(min_length=1, max_length=64)]


@contextmanager
def refusals() -> Iterator[None]:
    """What ``assay.users`` or the database refuses, as the envelope's 4xx."""
    try:
        yield
    except users.NoSuchUser as exc:
        raise ApiError(404, str(exc), {"success": False}) from None
    except (users.UserError, UnknownMarking) as exc:
        raise ApiError(400, str(exc), {"success": False}) from None
    except IntegrityError:
        message = "the database refused it: the name was taken meanwhile, or other records still refer to it"
        raise ApiError(409, message, {"success": False}) from None


async def json_object(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise ApiError(400, "send a JSON object")
    return body


def _record(user: models.User) -> dict[str, Any]:
    return {
        "uname": user.name,
        "name": user.name,
        "type": [user.role],
        "classification": user.classification,
        "groups": list(user.groups or ()),
        "is_active": not user.disabled,
        "has_password": user.password_hash is not None,
        "created": iso_utc(user.created),
    }


@router.get("/api/v4/user/whoami/", summary="Who is calling: role, clearance, groups, what they may do")
def whoami(user: User) -> JSONResponse:
    return ok(
        {
            "username": user.name,
            "name": user.name,
            "type": [user.role.value],
            "roles": sorted(user.permissions),
            "classification": user.clearance.level,
            "groups": sorted(user.clearance.groups),
            "is_active": True,
            "is_admin": user.is_admin(),
            "acl": user.key_acl,
        }
    )


@router.get("/api/v4/user/list/", summary="The users, by name")
def list_users(
    request: Request,
    user: User,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    rows: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> JSONResponse:
    with session_scope(state_of(request).engine, readonly=True) as session:
        total, found = users.list_users(session, offset, rows)
        return ok({"items": [_record(u) for u in found], "offset": offset, "rows": rows, "total": total})


@router.put("/api/v4/user/{username}/", summary="Add a user (type: role; classification: clearance; groups)")
async def add_user(username: UserName, request: Request, user: User) -> JSONResponse:
    body = await json_object(request)
    if body.get("uname", username) != username:
        raise ApiError(400, f"uname {body['uname']!r} differs from the user named in the path, {username!r}")
    state = state_of(request)
    level = _text(body, "classification") or state.settings.classification.new_user_clearance or None
    clearance = _clearance(state, level, _groups(body) or ())
    role, password, active = _required_role(body), _password(body), _flag(body, "is_active")

    def add() -> None:
        with refusals(), session_scope(state.engine) as session:
            users.add_user(session, username, role, clearance, password)
            if active is False:
                users.change_user(session, username, users.UserChange(disabled=True))

    await run_in_threadpool(add)
    return ok({"success": True})


@router.get("/api/v4/user/{username}/", summary="A user's account")
def get_user(username: UserName, request: Request, user: User) -> JSONResponse:
    with refusals(), session_scope(state_of(request).engine, readonly=True) as session:
        return ok(_record(users.user_named(session, username)))


@router.post("/api/v4/user/{username}/", summary="Change a user: type, classification, groups, is_active, new_pass")
async def change_user(username: UserName, request: Request, user: User) -> JSONResponse:
    body = await json_object(request)
    state = state_of(request)
    role, active = _role(body), _flag(body, "is_active")
    if username == user.name and (active is False or role not in (None, "admin")):
        raise ApiError(400, "you cannot disable yourself or give up your own admin role; another admin can")

    password = _password(body)

    def apply() -> dict[str, Any]:
        with refusals(), session_scope(state.engine) as session:
            clearance = _new_clearance(state, body, users.user_named(session, username))
            change = users.UserChange(role, clearance, None if active is None else not active, password)
            return _record(users.change_user(session, username, change))

    return ok({"success": True, "user": await run_in_threadpool(apply)})


@router.delete("/api/v4/user/{username}/", summary="Delete a user, their API keys and sessions")
def delete_user(username: UserName, request: Request, user: User) -> JSONResponse:
    if username == user.name:
        raise ApiError(400, "you cannot delete yourself; another admin can")
    with refusals(), session_scope(state_of(request).engine) as session:
        users.delete_user(session, username)
    return ok({"success": True})


# -- reading the body ---------------------------------------------------------------------------
def _text(body: dict[str, Any], field: str) -> str | None:
    value = body.get(field)
    if value is not None and not isinstance(value, str):
        raise ApiError(400, f"{field} must be a string")
    return value


def _flag(body: dict[str, Any], field: str) -> bool | None:
    value = body.get(field)
    if value is not None and not isinstance(value, bool):
        raise ApiError(400, f"{field} must be true or false")
    return value


def _groups(body: dict[str, Any]) -> list[str] | None:
    groups = body.get("groups")
    if groups is not None and (not isinstance(groups, list) or not all(isinstance(g, str) for g in groups)):
        raise ApiError(400, "groups must be a list of group names")
    return groups


def _role(body: dict[str, Any]) -> str | None:
    """Assemblyline's ``type`` (a list holding one role) or a plain ``role``; None if neither is given."""
    value = body.get("type", body.get("role"))
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if value is not None and (not isinstance(value, str) or value not in users.ROLES):
        raise ApiError(400, f"type must name one role: {', '.join(users.ROLES)}")
    return value


def _required_role(body: dict[str, Any]) -> str:
    role = _role(body)
    if role is None:
        raise ApiError(400, f"give the new user's type (role): one of {', '.join(users.ROLES)}")
    return role


def _password(body: dict[str, Any]) -> str | None:
    """Assemblyline's ``new_pass``, or ``password``; both are the password itself, never a hash."""
    password = _text(body, "new_pass") or _text(body, "password")
    if password is not None and not 8 <= len(password) <= 1024:
        raise ApiError(400, "a password has 8 to 1024 characters")
    return password


def _clearance(state: AppState, level: str | None, groups: Any) -> Clearance:
    engine = engine_for(state.settings.classification)
    try:
        return engine.clearance(level or engine.levels[0], groups)
    except UnknownMarking as exc:
        raise ApiError(400, str(exc), {"success": False}) from None


def _new_clearance(state: AppState, body: dict[str, Any], current: models.User) -> Clearance | None:
    """The clearance ``body`` asks for, completing a change of level or groups alone from ``current``."""
    level, groups = _text(body, "classification"), _groups(body)
    if level is None and groups is None:
        return None
    return _clearance(state, level or current.classification, current.groups if groups is None else groups)
