"""STIX 2.1 and MISP export of the intel store, STIX import, and the round trip between owners.

Every check compares an export with the store rows it came from (not with literals), on SQLite
and on PostgreSQL (the engines of tests/intel_fixtures.py).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import stix2
from pymisp import MISPEvent
from sqlalchemy import Engine

from assay.intel import Job
from assay.intel.exchange import (
    SelectionError,
    export_group,
    export_indicators,
    export_owner,
    export_submission,
    import_file,
    import_stix,
)
from assay.intel.exchange.stix import TLP_MARKINGS
from assay.intel.exchange.stix_import import PatternError, import_bundle, parse_pattern
from assay.intel.models import FileOccurrence, Group, GroupGroup, GroupIndicator, Indicator, IndicatorIndicator, Owner
from tests.helpers.intel_engines import engine, pg_url, rows

__all__ = ["engine", "pg_url"]  # fixtures, imported for pytest

OWNER = "Exchange Org"
MD5 = "be7de2f0cf48294400c714c9e28ecd01"
SHA1 = "a94a8fe5ccb19ba61c4c0873d391e987982fbbd3"
SHA256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
MD5_2 = "d41d8cd98f00b204e9800998ecf8427e"
YARA = 'rule evil { strings: $a = "evil" condition: $a }'
STIX_TYPES = {
    "Adversary": "threat-actor",
    "Campaign": "campaign",
    "Incident": "incident",
    "Malware": "malware",
    "Report": "report",
    "Tool": "tool",
    "Vulnerability": "vulnerability",
    "Signature": "indicator",
    "Event": "grouping",
    "Document": "grouping",
}


def fill(engine: Engine, owner: str = OWNER) -> None:
    """A store with every indicator type, several group types, associations, occurrences, labels."""
    job = Job(owner=owner, engine=engine)
    job.group(
        {
            "name": "Robin Sparkles",
            "type": "Adversary",
            "xid": "adv-1",
            "tag": ["APT"],
            "attribute": [{"type": "Description", "value": "A noisy actor"}],
            "securityLabel": ["TLP:AMBER"],
            "associatedGroupXid": ["camp-1", "mal-1"],
        }
    )
    job.group({"name": "Spring", "type": "Campaign", "xid": "camp-1", "firstSeen": "2020-01-01T00:00:00Z"})
    job.group(
        {
            "name": "Breach",
            "type": "Incident",
            "xid": "inc-1",
            "eventDate": "2021-05-01T10:00:00+02:00",
            "status": "Open",
            "securityLabel": ["TLP:AMBER+STRICT"],
        }
    )
    job.group({"name": "EvilRAT", "type": "Malware", "xid": "mal-1"})
    job.group(
        {
            "name": "Assay submission s-1",
            "type": "Report",
            "xid": "assay-submission-s-1",
            "publishDate": "2022-02-02T00:00:00Z",
        }
    )
    job.group({"name": "psexec", "type": "Tool"})
    job.group({"name": "CVE-2021-44228", "type": "Vulnerability", "securityLabel": ["TLP:CLEAR"]})
    job.group(
        {
            "name": "evil.yar",
            "type": "Signature",
            "xid": "sig-1",
            "fileName": "evil.yar",
            "fileType": "YARA",
            "fileText": YARA,
        }
    )
    job.group({"name": "Alert 7", "type": "Event", "status": "Escalated"})
    job.group({"name": "memo.docx", "type": "Document", "fileName": "memo.docx", "malware": True})
    job.indicator(
        {
            "summary": "1.1.1.1",
            "type": "Address",
            "rating": 3,
            "confidence": 70,
            "tag": ["c2"],
            "securityLabel": ["TLP:GREEN"],
            "associatedGroups": [{"groupXid": "adv-1"}, {"groupXid": "mal-1"}],
            "attribute": [{"type": "Description", "value": "C2 server"}, {"type": "Source", "value": "x"}],
        }
    )
    job.indicator({"summary": "2001:db8::1", "type": "Address", "associatedGroups": [{"groupXid": "inc-1"}]})
    job.indicator({"summary": "10.0.0.0/8", "type": "CIDR"})
    job.indicator(
        {
            "summary": "evil.example",
            "type": "Host",
            "tag": ["dga"],
            "securityLabel": ["TLP:RED"],
            "associatedGroups": [{"groupXid": "assay-submission-s-1"}],
        }
    )
    job.indicator({"summary": "www.evil.example", "type": "Host"})
    job.indicator(
        {
            "summary": "http://evil.example/a?b='c'",
            "type": "URL",
            "associatedGroups": [{"groupXid": "assay-submission-s-1"}],
        }
    )
    job.indicator({"summary": "bad@evil.example", "type": "EmailAddress"})
    job.indicator(
        {
            "summary": f"{MD5} : {SHA1} : {SHA256}",
            "type": "File",
            "rating": 5,
            "confidence": 90,
            "associatedGroups": [{"groupXid": "assay-submission-s-1"}, {"groupXid": "mal-1"}, {"groupXid": "sig-1"}],
            "fileOccurrence": [
                {"fileName": "win999301.dll", "path": "C:\\Windows\\System", "date": "2014-11-03T00:00:00-05:00"},
                {"fileName": "copy.dll", "path": "/tmp/x", "date": "2015-01-01T12:00:00+01:00"},
            ],
        }
    )
    job.indicator({"summary": MD5_2, "type": "File", "fileOccurrence": [{"fileName": "empty"}]})
    job.indicator({"summary": "AS13335", "type": "ASN"})
    job.indicator({"summary": "Global\\evil'mutex", "type": "Mutex"})
    job.indicator({"summary": "HKLM\\Software\\Run : evil : REG_SZ", "type": "Registry Key"})
    job.indicator({"summary": "HKCU\\Software\\Other :  : REG_FULL_RESOURCE_DESCRIPTOR", "type": "Registry Key"})
    job.indicator({"summary": "Mozilla/5.0 (evil)", "type": "User Agent"})
    job.association({"ref_1": "1.1.1.1", "type_1": "Address", "ref_2": "evil.example", "type_2": "Host"})
    job.association({"ref_1": "inc-1", "type_1": "Incident", "ref_2": "assay-submission-s-1", "type_2": "Report"})
    result = job.process()
    assert result.exit_code == 0, result.to_dict()


def objects_by_type(bundle: Any) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for obj in bundle.objects:
        out.setdefault(obj.type, []).append(obj)
    return out


def test_stix_export_matches_the_store(engine: Engine) -> None:
    fill(engine)
    text = export_owner(OWNER, "stix", engine=engine)
    assert text == export_owner(OWNER, "stix", engine=engine)
    bundle = stix2.parse(text, allow_custom=True)
    by_type = objects_by_type(bundle)
    ids = {o.id for o in bundle.objects}
    assert len(ids) == len(bundle.objects)
    indicators, groups = rows(engine, Indicator), rows(engine, Group)
    gi, gg, ii = rows(engine, GroupIndicator), rows(engine, GroupGroup), rows(engine, IndicatorIndicator)
    occurrences = rows(engine, FileOccurrence)

    sdo_counts = Counter(STIX_TYPES[g["type"]] for g in groups)
    sdo_counts["indicator"] += len(indicators)
    for stix_type, count in sdo_counts.items():
        assert len(by_type[stix_type]) == count, stix_type

    stix_indicators = {o.id: o for o in by_type["indicator"] if o.pattern_type == "stix"}
    patterns = {o.name: o.pattern for o in stix_indicators.values()}
    for row in indicators:
        pattern = patterns[row["summary"]]
        assert parse_pattern(pattern) == (row["type"], row["summary"].replace("HKLM", "HKEY_LOCAL_MACHINE"))
        stix2.pattern_visitor.create_pattern_object(pattern, version="2.1")
    by_name = {o.name: o for o in stix_indicators.values()}
    address = by_name["1.1.1.1"]
    assert (address.confidence, address.x_assay_rating, address.labels) == (70, 3.0, ["c2"])
    assert address.description == "C2 server" and address.x_assay_attributes == [{"type": "Source", "value": "x"}]
    assert "[ipv4-addr:value = '10.0.0.0/8']" in patterns.values()
    [yara] = [o for o in by_type["indicator"] if o.pattern_type == "yara"]
    assert yara.pattern == YARA

    sco_values = {
        getattr(o, "value", None) for t in ("ipv4-addr", "ipv6-addr", "domain-name", "url") for o in by_type[t]
    }
    assert {"1.1.1.1", "2001:db8::1", "10.0.0.0/8", "evil.example", "http://evil.example/a?b='c'"} <= sco_values
    assert [o.number for o in by_type["autonomous-system"]] == [13335]

    # markings: each object's TLP markings are exactly its labels
    for row in indicators:
        marks = getattr(by_name[row["summary"]], "object_marking_refs", [])
        assert sorted(marks) == sorted(TLP_MARKINGS[label].id for label in row["security_labels"])
    labelled = {g["name"]: g["security_labels"] for g in groups}
    for obj in by_type["threat-actor"] + by_type["incident"] + by_type["vulnerability"]:
        assert sorted(obj.object_marking_refs) == sorted(TLP_MARKINGS[x].id for x in labelled[obj.name])
    assert {m.id for m in by_type["marking-definition"]} == {
        TLP_MARKINGS[x].id for r in [*indicators, *groups] for x in r["security_labels"]
    }

    # relationships: one per association, with the right ends
    sdo_of = {o.id: o for o in bundle.objects}
    group_by_id = {g["id"]: g for g in groups}
    indicator_by_id = {i["id"]: i for i in indicators}

    def describe(ref: str) -> tuple[str, str]:
        obj = sdo_of[ref]
        if getattr(obj, "x_assay_type", None):
            return (obj.x_assay_type, obj.name)
        return ("indicator", obj.name)

    got = Counter(frozenset((describe(r.source_ref), describe(r.target_ref))) for r in by_type["relationship"])
    want: Counter[frozenset[tuple[str, str]]] = Counter()
    for a in gi:
        g, i = group_by_id[a["group_id"]], indicator_by_id[a["indicator_id"]]
        want[frozenset(((g["type"], g["name"]), ("indicator", i["summary"])))] += 1
    for a in gg:
        g1, g2 = group_by_id[a["group_id_1"]], group_by_id[a["group_id_2"]]
        want[frozenset(((g1["type"], g1["name"]), (g2["type"], g2["name"])))] += 1
    for a in ii:
        i1, i2 = indicator_by_id[a["indicator_id_1"]], indicator_by_id[a["indicator_id_2"]]
        want[frozenset((("indicator", i1["summary"]), ("indicator", i2["summary"])))] += 1
    assert got == want
    to_malware = [r for r in by_type["relationship"] if sdo_of[r.target_ref].type == "malware"]
    assert {r.relationship_type for r in to_malware if r.source_ref.startswith("indicator--")} == {"indicates"}
    assert {r.relationship_type for r in to_malware if not r.source_ref.startswith("indicator--")} == {"related-to"}

    # sightings: one per occurrence, with the file name, directory and date
    assert len(by_type["sighting"]) == len(occurrences)
    seen = set()
    for sighting in by_type["sighting"]:
        indicator = sdo_of[sighting.sighting_of_ref]
        [observed] = [sdo_of[r] for r in sighting.observed_data_refs]
        files = [sdo_of[r] for r in observed.object_refs if r.startswith("file--")]
        dirs = [sdo_of[r].path for r in observed.object_refs if r.startswith("directory--")]
        first = getattr(sighting, "first_seen", None)
        seen.add((indicator.name, files[0].get("name"), dirs[0] if dirs else None, first))
    want_seen = set()
    for occ in occurrences:
        row = indicator_by_id[occ["indicator_id"]]
        want_seen.add((row["summary"], occ["file_name"], occ["path"], occ["date"]))
    assert seen == want_seen


def test_exports_are_deterministic_and_use_store_timestamps(engine: Engine) -> None:
    fill(engine)
    first = {fmt: export_owner(OWNER, fmt, engine=engine) for fmt in ("stix", "misp")}
    assert first == {fmt: export_owner(OWNER, fmt, engine=engine) for fmt in ("stix", "misp")}
    bundle = json.loads(first["stix"])
    [owner] = rows(engine, Owner)
    [identity] = [o for o in bundle["objects"] if o["type"] == "identity"]
    assert stix2.utils.parse_into_datetime(identity["created"]) == owner["created_at"]
    created = {i["summary"]: i["created_at"] for i in rows(engine, Indicator)}
    for obj in bundle["objects"]:
        if obj["type"] == "indicator" and obj["name"] in created:
            assert stix2.utils.parse_into_datetime(obj["created"]) == created[obj["name"]]
    # another owner holding the same intel gets other ids (ids are per owner)
    fill(engine, "Second Org")
    other = json.loads(export_owner("Second Org", "stix", engine=engine))
    sdo_ids = {o["id"] for o in bundle["objects"] if o["type"] in ("indicator", "relationship", "report")}
    assert not sdo_ids & {o["id"] for o in other["objects"]}


def test_misp_export_matches_the_store(engine: Engine) -> None:
    fill(engine)
    text = export_owner(OWNER, "misp", engine=engine)
    event = MISPEvent()
    event.load(text)
    keys = [(a.value, a.type, a.category) for a in event.attributes]
    assert len(keys) == len(set(keys))
    for obj in event.objects:
        relations = [a.object_relation for a in obj.attributes]
        assert len(relations) == len(set(relations))
    got = {(a.type, a.value): a for a in event.attributes}
    for row in rows(engine, Indicator):
        kind, value = row["type"], row["summary"]
        if kind == "File":
            for algo in ("md5", "sha1", "sha256"):
                if row[algo]:
                    assert got[(algo, row[algo])].category == "Payload delivery"
            continue
        expect = {
            "Address": "ip-dst",
            "CIDR": "ip-dst",
            "URL": "url",
            "EmailAddress": "email-src",
            "ASN": "AS",
            "Mutex": "mutex",
            "User Agent": "user-agent",
            "Registry Key": "regkey",
        }.get(kind)
        if kind == "Host":
            expect = "domain" if value.count(".") == 1 else "hostname"
        if kind == "ASN":
            value = value.removeprefix("ASN")
        if kind == "Registry Key":
            value = value.split(" : ")[0]
        attribute = got[(expect, value)]
        tags = {t.name for t in attribute.tags}
        assert set(row["tags"]) <= tags
        assert {label.lower() for label in row["security_labels"]} <= tags
        assert attribute.to_ids == (kind not in ("ASN", "User Agent"))
    address = got[("ip-dst", "1.1.1.1")]
    assert {'assay:group="Adversary: Robin Sparkles"', "tlp:green", "c2"} <= {t.name for t in address.tags}
    assert address.comment == "C2 server"
    # one file object per occurrence, carrying name, path and hashes
    indicators = {i["id"]: i for i in rows(engine, Indicator)}
    want = {(o["file_name"], o["path"], indicators[o["indicator_id"]]["md5"]) for o in rows(engine, FileOccurrence)}
    have = set()
    for obj in event.objects:
        assert obj.name == "file"
        values = {a.object_relation: a.value for a in obj.attributes}
        have.add((values.get("filename"), values.get("path"), values.get("md5")))
    assert have == want
    assert ("filename|sha256", f"win999301.dll|{SHA256}") in got
    assert "tlp:red" in {t.name for t in event.tags}  # the most restrictive label of the selection
    assert event.info == f"Intel of {OWNER}"


def test_group_and_submission_selections(engine: Engine) -> None:
    fill(engine)
    [report] = rows(engine, Group, Group.__table__.c.type == "Report")
    linked = {a["indicator_id"] for a in rows(engine, GroupIndicator) if a["group_id"] == report["id"]}
    summaries = {i["summary"] for i in rows(engine, Indicator) if i["id"] in linked}
    event = MISPEvent()
    event.load(export_submission("s-1", "misp", engine=engine))
    values = {a.value for a in event.attributes if a.type in ("url", "domain", "md5")}
    assert values == {s.split(" : ")[0] for s in summaries}
    assert event.info.startswith("Submission s-1")
    by_id = stix2.parse(export_group(report["id"], "stix", engine=engine), allow_custom=True)
    by_xid = stix2.parse(export_group("assay-submission-s-1", "stix", owner=OWNER, engine=engine), allow_custom=True)
    assert by_id.serialize(sort_keys=True) == by_xid.serialize(sort_keys=True)
    [stix_report] = [o for o in by_id.objects if o.type == "report"]
    names = {o.id: getattr(o, "name", None) for o in by_id.objects}
    # the report lists its indicators and its associated group (the Incident)
    assert {names[r] for r in stix_report.object_refs} == summaries | {"Breach"}
    one = rows(engine, Indicator)[0]
    only = stix2.parse(export_indicators(OWNER, [one["id"]], "stix", engine=engine), allow_custom=True)
    assert [o.name for o in only.objects if o.type == "indicator"] == [one["summary"]]
    with pytest.raises(SelectionError):
        export_owner("Nobody", "stix", engine=engine)
    with pytest.raises(SelectionError):
        export_submission("missing", "stix", engine=engine)
    with pytest.raises(ValueError):
        export_owner(OWNER, "csv", engine=engine)


def store_view(engine: Engine, owner: str) -> dict[str, Any]:
    """An owner's store reduced to what a round trip must keep."""
    [owner_row] = rows(engine, Owner, Owner.__table__.c.name == owner)
    oid = owner_row["id"]
    groups = {g["id"]: g for g in rows(engine, Group, Group.__table__.c.owner_id == oid)}
    indicators = {i["id"]: i for i in rows(engine, Indicator, Indicator.__table__.c.owner_id == oid)}
    g_key = {k: (g["type"], g["name"]) for k, g in groups.items()}
    i_key = {k: (i["type"], i["summary"]) for k, i in indicators.items()}
    return {
        "indicators": sorted(
            (i["type"], i["summary"], i["rating"], i["confidence"], tuple(i["tags"]), tuple(i["security_labels"]))
            for i in indicators.values()
        ),
        "groups": sorted(
            (
                g["type"],
                g["name"],
                tuple(g["tags"]),
                tuple(g["security_labels"]),
                json.dumps(g["fields"], sort_keys=True),
            )
            for g in groups.values()
        ),
        "group_indicator": sorted(
            (g_key[a["group_id"]], i_key[a["indicator_id"]])
            for a in rows(engine, GroupIndicator)
            if a["group_id"] in groups
        ),
        "group_group": sorted(
            tuple(sorted((g_key[a["group_id_1"]], g_key[a["group_id_2"]])))
            for a in rows(engine, GroupGroup)
            if a["group_id_1"] in groups
        ),
        "indicator_indicator": sorted(
            tuple(sorted((i_key[a["indicator_id_1"]], i_key[a["indicator_id_2"]])))
            for a in rows(engine, IndicatorIndicator)
            if a["indicator_id_1"] in indicators
        ),
        "occurrences": sorted(
            (i_key[o["indicator_id"]], o["file_name"], o["path"], o["date"])
            for o in rows(engine, FileOccurrence)
            if o["indicator_id"] in indicators
        ),
    }


