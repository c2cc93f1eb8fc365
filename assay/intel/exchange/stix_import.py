"""STIX 2.1 bundles into the store, through a `Job` so validation, dedup and exit codes are the Job's.

What becomes what:
- `indicator` with pattern_type stix and a simple equality pattern (one observable, `=` only, no
  qualifiers; File may combine its hashes with OR/AND; a registry key may add its value name and
  type) → an indicator of the matching type, xid = the STIX id. Other pattern types (yara,
  snort, suricata, sigma, pcre...) → a Signature group holding the rule text.
- SCOs ipv4/ipv6-addr (CIDR when it has a prefix), domain-name, url, email-addr, file (md5, sha1,
  sha256), autonomous-system, mutex, windows-registry-key → indicators; they merge with the
  indicator of the same value in the Job.
- SDOs threat-actor, attack-pattern, campaign, course-of-action, incident, intrusion-set,
  malware, report, tool, vulnerability, grouping → groups (xid = the STIX id; `x_assay_type`
  overrides the type, `x_assay_fields` restores type-specific fields; a grouping without it is
  an Event).
- relationships, and the object_refs of reports and groupings → associations; an end that is not
  in the bundle is looked up by xid in the store (the Job reports 0x1007 if absent).
- sightings of File indicators → file occurrences (name and path from the observed-data's file
  and directory SCOs, date from the sighting's first_seen; a sighting without it gives an undated
  occurrence, since observed-data's first_observed may be when the record was made).
- TLP markings (stix2's TLP 1.0 ids, TLP 2.0 marking definitions named "TLP:...") → security labels.

Nothing is dropped silently: an object that cannot be represented is counted per type in
`StixImportResult.unsupported` and reported as a warning (0x2001 for observables, 0x2002 for the
rest); an object that is malformed (bad pattern, missing fields) fails with an error. Identities
and recognised marking definitions are metadata, consumed without a trace. Limits: `max_bytes` of
JSON text and `max_objects` objects per bundle; beyond them nothing is written (exit code 1).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from dataclasses import fields as dataclass_fields
from typing import TYPE_CHECKING, Any

import stix2

from assay.intel import fields as f
from assay.intel.errors import Code
from assay.intel.exchange.stix import AMBER_STRICT, REG_TO_STIX, SIGNATURE_PATTERN_TYPES, UA_PATH
from assay.intel.groups import GROUP_FIELDS, SIGNATURE_TYPES, is_group_type
from assay.intel.groups import group_type as canonical_group_type
from assay.intel.job import Job
from assay.intel.result import JobResult

if TYPE_CHECKING:
    from sqlalchemy import Engine

Json = dict[str, Any]
MAX_BYTES = 64 * 1024 * 1024
MAX_OBJECTS = 50_000
MAX_PATTERN = 10_000
SDO_GROUPS = {
    "threat-actor": "Adversary", "attack-pattern": "Attack Pattern", "campaign": "Campaign",
    "course-of-action": "Course of Action", "incident": "Incident", "intrusion-set": "Intrusion Set",
    "malware": "Malware", "report": "Report", "tool": "Tool", "vulnerability": "Vulnerability",
    "grouping": "Event",
}  # fmt: skip
SCO_TYPES = (
    "ipv4-addr", "ipv6-addr", "domain-name", "url", "email-addr", "file", "autonomous-system", "mutex",
    "windows-registry-key",
)  # fmt: skip
OBSERVABLE_TYPES = (
    *SCO_TYPES, "artifact", "directory", "email-message", "mac-addr", "network-traffic", "process", "software",
    "user-account", "x509-certificate", "indicator", "sighting", "observed-data",
)  # fmt: skip
METADATA_TYPES = ("identity", "marking-definition", "bundle")
TLP_BY_ID = {
    stix2.TLP_WHITE.id: "TLP:CLEAR", stix2.TLP_GREEN.id: "TLP:GREEN", stix2.TLP_AMBER.id: "TLP:AMBER",
    stix2.TLP_RED.id: "TLP:RED", AMBER_STRICT.id: "TLP:AMBER+STRICT",
}  # fmt: skip
SIGNATURE_BY_PATTERN = {t.lower().replace(" ", "-"): t for t in SIGNATURE_TYPES}
SIGNATURE_BY_PATTERN.update({v: k for k, v in SIGNATURE_PATTERN_TYPES.items()})
REG_FROM_STIX = {v: k for k, v in REG_TO_STIX.items() if k != "REG_QWORD_LITTLE_ENDIAN"}
REG_FROM_STIX["REG_INVALID_TYPE"] = "REG_NONE"
HASH_NAMES = {"md5": "md5", "sha-1": "sha1", "sha1": "sha1", "sha-256": "sha256", "sha256": "sha256"}
VALUE_SCOS = {
    "ipv4-addr": "Address",
    "ipv6-addr": "Address",
    "domain-name": "Host",
    "url": "URL",
    "email-addr": "EmailAddress",
}
_SIMPLE = re.compile(r"^\[\s*([a-z0-9-]+):(value|name)\s*=\s*'((?:[^'\\]|\\.)*)'\s*\]$", re.DOTALL)
_ESCAPE = re.compile(r"\\(.)", re.DOTALL)


class PatternError(ValueError):
    """A STIX pattern that is not a simple equality on one supported observable."""


class StixImportError(ValueError):
    """The input is not a usable STIX bundle."""


@dataclass
class StixImportResult(JobResult):
    """A JobResult plus the objects that had no place in the store, counted per STIX type."""

    unsupported: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "unsupported": dict(self.unsupported)}


@dataclass(frozen=True)
class Ref:
    """What a STIX id became: a group (type, xid) or an indicator (type, summary)."""

    kind: str
    type: str
    key: str


def _unquote(literal: str) -> str:
    if len(literal) < 2 or not literal.startswith("'") or not literal.endswith("'"):
        raise PatternError(f"expected a string literal, got {literal[:80]!r}")
    return _ESCAPE.sub(r"\1", literal[1:-1])


def _registry(comparisons: list[tuple[list[Any], str, str]]) -> tuple[str, str]:
    parts = {"key": "", "name": "", "data_type": "REG_NONE"}
    for path, _op, literal in comparisons:
        name = path[-1] if path and isinstance(path[-1], str) else None
        if name not in parts or (name != "key" and path[0] != "values"):
            raise PatternError(f"unsupported registry key property {path!r}")
        parts[name] = _unquote(literal)
    if not parts["key"]:
        raise PatternError("registry key pattern without key")
    reg_type = REG_FROM_STIX.get(parts["data_type"], parts["data_type"])
    return "Registry Key", f"{parts['key']} : {parts['name']} : {reg_type}"


def _file(comparisons: list[tuple[list[Any], str, str]]) -> tuple[str, str]:
    hashes: dict[str, str] = {}
    for path, _op, literal in comparisons:
        algo = HASH_NAMES.get(str(path[-1]).lower()) if len(path) == 2 and path[0] == "hashes" else None
        if algo is None:
            raise PatternError(f"unsupported file property {path!r}")
        hashes[algo] = _unquote(literal)
    return "File", " : ".join(hashes[k] for k in ("md5", "sha1", "sha256") if k in hashes)


def _single(object_type: str, comparisons: list[tuple[list[Any], str, str]]) -> tuple[str, str]:
    if len(comparisons) != 1:
        raise PatternError(f"{len(comparisons)} comparisons on {object_type}: only one value per indicator")
    path, _op, literal = comparisons[0]
    dotted = ".".join(str(p) for p in path)
    if object_type in VALUE_SCOS and dotted == "value":
        value = _unquote(literal)
        kind = VALUE_SCOS[object_type]
        return ("CIDR" if kind == "Address" and "/" in value else kind), value
    if object_type == "mutex" and dotted == "name":
        return "Mutex", _unquote(literal)
    if object_type == "autonomous-system" and dotted == "number":
        if not literal.isdigit():
            raise PatternError(f"AS number is not an integer: {literal[:40]!r}")
        return "ASN", f"ASN{literal}"
    if f"{object_type}:" + ".".join(f"'{p}'" if "-" in str(p) else str(p) for p in path) == UA_PATH:
        return "User Agent", _unquote(literal)
    raise PatternError(f"unsupported observable {object_type}:{dotted}")


def parse_pattern(pattern: Any) -> tuple[str, str]:
    """(indicator type, summary) of a simple STIX equality pattern; PatternError otherwise."""
    if not isinstance(pattern, str) or not pattern.strip():
        raise PatternError("indicator without a pattern")
    if len(pattern) > MAX_PATTERN:
        raise PatternError(f"pattern longer than {MAX_PATTERN} characters")
    fast = _SIMPLE.match(pattern)
    if fast and fast.group(1) in ("ipv4-addr", "ipv6-addr", "domain-name", "url", "email-addr", "mutex"):
        return _single(fast.group(1), [([fast.group(2)], "=", f"'{fast.group(3)}'")])
    from stix2patterns.pattern import Pattern

    try:
        data = Pattern(pattern).inspect()
    except Exception as exc:  # the ANTLR parser raises assorted errors on hostile text
        raise PatternError(f"malformed pattern: {str(exc)[:200]}") from None
    if data.observation_ops or data.qualifiers or len(data.comparisons) != 1:
        raise PatternError("not a single observation (qualifiers, several observations or object types)")
    [(object_type, comparisons)] = data.comparisons.items()
    if any(op != "=" for _path, op, _lit in comparisons):
        raise PatternError("only '=' comparisons are supported")
    if object_type == "file":
        return _file(comparisons)
    if object_type == "windows-registry-key":
        return _registry(comparisons)
    return _single(object_type, comparisons)


def load_bundle(data: str | bytes | Json, max_bytes: int = MAX_BYTES) -> Json:
    """Parse JSON text (bounded) and check the bundle's shape."""
    if isinstance(data, str | bytes):
        if len(data) > max_bytes:
            raise StixImportError(f"document larger than {max_bytes} bytes")
        try:
            data = json.loads(data)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise StixImportError(f"not JSON: {str(exc)[:200]}") from None
    if not isinstance(data, dict) or data.get("type") != "bundle":
        raise StixImportError("not a STIX bundle (a JSON object with type 'bundle')")
    if not isinstance(data.get("objects", []), list):
        raise StixImportError("bundle 'objects' must be a list")
    return data


