"""Fields shared by groups and indicators: attributes, tags, security labels, dates, and their merging.

Every parser accepts the loose shapes TcEx and the V2 batch API send (`["APT"]` or `[{"name": "APT"}]`)
and returns one canonical shape, so that merging and comparing is plain list work afterwards.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from assay.access import ClassificationEngine, UnknownMarking
from assay.intel.errors import Code, ItemError

Json = dict[str, Any]

TLP_LABELS = ("TLP:CLEAR", "TLP:GREEN", "TLP:AMBER", "TLP:AMBER+STRICT", "TLP:RED")
_TLP_ALIASES = {"TLP:WHITE": "TLP:CLEAR"}
WRITE_TYPES = ("Append", "Replace", "Singleton", "Static")
MAX_TAG = 128
MAX_ATTRIBUTE_TYPE = 128


def as_list(value: Any) -> list[Any]:
    """None → [], a scalar or dict → [it], a list → itself."""
    if value is None:
        return []
    if isinstance(value, list | tuple):
        return list(value)
    return [value]


def parse_tags(value: Any, code: Code) -> list[str]:
    """Tags as a sorted, de-duplicated list of names."""
    if value is None:
        return []
    if type(value) is list:  # the common shapes, in one pass; anything odd takes the checked loop
        try:
            names = {(tag["name"] if type(tag) is dict else tag).strip() for tag in value}
        except (KeyError, TypeError, AttributeError):
            names = None
        if names is not None and "" not in names and all(len(name) <= MAX_TAG for name in names):
            return sorted(names)
    tags: set[str] = set()
    for tag in as_list(value):
        name = tag.get("name") if isinstance(tag, dict) else tag
        name = name.strip() if isinstance(name, str) else ""
        if not name or len(name) > MAX_TAG:
            raise ItemError(code, f"invalid tag {tag!r}")
        tags.add(name)
    return sorted(tags)


def parse_attributes(value: Any, code: Code) -> list[Json]:
    """Attributes as `{type, value}` dicts, de-duplicated, in submission order."""
    if value is None:
        return []
    seen: set[tuple[str, str]] = set()
    out: list[Json] = []
    for attr in as_list(value):
        if not isinstance(attr, dict):
            raise ItemError(code, f"attribute is not an object: {attr!r}")
        kind, val = attr.get("type"), attr.get("value")
        if not isinstance(kind, str) or not kind.strip() or len(kind) > MAX_ATTRIBUTE_TYPE:
            raise ItemError(code, f"attribute without a valid type: {attr!r}")
        if val is None or isinstance(val, dict | list):
            raise ItemError(code, f"attribute {kind!r} without a scalar value")
        key = (kind.strip(), str(val))
        if key not in seen:
            seen.add(key)
            out.append({"type": key[0], "value": key[1]})
    return out


def parse_labels(value: Any, code: Code, classification: ClassificationEngine | None = None) -> list[str]:
    """Security labels: the TLP 2.0 names (TLP:WHITE read as TLP:CLEAR), or with `classification`
    any marking it reads (`TLP:AMBER//REL TO PARTNERS`), in its canonical form.

    Labels are what readers are filtered by, so they are stored canonical: the same marking in
    two spellings must be one label.
    """
    if value is None:
        return []
    labels: set[str] = set()
    for label in as_list(value):
        name = label.get("name") if isinstance(label, dict) else label
        if not isinstance(name, str):
            raise ItemError(code, f"invalid security label {label!r}")
        labels.add(_tlp_label(name, code) if classification is None else _marking_label(name, code, classification))
    return sorted(labels, key=label_order)


def _tlp_label(name: str, code: Code) -> str:
    norm = name.strip().upper()
    norm = _TLP_ALIASES.get(norm, norm)
    if norm not in TLP_LABELS:
        raise ItemError(code, f"unknown security label {name!r}; use one of {', '.join(TLP_LABELS)}")
    return norm


def _marking_label(name: str, code: Code, classification: ClassificationEngine) -> str:
    try:
        return classification.normalise(name)
    except UnknownMarking as exc:
        raise ItemError(code, f"unknown security label {name[:64]!r}: {exc}") from None


def label_order(label: str) -> tuple[int, str]:
    """TLP labels by level first, then any other marking by its text: one stable order for every list."""
    level = tlp_level(label)
    return (TLP_LABELS.index(level) if level else len(TLP_LABELS), label)


def tlp_level(label: str) -> str | None:
    """The TLP level a marking starts with (`TLP:AMBER` of `TLP:AMBER//REL TO X`), None for another scheme."""
    level = label.split("//", 1)[0].strip()
    return level if level in TLP_LABELS else None


def parse_date(value: Any, code: Code, name: str) -> datetime | None:
    """An ISO 8601 date or epoch seconds, any offset, returned in UTC (no offset means UTC)."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value, UTC)
        except (OverflowError, OSError, ValueError) as exc:
            raise ItemError(code, f"{name}: epoch out of range") from exc
    elif isinstance(value, str):
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError as exc:
            raise ItemError(code, f"{name}: not an ISO 8601 date: {value!r}") from exc
    else:
        raise ItemError(code, f"{name}: not a date: {value!r}")
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def merge_tags(old: Iterable[str], new: Iterable[str], write_type: str) -> list[str]:
    if write_type == "Replace":
        return sorted(set(new))
    return sorted(set(old) | set(new))


def merge_labels(old: Iterable[str], new: Iterable[str], write_type: str) -> list[str]:
    labels = set(new) if write_type == "Replace" else set(old) | set(new)
    return sorted(labels, key=label_order)


def merge_attributes(old: list[Json], new: list[Json], write_type: str) -> list[Json]:
    """Append adds, Replace swaps the list, Singleton keeps one value per type (newest wins),
    Static only adds types the item does not have yet."""
    if write_type == "Replace":
        return list(new)
    if write_type == "Singleton":
        new_types = {a["type"] for a in new}
        base = [a for a in old if a["type"] not in new_types]
        return base + _unique_per_type(new)
    if write_type == "Static":
        old_types = {a["type"] for a in old}
        return list(old) + [a for a in new if a["type"] not in old_types]
    seen = {(a["type"], a["value"]) for a in old}
    out = list(old)
    for attr in new:
        if (attr["type"], attr["value"]) not in seen:
            seen.add((attr["type"], attr["value"]))
            out.append(attr)
    return out


def _unique_per_type(attrs: list[Json]) -> list[Json]:
    latest: dict[str, Json] = {}
    for attr in attrs:
        latest[attr["type"]] = attr
    return list(latest.values())


def earliest(a: datetime | None, b: datetime | None) -> datetime | None:
    return b if a is None else a if b is None else min(a, b)


def latest(a: datetime | None, b: datetime | None) -> datetime | None:
    return b if a is None else a if b is None else max(a, b)