def test_stix_round_trip_between_owners(engine: Engine, tmp_path: Path) -> None:
    fill(engine)
    text = export_owner(OWNER, "stix", engine=engine)
    result = import_stix(text, "Owner B", engine=engine)
    assert result.exit_code == 0, result.to_dict()
    assert result.unsupported == {}
    assert store_view(engine, "Owner B") == store_view(engine, OWNER)
    groups_b = rows(engine, Group, Group.__table__.c.owner_id != rows(engine, Owner)[0]["id"])
    assert all(g["xid"].split("--")[0] in set(STIX_TYPES.values()) for g in groups_b)
    again = import_stix(text, "Owner B", engine=engine)
    assert again.exit_code == 0 and all(c.saved == 0 for c in again.counts.values())
    # a bundle from a file, through the CLI's entry point
    (tmp_path / "bundle.json").write_text(text)
    via_file = import_file(tmp_path / "bundle.json", "Owner C", engine=engine)
    assert via_file.exit_code == 0
    assert store_view(engine, "Owner C") == store_view(engine, OWNER)


def test_import_of_foreign_stix(engine: Engine) -> None:
    actor = stix2.ThreatActor(name="Foreign Actor", labels=["spy"], object_marking_refs=[stix2.TLP_GREEN])
    ind = stix2.Indicator(
        pattern="[domain-name:value = 'foreign.example']", pattern_type="stix", confidence=40, description="d"
    )
    both = stix2.Indicator(
        pattern="[file:hashes.MD5 = '" + MD5 + "' AND file:hashes.'SHA-1' = '" + SHA1 + "']", pattern_type="stix"
    )
    snort = stix2.Indicator(name="r", pattern="alert tcp any any -> any any (sid:1;)", pattern_type="snort")
    rel = stix2.Relationship(ind, "indicates", actor)
    report = stix2.Report(name="R", published="2020-01-01T00:00:00Z", object_refs=[ind.id, actor.id, both.id])
    location = stix2.Location(region="europe")
    to_location = stix2.Relationship(actor, "located-at", location)
    address = stix2.IPv4Address(value="9.9.9.9")
    network = stix2.NetworkTraffic(protocols=["tcp"], dst_ref=address)
    objects = (ind, both, actor, snort, rel, report, location, to_location, network, address, stix2.TLP_GREEN)
    bundle = stix2.Bundle(*objects)
    result = import_stix(bundle.serialize(), "Foreign", engine=engine)
    assert result.exit_code == 0, result.to_dict()
    assert result.unsupported == {"location": 1, "network-traffic": 1, "relationship to location": 1}
    assert len(result.warnings) == 3 and {w.code for w in result.warnings} == {0x2001, 0x2002}
    indicators = {i["summary"]: i for i in rows(engine, Indicator)}
    assert set(indicators) == {"foreign.example", f"{MD5} : {SHA1}", "9.9.9.9"}
    assert indicators["foreign.example"]["confidence"] == 40
    assert indicators["foreign.example"]["attributes"] == [{"type": "Description", "value": "d"}]
    groups = {g["name"]: g for g in rows(engine, Group)}
    assert groups["Foreign Actor"]["type"] == "Adversary" and groups["Foreign Actor"]["xid"] == actor.id
    assert groups["Foreign Actor"]["security_labels"] == ["TLP:GREEN"] and groups["Foreign Actor"]["tags"] == ["spy"]
    assert groups["r"]["type"] == "Signature" and groups["r"]["fields"]["fileType"] == "Snort"
    assert groups["R"]["fields"]["publishDate"] == "2020-01-01T00:00:00+00:00"
    assert (
        len(rows(engine, GroupIndicator)) == 3
    )  # actor-domain (rel + report refs, merged), report-domain, report-file
    assert len(rows(engine, GroupGroup)) == 1