class Translator:
    """Turns one bundle's objects into Job items, remembering what each STIX id became."""

    def __init__(self, objects: list[Any], job: Job) -> None:
        self.job = job
        self.objects: dict[str, Json] = {}
        self.refs: dict[str, Ref | None] = {}
        self.tlp = dict(TLP_BY_ID)
        self.failures: list[tuple[str, Code, str, Any]] = []
        self.unsupported: Counter[str] = Counter()
        self.consumed: set[str] = set()
        self.repeated = 0
        self.pairs: set[frozenset[str]] = set()
        self._index(objects)

    def _index(self, objects: list[Any]) -> None:
        for obj in objects:
            if not isinstance(obj, dict) or not isinstance(obj.get("type"), str) or not isinstance(obj.get("id"), str):
                self.failures.append(
                    ("indicator", Code.JSON_SYNTAX, "object without a string type and id", _brief(obj))
                )
                continue
            old = self.objects.get(obj["id"])
            if old is not None:
                self.repeated += 1
                if str(obj.get("modified", "")) < str(old.get("modified", "")):
                    continue
            self.objects[obj["id"]] = obj

    def _fail(self, kind: str, code: Code, reason: str, obj: Any) -> None:
        self.failures.append((kind, code, reason, _brief(obj)))

    def run(self) -> None:
        for obj in self.objects.values():
            if obj["type"] == "marking-definition":
                self._marking(obj)
        for obj in self.objects.values():
            self._item(obj)
        for obj in self.objects.values():
            self._links(obj)
        for ident, obj in self.objects.items():
            if ident not in self.consumed and ident not in self.refs and obj["type"] not in METADATA_TYPES:
                self.unsupported[obj["type"]] += 1

    def _marking(self, obj: Json) -> None:
        definition = obj.get("definition") if isinstance(obj.get("definition"), dict) else {}
        texts = [obj.get("name"), definition.get("statement"), definition.get("tlp")]
        for text in texts:
            if not isinstance(text, str):
                continue
            name = text.strip().upper()
            name = name if name.startswith("TLP:") else f"TLP:{name}"
            try:
                [label] = f.parse_labels(name, Code.INVALID_INDICATOR)
            except ValueError:
                continue
            self.tlp.setdefault(obj["id"], label)
            return
        self.unsupported["marking-definition"] += 1

    def _common(self, obj: Json) -> Json:
        attributes: list[Any] = []
        if obj.get("description") not in (None, ""):
            attributes.append({"type": "Description", "value": obj["description"]})
        attributes += f.as_list(obj.get("x_assay_attributes"))
        marks = [self.tlp[m] for m in f.as_list(obj.get("object_marking_refs")) if isinstance(m, str) and m in self.tlp]
        return {
            "xid": obj["id"],
            "tag": obj.get("labels"),
            "securityLabel": sorted(set(marks)),
            "attribute": attributes,
        }

    def _item(self, obj: Json) -> None:
        kind = obj["type"]
        if kind == "indicator":
            self._indicator(obj)
        elif kind in SDO_GROUPS:
            self._group(obj, _group_kind(obj, SDO_GROUPS[kind]))
        elif kind in SCO_TYPES:
            self._sco(obj)

    def _indicator(self, obj: Json) -> None:
        pattern_type = obj.get("pattern_type", "stix")
        if pattern_type != "stix":
            signature = SIGNATURE_BY_PATTERN.get(str(pattern_type).lower())
            if signature is None:
                return  # counted as unsupported
            self._signature(obj, signature)
            return
        try:
            itype, summary = parse_pattern(obj.get("pattern"))
        except PatternError as exc:
            self.refs[obj["id"]] = None
            self._fail("indicator", Code.INVALID_INDICATOR, f"{obj['id']}: {exc}", obj)
            return
        item = {**self._common(obj), "type": itype, "summary": summary, "confidence": obj.get("confidence")}
        if obj.get("x_assay_rating") is not None:
            item["rating"] = obj["x_assay_rating"]
        self.job.indicator(item)
        self.refs[obj["id"]] = Ref("indicator", itype, summary)

    def _signature(self, obj: Json, signature_type: str) -> None:
        extra = obj.get("x_assay_fields") if isinstance(obj.get("x_assay_fields"), dict) else {}
        name = obj.get("name") if isinstance(obj.get("name"), str) and obj["name"].strip() else obj["id"]
        file_name = extra.get("fileName") or f"{name}.{signature_type.lower()}"
        item = {**self._common(obj), "type": "Signature", "name": name, "fileName": file_name}
        item.update({"fileType": signature_type, "fileText": obj.get("pattern")})
        self.job.group(item)
        self.refs[obj["id"]] = Ref("group", "Signature", obj["id"])

    def _group(self, obj: Json, kind: str) -> None:
        item = {**self._common(obj), "type": kind, "name": obj.get("name")}
        item.update(_native_fields(obj, kind))
        extra = obj.get("x_assay_fields")
        if isinstance(extra, dict):
            allowed = {spec.name for spec in GROUP_FIELDS.get(kind, ())}
            item.update({k: v for k, v in extra.items() if k in allowed})
        self.job.group(item)
        self.refs[obj["id"]] = Ref("group", kind, obj["id"])

    def _sco(self, obj: Json) -> None:
        values = _sco_values(obj)
        if not values:
            return  # a file without usable hashes, a registry key without key: unsupported
        first = True
        for itype, summary in values:
            self.job.indicator({"type": itype, "summary": summary, "xid": obj["id"]})
            if first:
                self.refs[obj["id"]] = Ref("indicator", itype, summary)
                first = False

    # --- second pass: links ----------------------------------------------------------------------

    def _links(self, obj: Json) -> None:
        kind = obj["type"]
        if kind == "relationship":
            self._associate(obj, obj.get("source_ref"), obj.get("target_ref"))
        elif kind in ("report", "grouping") and obj["id"] in self.refs:
            for ref in f.as_list(obj.get("object_refs")):
                if isinstance(ref, str) and self.refs.get(ref) is not None:
                    self._associate(None, obj["id"], ref)
        elif kind == "sighting":
            self._sighting(obj)

    def _associate(self, rel: Json | None, source: Any, target: Any) -> None:
        if rel is not None:
            self.consumed.add(rel["id"])
        if not isinstance(source, str) or not isinstance(target, str) or source == target:
            self._fail("association", Code.ASSOCIATION, "relationship needs two distinct refs", rel)
            return
        skipped = [r for r in (source, target) if r in self.objects and r not in self.refs]
        if skipped:
            self.unsupported[f"relationship to {self.objects[skipped[0]]['type']}"] += 1
            return
        a, b = (self.refs[r] if r in self.refs else _external(r) for r in (source, target))
        if a is None or b is None:
            self._fail("association", Code.ITEM_NOT_FOUND, f"{source} → {target}: an end was rejected", rel)
            return
        key = frozenset((source, target))
        if key not in self.pairs:
            self.pairs.add(key)
            self._queue_association(a, b)

    def _queue_association(self, a: Ref, b: Ref) -> None:
        if {a.kind, b.kind} == {"group", "indicator"}:
            group, indicator = (a, b) if a.kind == "group" else (b, a)
            if group.type:
                self.job.group_association(
                    {"group_xid": group.key, "indicator": indicator.key, "indicator_type": indicator.type}
                )
                return
        self.job.association({"ref_1": a.key, "type_1": a.type or None, "ref_2": b.key, "type_2": b.type or None})

    def _sighting(self, obj: Json) -> None:
        target = obj.get("sighting_of_ref")
        ref = self.refs.get(target) if isinstance(target, str) else None
        if ref is None or ref.kind != "indicator" or ref.type != "File":
            return  # counted as unsupported: only sightings of File indicators have a place
        self.consumed.add(obj["id"])
        files = self._observed_files(obj)
        date = obj.get("first_seen")
        for name, path in files or [(None, None)]:
            self.job.file_occurrence({"hash": ref.key, "fileName": name, "path": path, "date": date})

    def _observed_files(self, sighting: Json) -> list[tuple[Any, Any]]:
        out = []
        for od_id in f.as_list(sighting.get("observed_data_refs")):
            observed = self.objects.get(od_id) if isinstance(od_id, str) else None
            if observed is None or observed.get("type") != "observed-data":
                continue
            self.consumed.add(od_id)
            for ref in f.as_list(observed.get("object_refs")):
                sco = self.objects.get(ref) if isinstance(ref, str) else None
                if sco is None or sco.get("type") != "file":
                    continue
                self.consumed.add(ref)
                parent = sco.get("parent_directory_ref")
                directory = self.objects.get(parent) if isinstance(parent, str) else None
                path = directory.get("path") if isinstance(directory, dict) else None
                if isinstance(directory, dict):
                    self.consumed.add(directory["id"])
                out.append((sco.get("name"), path))
        return out


