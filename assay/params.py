"""Submission parameters in Assemblyline's shape: defaults, validation, scan key, metadata.

The scan key names "the same analysis of the same bytes": two ingests with equal scan keys
may share one submission (in flight) or one result (from the cache).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from assay.db.base import holds_nul

PRIORITY_BUCKETS = {
    "low": (1, 100),
    "medium": (101, 200),
    "high": (201, 300),
    "critical": (301, 400),
    "user-low": (401, 500),
    "user-medium": (501, 1000),
    "user-high": (1001, 1500),
}
DEFAULT_CATEGORIES = ["Filtering", "Antivirus", "Static Analysis", "Extraction", "Networking", "Forensics"]
_SCAN_KEY_FIELDS = (
    "classification",
    "deep_scan",
    "ignore_cache",
    "ignore_filtering",
    "ignore_recursion_prevention",
    "ignore_size",
    "max_extracted",
    "max_supplementary",
    "service_spec",
    "services",
)


class BadParams(ValueError):
    """Parameters a caller sent that cannot be used; the message says which and why."""


class Services(BaseModel):
    model_config = ConfigDict(extra="ignore")

    selected: list[str] = Field(default_factory=lambda: list(DEFAULT_CATEGORIES))
    excluded: list[str] = Field(default_factory=list)
    rescan: list[str] = Field(default_factory=list)
    resubmit: list[str] = Field(default_factory=list)


class Params(BaseModel):
    """What a submitter may ask of an analysis; unknown keys are kept but play no part."""

    model_config = ConfigDict(extra="allow")

    classification: str = ""  # empty: the configured default; the intake stores it canonical
    description: str = ""
    deep_scan: bool = False
    priority: int = Field(default=150, ge=1, le=1500)
    ignore_cache: bool = False
    ignore_filtering: bool = False
    ignore_recursion_prevention: bool = False
    ignore_size: bool = False
    never_drop: bool = False
    generate_alert: bool = False
    max_extracted: int = Field(default=500, ge=0, le=100_000)
    max_supplementary: int = Field(default=500, ge=0, le=100_000)
    services: Services = Field(default_factory=Services)
    service_spec: dict[str, dict[str, Any]] = Field(default_factory=dict)
    ttl: int = Field(default=30, ge=0, le=3650)
    groups: list[str] = Field(default_factory=list)
    submitter: str = ""
    psid: str | None = None
    type: str = "USER"

    @field_validator("service_spec", mode="before")
    @classmethod
    def _spec_is_mapping_of_mappings(cls, value: Any) -> Any:
        if value is None:
            return {}
        if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
            raise ValueError("service_spec must map service names to objects of parameters")
        return value


def parse_params(raw: Any) -> Params:
    """Validate the caller's params; a :class:`BadParams` names the first offending field."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise BadParams("params must be a JSON object")
    try:
        return Params.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "params"
        raise BadParams(f"params.{where}: {first['msg']}") from None


def scan_key(params: Params, sha256: str) -> str:
    """md5 over the analysis-relevant params, sorted, and the content's sha256."""
    dumped = params.model_dump()
    parts = []
    for name in _SCAN_KEY_FIELDS:
        value = dumped[name]
        if name == "services":
            value = {k: sorted(v) for k, v in sorted(value.items())}
        elif name == "service_spec":
            value = {k: dict(sorted(v.items())) for k, v in sorted(value.items())}
        parts.append(f"{name}: {value}")
    parts.append(f"sha256: {sha256}")
    return hashlib.md5(", ".join(parts).encode()).hexdigest() + "v0"


def flatten_metadata(metadata: Any, max_keys: int, max_value: int) -> dict[str, str]:
    """``{"a": {"b": 1, "c": True}}`` -> ``{"a.b": "1", "a.c": "true"}``, bounded."""
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        raise BadParams("metadata must be a JSON object")
    flat: dict[str, str] = {}
    _flatten(metadata, "", flat, 0)
    if len(flat) > max_keys:
        raise BadParams(f"metadata has {len(flat)} keys; at most {max_keys} are accepted")
    for key, value in flat.items():
        if len(value) > max_value or len(key) > 256:
            raise BadParams(f"metadata.{key[:64]} is too long (values up to {max_value} characters)")
    return flat


def refuse_nul(what: str, value: Any) -> None:
    """Refuse NUL characters in any string (keys too) of ``value``.

    PostgreSQL cannot store them in text or JSON, and one such ingest would fail the group commit
    of every ingest that shares its transaction; a 400 at the door names the culprit instead.
    """
    if holds_nul(value):
        raise BadParams(f"{what} contains a NUL character")


def _flatten(value: Any, prefix: str, out: dict[str, str], depth: int) -> None:
    if depth > 16:
        raise BadParams("metadata is nested too deeply")
    if isinstance(value, Mapping):
        for key, inner in value.items():
            _flatten(inner, f"{prefix}.{key}" if prefix else str(key), out, depth + 1)
    elif isinstance(value, bool):
        out[prefix] = "true" if value else "false"
    elif value is None:
        out[prefix] = ""
    elif isinstance(value, list | tuple):
        out[prefix] = ",".join(str(v) for v in value)
    else:
        out[prefix] = str(value)


def priority_bucket(priority: int) -> str:
    for name, (low, high) in PRIORITY_BUCKETS.items():
        if low <= priority <= high:
            return name
    return "low"