def test_hostile_imports_fail_cleanly(engine: Engine, tmp_path: Path) -> None:
    for bad in (b"{not json", "[1, 2]", '{"type": "bundle", "objects": 5}', "[" * 100000, b"\xff\xfe"):
        result = import_stix(bad, "Hostile", engine=engine)
        assert result.exit_code == 1 and result.errors[0].code == 0x1003
    huge = {
        "type": "bundle",
        "id": "bundle--x",
        "objects": [{"type": "x-junk", "id": f"x-junk--{n}"} for n in range(100_001)],
    }
    result = import_bundle(huge, "Hostile", engine=engine, max_objects=100_000)
    assert result.exit_code == 1 and result.errors[0].code == 0x1008
    assert rows(engine, Owner) == []  # refused before anything was written
    assert import_bundle(json.dumps(huge), "Hostile", engine=engine, max_bytes=1000).errors[0].code == 0x1003

    objects: list[Any] = [
        {"type": "indicator", "id": "indicator--1", "pattern": "[ipv4-addr:value = '1.2.3.4'", "pattern_type": "stix"},
        {"type": "indicator", "id": "indicator--2", "pattern": "[ipv4-addr:value = '1.2.3.4'] WITHIN 5 SECONDS"},
        {"type": "indicator", "id": "indicator--3", "pattern": "[ipv4-addr:value = 'a' OR ipv4-addr:value = 'b']"},
        {"type": "indicator", "id": "indicator--4", "pattern": "[process:pid = 4]", "pattern_type": "stix"},
        {"type": "indicator", "id": "indicator--5", "pattern": "[ipv4-addr:value = '999.1.1.1']"},
        {"type": "indicator", "id": "indicator--6", "pattern": "[domain-name:value = 'ok.example']", "confidence": 900},
        {"type": "indicator", "id": "indicator--7", "pattern": ["list"], "labels": {"x": 1}},
        {"type": "indicator", "id": "indicator--8", "pattern": "[x:y = '" + "a" * 20000 + "']"},
        {"type": "indicator", "id": "indicator--9", "pattern": "[mutex:name = 'good']", "labels": ["ok"]},
        {"type": "threat-actor", "id": "threat-actor--1", "name": {"not": "a string"}},
        {"type": "relationship", "id": "relationship--1", "source_ref": "indicator--9", "target_ref": ["x"]},
        {"type": "relationship", "id": "relationship--2", "source_ref": "indicator--9", "target_ref": "malware--gone"},
        {"type": "sighting", "id": "sighting--1", "sighting_of_ref": {"x": 1}},
        {"type": "x-unknown", "id": "x-unknown--1"},
        {"no": "type"},
        "a string",
    ]
    result = import_stix({"type": "bundle", "objects": objects}, "Hostile", engine=engine)
    assert result.exit_code == 3
    assert [i["summary"] for i in rows(engine, Indicator)] == ["good"]
    reasons = " | ".join(e.reason for e in result.errors)
    assert "malformed pattern" in reasons and "not a single observation" in reasons and "confidence" in reasons
    assert sorted(result.unsupported) == ["sighting", "x-unknown"]
    for counts in result.counts.values():
        assert counts.submitted == counts.saved + counts.existing + counts.merged + counts.failed + counts.not_saved
    json.dumps(result.to_dict())  # the report itself is serialisable
    for pattern in ("", "[", "[file:name = 'x']", "[file:hashes.MD5 != 'x']", "[a:b = 1] AND [c:d = 2]"):
        with pytest.raises(PatternError):
            parse_pattern(pattern)


