"""Group types, their type-specific fields, and validation of one group as TcEx or V2 batch sends it.

Type-specific fields are declared as data (`GROUP_FIELDS`): which keys a type takes, which are
required, which are dates and which take a fixed vocabulary.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from assay.access import ClassificationEngine
from assay.intel import fields as f
from assay.intel.errors import Code, ItemError

Json = dict[str, Any]
BAD = Code.INVALID_GROUP
MAX_NAME = 500

GROUP_TYPES = (
    "Adversary", "Attack Pattern", "Campaign", "Course of Action", "Document", "Email", "Event",
    "Incident", "Intrusion Set", "Malware", "Report", "Signature", "Tactic", "Threat", "Tool",
    "Vulnerability",
)  # fmt: skip
_TYPE_ALIASES = {t.lower().replace(" ", ""): t for t in GROUP_TYPES}

EVENT_STATUS = ("Needs Review", "False Positive", "No Further Action", "Escalated")
INCIDENT_STATUS = (
    "New", "Open", "Stalled", "Containment Achieved", "Restoration Achieved", "Incident Reported",
    "Closed", "Rejected", "Deleted",
)  # fmt: skip
SIGNATURE_TYPES = (
    "Snort", "Suricata", "YARA", "ClamAV", "OpenIOC", "CybOX", "Bro", "Zeek", "Regex", "SPL", "KQL",
    "Sigma", "TQL Query", "LQL",
)  # fmt: skip


@dataclass(frozen=True)
class FieldSpec:
    """One type-specific field: its name, whether it is required, and how its value is checked."""

    name: str
    required: bool = False
    kind: str = "text"  # text | date | bool | int
    choices: tuple[str, ...] = ()


GROUP_FIELDS: dict[str, tuple[FieldSpec, ...]] = {
    "Campaign": (FieldSpec("firstSeen", kind="date"),),
    "Document": (
        FieldSpec("fileName", required=True),
        FieldSpec("fileSize", kind="int"),
        FieldSpec("malware", kind="bool"),
        FieldSpec("password"),
        FieldSpec("status", choices=("Success", "Awaiting Upload", "In Progress", "Failed")),
    ),
    "Email": (
        FieldSpec("subject", required=True),
        FieldSpec("header", required=True),
        FieldSpec("body", required=True),
        FieldSpec("from"),
        FieldSpec("to"),
        FieldSpec("score", kind="int"),
    ),
    "Event": (FieldSpec("eventDate", kind="date"), FieldSpec("status", choices=EVENT_STATUS)),
    "Incident": (FieldSpec("eventDate", kind="date"), FieldSpec("status", choices=INCIDENT_STATUS)),
    "Report": (
        FieldSpec("fileName"),
        FieldSpec("publishDate", kind="date"),
        FieldSpec("status", choices=("Success", "Awaiting Upload", "In Progress", "Failed")),
    ),
    "Signature": (
        FieldSpec("fileName", required=True),
        FieldSpec("fileType", required=True, choices=SIGNATURE_TYPES),
        FieldSpec("fileText", required=True),
    ),
}


@dataclass
class GroupItem:
    """A validated group."""

    type: str
    name: str
    xid: str | None = None
    fields: Json = field(default_factory=dict)
    attributes: list[Json] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    group_refs: list[str] = field(default_factory=list)
    raw: Json = field(default_factory=dict)


def group_type(value: Any) -> str:
    canon = _TYPE_ALIASES.get(str(value).lower().replace(" ", "").replace("_", ""))
    if canon is None:
        raise ItemError(BAD, f"unknown group type {value!r}")
    return canon


def is_group_type(value: Any) -> bool:
    return str(value).lower().replace(" ", "").replace("_", "") in _TYPE_ALIASES


def _field_value(spec: FieldSpec, value: Any) -> Any:
    if spec.kind == "date":
        date = f.parse_date(value, BAD, spec.name)
        return date.isoformat() if date else None
    if spec.kind == "bool":
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        if not isinstance(value, bool):
            raise ItemError(BAD, f"{spec.name} must be true or false")
        return value
    if spec.kind == "int":
        try:
            return int(value)
        except (TypeError, ValueError) as exc:
            raise ItemError(BAD, f"{spec.name} must be an integer") from exc
    if not isinstance(value, str):
        raise ItemError(BAD, f"{spec.name} must be a string")
    if spec.choices:
        match = next((c for c in spec.choices if c.lower() == value.strip().lower()), None)
        if match is None:
            raise ItemError(BAD, f"{spec.name} {value!r} is not one of {', '.join(spec.choices)}")
        return match
    return value


def parse_fields(kind: str, raw: Json) -> Json:
    """The type-specific fields present on `raw`; a missing required one is an error."""
    out: Json = {}
    for spec in GROUP_FIELDS.get(kind, ()):
        value = raw.get(spec.name)
        if value is None or value == "":
            if spec.required:
                raise ItemError(BAD, f"{kind} requires {spec.name}")
            continue
        out[spec.name] = _field_value(spec, value)
    return out


def parse_group(raw: Any, classification: ClassificationEngine | None = None) -> GroupItem:
    """Validate one group; security labels are TLP names, or with `classification` its markings."""
    if not isinstance(raw, dict):
        raise ItemError(BAD, "group is not an object")
    kind = group_type(raw.get("type"))
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip() or len(name.strip()) > MAX_NAME:
        raise ItemError(BAD, f"group name must be a non-empty string of at most {MAX_NAME} characters")
    xid = raw.get("xid")
    refs = [str(r) for r in f.as_list(raw.get("associatedGroupXid")) if r not in (None, "")]
    return GroupItem(
        type=kind,
        name=name.strip(),
        xid=str(xid) if xid not in (None, "") else None,
        fields=parse_fields(kind, raw),
        attributes=f.parse_attributes(raw.get("attribute", raw.get("attributes")), BAD),
        tags=f.parse_tags(raw.get("tag", raw.get("tags")), BAD),
        labels=f.parse_labels(raw.get("securityLabel", raw.get("securityLabels")), BAD, classification),
        group_refs=refs,
        raw=raw,
    )
