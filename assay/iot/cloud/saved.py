"""Import cloud API answers saved earlier (a directory or a zip of ``.json`` files) into a bundle.

Examiners often receive answers saved from a browser or another tool instead of a live
session. Each ``.json`` file is named after its endpoint (``devices-v2_device.json``,
``api_notifications.json``, ``locations.json``; a trailing page number is ignored and pages
are merged). Files are read with the tolerant parser, bounded in count and size; archive
paths never touch the disk.

Example::

    bundle = import_saved_responses(Path("exported/"), "smartthings")
"""

from __future__ import annotations

import io
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from assay.iot.cloud import alexa, jsonish
from assay.iot.cloud.bundle import SERVICES, new_bundle

# Every endpoint the live collector reads, and the privacy portal's export of voice history.
ALEXA_ENDPOINTS = (alexa.ACTIVITIES, *alexa.ENDPOINTS, "customer-history-records")
SMARTTHINGS_ENDPOINTS = ("/locations", "/rooms", "/devices", "/history/devices")
_LIST_KEYS = ("items", "activities", "devices", "notifications", "cards", "values", "customerHistoryRecords")
_PAGE_SUFFIX = re.compile(r"([_\-. ]*(page)?[_\-. ]*\d+)$", re.IGNORECASE)


@dataclass(frozen=True)
class ImportLimits:
    """Bounds of one import: files read, bytes per file, bytes in all, size of one JSON file."""

    max_files: int = 10_000
    max_member_size: int = 64 * 1024 * 1024
    max_total: int = 1024 * 1024 * 1024
    max_json_size: int = 16 * 1024 * 1024


@dataclass(frozen=True)
class Member:
    name: str
    data: bytes


