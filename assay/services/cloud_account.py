"""The CloudAccount service: a cloud collection bundle (Alexa, SmartThings) read for an examiner.

Collection and import live in :mod:`assay.iot.cloud`; the examiner submits the resulting
bundle (JSON with the ``assay_cloud_bundle`` marker). This module maps the bundle's analysis
onto Assay's result model. Any other JSON or text gets an empty result: the service accepts
broad types only because identification sees a bundle as plain JSON; a file without the marker
in its first 64 KiB is left alone after that one small read.
"""

from __future__ import annotations

import ipaddress
import re
import zipfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from assay.iot.cloud.alexa_scrape import AUDIO_SUFFIXES, import_alexa_scrape
from assay.iot.cloud.bundle import MARKER, load_bundle
from assay.iot.cloud.inventory import InventoryLimits, analyse_bundle
from assay.iot.cloud.saved import ALEXA_ENDPOINTS, SMARTTHINGS_ENDPOINTS, endpoint_for, import_saved_responses
from assay.services.base import FileRequest, Heuristic, Result, Service, Stage

_DOMAIN = re.compile(r"^(?=.{4,253}$)(?:[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$")
_SNIFF = 64 * 1024  # the marker is the first key of every bundle this package writes
_DISCARDED = "DISCARDED_NON_DEVICE_DIRECTED_INTENT"
_INVENTORY_COLUMNS = ("names", "serial", "mac", "vendor", "model", "device_type", "room", "health", "kind")
_TIMELINE_COLUMNS = ("time", "event", "serial", "device_name", "status", "detail", "recording")


