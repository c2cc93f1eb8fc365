"""ThreatConnect V2 batch: the settings document and the `{"indicator", "group", "association"}` upload.

A batch becomes an ordinary `Job`: groups keep their `xid` and `associatedGroupXid`, indicators keep
`associatedGroups` and `fileOccurrence` (the Job reads those keys natively), and the `association`
list feeds `Job.association`. V2 requires an xid on every group; a group without one fails (0x1006).

Items belong to the batch's owner unless they name another with `ownerName` (an Assay extension,
ThreatConnect's name for an item's owner); the items of each owner run as one job, and references
(xids, associations) resolve within their own owner. With an owner check (`assay.intel.owners`), the
items of an owner the batch's user may not write fail one by one with 0x1002, saying why, while
the rest of the batch goes on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from assay.intel.errors import Code
from assay.intel.job import Job
from assay.intel.result import JobResult

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from assay.access import ClassificationEngine
    from assay.intel.owners import OwnerCheck

Json = dict[str, Any]
ITEM_OWNER = "ownerName"
_ITEM_KINDS = {"group": Code.INVALID_GROUP, "indicator": Code.INVALID_INDICATOR, "association": Code.ASSOCIATION}
_KEYS = {
    "owner": "owner",
    "version": "version",
    "haltOnError": "halt_on_error",
    "action": "action",
    "attributeWriteType": "attribute_write_type",
    "tagWriteType": "tag_write_type",
    "securityLabelWriteType": "security_label_write_type",
    "fileMergeMode": "file_merge_mode",
    "hashCollisionMode": "hash_collision_mode",
}


@dataclass(frozen=True)
class BatchSettings:
    """The settings of `POST /v2/batch`.

    fileMergeMode and hashCollisionMode are accepted and kept for round-trips, but the store has one
    behaviour: File indicators sharing a hash merge, and a conflicting hash of the same algorithm is
    rejected with 0x2003.
    """

    owner: str
    version: str = "V2"
    halt_on_error: bool = False
    action: str = "Create"
    attribute_write_type: str = "Append"
    tag_write_type: str = "Append"
    security_label_write_type: str = "Append"
    file_merge_mode: str | None = None
    hash_collision_mode: str | None = None

    @classmethod
    def from_dict(cls, data: Json) -> BatchSettings:
        unknown = sorted(set(data) - set(_KEYS))
        if unknown:
            raise ValueError(f"unknown batch settings: {', '.join(unknown)}")
        if data.get("version", "V2") != "V2":
            raise ValueError("only batch version V2 is supported")
        if not isinstance(data.get("haltOnError", False), bool):
            raise ValueError("haltOnError must be true or false")
        return cls(**{_KEYS[k]: v for k, v in data.items()})

    def job(self, engine: Engine | None = None, **extra: Any) -> Job:
        return Job(
            owner=self.owner,
            engine=engine,
            halt_on_error=self.halt_on_error,
            action=self.action,
            attribute_write_type=self.attribute_write_type,
            tag_write_type=self.tag_write_type,
            security_label_write_type=self.security_label_write_type,
            require_group_xid=True,
            **extra,
        )


class BatchDocumentError(ValueError):
    """The upload is not a V2 batch document (0x1003)."""


def load_document(document: str | bytes | Json) -> Json:
    """Parse and shape-check a batch document."""
    if isinstance(document, str | bytes):
        try:
            document = json.loads(document)
        except (ValueError, UnicodeDecodeError) as exc:
            raise BatchDocumentError(f"not JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise BatchDocumentError("a batch document is a JSON object")
    for key in ("indicator", "group", "association"):
        if not isinstance(document.get(key, []), list):
            raise BatchDocumentError(f"{key!r} must be a list")
    return document


def fill_job(job: Job, document: Json) -> Job:
    for group in document.get("group", []):
        job.group(group)
    for indicator in document.get("indicator", []):
        job.indicator(indicator)
    for association in document.get("association", []):
        job.association(association)
    return job


def submit(
    document: str | bytes | Json,
    settings: BatchSettings | Json,
    engine: Engine | None = None,
    *,
    check: OwnerCheck | None = None,
    classification: ClassificationEngine | None = None,
) -> JobResult:
    """Run one V2 batch; a malformed document fails the whole batch with 0x1003 and exit code 1.

    `check` says why an owner may not be written (None: it may); `classification` reads the
    security labels (see `Job`).
    """
    if not isinstance(settings, BatchSettings):
        settings = BatchSettings.from_dict(settings)
    try:
        data = load_document(document)
    except BatchDocumentError as exc:
        result = JobResult()
        result.critical("indicator", Code.JSON_SYNTAX, str(exc))
        return result
    if check is None and not _names_owners(data):
        return fill_job(settings.job(engine, classification=classification), data).process()
    return _submit_by_owner(data, settings, engine, check, classification)


def _names_owners(data: Json) -> bool:
    return any(isinstance(raw, dict) and ITEM_OWNER in raw for key in _ITEM_KINDS for raw in data.get(key, []))


def _submit_by_owner(
    data: Json,
    settings: BatchSettings,
    engine: Engine | None,
    check: OwnerCheck | None,
    classification: ClassificationEngine | None,
) -> JobResult:
    """One job per owner the items name, the batch's first; refused owners' items fail alone."""
    result = JobResult()
    for owner, part in _split_by_owner(data, settings, result).items():
        why = check(owner) if check is not None else None
        if result.halted or why is not None:
            _refuse(result, part, why, settings.halt_on_error)
            continue
        job = replace(settings, owner=owner).job(engine, classification=classification)
        result.absorb(fill_job(job, part).process())
    return result


def _split_by_owner(data: Json, settings: BatchSettings, result: JobResult) -> dict[str, Json]:
    """The document's items per owner; an item naming its owner wrongly fails there (its kind's code)."""
    parts: dict[str, Json] = {settings.owner.strip(): {}}
    halt = settings.halt_on_error
    for key, code in _ITEM_KINDS.items():
        for raw in data.get(key, []):
            owner = raw.get(ITEM_OWNER, settings.owner) if isinstance(raw, dict) else settings.owner
            if not isinstance(owner, str) or not owner.strip() or len(owner.strip()) > 255:
                result.counts[key].submitted += 1
                result.fail(key, code, f"{ITEM_OWNER} must name an owner (1-255 characters)", raw, critical=halt)
                result.halted = result.halted or halt
                continue
            parts.setdefault(owner.strip(), {}).setdefault(key, []).append(raw)
    return {owner: part for owner, part in parts.items() if part}


def _refuse(result: JobResult, part: Json, why: str | None, halt_on_error: bool) -> None:
    """Fail each item of a refused owner (0x1002, `why`), or count it unsaved once the batch halted."""
    for key in _ITEM_KINDS:
        for raw in part.get(key, []):
            result.counts[key].submitted += 1
            if result.halted or why is None:
                result.counts[key].not_saved += 1
                continue
            result.fail(key, Code.PERMISSION, why, raw, critical=halt_on_error)
            result.halted = halt_on_error