def _external(ident: str) -> Ref | None:
    """An id not in the bundle: looked up by xid in the store (type left open)."""
    return Ref("external", "", ident) if "--" in ident else None


def _group_kind(obj: Json, default: str) -> str:
    custom = obj.get("x_assay_type")
    if isinstance(custom, str) and is_group_type(custom) and canonical_group_type(custom) != "Signature":
        return canonical_group_type(custom)
    return default


def _native_fields(obj: Json, kind: str) -> Json:
    if kind == "Campaign" and obj.get("first_seen"):
        return {"firstSeen": obj["first_seen"]}
    if kind == "Report" and obj.get("published"):
        return {"publishDate": obj["published"]}
    return {}


def _sco_values(obj: Json) -> list[tuple[str, str]]:
    kind = obj["type"]
    if kind in VALUE_SCOS and isinstance(obj.get("value"), str):
        base = VALUE_SCOS[kind]
        return [("CIDR" if base == "Address" and "/" in obj["value"] else base, obj["value"])]
    if kind == "file" and isinstance(obj.get("hashes"), dict):
        hashes = {HASH_NAMES.get(str(k).lower()): v for k, v in obj["hashes"].items() if isinstance(v, str)}
        found = [hashes[k] for k in ("md5", "sha1", "sha256") if hashes.get(k)]
        return [("File", " : ".join(found))] if found else []
    if kind == "autonomous-system" and isinstance(obj.get("number"), int):
        return [("ASN", f"ASN{obj['number']}")]
    if kind == "mutex" and isinstance(obj.get("name"), str):
        return [("Mutex", obj["name"])]
    if kind == "windows-registry-key" and isinstance(obj.get("key"), str):
        values = [v for v in f.as_list(obj.get("values")) if isinstance(v, dict)] or [{}]
        return [
            ("Registry Key", f"{obj['key']} : {v.get('name') or ''} : {_reg_type(v.get('data_type'))}") for v in values
        ]
    return []