def test_import_file_detects_v2_documents_and_bad_input(engine: Engine, tmp_path: Path) -> None:
    v2 = {
        "group": [{"name": "G", "type": "Adversary", "xid": "g-1"}],
        "indicator": [{"summary": "8.8.8.8", "type": "Address", "associatedGroups": [{"groupXid": "g-1"}]}],
    }
    path = tmp_path / "batch.json"
    path.write_text(json.dumps(v2))
    result = import_file(path, "V2 Org", engine=engine)
    assert result.exit_code == 0, result.to_dict()
    assert len(rows(engine, GroupIndicator)) == 1
    assert import_file(json.dumps(v2), "V2 Org", engine=engine).counts["indicator"].existing == 1
    assert import_file(tmp_path / "missing.json", "V2 Org", engine=engine).errors[0].code == 0x100B
    assert import_file('{"hello": 1}', "V2 Org", engine=engine).errors[0].code == 0x1003
    assert import_file("{", "V2 Org", engine=engine).errors[0].code == 0x1003
    assert import_file(json.dumps(v2), "   ", engine=engine).exit_code == 1


def test_built_indicators_still_validate_their_pattern_shape() -> None:
    from datetime import UTC, datetime

    from assay.intel.exchange.stix import BuiltIndicator, quote

    when = datetime(2020, 1, 1, tzinfo=UTC)
    good = BuiltIndicator(pattern=f"[mutex:name = {quote(chr(39) + '] OR [x')}]", pattern_type="stix", valid_from=when)
    assert parse_pattern(good.pattern) == ("Mutex", "'] OR [x")
    with pytest.raises(stix2.exceptions.InvalidValueError):
        BuiltIndicator(pattern="[mutex:name = 'a'", pattern_type="stix", valid_from=when)
