"""Indicator types: validation and the one normalised summary per type that makes duplicates meet.

Summaries are normalised so that two spellings of one observable share a row: IPv6 compressed and
lower-cased, hashes lower-cased, hosts lower-cased and IDNA-encoded, ASNs written `ASN<number>`.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from assay.access import ClassificationEngine
from assay.intel import fields as f
from assay.intel.errors import Code, ItemError

Json = dict[str, Any]
BAD = Code.INVALID_INDICATOR
MAX_SUMMARY = 2000  # stays below PostgreSQL's btree entry limit for the unique index
HASH_KINDS = {32: "md5", 40: "sha1", 64: "sha256"}
_HEX = re.compile(r"^[0-9a-fA-F]+$")
_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")
_ASN = re.compile(r"^(?:AS|ASN)?\s*(\d{1,10})$", re.IGNORECASE)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_CANONICAL_IPV4 = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}")  # already in str(ip_address()) form
_SIMPLE_URL = re.compile(  # scheme://host[/path][?query][#fragment]: what urlsplit/urlunsplit keep as is
    r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://(?P<host>[A-Za-z0-9._-]*[A-Za-z_-])"
    r"(?P<rest>(?:/[^?#]*)?(?:\?[^#]+)?(?:#.+)?)"
)
_PLAIN_HOST = re.compile(r"(?:(?!-)[a-z0-9_-]{1,63}(?<!-)\.)+(?!-)[a-z0-9_-]{1,63}(?<!-)")
REG_TYPES = (
    "REG_NONE", "REG_SZ", "REG_EXPAND_SZ", "REG_BINARY", "REG_DWORD", "REG_DWORD_LITTLE_ENDIAN",
    "REG_DWORD_BIG_ENDIAN", "REG_LINK", "REG_MULTI_SZ", "REG_RESOURCE_LIST",
    "REG_FULL_RESOURCE_DESCRIPTOR", "REG_RESOURCE_REQUIREMENTS_LIST", "REG_QWORD",
    "REG_QWORD_LITTLE_ENDIAN",
)  # fmt: skip
HIVES = {
    "HKLM": "HKEY_LOCAL_MACHINE", "HKCU": "HKEY_CURRENT_USER", "HKCR": "HKEY_CLASSES_ROOT",
    "HKU": "HKEY_USERS", "HKCC": "HKEY_CURRENT_CONFIG",
}  # fmt: skip
DATE_FIELDS = {
    "firstSeen": "first_seen", "lastSeen": "last_seen", "dateAdded": "dateAdded",
    "lastModified": "lastModified", "externalDateAdded": "externalDateAdded",
    "externalDateExpires": "externalDateExpires", "externalLastModified": "externalLastModified",
    "externalFirstSeen": "externalFirstSeen", "externalLastSeen": "externalLastSeen",
}  # fmt: skip
_DATE_KEYS = frozenset(DATE_FIELDS)


@dataclass
class Hashes:
    md5: str | None = None
    sha1: str | None = None
    sha256: str | None = None

    def values(self) -> list[str]:
        return [h for h in (self.md5, self.sha1, self.sha256) if h]

    def summary(self) -> str:
        return " : ".join(self.values())

    def merge(self, other: Hashes) -> Hashes:
        """The union of two hash sets; a different value for the same algorithm is a collision."""
        out = Hashes()
        for kind in ("md5", "sha1", "sha256"):
            a, b = getattr(self, kind), getattr(other, kind)
            if a and b and a != b:
                raise ItemError(Code.FILE_HASH_MERGE, f"{kind} collision: {a} vs {b}")
            setattr(out, kind, a or b)
        return out


@dataclass
class IndicatorItem:
    """A validated indicator: what the store writes, plus the links resolved in later phases."""

    type: str
    summary: str
    hashes: Hashes | None = None
    rating: float | None = None
    confidence: int | None = None
    xid: str | None = None
    attributes: list[Json] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    external_dates: dict[str, str] = field(default_factory=dict)
    group_refs: list[str] = field(default_factory=list)
    occurrences: list[Json] = field(default_factory=list)
    raw: Json = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str]:
        return (self.type, self.summary)

    def absorb(self, other: IndicatorItem) -> None:
        """Fold a duplicate from the same job in: highest rating/confidence, unions of the rest."""
        if self.hashes is not None and other.hashes is not None:
            self.hashes = self.hashes.merge(other.hashes)
            self.summary = self.hashes.summary()
        self.rating = _max(self.rating, other.rating)
        self.confidence = _max(self.confidence, other.confidence)
        self.xid = self.xid or other.xid
        self.attributes = f.merge_attributes(self.attributes, other.attributes, "Append")
        self.tags = f.merge_tags(self.tags, other.tags, "Append")
        self.labels = f.merge_labels(self.labels, other.labels, "Append")
        self.first_seen = f.earliest(self.first_seen, other.first_seen)
        self.last_seen = f.latest(self.last_seen, other.last_seen)
        self.external_dates = {**other.external_dates, **self.external_dates}
        self.group_refs += [r for r in other.group_refs if r not in self.group_refs]
        self.occurrences += [o for o in other.occurrences if o not in self.occurrences]


def _max(a: Any, b: Any) -> Any:
    return b if a is None else a if b is None else max(a, b)


def _text(value: Any, kind: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ItemError(BAD, f"{kind}: summary must be a non-empty string")
    text = value.strip()
    if len(text) > MAX_SUMMARY:
        raise ItemError(BAD, f"{kind}: summary longer than {MAX_SUMMARY} characters")
    return text


def normalise_address(value: Any) -> str:
    text = _text(value, "Address").strip("[]")
    if _CANONICAL_IPV4.fullmatch(text):
        return text
    try:
        return str(ipaddress.ip_address(text))
    except ValueError as exc:
        raise ItemError(BAD, f"Address: not an IPv4 or IPv6 address: {value!r}") from exc


def normalise_cidr(value: Any) -> str:
    text = _text(value, "CIDR")
    if "/" not in text:
        raise ItemError(BAD, f"CIDR: missing prefix length: {value!r}")
    try:
        return str(ipaddress.ip_network(text, strict=False))
    except ValueError as exc:
        raise ItemError(BAD, f"CIDR: not a network: {value!r}") from exc


def normalise_host(value: Any, kind: str = "Host") -> str:
    text = _text(value, kind).rstrip(".").lower()
    if len(text) <= 253 and _PLAIN_HOST.fullmatch(text):
        return text  # ASCII labels that pass the checks below: nothing to encode
    try:
        ascii_host = text if text.isascii() else text.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise ItemError(BAD, f"{kind}: not a valid host name: {value!r}") from exc
    labels = ascii_host.split(".")
    if len(ascii_host) > 253 or len(labels) < 2 or not all(_LABEL.match(label) for label in labels):
        raise ItemError(BAD, f"{kind}: not a valid host name: {value!r}")
    return ascii_host


def normalise_email(value: Any) -> str:
    text = _text(value, "EmailAddress")
    local, at, domain = text.rpartition("@")
    if not at or not local or len(local) > 64 or any(c.isspace() for c in local) or "@" in local:
        raise ItemError(BAD, f"EmailAddress: not an address: {value!r}")
    return f"{local}@{normalise_host(domain, 'EmailAddress')}"


def normalise_url(value: Any) -> str:
    text = _text(value, "URL")
    if _CONTROL.search(text) or " " in text:
        raise ItemError(BAD, "URL: contains spaces or control characters")
    simple = _SIMPLE_URL.fullmatch(text)
    if simple is not None and _PLAIN_HOST.fullmatch(simple["host"].lower()):
        return f"{simple['scheme'].lower()}://{simple['host'].lower()}{simple['rest']}"
    try:
        parts = urlsplit(text)
        host = parts.hostname
        port = parts.port
    except ValueError as exc:
        raise ItemError(BAD, f"URL: unparsable: {value!r}") from exc
    if not parts.scheme or not host:
        raise ItemError(BAD, f"URL: needs a scheme and a host: {value!r}")
    if ":" in host or host[-1].isdigit():
        try:
            host = normalise_address(host)
            host = f"[{host}]" if ":" in host else host
        except ItemError:
            host = normalise_host(host, "URL")
    else:
        host = normalise_host(host, "URL")
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = (f"{userinfo}@" if userinfo else "") + host + (f":{port}" if port is not None else "")
    return urlunsplit((parts.scheme.lower(), netloc, parts.path, parts.query, parts.fragment))


def normalise_asn(value: Any) -> str:
    match = _ASN.match(_text(str(value), "ASN"))
    if not match or int(match.group(1)) > 0xFFFFFFFF:
        raise ItemError(BAD, f"ASN: not an AS number: {value!r}")
    return f"ASN{int(match.group(1))}"


def normalise_plain(kind: str, limit: int) -> Callable[[Any], str]:
    def normalise(value: Any) -> str:
        text = _text(value, kind)
        if len(text) > limit or _CONTROL.search(text):
            raise ItemError(BAD, f"{kind}: longer than {limit} or holds control characters")
        return text

    return normalise


def parse_hashes(value: Any, raw: Json) -> Hashes:
    """`md5 : sha1 : sha256` (any subset, any order) or separate md5/sha1/sha256 fields."""
    parts = value.split(":") if isinstance(value, str) else []
    if "md5" in raw or "sha1" in raw or "sha256" in raw:
        parts += [raw[k] for k in ("md5", "sha1", "sha256") if isinstance(raw.get(k), str)]
    found: dict[str, str] = {}
    for part in (p.strip() for p in parts):
        if not part:
            continue
        kind = HASH_KINDS.get(len(part))
        if kind is None or not _HEX.match(part):
            raise ItemError(BAD, f"File: not an md5, sha1 or sha256: {part!r}")
        digest = part.lower()
        if found.setdefault(kind, digest) != digest:
            raise ItemError(BAD, f"File: two different {kind} values in one indicator")
    if not found:
        raise ItemError(BAD, "File: no hash given")
    return Hashes(found.get("md5"), found.get("sha1"), found.get("sha256"))


def normalise_registry_key(value: Any, raw: Json) -> str:
    """`key name : value name : REG_TYPE`, hive abbreviations expanded, type upper-cased."""
    if isinstance(value, str) and value.strip():
        parts = [p.strip() for p in value.split(" : ")]
    else:
        parts = [str(raw.get(k) or "").strip() for k in ("Key Name", "Value Name", "Value Type")]
    if len(parts) != 3 or not parts[0]:
        raise ItemError(BAD, f"Registry Key: expected 'key : value name : REG_*': {value!r}")
    key, name, reg_type = parts
    hive, sep, rest = key.partition("\\")
    key = HIVES.get(hive.upper(), hive.upper()) + sep + rest
    reg_type = reg_type.upper()
    if reg_type not in REG_TYPES:
        raise ItemError(BAD, f"Registry Key: unknown value type {parts[2]!r}")
    return _text(f"{key} : {name} : {reg_type}", "Registry Key")


NORMALISERS: dict[str, Callable[[Any], str]] = {
    "Address": normalise_address,
    "EmailAddress": normalise_email,
    "Host": normalise_host,
    "URL": normalise_url,
    "ASN": normalise_asn,
    "CIDR": normalise_cidr,
    "Mutex": normalise_plain("Mutex", 500),
    "User Agent": normalise_plain("User Agent", 1000),
}
INDICATOR_TYPES = (*NORMALISERS, "File", "Registry Key")
_TYPE_ALIASES = {t.lower().replace(" ", ""): t for t in INDICATOR_TYPES}
_TYPE_ALIASES.update({"emailaddress": "EmailAddress", "useragent": "User Agent", "registrykey": "Registry Key"})


def indicator_type(value: Any) -> str:
    """The canonical type name for `Address`, `address`, `User Agent`, `UserAgent`..."""
    if isinstance(value, str) and (value in NORMALISERS or value in ("File", "Registry Key")):
        return value
    canon = _TYPE_ALIASES.get(str(value).lower().replace(" ", "").replace("_", ""))
    if canon is None:
        raise ItemError(BAD, f"unknown indicator type {value!r}")
    return canon


def normalise_summary(kind: str, value: Any, raw: Json | None = None) -> tuple[str, Hashes | None]:
    """The canonical summary of an indicator (and its hashes for File)."""
    raw = raw or {}
    if kind == "File":
        hashes = parse_hashes(value, raw)
        return hashes.summary(), hashes
    if kind == "Registry Key":
        return normalise_registry_key(value, raw), None
    return NORMALISERS[kind](value), None


def parse_rating(value: Any) -> float | None:
    if type(value) is int and 0 <= value <= 5:
        return float(value)
    if value is None or value == "":
        return None
    try:
        rating = float(value)
    except (TypeError, ValueError) as exc:
        raise ItemError(BAD, f"rating is not a number: {value!r}") from exc
    if not 0 <= rating <= 5:
        raise ItemError(BAD, f"rating {value!r} outside 0-5")
    return rating


def parse_confidence(value: Any) -> int | None:
    if type(value) is int and 0 <= value <= 100:
        return value
    if value is None or value == "":
        return None
    try:
        confidence = float(value)
    except (TypeError, ValueError) as exc:
        raise ItemError(BAD, f"confidence is not a number: {value!r}") from exc
    if not 0 <= confidence <= 100 or confidence != int(confidence):
        raise ItemError(BAD, f"confidence {value!r} is not a whole number in 0-100")
    return int(confidence)


def parse_occurrence(raw: Any, code: Code = BAD, classification: ClassificationEngine | None = None) -> Json:
    """A file occurrence as `{fileName, path, date}` with the date in UTC ISO form, plus `labels`
    when it carries its own security labels (`securityLabel`, as an indicator spells them)."""
    if not isinstance(raw, dict):
        raise ItemError(code, f"file occurrence is not an object: {raw!r}")
    out: Json = {}
    for key in ("fileName", "path"):
        value = raw.get(key)
        if value is not None and not isinstance(value, str):
            raise ItemError(code, f"file occurrence {key} is not a string")
        out[key] = value
    date = f.parse_date(raw.get("date"), code, "file occurrence date")
    out["date"] = date.isoformat() if date else None
    labels = raw.get("securityLabel", raw.get("securityLabels"))
    if labels is not None:
        out["labels"] = f.parse_labels(labels, code, classification)
    return out


def _summary_field(raw: Json) -> Any:
    for key in ("summary", "indicator", "value"):
        if raw.get(key) not in (None, ""):
            return raw[key]
    return None


def _group_refs(raw: Json) -> list[str]:
    refs: list[str] = []
    single = raw.get("associatedGroup")
    if type(single) is list and "associatedGroups" not in raw and all(type(r) is str for r in single):
        return list(single)  # the common TcEx shape: a list of xids
    for ref in f.as_list(raw.get("associatedGroup")) + f.as_list(raw.get("associatedGroups")):
        value = ref.get("groupXid") or ref.get("xid") or ref.get("id") if isinstance(ref, dict) else ref
        if value is None or isinstance(value, dict | list):
            raise ItemError(BAD, f"invalid associated group reference {ref!r}")
        refs.append(str(value))
    return refs


def parse_indicator(raw: Any, classification: ClassificationEngine | None = None) -> IndicatorItem:
    """Validate one indicator as TcEx Jobs or the V2 batch API spells it.

    Security labels are TLP names, or with `classification` any marking it reads. Its file
    occurrences keep the indicator's labels unless they carry their own: where a file was seen
    is as classified as the item that reported it, whatever the indicator later merges with.
    """
    if not isinstance(raw, dict):
        raise ItemError(BAD, "indicator is not an object")
    kind = indicator_type(raw.get("type"))
    summary, hashes = normalise_summary(kind, _summary_field(raw), raw)
    xid = raw.get("xid")
    item = IndicatorItem(
        kind,
        summary,
        hashes,
        parse_rating(raw.get("rating")),
        parse_confidence(raw.get("confidence")),
        str(xid) if xid not in (None, "") else None,
        f.parse_attributes(raw.get("attribute", raw.get("attributes")), BAD),
        f.parse_tags(raw.get("tag", raw.get("tags")), BAD),
        f.parse_labels(raw.get("securityLabel", raw.get("securityLabels")), BAD, classification),
        raw=raw,
    )
    if not _DATE_KEYS.isdisjoint(raw):
        _parse_dates(item, raw)
    if "associatedGroup" in raw or "associatedGroups" in raw:
        item.group_refs = _group_refs(raw)
    if raw.get("fileOccurrence") is not None:
        occurrences = f.as_list(raw["fileOccurrence"])
        item.occurrences = [{"labels": item.labels, **parse_occurrence(o, BAD, classification)} for o in occurrences]
        if item.occurrences and kind != "File":
            raise ItemError(BAD, "fileOccurrence is only valid on File indicators")
    return item


def _parse_dates(item: IndicatorItem, raw: Json) -> None:
    for source, target in DATE_FIELDS.items():
        if raw.get(source) is None:
            continue
        date = f.parse_date(raw[source], BAD, source)
        if target in ("first_seen", "last_seen"):
            setattr(item, target, date)
        elif date is not None:
            item.external_dates[target] = date.isoformat()