def _reg_type(value: Any) -> str:
    text = str(value or "REG_NONE")
    return REG_FROM_STIX.get(text, text)


def _brief(obj: Any) -> Any:
    """The offending object for a report, cut down so a hostile bundle cannot bloat the result."""
    if isinstance(obj, dict):
        return {k: obj[k] for k in ("type", "id", "name", "pattern") if k in obj and isinstance(obj[k], str | int)}
    return repr(obj)[:200]


def _failed(code: Code, reason: str, unsupported: dict[str, int] | None = None) -> StixImportResult:
    result = StixImportResult(unsupported=unsupported or {})
    result.critical("indicator", code, reason)
    return result


def import_bundle(
    bundle: str | bytes | Json,
    owner: str,
    engine: Engine | None = None,
    *,
    max_objects: int = MAX_OBJECTS,
    max_bytes: int = MAX_BYTES,
) -> StixImportResult:
    """Import a STIX 2.1 bundle (text or parsed) for `owner`; never raises for bad input."""
    try:
        data = load_bundle(bundle, max_bytes)
    except StixImportError as exc:
        return _failed(Code.JSON_SYNTAX, str(exc))
    objects = data.get("objects", [])
    if len(objects) > max_objects:
        return _failed(Code.INDICATOR_LIMIT, f"bundle holds {len(objects)} objects; the limit is {max_objects}")
    try:
        job = Job(owner=owner, engine=engine)
    except ValueError as exc:
        return _failed(Code.GENERAL, str(exc))
    translator = Translator(objects, job)
    translator.run()
    processed = job.process()
    result = StixImportResult(
        **{fld.name: getattr(processed, fld.name) for fld in dataclass_fields(JobResult)},
        unsupported=dict(sorted(translator.unsupported.items())),
    )
    _report(result, translator)
    return result


def _report(result: StixImportResult, translator: Translator) -> None:
    for kind, code, reason, item in translator.failures:
        result.counts[kind].submitted += 1
        result.fail(kind, code, reason, item)
    for stix_type, count in result.unsupported.items():
        observable = stix_type in OBSERVABLE_TYPES
        code = Code.INDICATOR_PARTIAL_LOSS if observable else Code.GROUP_PARTIAL_LOSS
        kind = "indicator" if observable else "group"
        reason = f"{count} STIX {stix_type} object(s) have no place in the store and were not imported"
        result.warn(kind, code, reason, {"type": stix_type, "count": count})
    if translator.repeated:
        reason = f"{translator.repeated} object(s) repeated an id; the latest version of each was used"
        result.warn("indicator", Code.DUPLICATE_ITEM, reason, None)


def import_stix(bundle_json_or_dict: str | bytes | Json, owner: str, engine: Engine | None = None) -> JobResult:
    """The entry point the issue names: `import_bundle` with the default limits."""
    return import_bundle(bundle_json_or_dict, owner, engine)
