"""Which permission each route needs: one table, enforced by one app-wide dependency.

Every route is a line of ``RULES``, keyed by method and path template as FastAPI matched it
(``request.scope["route"]``), so the whole policy of the HTTP API reads in one place. A route
without a line is refused, so forgetting one locks a route rather than opening it; the access
test walks ``app.routes`` and fails on a route without a rule, and on a rule without a route.

The rule decides whether a caller may use a route at all. What it may see there (classification)
and whose things it may change (its own submissions, its owners' intel) is checked by the route.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from types import MappingProxyType

from fastapi import FastAPI, Request
from fastapi.routing import APIRoute, iter_route_contexts

from assay.access import Permission
from assay.api.auth import authenticate
from assay.api.envelope import ApiError
from assay.users import Principal


class Open(Enum):
    """Rules that name no permission."""

    PUBLIC = "public"  # no credentials at all: the v3 probe, the version list, login, the API documents
    SIGNED_IN = "signed in"  # any caller who signed in, whatever their role or key ACL: whoami, logout


Rule = Permission | Open
PUBLIC, SIGNED_IN = Open.PUBLIC, Open.SIGNED_IN
READ, DOWNLOAD, SUBMIT = Permission.READ, Permission.DOWNLOAD, Permission.SUBMIT
DELETE_OWN, INTEL_WRITE, ADMIN = Permission.DELETE_OWN, Permission.INTEL_WRITE, Permission.ADMIN

RULES: Mapping[str, Rule] = MappingProxyType(
    {
        # the API documents and connecting
        "GET /openapi.json": PUBLIC,
        "GET /docs": PUBLIC,
        "GET /docs/oauth2-redirect": PUBLIC,
        "GET /redoc": PUBLIC,
        "GET /api/v3/auth/init/": PUBLIC,
        "GET /api/": PUBLIC,
        "POST /api/v4/auth/login/": PUBLIC,
        "GET /api/v4/auth/logout/": SIGNED_IN,
        # ingest, submit, notification queues (Assemblyline's submission_create covers all three)
        "POST /api/v4/ingest/": SUBMIT,
        "GET /api/v4/ingest/get_message/{nq}/": SUBMIT,
        "GET /api/v4/ingest/get_message_list/{nq}/": SUBMIT,
        "POST /api/v4/submit/": SUBMIT,
        # submissions, files, results
        "GET /api/v4/submission/{sid}/": READ,
        "GET /api/v4/submission/full/{sid}/": READ,
        "GET /api/v4/submission/summary/{sid}/": READ,
        "GET /api/v4/submission/tree/{sid}/": READ,
        "GET /api/v4/submission/is_completed/{sid}/": READ,
        "GET /api/v4/submission/{sid}/file/{sha256}/": READ,
        "DELETE /api/v4/submission/{sid}/": DELETE_OWN,  # the route lets admins delete anyone's
        "POST /api/v4/search/submission/": READ,
        "GET /api/v4/file/info/{sha256}/": READ,
        "GET /api/v4/file/download/{sha256}/": DOWNLOAD,
        "GET /api/v4/file/result/{sha256}/": READ,
        "GET /api/v4/result/{key}/": READ,
        "POST /api/v4/result/multiple_keys/": READ,
        "GET /api/v4/heuristics/": READ,
        "GET /api/v4/service/all/": READ,
        "GET /api/v4/user/submission_params/{username}/{profile}/": SIGNED_IN,  # a write-only key submits too
        # safelist and signatures
        "GET /api/v4/safelist/": READ,
        "GET /api/v4/safelist/check/{value}/": READ,
        "PUT /api/v4/safelist/": ADMIN,
        "POST /api/v4/safelist/": ADMIN,
        "DELETE /api/v4/safelist/{value}/": ADMIN,
        "GET /api/v4/signature/yara/": READ,
        "GET /api/v4/signature/yara/{name}/": READ,
        "PUT /api/v4/signature/yara/{name}/": ADMIN,
        "DELETE /api/v4/signature/yara/{name}/": ADMIN,
        # users and API keys
        "GET /api/v4/user/whoami/": SIGNED_IN,
        "GET /api/v4/user/list/": ADMIN,
        "PUT /api/v4/user/{username}/": ADMIN,
        "GET /api/v4/user/{username}/": ADMIN,
        "POST /api/v4/user/{username}/": ADMIN,
        "DELETE /api/v4/user/{username}/": ADMIN,
        "GET /api/v4/apikey/list/": ADMIN,
        "GET /api/v4/apikey/username/{uname}/": ADMIN,
        "PUT /api/v4/apikey/add/": ADMIN,
        "GET /api/v4/apikey/{key_id}/": ADMIN,
        "DELETE /api/v4/apikey/{key_id}/": ADMIN,
        # IoTInsight tasks
        "POST /task/request/{kind}": SUBMIT,
        "POST /task/bulk": SUBMIT,
        "GET /task/status/{task_id}": READ,
        "GET /task/result/{task_id}": READ,
        "GET /task/case/{case_id}": READ,
        # intel batches and the intel store (the routes check the batch's owner)
        "POST /api/v4/intel/batch/": INTEL_WRITE,
        "POST /api/v4/intel/batch/{batch_id}/": INTEL_WRITE,
        "GET /api/v4/intel/batch/{batch_id}/": READ,
        "GET /api/v4/intel/batch/{batch_id}/errors/": READ,
        "GET /api/v4/intel/indicators/": READ,
        "GET /api/v4/intel/indicators/{indicator_id}/": READ,
        "GET /api/v4/intel/groups/": READ,
        "GET /api/v4/intel/groups/{group_id}/": READ,
        "GET /api/v4/intel/owners/members/": ADMIN,  # who may write an owner's intel (assay.intel.owners)
        "POST /api/v4/intel/owners/members/": ADMIN,
        "DELETE /api/v4/intel/owners/members/": ADMIN,
    }
)


def rule_for(method: str, path: str) -> Rule | None:
    """The rule of a route, None when it has none; HEAD is GET without the body, so it shares GET's."""
    return RULES.get(f"{'GET' if method == 'HEAD' else method} {path}")


async def enforce(request: Request) -> None:
    """The one access check, run before every route: its rule, against whoever is calling."""
    route = request.scope.get("route")
    rule = rule_for(request.method, getattr(route, "path", ""))
    if rule is None:
        raise ApiError(403, "no access rule for this route")
    if rule is PUBLIC:
        return
    principal = await authenticate(request)
    if rule is not SIGNED_IN and not principal.can(rule):
        raise ApiError(403, _refusal(principal, rule))


def _refusal(principal: Principal, permission: Permission) -> str:
    through = f" through an API key with ACL {principal.key_acl}" if principal.key_acl else ""
    return f"Forbidden: user {principal.name} (role {principal.role}) lacks the '{permission}' permission{through}"


def unenforceable(app: FastAPI) -> list[str]:
    """Routes ``enforce`` cannot guard: only FastAPI routes run dependencies, and rules key on a route's own path.

    Plain Starlette routes (the API documents) must therefore be PUBLIC, and routers must be
    included without a prefix (give the router its prefix instead).
    """
    wrong = []
    for context in iter_route_contexts(app.routes):
        route, path = context.original_route, context.path or ""
        if not isinstance(route, APIRoute):
            wrong += [f"{m} {path}" for m in sorted(context.methods or ()) if rule_for(m, path) is not PUBLIC]
        elif route.path != path:
            wrong.append(f"{path} (included with a prefix)")
    return wrong
