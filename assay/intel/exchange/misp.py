"""A Selection as one MISP event, built with PyMISP, with the same bytes on every run.

Mapping (type, category, to_ids):
- Address and CIDR → ip-dst, Network activity, yes. Host → `domain` when it is a registrable
  domain (its own public-suffix "SLD", or two labels), else `hostname`; Network activity, yes.
  URL → url, Network activity, yes. EmailAddress → email-src (an indicator's address is
  usually the sender), Payload delivery, yes. User Agent → user-agent, Network activity, no.
  ASN → AS (the number only, as MISP stores it), Network activity, no.
- File → one md5 / sha1 / sha256 attribute per known hash, Payload delivery, yes; each file
  occurrence adds `filename|sha256` (or |sha1, |md5 when that is the best hash) and a `file`
  object with filename, path and the hashes (first/last seen = the occurrence date).
- Mutex → mutex, Artifacts dropped, yes. Registry Key → regkey (the key path; the value name and
  type go into the comment), Artifacts dropped, yes.
- Tags become attribute tags, security labels `tlp:clear` ... `tlp:red` tags; a label that is not
  a plain TLP name (REL TO groups, another scheme) adds `assay:classification="<marking>"` after
  the `tlp:` tag of its level, if it has one. A file occurrence's `filename|` attribute carries
  the occurrence's labels when it has its own (exports made for a reader, see `select`). Groups
  associated with an indicator tag it `assay:group="<type>: <name>"` (MISP galaxies would need a
  cluster catalogue we do not have). The event carries the most restrictive TLP of the selection
  and the tags of the selected group.
- The first Description attribute becomes the MISP comment.

MISP refuses two attributes with the same (value, type, category) in one event: a second one is
folded into the first (tags united). Event, attribute and object uuids are UUIDv5 over the
selection's key and the item, so re-exports are identical.
"""

from __future__ import annotations

import json
import uuid
from functools import cache
from typing import Any

import publicsuffix2
from pymisp import MISPAttribute, MISPEvent, MISPObject

from assay.intel.exchange.select import Selection
from assay.intel.exchange.stix import NAMESPACE
from assay.intel.fields import TLP_LABELS, tlp_level

Json = dict[str, Any]
NETWORK, PAYLOAD, DROPPED = "Network activity", "Payload delivery", "Artifacts dropped"
SIMPLE_TYPES: dict[str, tuple[str, str, bool]] = {
    "Address": ("ip-dst", NETWORK, True),
    "CIDR": ("ip-dst", NETWORK, True),
    "URL": ("url", NETWORK, True),
    "EmailAddress": ("email-src", PAYLOAD, True),
    "User Agent": ("user-agent", NETWORK, False),
    "Mutex": ("mutex", DROPPED, True),
}
HASHES = ("md5", "sha1", "sha256")


@cache
def _psl() -> publicsuffix2.PublicSuffixList:
    # The bundled list, named explicitly: publicsuffix2 only downloads through fetch().
    return publicsuffix2.PublicSuffixList(publicsuffix2.PSL_FILE)


def host_type(host: str) -> str:
    """`domain` for a registrable domain, `hostname` for a name below one."""
    if host.count(".") == 1 or _psl().get_sld(host) == host:
        return "domain"
    return "hostname"


def tlp_tag(label: str) -> str:
    return label.lower()


def label_tags(label: str) -> list[str]:
    """The MISP tags of one security label (see the module's mapping)."""
    if label in TLP_LABELS:
        return [tlp_tag(label)]
    level = tlp_level(label)
    return [*([tlp_tag(level)] if level else []), f'assay:classification="{label}"']


def _description(row: Json) -> str | None:
    for attr in row.get("attributes") or []:
        if str(attr.get("type", "")).lower() == "description":
            return str(attr["value"])
    return None


