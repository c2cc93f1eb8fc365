"""The collection bundle: what a collector or importer hands over, as one JSON file.

A bundle is what an examiner submits to Assay (the ``CloudAccount`` service reads it), so it
is plain JSON, starts with the ``assay_cloud_bundle`` marker, and never holds a credential.

Shape::

    {"assay_cloud_bundle": 1, "service": "smartthings" | "alexa", "collected_at": ISO | None,
     "base_url": str | None, "source": "api" | "import", "responses": {endpoint: data},
     "errors": [{"endpoint", "kind", "message"}], "attachments": [{"name", "size", ...}]}
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

MARKER = "assay_cloud_bundle"
VERSION = 1
SERVICES = ("alexa", "smartthings")


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


def new_bundle(service: str, base_url: str | None, source: str = "api") -> dict[str, Any]:
    """An empty bundle for ``service``; the marker key comes first so a file sniff finds it early."""
    return {
        MARKER: VERSION,
        "service": service,
        "collected_at": now_iso() if source == "api" else None,
        "base_url": base_url,
        "source": source,
        "responses": {},
        "errors": [],
        "attachments": [],
    }


def bundle_bytes(bundle: dict[str, Any]) -> bytes:
    """The bundle as UTF-8 JSON bytes, ready to be written or submitted."""
    return json.dumps(bundle, ensure_ascii=False, default=str).encode("utf-8")


def load_bundle(data: bytes | str) -> dict[str, Any] | None:
    """The bundle in ``data``, or ``None`` when ``data`` is not a (well-formed) bundle."""
    try:
        value = json.loads(data)
    except (ValueError, RecursionError):
        return None
    if not isinstance(value, dict) or value.get(MARKER) != VERSION:
        return None
    if value.get("service") not in SERVICES or not isinstance(value.get("responses"), dict):
        return None
    for key in ("errors", "attachments"):
        if not isinstance(value.get(key), list):
            value[key] = []
    return value
