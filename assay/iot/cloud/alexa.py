"""Collect an Amazon Alexa account from the Alexa web app's JSON endpoints into a bundle.

The examiner supplies an authenticated session: the ``Cookie`` header of a signed-in browser
(or a bearer token). Amazon's sign-in needs a browser (captcha, two-step verification,
device fingerprinting) and has no documented simple flow, so a username and password are
refused with a ``login_required`` error rather than guessed at.

``/api/activities`` (voice history) has answered 404 since about October 2023; its
replacement lives in the Alexa privacy portal (``customer-history-records``) behind a
browser-only anti-CSRF flow, so a 404 is recorded in the bundle's ``errors`` with that advice,
and an exported portal answer can be imported with
:func:`assay.iot.cloud.saved.import_saved_responses`.

Example::

    bundle = collect_alexa(cookie=cookie_header_from_browser)
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx

from assay.iot.cloud.bundle import new_bundle
from assay.iot.cloud.http import CollectorError, Fetcher, FetchLimits

DEFAULT_BASE_URL = "https://alexa.amazon.com"
ACTIVITIES = "/api/activities"
NAMED_LISTS = "/api/namedLists"
ENDPOINTS = (
    "/api/bootstrap",
    "/api/household",
    "/api/devices-v2/device",
    "/api/device-preferences",
    "/api/phoenix",
    "/api/notifications",
    NAMED_LISTS,
    "/api/wifi/configs",
    "/api/cards",
    "/api/todos",
)
ACTIVITIES_GONE = (
    "/api/activities answered 404: Amazon retired it (about Oct 2023). Voice history now lives in "
    "the Alexa privacy portal (customer-history-records); export it from a signed-in browser and "
    "import the saved JSON."
)
LOGIN_REQUIRED = (
    "signing in to Amazon with a username and password is not possible without a browser-based "
    "login (captcha, two-step verification); sign in with a browser and supply the session cookie"
)


def _csrf(cookie: str) -> str | None:
    for part in cookie.split(";"):
        name, _, value = part.strip().partition("=")
        if name == "csrf" and value:
            return value
    return None


def _headers(cookie: str | None, token: str | None) -> tuple[dict[str, str], list[str]]:
    headers: dict[str, str] = {}
    secrets: list[str] = []
    if cookie:
        headers["Cookie"] = cookie.strip()
        secrets += [cookie, cookie.strip()]
        secrets += [p.strip().partition("=")[2] for p in cookie.split(";") if "=" in p]
        csrf = _csrf(cookie)
        if csrf:
            headers["csrf"] = csrf
    if token:
        headers["Authorization"] = f"Bearer {token.strip()}"
        secrets += [token, token.strip()]
    return headers, secrets


def collect_alexa(
    cookie: str | None = None,
    token: str | None = None,
    *,
    username: str | None = None,
    password: str | None = None,
    base_url: str = DEFAULT_BASE_URL,
    limits: FetchLimits | None = None,
    activity_page_size: int = 50,
    start_time: int | None = None,
    transport: httpx.BaseTransport | None = None,
) -> dict[str, Any]:
    """A bundle of the Alexa account behind the session ``cookie`` or bearer ``token``.

    ``start_time`` (epoch ms) is where voice history paging begins (newest first); pages hold
    ``activity_page_size`` activities. Raises :class:`CollectorError` (``no_credentials``,
    ``login_required``, ``unauthorized``, ``bad_base_url``); other failures are recorded in
    the bundle's ``errors``.
    """
    if not cookie and not token:
        if username or password:
            raise CollectorError("login_required", LOGIN_REQUIRED)
        raise CollectorError("no_credentials", "supply the session cookie (or a bearer token)")
    headers, secrets = _headers(cookie, token)
    secrets += [s for s in (password,) if s]
    with Fetcher(base_url, headers, secrets=secrets, limits=limits, transport=transport) as fetcher:
        bundle = new_bundle("alexa", fetcher.base_url)
        for endpoint in ENDPOINTS:
            if _spent(fetcher, bundle):
                break
            value = _one(fetcher, bundle, endpoint)
            if endpoint == NAMED_LISTS and value is not None:
                _list_items(fetcher, bundle, value)
        if not _spent(fetcher, bundle):
            _activities(fetcher, bundle, max(1, activity_page_size), start_time)
        bundle["stats"] = {"bytes": fetcher.total_bytes}
    return bundle


def _record(bundle: dict[str, Any], endpoint: str, exc: CollectorError) -> None:
    if exc.kind == "unauthorized":
        raise exc
    bundle["errors"].append(exc.as_dict(endpoint))


def _spent(fetcher: Fetcher, bundle: dict[str, Any]) -> bool:
    reason = fetcher.exhausted()
    if reason is not None and all(e["endpoint"] != "collection" for e in bundle["errors"]):
        _record(bundle, "collection", reason)
    return reason is not None


def _one(fetcher: Fetcher, bundle: dict[str, Any], endpoint: str, path: str | None = None) -> Any:
    try:
        value = fetcher.get_json(path or endpoint)
    except CollectorError as exc:
        _record(bundle, endpoint, exc)
        return None
    bundle["responses"][endpoint] = value
    return value


def _list_ids(value: Any) -> list[str]:
    lists = value.get("lists") if isinstance(value, dict) else value
    ids: list[str] = []
    for item in lists if isinstance(lists, list) else []:
        if isinstance(item, dict):
            ident = item.get("listId") or item.get("itemId") or item.get("id")
            if isinstance(ident, str | int) and str(ident):
                ids.append(str(ident))
    return ids


def _list_items(fetcher: Fetcher, bundle: dict[str, Any], value: Any) -> None:
    for list_id in _list_ids(value)[: fetcher.limits.max_details]:
        if _spent(fetcher, bundle):
            return
        endpoint = f"{NAMED_LISTS}/{list_id}/items"
        _one(fetcher, bundle, endpoint, f"{NAMED_LISTS}/{quote(list_id, safe='')}/items")


def _activities(fetcher: Fetcher, bundle: dict[str, Any], size: int, start_time: int | None) -> None:
    """Voice history by offset paging; stops at a short page, a repeated page or a bound."""
    gathered: list[Any] = []
    previous_first: Any = object()
    for page_number in range(fetcher.limits.max_pages):
        params = {
            "startTime": "" if start_time is None else start_time,
            "size": size,
            "offset": page_number * size,
        }
        try:
            page = fetcher.get_json(ACTIVITIES, params)
        except CollectorError as exc:
            if exc.kind == "not_found" and page_number == 0:
                exc = CollectorError("not_found", ACTIVITIES_GONE)
            _record(bundle, ACTIVITIES, exc)
            break
        items = page.get("activities") if isinstance(page, dict) else None
        items = items if isinstance(items, list) else []
        if not items or items[0] == previous_first:
            break
        previous_first = items[0]
        gathered.extend(items[: fetcher.limits.max_items - len(gathered)])
        if len(gathered) >= fetcher.limits.max_items:
            bundle["errors"].append(
                {"endpoint": ACTIVITIES, "kind": "item_limit", "message": "voice history truncated"}
            )
            break
        if len(items) < size:
            break
    else:
        bundle["errors"].append({"endpoint": ACTIVITIES, "kind": "page_limit", "message": "voice history truncated"})
    if gathered or ACTIVITIES not in [e["endpoint"] for e in bundle["errors"]]:
        bundle["responses"][ACTIVITIES] = {"activities": gathered}