class MispBuilder:
    """Turns one Selection into a MISPEvent."""

    def __init__(self, sel: Selection) -> None:
        self.sel = sel
        self.event = MISPEvent()
        self.event.uuid = str(uuid.uuid5(NAMESPACE, f"misp|{sel.key}"))
        self.base = uuid.UUID(self.event.uuid)
        self.attributes: dict[tuple[str, str, str], MISPAttribute] = {}
        self.groups_of: dict[int, list[str]] = {}
        groups = {g["id"]: g for g in sel.groups}
        for group_id, indicator_id in sel.group_indicator:
            group = groups[group_id]
            self.groups_of.setdefault(indicator_id, []).append(f'assay:group="{group["type"]}: {group["name"]}"')

    def _uuid(self, *parts: Any) -> str:
        return str(uuid.uuid5(self.base, "|".join(str(p) for p in parts)))

    def build(self) -> MISPEvent:
        event = self.event
        event.info = self.sel.label or self.sel.key
        stamps = [r["created_at"] for r in [*self.sel.indicators, *self.sel.groups]] or [self.sel.owner["created_at"]]
        event.set_date(max(stamps).date())
        for row in self.sel.indicators:
            self._indicator(row)
        rows = {r["id"]: r for r in self.sel.indicators}
        for occurrence in self.sel.occurrences:
            self._occurrence(rows[occurrence["indicator_id"]], occurrence)
        self._event_tags()
        return event

    def _event_tags(self) -> None:
        rows = [*self.sel.indicators, *self.sel.groups, *self.sel.occurrences]
        levels = {level for r in rows for label in r.get("security_labels") or [] if (level := tlp_level(label))}
        if levels:
            self.event.add_tag(tlp_tag(max(levels, key=TLP_LABELS.index)))
        root = self.sel.root_group
        if root is not None:
            for tag in root.get("tags") or []:
                self.event.add_tag(tag)

    def _tags(self, row: Json) -> list[str]:
        labels = row.get("security_labels") or []
        tags = list(row.get("tags") or []) + [tag for label in labels for tag in label_tags(label)]
        return tags + self.groups_of.get(row["id"], [])

    def _add(self, row: Json, kind: str, category: str, value: str, to_ids: bool, comment: str | None = None) -> None:
        key = (value, kind, category)
        tags = self._tags(row)
        existing = self.attributes.get(key)
        if existing is not None:
            known = {t.name for t in existing.tags}
            for tag in tags:
                if tag not in known:
                    existing.add_tag(tag)
            return
        extra: Json = {"uuid": self._uuid("attribute", kind, category, value)}
        description = comment or _description(row)
        if description:
            extra["comment"] = description
        for stamp in ("first_seen", "last_seen"):
            if row.get(stamp):
                extra[stamp] = row[stamp]
        attribute = self.event.add_attribute(kind, value, category=category, to_ids=to_ids, **extra)
        for tag in tags:
            attribute.add_tag(tag)
        self.attributes[key] = attribute

    def _indicator(self, row: Json) -> None:
        kind, value = row["type"], row["summary"]
        if kind in SIMPLE_TYPES:
            misp_type, category, to_ids = SIMPLE_TYPES[kind]
            self._add(row, misp_type, category, value, to_ids)
        elif kind == "Host":
            self._add(row, host_type(value), NETWORK, value, True)
        elif kind == "ASN":
            self._add(row, "AS", NETWORK, value.removeprefix("ASN"), False)
        elif kind == "Registry Key":
            key, name, reg_type = value.split(" : ")
            comment = f"value {name!r} ({reg_type})" if name else f"({reg_type})"
            self._add(row, "regkey", DROPPED, key, True, comment=_description(row) or comment)
        elif kind == "File":
            for algo in HASHES:
                if row.get(algo):
                    self._add(row, algo, PAYLOAD, row[algo], True)

    def _occurrence(self, row: Json, occ: Json) -> None:
        if "security_labels" in occ:
            row = {**row, "security_labels": occ["security_labels"]}
        best = next(a for a in reversed(HASHES) if row.get(a))
        if occ.get("file_name"):
            self._add(row, f"filename|{best}", PAYLOAD, f"{occ['file_name']}|{row[best]}", True)
        obj = MISPObject("file", standalone=False)
        obj.uuid = self._uuid("object", row["id"], occ["fingerprint"])
        if occ.get("date"):
            obj.first_seen = occ["date"]
            obj.last_seen = occ["date"]
        values = [("filename", occ.get("file_name")), ("path", occ.get("path"))]
        values += [(algo, row.get(algo)) for algo in HASHES]
        for relation, value in values:
            if value:
                obj.add_attribute(relation, value=value, uuid=self._uuid(obj.uuid, relation))
        self.event.add_object(obj)


def to_event(sel: Selection) -> MISPEvent:
    return MispBuilder(sel).build()


def export_misp(sel: Selection) -> str:
    """The event as MISP JSON (`{"Event": {...}}`) with sorted keys."""
    event = json.loads(to_event(sel).to_json())
    return json.dumps({"Event": event}, sort_keys=True, indent=2, ensure_ascii=False)
