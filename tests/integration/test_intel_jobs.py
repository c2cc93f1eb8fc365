"""The Jobs API and V2 batches against the store, on SQLite (WAL file) and on real PostgreSQL.

The PostgreSQL database is created once per test session under a random name, so engineers and CI
jobs sharing the server never collide; each test starts from emptied tables.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError

from assay.intel import Job, batch_document, store
from assay.intel.models import (
    FileOccurrence,
    Group,
    GroupGroup,
    GroupIndicator,
    Indicator,
    IndicatorIndicator,
)
from tests.helpers.intel_engines import engine, pg_url, rows

__all__ = ["engine", "pg_url"]  # fixtures, imported for pytest

MD5 = "BE7DE2F0CF48294400C714C9E28ECD01"
SHA256 = "9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08"
ADVERSARY = {
    "attribute": [{"type": "Description", "value": "Test Description"}],
    "name": "Robin Sparkles",
    "tag": ["APT", "Crimeware"],
    "type": "Adversary",
}


def snapshot(engine: Engine) -> dict[str, list[dict[str, Any]]]:
    """Every intel row, without the timestamps a re-run may legitimately touch."""
    out = {}
    for model in (Group, Indicator, GroupIndicator, GroupGroup, IndicatorIndicator, FileOccurrence):
        out[model.__tablename__] = [
            {k: v for k, v in r.items() if k not in ("created_at", "updated_at")} for r in rows(engine, model)
        ]
    return out


def assert_balanced(result: Any) -> None:
    for counts in result.counts.values():
        total = counts.saved + counts.existing + counts.merged + counts.failed + counts.not_saved
        assert total == counts.submitted


def tcex_job(engine: Engine, **settings: Any) -> Job:
    job = Job(owner="Example Org", engine=engine, **settings)
    job.group({**ADVERSARY, "xid": "1"})
    job.group({"name": "Second", "type": "Campaign", "xid": "8", "firstSeen": "2020-01-01T00:00:00Z"})
    job.indicator(
        {
            "associatedGroup": ["1", "8"],
            "attribute": [{"type": "Description", "value": "Test Description"}],
            "confidence": 5,
            "rating": "3",
            "summary": "1.1.1.1",
            "tag": [{"name": "APT"}, {"name": "Crimeware"}],
            "type": "Address",
        }
    )
    job.indicator({"summary": MD5, "type": "File", "rating": 1})
    job.group_association(
        {
            "group_name": "Robin Sparkles",
            "group_type": "Adversary",
            "indicator": "1.1.1.1",
            "indicator_type": "Address",
        }
    )
    job.file_occurrence(
        {
            "date": "2014-11-03T00:00:00-05:00",
            "fileName": "win999301.dll",
            "hash": MD5,
            "path": "C:\\Windows\\System",
        }
    )
    return job


def test_tcex_structures_are_accepted_verbatim(engine: Engine) -> None:
    job = tcex_job(engine)
    assert (job.group_len, job.indicator_len, job.group_association_len, job.file_occurrence_len) == (
        2,
        2,
        1,
        1,
    )
    result = job.process()
    assert result.exit_code == 0, result.to_dict()
    assert_balanced(result)
    assert result.counts["indicator"].saved == 2
    # associatedGroup ['1', '8'] plus the explicit association to group '1' (merged as a duplicate)
    assert (result.counts["group_association"].saved, result.counts["group_association"].merged) == (2, 1)
    adversary = rows(engine, Group, Group.__table__.c.type == "Adversary")[0]
    assert adversary["tags"] == ["APT", "Crimeware"]
    assert adversary["attributes"] == [{"type": "Description", "value": "Test Description"}]
    address = rows(engine, Indicator, Indicator.__table__.c.type == "Address")[0]
    assert (address["rating"], address["confidence"], address["tags"]) == (3.0, 5, ["APT", "Crimeware"])
    assert len(rows(engine, GroupIndicator)) == 2
    occurrence = rows(engine, FileOccurrence)[0]
    assert occurrence["date"] == datetime(2014, 11, 3, 5, 0, tzinfo=UTC)
    assert (occurrence["file_name"], occurrence["path"]) == ("win999301.dll", "C:\\Windows\\System")


def test_rerunning_the_same_job_is_idempotent(engine: Engine) -> None:
    first = tcex_job(engine).process()
    before = snapshot(engine)
    second = tcex_job(engine).process()
    assert (first.exit_code, second.exit_code) == (0, 0)
    assert snapshot(engine) == before
    assert all(c.saved == 0 for c in second.counts.values())
    assert second.counts["indicator"].existing == 2


def test_out_of_range_rating_fails_that_item_only(engine: Engine) -> None:
    job = Job(owner="Org", engine=engine)
    job.indicator({"summary": "10.0.0.1", "type": "Address", "rating": 6})
    job.indicator({"summary": "10.0.0.2", "type": "Address", "confidence": 101})
    job.indicator({"summary": "10.0.0.3", "type": "Address", "rating": 5, "confidence": 100})
    result = job.process()
    assert result.exit_code == 3
    assert [e.code for e in result.errors] == [0x1005, 0x1005]
    assert result.errors[0].item["summary"] == "10.0.0.1"
    assert [r["summary"] for r in rows(engine, Indicator)] == ["10.0.0.3"]
    assert_balanced(result)


def test_halt_on_error_stops_with_exit_1(engine: Engine) -> None:
    job = Job(owner="Org", engine=engine, halt_on_error=True)
    job.group({"name": "G", "type": "Adversary"})
    job.indicator({"summary": "10.0.0.1", "type": "Address"})
    job.indicator({"summary": "999.0.0.1", "type": "Address"})
    job.indicator({"summary": "10.0.0.3", "type": "Address"})
    job.group_association(
        {"group_name": "G", "group_type": "Adversary", "indicator": "10.0.0.1", "indicator_type": "Address"}
    )
    result = job.process()
    assert (result.exit_code, result.halted) == (1, True)
    assert [r["summary"] for r in rows(engine, Indicator)] == ["10.0.0.1"]
    assert result.counts["indicator"].not_saved == 1
    assert result.counts["group_association"].not_saved == 1
    assert rows(engine, GroupIndicator) == []
    assert_balanced(result)


def test_failure_exit_code_is_not_overwritten_by_later_partial_failure(engine: Engine) -> None:
    job = Job(owner="Org", engine=engine, indicator_limit=1)
    job.group({"name": "G", "type": "Adversary"})
    job.indicator({"summary": "10.0.0.1", "type": "Address"})
    job.indicator({"summary": "10.0.0.2", "type": "Address"})
    job.group_association(
        {"group_name": "G", "group_type": "Adversary", "indicator": "10.0.0.1", "indicator_type": "Address"}
    )
    result = job.process()
    codes = [e.code for e in result.errors]
    assert codes == [0x1008, 0x1007]  # the limit (critical), then the association (partial)
    assert result.exit_code == 1
    assert rows(engine, Indicator) == []


def test_duplicates_inside_a_job_are_merged(engine: Engine) -> None:
    job = Job(owner="Org", engine=engine)
    job.indicator({"summary": "2001:DB8::1", "type": "Address", "rating": 2, "confidence": 90, "tag": ["a"]})
    job.indicator(
        {
            "summary": "2001:0db8:0:0::0001",
            "type": "Address",
            "rating": 4,
            "confidence": 10,
            "tag": ["b"],
            "attribute": [{"type": "Source", "value": "x"}],
        }
    )
    job.indicator({"summary": MD5.lower(), "type": "File", "fileOccurrence": [{"fileName": "a.exe"}]})
    job.indicator({"summary": f"{MD5} : {SHA256}", "type": "File", "fileOccurrence": [{"fileName": "b.exe"}]})
    result = job.process()
    assert result.exit_code == 0, result.to_dict()
    assert result.counts["indicator"].merged == 2
    address, file = rows(engine, Indicator)
    assert (address["summary"], address["rating"], address["confidence"]) == ("2001:db8::1", 4.0, 90)
    assert address["tags"] == ["a", "b"] and address["attributes"] == [{"type": "Source", "value": "x"}]
    assert (file["md5"], file["sha256"]) == (MD5.lower(), SHA256.lower())
    assert sorted(r["file_name"] for r in rows(engine, FileOccurrence)) == ["a.exe", "b.exe"]
    assert_balanced(result)


def test_file_hash_merge_across_jobs(engine: Engine) -> None:
    first = Job(owner="Org", engine=engine)
    first.indicator({"summary": MD5, "type": "File", "tag": ["one"]})
    first.process()
    second = Job(owner="Org", engine=engine)
    second.indicator({"summary": f"{MD5} : {SHA256}", "type": "File", "tag": ["two"]})
    result = second.process()
    assert result.exit_code == 0 and result.counts["indicator"].existing == 1
    [file] = rows(engine, Indicator)
    assert file["summary"] == f"{MD5.lower()} : {SHA256.lower()}"
    assert file["tags"] == ["one", "two"]
    clash = Job(owner="Org", engine=engine)
    clash.indicator({"summary": f"{'c' * 32} : {SHA256}", "type": "File"})
    result = clash.process()
    assert result.exit_code == 3 and result.errors[0].code == 0x2003
    assert len(rows(engine, Indicator)) == 1


def test_group_action_skip_duplicate_replace(engine: Engine) -> None:
    base = Job(owner="Org", engine=engine)
    base.group({**ADVERSARY})
    base.process()
    skip = Job(owner="Org", engine=engine)
    skip.group({**ADVERSARY, "tag": ["Other"]})
    assert skip.process().counts["group"].existing == 1
    [group] = rows(engine, Group)
    assert group["tags"] == ["APT", "Crimeware"]

    duplicate = Job(owner="Org", engine=engine, group_action="duplicate")
    duplicate.group({**ADVERSARY})
    assert duplicate.process().counts["group"].saved == 1
    assert len(rows(engine, Group)) == 2

    replace = Job(owner="Org", engine=engine, group_action="replace")
    replace.group({"name": "Robin Sparkles", "type": "Adversary", "tag": ["Replaced"]})
    assert replace.process().counts["group"].existing == 1
    oldest, newer = rows(engine, Group)
    assert (oldest["tags"], oldest["attributes"]) == (["Replaced"], [])
    assert newer["tags"] == ["APT", "Crimeware"]


def test_name_lookup_uses_oldest_group_and_warns(engine: Engine) -> None:
    job = Job(owner="Org", engine=engine, group_action="duplicate")
    for _ in range(3):
        job.group({**ADVERSARY})
    job.indicator({"summary": "evil.example", "type": "Host"})
    job.group_association(
        {
            "group_name": "Robin Sparkles",
            "group_type": "Adversary",
            "indicator": "EVIL.example",
            "indicator_type": "Host",
        }
    )
    result = job.process()
    assert result.exit_code == 0
    ids = [g["id"] for g in rows(engine, Group)]
    assert [a["group_id"] for a in rows(engine, GroupIndicator)] == [min(ids)]
    [warning] = result.warnings
    assert str(ids[1]) in warning.reason and str(ids[2]) in warning.reason


def test_associations_to_unknown_items_fail_with_codes(engine: Engine) -> None:
    job = Job(owner="Org", engine=engine)
    job.group({"name": "Known", "type": "Malware", "xid": "m-1"})
    job.indicator({"summary": "1.2.3.4", "type": "Address", "associatedGroups": [{"groupXid": "missing"}]})
    job.indicator({"summary": "5.6.7.8", "type": "Address"})
    job.group_association(
        {
            "group_name": "Ghost",
            "group_type": "Adversary",
            "indicator": "1.2.3.4",
            "indicator_type": "Address",
        }
    )
    job.group_association({"group_xid": "m-1", "indicator": "9.9.9.9", "indicator_type": "Address"})
    job.group_association({"indicator": "1.2.3.4"})
    job.association({"ref_1": "m-1", "type_1": "Malware", "ref_2": "1.2.3.4", "type_2": "Address"})
    job.association({"ref_1": "1.2.3.4", "type_1": "Address", "ref_2": "5.6.7.8", "type_2": "Address"})
    job.association({"ref_1": "m-1", "type_1": "Malware"})
    result = job.process()
    assert result.exit_code == 3
    codes = sorted(e.code for e in result.errors)
    assert codes == [0x1007, 0x1007, 0x1007, 0x1009, 0x1009]
    assert len(rows(engine, GroupIndicator)) == 1
    assert len(rows(engine, IndicatorIndicator)) == 1
    assert_balanced(result)


def test_delete_action_removes_items_and_their_links(engine: Engine) -> None:
    tcex_job(engine).process()
    job = Job(owner="Example Org", engine=engine, action="Delete")
    job.indicator({"summary": MD5.lower(), "type": "File"})
    job.indicator({"summary": "10.10.10.10", "type": "Address"})
    job.group({"name": "Robin Sparkles", "type": "Adversary"})
    result = job.process()
    assert result.exit_code == 0, result.to_dict()
    assert (result.counts["indicator"].saved, result.counts["indicator"].not_saved) == (1, 1)
    assert [i["type"] for i in rows(engine, Indicator)] == ["Address"]
    assert [g["name"] for g in rows(engine, Group)] == ["Second"]
    assert rows(engine, FileOccurrence) == []
    assert len(rows(engine, GroupIndicator)) == 1  # Address ↔ Second survives


def test_owners_are_separate(engine: Engine) -> None:
    for owner in ("Org A", "Org B"):
        job = Job(owner=owner, engine=engine)
        job.indicator({"summary": "1.1.1.1", "type": "Address"})
        assert job.process().counts["indicator"].saved == 1
    assert len({r["owner_id"] for r in rows(engine, Indicator)}) == 2


def test_write_type_replace_and_append(engine: Engine) -> None:
    first = Job(owner="Org", engine=engine)
    first.indicator({"summary": "a.example", "type": "Host", "tag": ["x"], "attribute": [{"type": "A", "value": "1"}]})
    first.process()
    append = Job(owner="Org", engine=engine)
    append.indicator({"summary": "a.example", "type": "Host", "tag": ["y"], "attribute": [{"type": "A", "value": "2"}]})
    append.process()
    [host] = rows(engine, Indicator)
    assert host["tags"] == ["x", "y"] and len(host["attributes"]) == 2
    replace = Job(owner="Org", engine=engine, tag_write_type="Replace", attribute_write_type="Replace")
    replace.indicator({"summary": "a.example", "type": "Host", "tag": ["z"]})
    replace.process()
    [host] = rows(engine, Indicator)
    assert (host["tags"], host["attributes"]) == (["z"], [])


def test_a_chunk_rejected_by_the_database_fails_only_the_culprit(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = store.insert_indicators

    def picky(conn: Any, new_rows: list[dict[str, Any]]) -> dict[tuple[str, str], int]:
        if any(r["summary"] == "10.0.0.13" for r in new_rows):
            raise IntegrityError("INSERT", {}, Exception("simulated constraint"))
        return real(conn, new_rows)

    monkeypatch.setattr(store, "insert_indicators", picky)
    job = Job(owner="Org", engine=engine, chunk_size=8)
    for n in range(20):
        job.indicator({"summary": f"10.0.0.{n}", "type": "Address", "tag": ["t"]})
    result = job.process()
    assert result.exit_code == 3
    assert [e.code for e in result.errors] == [0x1004]
    summaries = {r["summary"] for r in rows(engine, Indicator)}
    assert len(summaries) == 19 and "10.0.0.13" not in summaries


def test_crash_mid_job_leaves_store_consistent_and_rerun_completes(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = store.insert_indicators
    calls = {"n": 0}

    def crashing(conn: Any, new_rows: list[dict[str, Any]]) -> dict[tuple[str, str], int]:
        calls["n"] += 1
        if calls["n"] == 2:
            real(conn, new_rows)  # the rows are sent, then the process "dies" before commit
            raise KeyboardInterrupt
        return real(conn, new_rows)

    def build() -> Job:
        job = Job(owner="Org", engine=engine, chunk_size=5)
        job.group({"name": "G", "type": "Adversary", "xid": "g"})
        for n in range(12):
            job.indicator({"summary": f"h{n}.example", "type": "Host", "associatedGroup": ["g"]})
        return job

    monkeypatch.setattr(store, "insert_indicators", crashing)
    with pytest.raises(KeyboardInterrupt):
        build().process()
    assert len(rows(engine, Indicator)) == 5  # the first chunk only; the open one rolled back
    monkeypatch.setattr(store, "insert_indicators", real)
    result = build().process()
    assert result.exit_code == 0
    assert len(rows(engine, Indicator)) == 12 and len(rows(engine, GroupIndicator)) == 12


V2_DOCUMENT = {
    "group": [
        {"name": "Bad Actor", "type": "Adversary", "xid": "adv-1", "associatedGroupXid": ["inc-1"]},
        {
            "name": "Breach",
            "type": "Incident",
            "xid": "inc-1",
            "eventDate": "2021-05-01T10:00:00+02:00",
            "status": "Open",
        },
        {"name": "No xid", "type": "Adversary"},
    ],
    "indicator": [
        {
            "summary": f"{MD5} : {SHA256}",
            "type": "File",
            "rating": 5,
            "confidence": 80,
            "xid": "file-1",
            "associatedGroups": [{"groupXid": "adv-1"}],
            "securityLabel": [{"name": "TLP:AMBER"}],
            "fileOccurrence": [{"fileName": "x.dll", "path": "C:\\x", "date": "2020-02-02T23:00:00-03:00"}],
        },
        {"type": "File", "md5": "d41d8cd98f00b204e9800998ecf8427e", "xid": "file-2"},
        {"summary": "http://BAD.example/x", "type": "URL", "associatedGroups": [{"groupXid": "inc-1"}]},
    ],
    "association": [{"ref_1": "file-1", "ref_2": "file-2"}],
}


def test_v2_batch_document(engine: Engine) -> None:
    settings = {
        "owner": "Org",
        "version": "V2",
        "haltOnError": False,
        "action": "Create",
        "attributeWriteType": "Replace",
    }
    result = batch_document.submit(V2_DOCUMENT, settings, engine)
    assert result.exit_code == 3
    assert [(e.code, e.kind) for e in result.errors] == [(0x1006, "group")]
    groups = {g["xid"]: g for g in rows(engine, Group)}
    assert groups["inc-1"]["fields"] == {"eventDate": "2021-05-01T08:00:00+00:00", "status": "Open"}
    assert len(rows(engine, GroupGroup)) == 1
    assert len(rows(engine, GroupIndicator)) == 2
    assert len(rows(engine, IndicatorIndicator)) == 1
    files = {i["xid"]: i for i in rows(engine, Indicator) if i["type"] == "File"}
    assert files["file-1"]["security_labels"] == ["TLP:AMBER"]
    assert files["file-2"]["summary"] == "d41d8cd98f00b204e9800998ecf8427e"
    [occ] = rows(engine, FileOccurrence)
    assert occ["date"] == datetime(2020, 2, 3, 2, 0, tzinfo=UTC)
    again = batch_document.submit(V2_DOCUMENT, settings, engine)
    assert again.exit_code == 3 and all(c.saved == 0 for c in again.counts.values())


def test_v2_batch_rejects_malformed_documents(engine: Engine) -> None:
    result = batch_document.submit(b"{not json", {"owner": "Org"}, engine)
    assert (result.exit_code, result.errors[0].code) == (1, 0x1003)
    result = batch_document.submit({"indicator": {}}, {"owner": "Org"}, engine)
    assert (result.exit_code, result.errors[0].code) == (1, 0x1003)
    with pytest.raises(ValueError):
        batch_document.BatchSettings.from_dict({"owner": "Org", "bogus": 1})


def test_delete_action_removes_single_associations_and_occurrences(engine: Engine) -> None:
    tcex_job(engine).process()
    job = Job(owner="Example Org", engine=engine, action="Delete")
    job.group_association({"group_xid": "8", "indicator": "1.1.1.1", "indicator_type": "Address"})
    job.file_occurrence(
        {"date": "2014-11-03T05:00:00Z", "fileName": "win999301.dll", "hash": MD5, "path": "C:\\Windows\\System"}
    )
    job.file_occurrence({"fileName": "never-seen.dll", "hash": MD5})
    result = job.process()
    assert result.exit_code == 0
    assert result.counts["file_occurrence"].saved == 1 and result.counts["file_occurrence"].not_saved == 1
    assert rows(engine, FileOccurrence) == []
    groups = {g["id"]: g["xid"] for g in rows(engine, Group)}
    assert [groups[a["group_id"]] for a in rows(engine, GroupIndicator)] == ["1"]
    assert len(rows(engine, Indicator)) == 2


def test_job_without_engine_uses_the_application_engine(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    import assay.db.session

    monkeypatch.setattr(assay.db.session, "get_engine", lambda url=None: engine)
    job = Job(owner="Org")
    job.indicator({"summary": "8.8.8.8", "type": "Address"})
    assert job.process().exit_code == 0
    assert job.engine is engine


def test_hostile_items_of_every_kind_are_rejected_without_raising(engine: Engine) -> None:
    junk: list[Any] = [None, "text", 7, [], {"type": []}, {"type": "Address", "summary": {"x": 1}}, {"name": 5}]
    job = Job(owner="Org", engine=engine)
    for item in junk:
        job.group(item)
        job.indicator(item)
        job.group_association(item)
        job.association(item)
        job.file_occurrence(item)
    job.indicator({"summary": "1.2.3.4", "type": "Address", "fileOccurrence": [{"fileName": "x"}]})
    job.indicator({"summary": "a" * 32, "type": "File", "fileOccurrence": ["not an object"]})
    result = job.process()
    assert result.exit_code == 3
    assert_balanced(result)
    assert all(c.saved == 0 for c in result.counts.values())
    assert {e.code for e in result.errors} <= {0x1005, 0x1006, 0x1007, 0x1009}


def _parallel_job(engine: Engine, chunk_size: int) -> Job:
    job = Job(owner="Parallel Org", engine=engine, chunk_size=chunk_size)
    job.group({"name": "Wave", "type": "Campaign", "xid": "wave"})
    for index in range(2500):
        job.indicator(
            {
                "summary": f"10.{index // 250}.{index % 250}.1",
                "type": "Address",
                "rating": index % 6,
                "confidence": index % 101,
                "associatedGroup": ["wave"] if index % 3 == 0 else [],
                "tag": [f"t{index % 7}"],
            }
        )
    for index in range(0, 2500, 10):  # duplicates merged with their first spelling
        job.indicator({"summary": f"10.{index // 250}.{index % 250}.1", "type": "Address", "rating": 5})
    job.indicator({"summary": "not an address", "type": "Address"})
    return job


def _natural(engine: Engine) -> tuple[set[Any], set[Any]]:
    indicators = {
        (r["type"], r["summary"], r["rating"], r["confidence"], tuple(r["tags"])) for r in rows(engine, Indicator)
    }
    by_id = {r["id"]: r["summary"] for r in rows(engine, Indicator)}
    groups = {r["id"]: r["xid"] for r in rows(engine, Group)}
    links = {(groups[r["group_id"]], by_id[r["indicator_id"]]) for r in rows(engine, GroupIndicator)}
    return indicators, links


@pytest.mark.parametrize("engine", ["postgresql"], indirect=True)  # chunks go in parallel on PostgreSQL only
def test_two_chunks_in_flight_store_what_one_at_a_time_stores(engine: Engine) -> None:
    parallel = _parallel_job(engine, chunk_size=1000).process()
    in_parallel = _natural(engine)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "TRUNCATE intel_group, intel_indicator, intel_group_indicator, intel_owner RESTART IDENTITY CASCADE"
        )
    sequential = _parallel_job(engine, chunk_size=5000).process()
    assert_balanced(parallel)
    assert parallel.exit_code == sequential.exit_code == 3
    assert {k: v for k, v in parallel.to_dict()["counts"].items()} == sequential.to_dict()["counts"]
    assert [e["reason"] for e in parallel.to_dict()["errors"]] == [e["reason"] for e in sequential.to_dict()["errors"]]
    assert in_parallel == _natural(engine)
    assert len(in_parallel[0]) == 2500 and len(in_parallel[1]) == 834


def test_items_holding_a_nul_character_fail_alone(engine: Engine) -> None:
    job = Job(owner="Org", engine=engine)
    job.group({"name": "Wave\x00", "type": "Campaign", "xid": "nul-1"})
    job.group({"name": "Fine wave", "type": "Campaign", "xid": "nul-2"})
    job.indicator(
        {"summary": "203.0.113.9", "type": "Address", "attribute": [{"type": "Description", "value": "d\x00"}]}
    )
    job.indicator({"summary": "198.51.100.9", "type": "Address"})
    result = job.process()
    assert result.exit_code == 3  # partial failure: the others are saved
    assert sorted(e.code_hex for e in result.errors) == ["0x1005", "0x1006"]
    assert all("NUL" in e.reason for e in result.errors)
    assert result.counts["group"].saved == 1 and result.counts["indicator"].saved == 1
