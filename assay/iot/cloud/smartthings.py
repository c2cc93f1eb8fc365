"""Collect a Samsung SmartThings account through its public REST API into a bundle.

The examiner supplies a personal access token (made after Dec 2024 they expire after 24 h);
the collector reads locations, rooms, devices with status and health, and the device event
history of every location. Per-endpoint failures (a missing scope answers 403) are recorded
in the bundle's ``errors`` and collection goes on; a rejected token (401) stops it.

Example::

    bundle = collect_smartthings(token)
    Path("st.json").write_bytes(bundle_bytes(bundle))
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx

from assay.iot.cloud.bundle import new_bundle
from assay.iot.cloud.http import CollectorError, Fetcher, FetchLimits, NextPage, links_next

DEFAULT_BASE_URL = "https://api.smartthings.com/v1"
HISTORY_PAGE = 200


def _history_pager(location: str) -> NextPage:
    """Next page of one location's history: ``_links.next``, else the cursor of a full page's last event."""

    def following(page: Any, items: list[Any]) -> str | tuple[str, dict[str, Any]] | None:
        link = links_next(page, items)
        if link or len(items) < HISTORY_PAGE:
            return link
        last = items[-1] if isinstance(items[-1], dict) else {}
        if last.get("epoch") is None or last.get("hash") is None:
            return None
        return "/history/devices", {
            "locationId": location,
            "limit": HISTORY_PAGE,
            "pagingBeforeEpoch": last["epoch"],
            "pagingBeforeHash": last["hash"],
        }

    return following


class _Run:
    """One collection: the fetcher, the bundle being filled, and the error log."""

    def __init__(self, fetcher: Fetcher, bundle: dict[str, Any]) -> None:
        self.fetcher = fetcher
        self.bundle = bundle
        self.responses: dict[str, Any] = bundle["responses"]
        self.details_left = fetcher.limits.max_details
        self.stopped = False

    def record(self, endpoint: str, exc: CollectorError) -> None:
        if exc.kind == "unauthorized":
            raise exc
        self.bundle["errors"].append(exc.as_dict(endpoint))

    def spent(self) -> bool:
        """True once time or bytes are spent; the reason is recorded once."""
        reason = self.fetcher.exhausted()
        if reason is not None and not self.stopped:
            self.stopped = True
            self.record("collection", reason)
        return reason is not None

    def one(self, endpoint: str, path: str, params: dict[str, Any] | None = None) -> Any:
        if self.spent():
            return None
        try:
            value = self.fetcher.get_json(path, params)
        except CollectorError as exc:
            self.record(endpoint, exc)
            return None
        self.responses[endpoint] = value
        return value

    def many(self, endpoint: str, path: str, params: dict[str, Any] | None = None, **kw: Any) -> list[Any]:
        if self.spent():
            return []
        try:
            paged = self.fetcher.paginate(path, params, **kw)
        except CollectorError as exc:
            self.record(endpoint, exc)
            return []
        if paged.stopped is not None:
            self.record(endpoint, paged.stopped)
        self.responses.setdefault(endpoint, []).extend(paged.items)
        return paged.items

    def detail_allowed(self) -> bool:
        self.details_left -= 1
        if self.details_left < 0:
            if self.details_left == -1:
                self.bundle["errors"].append(
                    {"endpoint": "details", "kind": "detail_limit", "message": "per-object requests stopped"}
                )
            return False
        return True


def _ids(items: list[Any], key: str) -> list[str]:
    return [str(item[key]) for item in items if isinstance(item, dict) and item.get(key)]


def collect_smartthings(
    token: str,
    base_url: str = DEFAULT_BASE_URL,
    *,
    limits: FetchLimits | None = None,
    location_ids: list[str] | None = None,
    history: bool = True,
    device_details: bool = True,
    transport: httpx.BaseTransport | None = None,
) -> dict[str, Any]:
    """A bundle of the SmartThings account behind ``token`` (never stored in it).

    ``location_ids`` restricts collection to those locations; ``history`` and
    ``device_details`` switch off the event history and the per-device status/health calls.
    Raises :class:`CollectorError` for a missing or rejected token and a bad base URL.
    """
    if not token or not token.strip():
        raise CollectorError("no_credentials", "a SmartThings personal access token is needed")
    headers = {"Authorization": f"Bearer {token.strip()}"}
    with Fetcher(base_url, headers, secrets=(token, token.strip()), limits=limits, transport=transport) as f:
        bundle = new_bundle("smartthings", f.base_url)
        run = _Run(f, bundle)
        locations = run.many("/locations", "/locations")
        wanted = location_ids or _ids(locations, "locationId")
        for location in wanted:
            _collect_location(run, location, history)
        if not wanted:
            run.many("/devices", "/devices", {"includeStatus": "true", "includeHealth": "true"})
        if device_details:
            _collect_device_details(run)
        bundle["stats"] = {"bytes": f.total_bytes}
    return bundle


def _collect_location(run: _Run, location: str, history: bool) -> None:
    quoted = quote(location, safe="")
    run.one(f"/locations/{location}", f"/locations/{quoted}")
    run.many(f"/locations/{location}/rooms", f"/locations/{quoted}/rooms")
    params = {"locationId": location, "includeStatus": "true", "includeHealth": "true"}
    run.many("/devices", "/devices", params)
    if history:
        params = {"locationId": location, "limit": HISTORY_PAGE}
        run.many("/history/devices", "/history/devices", params, next_page=_history_pager(location))


def _collect_device_details(run: _Run) -> None:
    for device in _ids(run.responses.get("/devices", []), "deviceId"):
        quoted = quote(device, safe="")
        for what in ("status", "health"):
            if not run.detail_allowed():
                return
            run.one(f"/devices/{device}/{what}", f"/devices/{quoted}/{what}")
