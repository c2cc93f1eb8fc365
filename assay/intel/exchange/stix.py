"""A Selection as a STIX 2.1 bundle, built with the `stix2` library and byte-identical on every run.

Determinism: every SDO, SRO, marking and the bundle get a UUIDv5 id over a stable key (owner,
type, summary or xid or name), `created`/`modified` come from the store's timestamps, objects are
sorted by id and serialised with sorted keys. SCO ids are stix2's own UUIDv5 over their
contributing properties (hashes are stored lower-case already).

Mapping choices:
- Indicators: an `indicator` SDO with a STIX pattern (see `observable`), plus the matching SCO
  (User Agent has no SCO: a network-traffic SCO would need invented endpoints). `confidence` is the
  store's 0-100 confidence; the 0-5 threat rating travels as `x_assay_rating`.
- Groups: Adversary → threat-actor, Attack Pattern, Campaign, Course of Action, Incident,
  Intrusion Set, Malware (is_family), Report, Tool, Vulnerability → their SDO. A Signature becomes
  an `indicator` whose pattern is the rule text and pattern_type the rule language (yara, snort,
  suricata, sigma, pcre for Regex, else the lower-cased name). Document, Email, Event, Tactic and
  Threat have no STIX SDO: they become a `grouping` (context suspicious-activity for Email and
  Event, malware-analysis for a Document flagged as malware, else unspecified). Every group
  carries `x_assay_type` (its store type) and, when it has some, `x_assay_fields` (type-specific
  fields) and `x_assay_attributes` (attributes other than its description), so an Assay importer
  rebuilds it exactly while other consumers see plain STIX.
- Associations: indicator → group `indicates` when STIX allows that target, else `related-to`;
  group ↔ group and indicator ↔ indicator `related-to`. Reports and groupings also list their
  associated objects in `object_refs` (the owner's identity when they have none, since STIX
  requires one).
- File occurrences: a File SCO (hashes, name, parent directory), a Directory SCO (path), an
  observed-data over both, and a sighting of the file's indicator with first/last seen = the date.
- Security labels: TLP:CLEAR → stix2.TLP_WHITE, GREEN/AMBER/RED → the stix2 TLP markings;
  TLP:AMBER+STRICT, absent from TLP 1.0, is a statement marking named "TLP:AMBER+STRICT" with a
  fixed id (`AMBER_STRICT`), which the importer recognises. Any other marking (REL TO groups,
  another scheme's levels) adds a statement marking naming it in full, after the TLP marking of
  its level when it has one, so a recipient sees both the TLP and to whom it is released. An
  export made for a reader carries each row's marking as its one label (see `select`), and
  marks sightings with their occurrence's. Tags become `labels`; the first Description
  attribute becomes `description`.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime
from functools import cache
from typing import Any

import stix2
from stix2.exceptions import InvalidValueError
from stix2.v21 import URL as UrlSco
from stix2.v21 import (
    AttackPattern,
    AutonomousSystem,
    Bundle,
    Campaign,
    CourseOfAction,
    Directory,
    DomainName,
    EmailAddress,
    File,
    Grouping,
    Identity,
    Incident,
    Indicator,
    IntrusionSet,
    IPv4Address,
    IPv6Address,
    Malware,
    MarkingDefinition,
    Mutex,
    ObservedData,
    Relationship,
    Report,
    Sighting,
    StatementMarking,
    ThreatActor,
    Tool,
    Vulnerability,
    WindowsRegistryKey,
)
from stix2.v21.base import _STIXBase21
from stix2patterns.validator import run_validator

from assay.intel.exchange.select import Selection
from assay.intel.fields import tlp_level

Json = dict[str, Any]
NAMESPACE = uuid.UUID("5d0c52d4-2a4e-5b4e-9c43-6f1a3b0e7a11")  # Assay's namespace for STIX ids
AMBER_STRICT_CREATED = datetime(2022, 8, 1, tzinfo=UTC)  # TLP 2.0 publication date
AMBER_STRICT = MarkingDefinition(
    id=f"marking-definition--{uuid.uuid5(NAMESPACE, 'TLP:AMBER+STRICT')}",
    created=AMBER_STRICT_CREATED,
    name="TLP:AMBER+STRICT",
    definition_type="statement",
    definition=StatementMarking("TLP:AMBER+STRICT"),
)
TLP_MARKINGS: dict[str, MarkingDefinition] = {
    "TLP:CLEAR": stix2.TLP_WHITE,
    "TLP:GREEN": stix2.TLP_GREEN,
    "TLP:AMBER": stix2.TLP_AMBER,
    "TLP:AMBER+STRICT": AMBER_STRICT,
    "TLP:RED": stix2.TLP_RED,
}


@cache
def _statement(label: str) -> MarkingDefinition:
    return MarkingDefinition(
        id=f"marking-definition--{uuid.uuid5(NAMESPACE, f'label|{label}')}",
        created=AMBER_STRICT_CREATED,
        name=label,
        definition_type="statement",
        definition=StatementMarking(label),
    )


def markings_of(label: str) -> list[MarkingDefinition]:
    """The marking definitions one security label stands for (see the module's mapping)."""
    if label in TLP_MARKINGS:
        return [TLP_MARKINGS[label]]
    level = tlp_level(label)
    return [*([TLP_MARKINGS[level]] if level else []), _statement(label)]


GROUP_SDOS: dict[str, type[_STIXBase21]] = {
    "Adversary": ThreatActor,
    "Attack Pattern": AttackPattern,
    "Campaign": Campaign,
    "Course of Action": CourseOfAction,
    "Incident": Incident,
    "Intrusion Set": IntrusionSet,
    "Malware": Malware,
    "Report": Report,
    "Tool": Tool,
    "Vulnerability": Vulnerability,
}
GROUPING_CONTEXT = {"Email": "suspicious-activity", "Event": "suspicious-activity"}
SIGNATURE_PATTERN_TYPES = {"YARA": "yara", "Snort": "snort", "Suricata": "suricata", "Sigma": "sigma", "Regex": "pcre"}
INDICATES_TARGETS = ("attack-pattern", "campaign", "infrastructure", "intrusion-set", "malware", "threat-actor", "tool")
# STIX's registry value type names, where they differ from the store's (QWORD_LITTLE_ENDIAN has none)
REG_TO_STIX = {"REG_FULL_RESOURCE_DESCRIPTOR": "REG_FULL_RESOURCE_DESCRIPTION", "REG_QWORD_LITTLE_ENDIAN": "REG_QWORD"}
UA_PATH = "network-traffic:extensions.'http-request-ext'.request_header.'User-Agent'"


_LITERAL = re.compile(r"'(?:[^'\\]|\\.)*'")
_NUMBER = re.compile(r"= \d+")
_HEX = re.compile(r"[0-9a-f]+")


def _placeholder(match: re.Match[str]) -> str:
    """A literal's stand-in: zeros of the same length for hex (the validator checks hash formats)."""
    inner = match.group(0)[1:-1]
    return f"'{'0' * len(inner)}'" if _HEX.fullmatch(inner) else "'x'"


@cache
def _shape_errors(shape: str) -> tuple[str, ...]:
    return tuple(str(e) for e in run_validator(shape, "2.1"))


class BuiltIndicator(Indicator):
    """An Indicator whose STIX pattern `observable` wrote from a fixed template.

    stix2 runs the ANTLR pattern validator on every Indicator, which costs more than everything
    else of an export. Patterns written here differ only in their quoted literals, so the pattern's
    shape (literals replaced by a placeholder) is validated instead, once per shape.
    """

    def _check_object_constraints(self) -> None:
        super(Indicator, self)._check_object_constraints()
        shape = _NUMBER.sub("= 0", _LITERAL.sub(_placeholder, self.get("pattern", "")))
        errors = _shape_errors(shape)
        if errors:
            raise InvalidValueError(self.__class__, "pattern", errors[0])


def stable_id(kind: str, *parts: Any) -> str:
    """`<kind>--<uuid5>` over the parts joined by a separator that cannot occur in them unescaped."""
    key = json.dumps([kind, *[str(p) for p in parts]], ensure_ascii=False)
    return f"{kind}--{uuid.uuid5(NAMESPACE, key)}"


def quote(value: str) -> str:
    """A STIX pattern string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def pattern_type_of(signature_type: str) -> str:
    return SIGNATURE_PATTERN_TYPES.get(signature_type, signature_type.lower().replace(" ", "-"))


def _file_hashes(row: Json) -> dict[str, str]:
    names = (("sha256", "SHA-256"), ("sha1", "SHA-1"), ("md5", "MD5"))
    return {stix: row[col] for col, stix in names if row.get(col)}


def _registry_parts(summary: str) -> tuple[str, str, str]:
    key, name, reg_type = summary.split(" : ")
    return key, name, REG_TO_STIX.get(reg_type, reg_type)


def observable(row: Json) -> tuple[str, list[_STIXBase21]]:
    """The STIX pattern of an indicator row and the SCOs that show its value."""
    kind, value = row["type"], row["summary"]
    if kind in ("Address", "CIDR"):
        sco_type, cls = ("ipv6-addr", IPv6Address) if ":" in value else ("ipv4-addr", IPv4Address)
        return f"[{sco_type}:value = {quote(value)}]", [cls(value=value)]
    simple = {"Host": ("domain-name", DomainName), "URL": ("url", UrlSco), "EmailAddress": ("email-addr", EmailAddress)}
    if kind in simple:
        sco_type, cls = simple[kind]
        return f"[{sco_type}:value = {quote(value)}]", [cls(value=value)]
    if kind == "File":
        hashes = _file_hashes(row)
        terms = " OR ".join(f"file:hashes.{quote(k) if '-' in k else k} = {quote(v)}" for k, v in hashes.items())
        return f"[{terms}]", [File(hashes=hashes)]
    if kind == "ASN":
        number = int(value.removeprefix("ASN"))
        return f"[autonomous-system:number = {number}]", [AutonomousSystem(number=number)]
    if kind == "Mutex":
        return f"[mutex:name = {quote(value)}]", [Mutex(name=value)]
    if kind == "Registry Key":
        key, name, reg_type = _registry_parts(value)
        terms = [f"windows-registry-key:key = {quote(key)}"]
        terms += [f"windows-registry-key:values[*].name = {quote(name)}"] if name else []
        terms.append(f"windows-registry-key:values[*].data_type = {quote(reg_type)}")
        sco = WindowsRegistryKey(key=key, values=[{"name": name, "data_type": reg_type}])
        return "[" + " AND ".join(terms) + "]", [sco]
    if kind == "User Agent":
        return f"[{UA_PATH} = {quote(value)}]", []
    raise ValueError(f"no STIX pattern for indicator type {kind!r}")


def _modified(row: Json) -> datetime:
    updated = row.get("updated_at") or row["created_at"]
    return max(updated, row["created_at"])


def _description(attributes: list[Json]) -> tuple[str | None, list[Json]]:
    """The first Description attribute, and the other attributes."""
    for index, attr in enumerate(attributes):
        if str(attr.get("type", "")).lower() == "description":
            return str(attr["value"]), attributes[:index] + attributes[index + 1 :]
    return None, list(attributes)


class StixBuilder:
    """Turns one Selection into the objects of a bundle."""

    def __init__(self, sel: Selection) -> None:
        self.sel = sel
        self.owner = sel.owner["name"]
        self.objects: dict[str, _STIXBase21] = {}
        self.identity = self._identity()
        self.indicator_ids = {
            row["id"]: stable_id("indicator", self.owner, row["type"], row["summary"]) for row in sel.indicators
        }
        self.group_ids = self._group_ids()
        self.indicator_rows = {row["id"]: row for row in sel.indicators}
        self.members = self._index_members()

    def _add(self, obj: _STIXBase21) -> str:
        self.objects.setdefault(obj.id, obj)
        return obj.id

    def _identity(self) -> str:
        owner = self.sel.owner
        klass = "organization" if owner.get("kind", "Organization") == "Organization" else "group"
        created = owner["created_at"]
        ident = Identity(
            id=stable_id("identity", self.owner),
            name=self.owner,
            identity_class=klass,
            created=created,
            modified=created,
        )
        return self._add(ident)

    def _group_ids(self) -> dict[int, str]:
        """Ids by xid when there is one, else by name (with a counter for namesakes, oldest first)."""
        ids: dict[int, str] = {}
        seen: dict[tuple[str, str], int] = {}
        for row in self.sel.groups:
            stix_type = self.stix_type(row)
            if row["xid"]:
                ids[row["id"]] = stable_id(stix_type, self.owner, row["type"], "xid", row["xid"])
                continue
            n = seen[(row["type"], row["name"])] = seen.get((row["type"], row["name"]), 0) + 1
            ids[row["id"]] = stable_id(stix_type, self.owner, row["type"], "name", row["name"], n)
        return ids

    @staticmethod
    def stix_type(row: Json) -> str:
        if row["type"] in GROUP_SDOS:
            return GROUP_SDOS[row["type"]]._type
        return "indicator" if row["type"] == "Signature" else "grouping"

    def _common(self, row: Json) -> Json:
        description, others = _description(row.get("attributes") or [])
        base: Json = {"created": row["created_at"], "modified": _modified(row), "created_by_ref": self.identity}
        optional = {
            "description": description,
            "labels": list(row.get("tags") or []) or None,
            "object_marking_refs": self._markings(row.get("security_labels")),
        }
        base.update({k: v for k, v in optional.items() if v is not None})
        custom = {"x_assay_attributes": others or None}
        return {**base, "custom_properties": {k: v for k, v in custom.items() if v is not None}}

    def _markings(self, labels: list[str] | None) -> list[str] | None:
        """The ids of the markings of `labels`, each added to the bundle once; None without labels."""
        refs = [self._add(marking) for label in labels or [] for marking in markings_of(label)]
        return list(dict.fromkeys(refs)) or None

    def build(self) -> list[_STIXBase21]:
        for row in self.sel.indicators:
            self._indicator(row)
        for row in self.sel.groups:
            self._group(row)
        self._relationships()
        for occurrence in self.sel.occurrences:
            self._sighting(occurrence)
        return [self.objects[k] for k in sorted(self.objects)]

    def _indicator(self, row: Json) -> None:
        pattern, scos = observable(row)
        kwargs = self._common(row)
        if row.get("confidence") is not None:
            kwargs["confidence"] = row["confidence"]
        if row.get("rating") is not None:
            kwargs["custom_properties"]["x_assay_rating"] = row["rating"]
        indicator = BuiltIndicator(
            id=self.indicator_ids[row["id"]],
            name=row["summary"],
            pattern=pattern,
            pattern_type="stix",
            valid_from=row.get("first_seen") or row["created_at"],
            **kwargs,
        )
        self._add(indicator)
        for sco in scos:
            self._add(sco)

    def _members(self, group_id: int) -> list[str]:
        return sorted(self.members.get(group_id, ())) or [self.identity]

    def _index_members(self) -> dict[int, set[str]]:
        members: dict[int, set[str]] = {}
        for g, i in self.sel.group_indicator:
            members.setdefault(g, set()).add(self.indicator_ids[i])
        for a, b in self.sel.group_group:
            members.setdefault(a, set()).add(self.group_ids[b])
            members.setdefault(b, set()).add(self.group_ids[a])
        return members

    def _group(self, row: Json) -> None:
        kwargs = self._common(row)
        fields = dict(row.get("fields") or {})
        kwargs["custom_properties"]["x_assay_type"] = row["type"]
        if fields:
            kwargs["custom_properties"]["x_assay_fields"] = fields
        ident, kind = self.group_ids[row["id"]], row["type"]
        if kind == "Signature":
            obj: _STIXBase21 = Indicator(
                id=ident,
                name=row["name"],
                pattern=fields.get("fileText", ""),
                pattern_type=pattern_type_of(fields.get("fileType", "")),
                valid_from=row["created_at"],
                **kwargs,
            )
        elif kind in GROUP_SDOS:
            obj = GROUP_SDOS[kind](id=ident, name=row["name"], **kwargs, **self._specific(row, fields))
        else:
            context = GROUPING_CONTEXT.get(kind, "unspecified")
            if kind == "Document" and fields.get("malware"):
                context = "malware-analysis"
            obj = Grouping(id=ident, name=row["name"], context=context, object_refs=self._members(row["id"]), **kwargs)
        self._add(obj)

    def _specific(self, row: Json, fields: Json) -> Json:
        kind = row["type"]
        if kind == "Malware":
            return {"is_family": True}
        if kind == "Campaign" and fields.get("firstSeen"):
            return {"first_seen": datetime.fromisoformat(fields["firstSeen"])}
        if kind == "Report":
            published = fields.get("publishDate")
            when = datetime.fromisoformat(published) if published else row["created_at"]
            return {"published": when, "object_refs": self._members(row["id"])}
        return {}

    def _relationship(self, source: str, kind: str, target: str, created: datetime) -> None:
        self._add(
            Relationship(
                id=stable_id("relationship", source, kind, target),
                source_ref=source,
                relationship_type=kind,
                target_ref=target,
                created=created,
                modified=created,
                created_by_ref=self.identity,
            )
        )

    def _relationships(self) -> None:
        groups = {row["id"]: row for row in self.sel.groups}
        for (g, i), created in self.sel.group_indicator.items():
            target = self.group_ids[g]
            kind = "indicates" if self.stix_type(groups[g]) in INDICATES_TARGETS else "related-to"
            self._relationship(self.indicator_ids[i], kind, target, created)
        for (a, b), created in self.sel.group_group.items():
            self._relationship(self.group_ids[a], "related-to", self.group_ids[b], created)
        for (a, b), created in self.sel.indicator_indicator.items():
            self._relationship(self.indicator_ids[a], "related-to", self.indicator_ids[b], created)

    def _sighting(self, occ: Json) -> None:
        row = self.indicator_rows[occ["indicator_id"]]
        file_props: Json = {"hashes": _file_hashes(row)}
        refs = []
        if occ.get("path"):
            directory = Directory(path=occ["path"])
            file_props["parent_directory_ref"] = self._add(directory)
            refs.append(directory.id)
        if occ.get("file_name"):
            file_props["name"] = occ["file_name"]
        refs.insert(0, self._add(File(**file_props)))
        indicator = self.indicator_ids[row["id"]]
        seen = occ.get("date") or occ["created_at"]
        created = occ["created_at"]
        marks = self._markings(occ.get("security_labels"))
        marked = {"object_marking_refs": marks} if marks else {}
        observed = ObservedData(
            id=stable_id("observed-data", indicator, occ["fingerprint"]),
            created=created,
            modified=created,
            created_by_ref=self.identity,
            first_observed=seen,
            last_observed=seen,
            number_observed=1,
            object_refs=refs,
            **marked,
        )
        dates = {"first_seen": occ["date"], "last_seen": occ["date"]} if occ.get("date") else {}
        sighting = Sighting(
            id=stable_id("sighting", indicator, occ["fingerprint"]),
            created=created,
            modified=created,
            created_by_ref=self.identity,
            sighting_of_ref=indicator,
            observed_data_refs=[self._add(observed)],
            where_sighted_refs=[self.identity],
            count=1,
            **dates,
            **marked,
        )
        self._add(sighting)


def to_bundle(sel: Selection) -> Bundle:
    """The selection as a stix2 Bundle (deterministic id and object order)."""
    objects = StixBuilder(sel).build()
    return Bundle(objects=objects, id=stable_id("bundle", sel.key), allow_custom=True)


def export_stix(sel: Selection) -> str:
    """The bundle as JSON text with sorted keys: the same store gives the same bytes."""
    return to_bundle(sel).serialize(sort_keys=True, indent=2, ensure_ascii=False)
