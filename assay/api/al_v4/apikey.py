"""API keys over HTTP, in Assemblyline's shapes, for admins: add one for a user, list, read, revoke.

A key's id is Assemblyline's ``KEYNAME+USERNAME``. Its ``priv`` (ACL letters R, W, E) narrows
what its user may do through it; ``expiry_ts`` ends it. The secret is in the answer to ``add``
only. Revoking a key ends it, and the sessions it opened, from the next request on.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from assay import users
from assay.access import ACL_PERMISSIONS, Role, effective_permissions
from assay.api.al_v4.user import json_object, refusals
from assay.api.auth import User
from assay.api.envelope import ApiError, ok
from assay.api.state import state_of
from assay.db import models
from assay.db.session import session_scope
from assay.timestamps import iso_utc

router = APIRouter()
KeyId = Annotated[str, Path(min_length=3, max_length=129)]
UserName = Annotated[str, Path(min_length=1, max_length=64)]


def _record(key: models.ApiKey, user: models.User) -> dict[str, Any]:
    """A key as Assemblyline lists it, nothing secret; no ACL means every letter (the user's whole role)."""
    return {
        "id": f"{key.name}+{user.name}",
        "key_name": key.name,
        "uname": user.name,
        "acl": list(key.acl or "".join(ACL_PERMISSIONS)),
        "roles": sorted(effective_permissions(Role(user.role), key.acl)),
        "creation_date": iso_utc(key.created),
        "expiry_ts": iso_utc(key.expires) if key.expires else None,
        "last_used": None,
    }


def _split(key_id: str) -> tuple[str, str]:
    key_name, sep, user_name = key_id.partition("+")
    if not sep or not key_name or not user_name:
        raise ApiError(400, f"APIKey id {key_id!r} is invalid: it is KEYNAME+USERNAME")
    return key_name, user_name


@router.get("/api/v4/apikey/list/", summary="Every API key (no secrets)")
def list_keys(request: Request, user: User) -> JSONResponse:
    with session_scope(state_of(request).engine, readonly=True) as session:
        items = [_record(key, owner) for key, owner in users.user_keys(session)]
    return ok({"items": items, "offset": 0, "rows": len(items), "total": len(items)})


@router.get("/api/v4/apikey/username/{uname}/", summary="A user's API keys (no secrets)")
def user_keys(uname: UserName, request: Request, user: User) -> JSONResponse:
    with refusals(), session_scope(state_of(request).engine, readonly=True) as session:
        return ok([_record(key, owner) for key, owner in users.user_keys(session, uname)])


@router.put("/api/v4/apikey/add/", summary="Add an API key for a user (key_name, uname, priv, expiry_ts)")
async def add_key(request: Request, user: User) -> JSONResponse:
    body = await json_object(request)
    key_name, owner = body.get("key_name"), body.get("uname", user.name)
    if not isinstance(key_name, str) or not isinstance(owner, str):
        raise ApiError(400, "key_name (and uname, if given) must be strings")
    acl, expires = _acl(body.get("priv")), _expiry(body.get("expiry_ts"))

    def add() -> tuple[str, dict[str, Any]]:
        with refusals(), session_scope(state_of(request).engine) as session:
            secret = users.create_apikey(session, owner, key_name, acl, expires)
            [(key, who)] = [(k, u) for k, u in users.user_keys(session, owner) if k.name == key_name]
            return secret, _record(key, who)

    secret, record = await run_in_threadpool(add)
    return ok({**record, "keypassword": secret})


@router.get("/api/v4/apikey/{key_id}/", summary="One API key (no secret)")
def get_key(key_id: KeyId, request: Request, user: User) -> JSONResponse:
    key_name, owner = _split(key_id)
    with refusals(), session_scope(state_of(request).engine, readonly=True) as session:
        found = [_record(k, u) for k, u in users.user_keys(session, owner) if k.name == key_name]
    if not found:
        raise ApiError(404, "Cannot find APIKey with the given ID.")
    return ok(found[0])


@router.delete("/api/v4/apikey/{key_id}/", summary="Revoke an API key, and the sessions it opened")
def revoke_key(key_id: KeyId, request: Request, user: User) -> JSONResponse:
    key_name, owner = _split(key_id)
    with refusals(), session_scope(state_of(request).engine) as session:
        users.revoke_apikey(session, owner, key_name)
    return ok({"success": True})


def _acl(priv: Any) -> str:
    """Assemblyline's ``priv``: a list of letters (``["R", "W"]``) or a string of them (``"RW"``)."""
    if isinstance(priv, list) and all(isinstance(letter, str) for letter in priv):
        priv = "".join(priv)
    if not isinstance(priv, str) or not priv:
        raise ApiError(400, f"priv must list the key's ACL letters: {', '.join(ACL_PERMISSIONS)}")
    return priv


def _expiry(value: Any) -> datetime | None:
    """ISO 8601 (a time without offset is UTC), or null for a key that never expires."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        moment = None
    if moment is None:
        raise ApiError(400, "expiry_ts must be an ISO 8601 time such as 2030-01-31T00:00:00Z, or null")
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
