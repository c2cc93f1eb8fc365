"""Offline import of an Alexa web-app scrape such as the DFRWS 2017 ``005-Amazon-Echo-Alexa-Web-Scrape``.

The scrape is a folder (or zip) of numbered activity files ``N.json`` (not valid JSON: bare
keys, unescaped inner quotes), numbered voice recordings ``N.wav`` and a notes file listing,
for each number, the ``/api/activities/<id>`` and ``/api/utterance/audio/data?id=<utterance>``
URLs that were fetched. The import gives a bundle whose ``/api/activities`` holds every
activity read, plus the recordings as attachments, each tied to its activity by number and
to its utterance by the notes. Saved endpoint answers beside them are imported too.

Example::

    bundle, attachments = import_alexa_scrape(Path("005-Amazon-Echo-Alexa-Web-Scrape.zip"))
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from assay.iot.cloud.bundle import new_bundle
from assay.iot.cloud.saved import ImportLimits, Member, import_members, read_members

AUDIO_SUFFIXES = (".wav", ".mp3", ".ogg", ".opus", ".flac")
_NOTE_LINE = re.compile(r"^\s*(\d+)\s*\.\s*(https?://\S+)", re.MULTILINE)
_NUMBER = re.compile(r"^(\d+)")


def _number(name: str) -> str | None:
    match = _NUMBER.match(PurePosixPath(name).name)
    return match.group(1) if match else None


def parse_notes(text: str) -> dict[str, dict[str, str]]:
    """``{number: {"utterance_id", "activity_id"}}`` from the scrape's notes of fetched URLs."""
    found: dict[str, dict[str, str]] = {}
    for number, url in _NOTE_LINE.findall(text):
        parts = urlsplit(url)
        entry = found.setdefault(number, {})
        if parts.path.endswith("/utterance/audio/data"):
            ident = parse_qs(parts.query).get("id", [""])[0]
            if ident:
                entry["utterance_id"] = ident
        elif "/api/activities/" in parts.path:
            entry["activity_id"] = unquote(parts.path.split("/api/activities/", 1)[1])
    return found


def _activity_files(bundle: dict[str, Any]) -> dict[str, dict[str, Any]]:
    page = bundle["responses"].get("/api/activities")
    activities = page.get("activities", []) if isinstance(page, dict) else []
    by_number: dict[str, dict[str, Any]] = {}
    for activity in activities:
        number = _number(str(activity.get("_file", "")))
        if number is not None:
            by_number.setdefault(number, activity)
    return by_number


def _attachment(member: Member, activity: dict[str, Any] | None, note: dict[str, str]) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": member.name,
        "size": len(member.data),
        "sha256": hashlib.sha256(member.data).hexdigest(),
        "kind": "voice_recording",
    }
    if activity is not None:
        entry["activity_file"] = activity.get("_file")
        entry["activity_id"] = activity.get("id")
    elif note.get("activity_id"):
        entry["activity_id"] = note["activity_id"]
    utterance = note.get("utterance_id") or (activity or {}).get("utteranceId")
    if utterance:
        entry["utterance_id"] = utterance
    return entry


def import_alexa_scrape(
    source: Path | str | bytes, limits: ImportLimits | None = None
) -> tuple[dict[str, Any], list[tuple[str, bytes]]]:
    """(bundle, [(recording name, bytes)]) from a scrape folder or zip (path or bytes)."""
    limits = limits or ImportLimits()
    bundle = new_bundle("alexa", None, source="import")
    members, errors = read_members(source, limits)
    bundle["errors"].extend(errors)
    import_members(bundle, members, limits)
    notes: dict[str, dict[str, str]] = {}
    for member in members:
        if member.name.lower().endswith(".txt"):
            notes.update(parse_notes(member.data.decode("utf-8", "replace")))
    by_number = _activity_files(bundle)
    attachments: list[tuple[str, bytes]] = []
    for member in members:
        if not member.name.lower().endswith(AUDIO_SUFFIXES):
            continue
        number = _number(member.name)
        activity = by_number.get(number) if number else None
        bundle["attachments"].append(_attachment(member, activity, notes.get(number or "", {})))
        attachments.append((member.name, member.data))
    bundle["notes"] = {"fetched": notes} if notes else {}
    return bundle, attachments