class CloudAccount(Service):
    """Reads a cloud account collection bundle made by ``collect_alexa``, ``collect_smartthings``
    or the offline importers, into a device inventory and a timeline (``result.data``).

    Tags only the cloud API's own host (the one network indicator a bundle certainly holds).

    Parameters:
        ``max_bundle_size`` (int, 128 MiB): bytes of the bundle read at most.
        ``max_inventory`` (int, 5000): inventory entries at most.
        ``max_timeline_events`` (int, 20000): timeline entries at most.
        ``max_walk_nodes`` (int, 200000): JSON nodes walked in nested answers (smart-home tree) at most.
        ``max_text`` (int, 500): characters of one timeline detail at most.
        ``max_section_rows`` (int, 200): rows shown in one result table (``result.data`` keeps all).
    """

    name = "CloudAccount"
    version = "1"
    stage = Stage.CORE
    category = "Forensics"
    accepts = r"text/json|text/plain|iot/cloud|archive/zip"
    parameters: dict[str, Any] = {
        "max_bundle_size": 128 * 1024 * 1024,
        "max_inventory": 5_000,
        "max_timeline_events": 20_000,
        "max_walk_nodes": 200_000,
        "max_text": 500,
        "max_section_rows": 200,
    }
    heuristics = (
        Heuristic(
            "cloud.unintended_recording",
            "Voice assistant recorded speech not meant for it",
            "The voice history holds recordings the assistant itself judged not directed at it "
            "(background speech captured after a false wake word): worth listening to.",
            0,
        ),
        Heuristic(
            "cloud.incomplete",
            "Cloud collection incomplete",
            "Some endpoints failed or hit a bound during collection; the account holds more than shown.",
            0,
        ),
    )

    def execute(self, request: FileRequest) -> Result:
        options = self.options(request.params)
        result = Result()
        if request.file_type == "archive/zip":
            bundle = self._imported(request, int(options["max_bundle_size"]), result)
        elif MARKER.encode() in request.read(_SNIFF):
            bundle = self._bundle(request, int(options["max_bundle_size"]), result)
        else:
            return result
        if bundle is None:
            return result
        limits = InventoryLimits(
            max_inventory=int(options["max_inventory"]),
            max_timeline=int(options["max_timeline_events"]),
            max_walk=int(options["max_walk_nodes"]),
            max_text=int(options["max_text"]),
        )
        try:
            analysis = analyse_bundle(bundle, limits)
        except (ValueError, TypeError, KeyError, AttributeError, RecursionError):
            result.anomalies.append("bundle_analysis_failed")  # a shape no reader foresaw
            return result
        result.anomalies.extend(analysis.pop("anomalies"))
        result.data = analysis
        self._summary(result, bundle, analysis)
        self._tables(result, analysis, int(options["max_section_rows"]))
        return result

    @staticmethod
    def _bundle(request: FileRequest, limit: int, result: Result) -> dict[str, Any] | None:
        data = request.read(limit)
        if request.size > len(data):
            result.anomalies.append("bundle_size_limit_reached")
            return None
        bundle = load_bundle(data)
        if bundle is None:
            result.anomalies.append("bundle_unreadable")
        return bundle

    @staticmethod
    def _imported(request: FileRequest, limit: int, result: Result) -> dict[str, Any] | None:
        """What examiners hold offline, as a zip: a web scrape (the DFRWS 2017 Alexa archive) or
        saved API answers; any other zip is left to the other services."""
        kind = offline_kind(request.path)
        if kind is None or request.size > limit:
            return None
        try:
            if kind == "alexa-scrape":
                bundle, _recordings = import_alexa_scrape(request.path)  # the recordings: Extract's children
                return bundle
            return import_saved_responses(request.path, kind)
        except (ValueError, OSError, zipfile.BadZipFile):
            result.anomalies.append("offline_import_failed")
            return None

    def _summary(self, result: Result, bundle: dict[str, Any], analysis: dict[str, Any]) -> None:
        body = {
            "service": analysis["service"],
            "source": bundle.get("source"),
            "collected at (UTC)": bundle.get("collected_at"),
            "base URL": bundle.get("base_url"),
            **analysis["counts"],
        }
        section = result.add_section("Cloud account bundle", body, "kv")
        host = _host(bundle.get("base_url"))
        if host and _DOMAIN.match(host):
            section.add_tag("network.static.domain", host.lower())
        account = analysis.get("account")
        if account:
            result.add_section("Account", account, "json")

    def _tables(self, result: Result, analysis: dict[str, Any], rows: int) -> None:
        inventory = [{k: e.get(k) for k in _INVENTORY_COLUMNS if k in e} for e in analysis["inventory"]]
        timeline = [{k: e.get(k) for k in _TIMELINE_COLUMNS if k in e} for e in analysis["timeline"]]
        for title, table in (
            ("Device inventory", inventory),
            ("Timeline", timeline),
            ("Voice recordings", analysis["attachments"]),
            ("Saved Wi-Fi networks", analysis.get("wifi") or []),
            ("Locations", analysis.get("locations") or []),
        ):
            if table:
                suffix = f" (first {rows} of {len(table)})" if len(table) > rows else ""
                result.add_section(title + suffix, table[:rows], "table")
        discarded = [e for e in analysis["timeline"] if e.get("status") == _DISCARDED]
        if discarded:
            section = result.add_section(
                "Recordings not directed at the device", [e["time"] for e in discarded][:rows], "text"
            )
            section.heuristic = "cloud.unintended_recording"
        if analysis["errors"]:
            section = result.add_section("Collection errors", analysis["errors"][:rows], "table")
            section.heuristic = "cloud.incomplete"


def _host(url: Any) -> str | None:
    if not isinstance(url, str):
        return None
    try:
        host = urlsplit(url).hostname
    except ValueError:
        return None
    if not host:
        return None
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return host
    return None


MAX_SNIFFED_NAMES = 10_000


def offline_kind(path: Path) -> str | None:
    """``alexa-scrape``, ``alexa`` or ``smartthings`` when a zip holds an offline cloud export."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = [i.filename for i in archive.infolist()[:MAX_SNIFFED_NAMES] if not i.is_dir()]
    except (zipfile.BadZipFile, OSError, ValueError):
        return None
    jsons = [n for n in names if n.lower().endswith(".json")]
    if not jsons:
        return None
    if any(n.lower().endswith(AUDIO_SUFFIXES) for n in names):
        return "alexa-scrape"
    for service, known in (("alexa", ALEXA_ENDPOINTS), ("smartthings", SMARTTHINGS_ENDPOINTS)):
        if sum(endpoint_for(n, service) in known for n in jsons) >= max(1, len(jsons) // 2):
            return service
    return None
