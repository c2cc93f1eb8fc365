"""Every route of the application, as every role and through API keys of every ACL, against the rule table.

The routes come from ``app.routes`` itself, so a route added without a rule fails here, and so
does a rule left behind by a route that went. In process (httpx's ASGI transport), on SQLite.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from starlette.responses import PlainTextResponse

from assay import users
from assay.access import Permission, Role, effective_permissions
from assay.access.configured import engine_for
from assay.api import rules
from assay.api.app import create_app
from assay.db.session import dispose_all, get_engine, session_scope
from tests.helpers.servers import local_settings

ACLS = ("R", "W", "E", "RW", "RE", "WE", "RWE")
# Each role with its whole role, every ACL on the admin (who has everything to narrow), and a few more.
CALLERS = [(role, None) for role in Role] + [(Role.ADMIN, acl) for acl in ACLS]
CALLERS += [(Role.SUBMITTER, "R"), (Role.SUBMITTER, "W"), (Role.INTEL_WRITER, "RW"), (Role.VIEWER, "RWE")]
DUMMIES = {
    "sha256": "0" * 64,
    "value": "0" * 64,
    "sid": "nosuchsubmission",
    "batch_id": "999999",
    "indicator_id": "999999",
    "group_id": "999999",
    "key_id": "nokey+nobody",
    "name": "nosuchset",
}


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str

    @property
    def url(self) -> str:
        return re.sub(r"\{(\w+)[^}]*\}", lambda m: DUMMIES.get(m.group(1), "nobody"), self.path)


def endpoints(app: FastAPI) -> list[Endpoint]:
    """Every (method, path template) the application answers."""
    found = {Endpoint(m, c.path or "") for c in iter_route_contexts(app.routes) for m in c.methods or ()}
    return sorted(found, key=lambda e: (e.path, e.method))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FastAPI, dict[tuple[Role, str | None], str]]]:
    """The app over a fresh SQLite database, with a user per role and a key per caller of CALLERS."""
    settings = local_settings(tmp_path_factory.mktemp("access"))
    engine = engine_for(settings.classification)
    keys = {}
    with session_scope(get_engine(settings.database_url)) as session:
        for role in Role:
            users.add_user(session, role.value, role.value, engine.clearance(engine.levels[-1]))
        for role, acl in CALLERS:
            keys[(role, acl)] = users.create_apikey(session, role.value, f"key-{acl or 'all'}", acl)
    yield create_app(settings, publish=False), keys
    dispose_all()


def walk(app: FastAPI, headers: dict[str, str]) -> dict[Endpoint, httpx.Response]:
    """Each endpoint called once with ``headers`` and no body."""

    async def run() -> dict[Endpoint, httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://assay.test", headers=headers) as client:
            return {e: await client.request(e.method, e.url) for e in endpoints(app)}

    return asyncio.run(run())


def message(response: httpx.Response) -> str:
    """The error message of either dialect's envelope; empty for an answer that is not JSON (the docs)."""
    try:
        body = response.json()
    except ValueError:
        return ""
    return str(body.get("api_error_message") or body.get("message") or "") if isinstance(body, dict) else ""


@pytest.mark.parametrize(("role", "acl"), CALLERS, ids=[f"{r}-{a or 'all'}" for r, a in CALLERS])
def test_each_caller_is_refused_exactly_the_routes_its_permissions_lack(
    world: tuple[FastAPI, dict[tuple[Role, str | None], str]], role: Role, acl: str | None
) -> None:
    app, keys = world
    granted = effective_permissions(role, acl)
    wrong = []
    for endpoint, response in walk(app, {"X-USER": role.value, "X-APIKEY": keys[(role, acl)]}).items():
        rule = rules.rule_for(endpoint.method, endpoint.path)
        lacking = isinstance(rule, Permission) and rule not in granted
        refused = response.status_code == 403
        if lacking != refused or response.status_code in (401, 500) or (lacking and "lacks" not in message(response)):
            wrong.append((endpoint.method, endpoint.path, rule, response.status_code, message(response)[:120]))
    assert wrong == []


def test_an_anonymous_caller_gets_401_everywhere_but_the_public_routes(
    world: tuple[FastAPI, dict[tuple[Role, str | None], str]],
) -> None:
    app, _keys = world
    wrong = []
    for endpoint, response in walk(app, {}).items():
        public = rules.rule_for(endpoint.method, endpoint.path) is rules.PUBLIC
        unexplained = not public and not message(response)
        if public == (response.status_code == 401) or response.status_code >= 500 or unexplained:
            wrong.append((endpoint.method, endpoint.path, response.status_code))
    assert wrong == []


def test_every_route_has_a_rule_and_every_rule_a_route(
    world: tuple[FastAPI, dict[tuple[Role, str | None], str]],
) -> None:
    app, _keys = world
    routes = {f"{'GET' if e.method == 'HEAD' else e.method} {e.path}" for e in endpoints(app)}
    assert sorted(routes - set(rules.RULES)) == [], "routes without an access rule: add them to assay/api/rules.py"
    assert sorted(set(rules.RULES) - routes) == [], "rules of routes that no longer exist"
    assert rules.unenforceable(app) == []


def test_a_route_without_a_rule_is_refused(tmp_path: Path) -> None:
    settings = local_settings(tmp_path)
    app = create_app(settings, publish=False)
    app.add_api_route("/api/v4/forgotten/", lambda: {"open": True}, methods=["GET"])
    app.add_route("/plain", lambda _request: PlainTextResponse("open"))
    try:
        [response] = walk_one(app, "GET", "/api/v4/forgotten/")
        assert response.status_code == 403 and message(response) == "no access rule for this route"
        assert rules.unenforceable(app) == ["GET /plain", "HEAD /plain"]
    finally:
        dispose_all()


def walk_one(app: FastAPI, method: str, url: str) -> list[httpx.Response]:
    async def run() -> list[httpx.Response]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://assay.test") as client:
            return [await client.request(method, url)]

    return asyncio.run(run())