def _squash(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


def endpoint_for(name: str, service: str) -> str:
    """The endpoint a saved file stands for, from its name; ``/<stem>`` when it is not a known one."""
    stem = PurePosixPath(name).name
    stem = re.sub(r"\.json$", "", stem, flags=re.IGNORECASE).rstrip(".")
    bare = _PAGE_SUFFIX.sub("", stem) or stem
    wanted = _squash(bare).removeprefix("api")
    known = ALEXA_ENDPOINTS if service == "alexa" else SMARTTHINGS_ENDPOINTS
    for endpoint in known:
        if _squash(endpoint).removeprefix("api") == wanted:
            return endpoint
    if service == "smartthings" and wanted == "history":
        return "/history/devices"
    return "/" + stem


def read_members(source: Path | str | bytes, limits: ImportLimits) -> tuple[list[Member], list[dict[str, str]]]:
    """Files of a directory or zip (path or bytes), bounded; problems come back as error entries."""
    errors: list[dict[str, str]] = []
    if isinstance(source, bytes | bytearray):
        return _zip_members(io.BytesIO(bytes(source)), limits, errors), errors
    path = Path(source)
    if path.is_dir():
        return _dir_members(path, limits, errors), errors
    if not path.is_file():
        errors.append({"endpoint": str(path.name), "kind": "missing", "message": "no such file or directory"})
        return [], errors
    with path.open("rb") as handle:
        return _zip_members(handle, limits, errors), errors


def _dir_members(root: Path, limits: ImportLimits, errors: list[dict[str, str]]) -> list[Member]:
    members: list[Member] = []
    total = 0
    for path in sorted(root.rglob("*")):
        if path.is_symlink() or not path.is_file():
            continue
        if len(members) >= limits.max_files:
            errors.append({"endpoint": "import", "kind": "file_limit", "message": "more files than allowed"})
            break
        size = path.stat().st_size
        if size > limits.max_member_size or total + size > limits.max_total:
            errors.append(_too_big(path.relative_to(root).as_posix()))
            continue
        total += size
        members.append(Member(path.relative_to(root).as_posix(), path.read_bytes()))
    return members


def _too_big(name: str) -> dict[str, str]:
    return {"endpoint": name, "kind": "too_large", "message": "file skipped: beyond the size limits"}


def _zip_members(handle: Any, limits: ImportLimits, errors: list[dict[str, str]]) -> list[Member]:
    members: list[Member] = []
    total = 0
    try:
        archive = zipfile.ZipFile(handle)
    except (zipfile.BadZipFile, OSError, ValueError):
        errors.append({"endpoint": "import", "kind": "bad_archive", "message": "not a readable zip archive"})
        return members
    with archive:
        for info in archive.infolist():
            if info.is_dir():
                continue
            if len(members) >= limits.max_files:
                errors.append({"endpoint": "import", "kind": "file_limit", "message": "more files than allowed"})
                break
            data = _read_member(archive, info, limits.max_member_size, errors)
            if data is None:
                continue
            if total + len(data) > limits.max_total:
                errors.append(_too_big(info.filename))
                continue
            total += len(data)
            members.append(Member(info.filename, data))
    return members


def _read_member(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int, errors: list[dict[str, str]]
) -> bytes | None:
    if info.file_size > limit:
        errors.append(_too_big(info.filename))
        return None
    try:
        with archive.open(info) as stream:
            data = stream.read(limit + 1)
    except (zipfile.BadZipFile, RuntimeError, NotImplementedError, OSError, EOFError, ValueError) as exc:
        errors.append({"endpoint": info.filename, "kind": "bad_archive", "message": type(exc).__name__})
        return None
    if len(data) > limit:
        errors.append(_too_big(info.filename))
        return None
    return data


def _list_key(value: Any) -> str | None:
    if isinstance(value, dict):
        return next((k for k in _LIST_KEYS if isinstance(value.get(k), list)), None)
    return None


def add_response(responses: dict[str, Any], key: str, value: Any) -> None:
    """Store ``value`` under ``key``, merging the item lists of further pages of the same endpoint."""
    old = responses.get(key)
    if old is None:
        responses[key] = value
    elif isinstance(old, list) and isinstance(value, list):
        old.extend(value)
    elif (name := _list_key(old)) is not None and name == _list_key(value):
        old[name].extend(value[name])
    else:
        number = 2
        while f"{key}#{number}" in responses:
            number += 1
        responses[f"{key}#{number}"] = value


def add_activity(responses: dict[str, Any], activity: dict[str, Any], source_file: str) -> None:
    """One scraped Alexa activity (``{"activity": {...}}`` files), remembered with its file name."""
    entry = dict(activity)
    entry["_file"] = source_file
    add_response(responses, "/api/activities", {"activities": [entry]})


def import_members(bundle: dict[str, Any], members: list[Member], limits: ImportLimits) -> None:
    """Every ``.json`` member parsed (tolerantly) into the bundle's responses; failures into errors."""
    service = bundle["service"]
    for member in members:
        if not member.name.lower().endswith(".json"):
            continue
        if not member.data.strip():
            bundle["errors"].append({"endpoint": member.name, "kind": "empty", "message": "empty file"})
            continue
        try:
            value = jsonish.loads(member.data, max_size=limits.max_json_size)
        except jsonish.TolerantJSONError as exc:
            bundle["errors"].append({"endpoint": member.name, "kind": "bad_response", "message": str(exc)})
            continue
        if service == "alexa" and isinstance(value, dict) and isinstance(value.get("activity"), dict):
            add_activity(bundle["responses"], value["activity"], member.name)
        else:
            add_response(bundle["responses"], endpoint_for(member.name, service), value)


def import_saved_responses(
    source: Path | str | bytes, service: str, limits: ImportLimits | None = None
) -> dict[str, Any]:
    """A bundle (``source: "import"``) from saved ``.json`` answers of ``service``."""
    if service not in SERVICES:
        raise ValueError(f"unknown cloud service {service!r}")
    limits = limits or ImportLimits()
    bundle = new_bundle(service, None, source="import")
    members, errors = read_members(source, limits)
    bundle["errors"].extend(errors)
    import_members(bundle, members, limits)
    return bundle
