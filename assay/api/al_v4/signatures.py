"""Managing YARA rule sets; running workers pick changes up at their next file."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse

from assay.api.auth import Admin, User
from assay.api.envelope import ApiError, ok
from assay.api.state import state_of
from assay.services.lib import rulesets

router = APIRouter()
SetName = Annotated[str, Path(pattern=rulesets.NAME_PATTERN)]


def _info(info: rulesets.RuleSetInfo) -> dict:
    return {"name": info.name, "sha256": info.sha256, "size": info.size}


@router.get("/api/v4/signature/yara/", summary="The YARA rule sets")
def list_sets(request: Request, user: User) -> JSONResponse:
    directory = rulesets.seed_directory(state_of(request).settings.yara_dir)
    return ok([_info(i) for i in rulesets.list_rule_sets(directory)])


@router.get("/api/v4/signature/yara/{name}/", summary="One rule set's source")
def get_set(name: SetName, request: Request, user: User) -> JSONResponse:
    directory = rulesets.seed_directory(state_of(request).settings.yara_dir)
    for info in rulesets.list_rule_sets(directory):
        if info.name == name:
            return ok({**_info(info), "source": info.path.read_text("utf-8", "replace")})
    raise ApiError(404, f"no YARA rule set named {name}")


@router.put("/api/v4/signature/yara/{name}/", summary="Add or replace a rule set (compiled first)")
async def put_set(name: SetName, request: Request, user: Admin) -> JSONResponse:
    try:
        body = await request.json()
    except ValueError:
        raise ApiError(400, 'the body must be JSON: {"source": "rule ... { ... }"}') from None
    if not isinstance(body, dict) or not isinstance(body.get("source"), str):
        raise ApiError(400, 'send {"source": "<YARA rules>"}')
    directory = rulesets.seed_directory(state_of(request).settings.yara_dir)
    try:
        info = rulesets.add_rule_set(directory, name, body["source"], replace=True)
    except rulesets.RuleSetError as exc:
        raise ApiError(400, f"rule set {name} refused: {exc}") from None
    return ok(_info(info))


@router.delete("/api/v4/signature/yara/{name}/", summary="Remove a rule set")
def delete_set(name: SetName, request: Request, user: Admin) -> JSONResponse:
    directory = rulesets.seed_directory(state_of(request).settings.yara_dir)
    if not rulesets.remove_rule_set(directory, name):
        raise ApiError(404, f"no YARA rule set named {name}")
    return ok({"success": True})
