"""Cache keys: the result key of one service on one content, and the scan key of a whole submission.

A result is reused whenever its key is found, so the key must change with everything that can
change the result (the service and its version, its parameters, deep scan, the provisions it is
handed: limits, safelist, YARA rules) and with nothing else. The scan key decides which ingests
share one analysis: Assemblyline's definition, an md5 over the analysis-relevant parameters (in a
fixed order, lists sorted) and the sha256, with ``v0`` appended.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from assay import safelist
from assay.db import models
from assay.db.session import session_scope
from assay.dispatch.analysis import Analysis
from assay.dispatch.dispatcher import result_key
from assay.params import DEFAULT_CATEGORIES, parse_params, scan_key
from assay.services import registry
from assay.services.base import Service
from tests.helpers.fakes import Bench, Sniffer, document, open_bench, sha256_of

SHA = "ab" * 32
SAMPLE = document("document/fake", domains=["files.example.org"])
WITH_MATCHER = {"services": {"selected": [*DEFAULT_CATEGORIES, "Matcher"]}}


class Hello(Service):
    name = "Hello"
    version = "1"


class HelloAgain(Hello):
    version = "2"


# -- result_key itself ---------------------------------------------------------------------------
def test_a_result_key_names_the_content_the_service_and_its_version() -> None:
    key = result_key(SHA, Hello(), {"greeting": "hi"})
    assert key.startswith(f"{SHA}.Hello.v1.")  # readable: content, service, version
    assert result_key(SHA, Hello(), {"greeting": "hi"}) == key
    assert result_key(SHA, HelloAgain(), {"greeting": "hi"}) != key
    assert result_key("cd" * 32, Hello(), {"greeting": "hi"}) != key


def test_a_result_key_follows_option_values_not_their_order() -> None:
    key = result_key(SHA, Hello(), {"greeting": "hi", "deep_scan": False})
    assert result_key(SHA, Hello(), {"deep_scan": False, "greeting": "hi"}) == key
    assert result_key(SHA, Hello(), {"greeting": "hello", "deep_scan": False}) != key
    assert result_key(SHA, Hello(), {"greeting": "hi", "deep_scan": True}) != key
    assert result_key(SHA, Hello(), {"greeting": "hi"}) != key


# -- result keys as the dispatcher makes them ----------------------------------------------------
@pytest.fixture
def bench(tmp_path: Path) -> Iterator[Bench]:
    with open_bench(tmp_path / "one") as bench:
        yield bench


def keys_of(analysis: Analysis, data: bytes) -> dict[str, str]:
    """The result key of each service that ran on ``data``."""
    return {r.service.name: r.key for r in analysis.results if r.sha256 == sha256_of(data)}


def test_the_same_analysis_of_the_same_bytes_gets_the_same_keys(bench: Bench) -> None:
    first = keys_of(bench.analyse(SAMPLE, "a.doc", WITH_MATCHER), SAMPLE)
    again = keys_of(bench.analyse(SAMPLE, "renamed.doc", {**WITH_MATCHER, "description": "x", "priority": 400}), SAMPLE)
    assert set(first) == {"Typer", "Gate", "Matcher", "Refiner", "Sniffer", "Reporter"}
    assert again == first
    other = document("document/fake", domains=["other.example.org"])
    assert set(keys_of(bench.analyse(other, "b.doc", WITH_MATCHER), other).values()).isdisjoint(first.values())


def test_a_service_parameter_changes_only_that_services_key(bench: Bench) -> None:
    before = keys_of(bench.analyse(SAMPLE, params=WITH_MATCHER), SAMPLE)
    tuned = {**WITH_MATCHER, "service_spec": {"Matcher": {"sensitivity": "paranoid"}}}
    after = keys_of(bench.analyse(SAMPLE, params=tuned), SAMPLE)
    assert after["Matcher"] != before["Matcher"]
    assert {n: k for n, k in after.items() if n != "Matcher"} == {n: k for n, k in before.items() if n != "Matcher"}
    assert bench.sandbox.last_request("Matcher").params["sensitivity"] == "paranoid"


def test_an_unknown_service_parameter_is_ignored_and_leaves_the_key_alone(bench: Bench) -> None:
    before = keys_of(bench.analyse(SAMPLE, params=WITH_MATCHER), SAMPLE)
    sloppy = {**WITH_MATCHER, "service_spec": {"Matcher": {"no_such_option": 1}, "Nobody": {"x": 1}}}
    assert keys_of(bench.analyse(SAMPLE, params=sloppy), SAMPLE) == before


def test_deep_scan_changes_every_key(bench: Bench) -> None:
    before = keys_of(bench.analyse(SAMPLE), SAMPLE)
    after = keys_of(bench.analyse(SAMPLE, params={"deep_scan": True}), SAMPLE)
    assert set(after) == set(before)
    assert all(after[name] != before[name] for name in before)


def test_a_new_service_version_changes_only_its_own_key(bench: Bench, monkeypatch: pytest.MonkeyPatch) -> None:
    before = keys_of(bench.analyse(SAMPLE), SAMPLE)
    monkeypatch.setattr(Sniffer, "version", "2")
    after = keys_of(bench.analyse(SAMPLE), SAMPLE)
    assert after["Sniffer"] != before["Sniffer"] and ".Sniffer.v2." in after["Sniffer"]
    assert {n: k for n, k in after.items() if n != "Sniffer"} == {n: k for n, k in before.items() if n != "Sniffer"}


def test_a_changed_yara_rule_set_changes_the_key_of_services_given_the_rules(bench: Bench) -> None:
    before = keys_of(bench.analyse(SAMPLE, params=WITH_MATCHER), SAMPLE)
    assert keys_of(bench.analyse(SAMPLE, params=WITH_MATCHER), SAMPLE) == before  # nothing changed yet
    (bench.settings.yara_dir / "local.yar").write_text('rule local { strings: $a = "EVIL" condition: $a }\n')
    after = keys_of(bench.analyse(SAMPLE, params=WITH_MATCHER), SAMPLE)
    assert after["Matcher"] != before["Matcher"]
    assert after["Sniffer"] == before["Sniffer"]  # it is not given the rules
    assert Path(bench.sandbox.last_request("Matcher").params["rules_dir"]) == bench.settings.yara_dir


def test_a_changed_network_safelist_changes_the_key_of_services_given_it(bench: Bench) -> None:
    before = keys_of(bench.analyse(SAMPLE, params=WITH_MATCHER), SAMPLE)
    with session_scope(bench.engine) as session:
        safelist.add(session, [safelist.classify("example.org", "domain")])
    after = keys_of(bench.analyse(SAMPLE, params=WITH_MATCHER), SAMPLE)
    assert after["Matcher"] != before["Matcher"]
    assert after["Sniffer"] == before["Sniffer"]
    assert "example.org" in bench.sandbox.last_request("Matcher").params["safelist"]["network.static.domain"]


def test_safelisting_the_file_itself_changes_the_key_of_services_told_about_it(bench: Bench) -> None:
    other = document("document/fake", note="unrelated")
    before = keys_of(bench.analyse(SAMPLE, params=WITH_MATCHER), SAMPLE)
    before_other = keys_of(bench.analyse(other, params=WITH_MATCHER), other)
    with session_scope(bench.engine) as session:
        safelist.add(session, [safelist.classify(sha256_of(SAMPLE))], reason="known good")
    assert keys_of(bench.analyse(SAMPLE, params=WITH_MATCHER), SAMPLE)["Matcher"] != before["Matcher"]
    assert bench.sandbox.last_request("Matcher").params["safelisted"]["reason"] == "known good"
    assert keys_of(bench.analyse(other, params=WITH_MATCHER), other) == before_other
    assert bench.sandbox.last_request("Matcher").params["safelisted"] is None


def test_limits_handed_to_a_service_enter_its_key(tmp_path: Path) -> None:
    with open_bench(tmp_path / "six") as six, open_bench(tmp_path / "two", {"ASSAY_LIMITS_MAX_DEPTH": "2"}) as two:
        deep = keys_of(six.analyse(SAMPLE, params=WITH_MATCHER), SAMPLE)
        shallow = keys_of(two.analyse(SAMPLE, params=WITH_MATCHER), SAMPLE)
        few = keys_of(six.analyse(SAMPLE, params={**WITH_MATCHER, "max_extracted": 3}), SAMPLE)
    assert shallow["Matcher"] != deep["Matcher"] and few["Matcher"] != deep["Matcher"]
    assert shallow["Sniffer"] == deep["Sniffer"] == few["Sniffer"]


def test_a_changed_rule_set_is_never_answered_from_a_stale_cached_result(bench: Bench) -> None:
    bench.submit(SAMPLE, params=WITH_MATCHER)
    bench.run()
    bench.sandbox.forget()
    (bench.settings.yara_dir / "local.yar").write_text("rule local { condition: true }\n")
    bench.submit(SAMPLE, params=WITH_MATCHER)
    bench.run()
    sha = sha256_of(SAMPLE)
    assert bench.sandbox.ran_on(sha) == ["Matcher"]  # the rest came from the cache
    with session_scope(bench.engine, readonly=True) as session:
        stored = session.scalars(select(models.ResultRecord.service).where(models.ResultRecord.sha256 == sha)).all()
    assert sorted(stored).count("Matcher") == 2 and sorted(stored).count("Sniffer") == 1


def test_a_marking_above_the_lowest_enters_every_key_and_the_lowest_adds_nothing(bench: Bench) -> None:
    clear = keys_of(bench.analyse(SAMPLE), SAMPLE)
    assert keys_of(bench.analyse(SAMPLE, params={"classification": "tlp:clear"}), SAMPLE) == clear
    amber = keys_of(bench.analyse(SAMPLE, params={"classification": "TLP:AMBER"}), SAMPLE)
    assert set(amber) == set(clear) and all(amber[name] != clear[name] for name in clear)
    # results stored before markings existed (all unrestricted) keep their keys, so stay reusable
    sniffer = registry.service("Sniffer")
    assert sniffer is not None
    assert clear["Sniffer"] == result_key(sha256_of(SAMPLE), sniffer, {"deep_scan": False})


def test_a_result_made_under_one_marking_is_not_reused_under_another(bench: Bench) -> None:
    sha = sha256_of(SAMPLE)
    bench.submit(SAMPLE, params={"classification": "TLP:AMBER"})
    bench.run()
    bench.sandbox.forget()
    bench.submit(SAMPLE)  # TLP:CLEAR: must not be answered from what was found under TLP:AMBER
    bench.run()
    assert bench.sandbox.ran_on(sha) == ["Typer", "Gate", "Refiner", "Sniffer", "Reporter"]
    bench.sandbox.forget()
    bench.submit(SAMPLE, params={"classification": "TLP:AMBER"})
    bench.run()
    assert bench.sandbox.ran_on(sha) == []  # the same marking again: all from the cache


# -- the scan key --------------------------------------------------------------------------------
def key(params: dict[str, Any], sha256: str = SHA) -> str:
    return scan_key(parse_params(params), sha256)


def test_a_scan_key_is_an_md5_with_a_version_suffix_and_depends_on_the_content() -> None:
    assert re.fullmatch(r"[0-9a-f]{32}v0", key({}))
    assert key({}) == key({})
    assert key({}, "cd" * 32) != key({})


@pytest.mark.parametrize(
    "changed",
    [
        {"classification": "TLP:AMBER"},
        {"deep_scan": True},
        {"ignore_cache": True},
        {"ignore_filtering": True},
        {"ignore_recursion_prevention": True},
        {"ignore_size": True},
        {"max_extracted": 12},
        {"max_supplementary": 12},
        {"service_spec": {"Extract": {"password": "infected"}}},
        {"services": {"selected": ["Extraction"]}},
        {"services": {"excluded": ["PE"]}},
        {"services": {"rescan": ["PE"]}},
        {"services": {"resubmit": ["Dynamic Analysis"]}},
    ],
    ids=lambda changed: ",".join(changed),
)
def test_a_scan_key_changes_with_each_parameter_that_changes_the_analysis(changed: dict[str, Any]) -> None:
    assert key(changed) != key({})


@pytest.mark.parametrize(
    "changed",
    [
        {"description": "a different description"},
        {"priority": 1000},
        {"submitter": "someone else"},
        {"ttl": 1},
        {"groups": ["analysts"]},
        {"psid": "parent"},
        {"type": "SENSOR"},
        {"generate_alert": True},
        {"never_drop": True},
        {"an_unknown_key": "kept, but no part of the analysis"},
    ],
    ids=lambda changed: ",".join(changed),
)
def test_a_scan_key_ignores_what_does_not_change_the_analysis(changed: dict[str, Any]) -> None:
    assert key(changed) == key({})


def test_a_scan_key_ignores_the_order_of_lists_and_mappings() -> None:
    assert key({"services": {"selected": ["Extraction", "Filtering"], "excluded": ["PE", "ELF"]}}) == key(
        {"services": {"excluded": ["ELF", "PE"], "selected": ["Filtering", "Extraction"]}}
    )
    assert key({"service_spec": {"Extract": {"a": 1, "b": 2}, "PE": {"c": 3}}}) == key(
        {"service_spec": {"PE": {"c": 3}, "Extract": {"b": 2, "a": 1}}}
    )
    assert key({"service_spec": {"Extract": {"a": 1}}}) != key({"service_spec": {"Extract": {"a": 2}}})


def test_ingests_that_differ_only_in_metadata_or_description_share_one_submission(bench: Bench) -> None:
    data = document("document/fake")
    ids = [
        bench.ingest(data, "first.doc", metadata={"file_path": "/a/first.doc"}),
        bench.ingest(data, "second.doc", metadata={"file_path": "/b/second.doc"}, params={"description": "again"}),
        bench.ingest(data, "deep.doc", params={"deep_scan": True}),
    ]
    with session_scope(bench.engine, readonly=True) as session:
        ingests = session.scalars(select(models.Ingest).where(models.Ingest.ingest_id.in_(ids))).all()
        sids = [next(i.sid for i in ingests if i.ingest_id == ingest_id) for ingest_id in ids]
        keys = dict(session.execute(select(models.Submission.sid, models.Submission.scan_key)).all())
    assert sids[0] == sids[1] != sids[2]
    assert len(keys) == 2 and keys[sids[0]] != keys[sids[2]]
