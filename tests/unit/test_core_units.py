"""Configuration, parameters, scan keys, metadata, the file store and the query language."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from assay.config import ConfigError, load_settings
from assay.filestore import FileStore, FileTooLarge
from assay.ids import is_id, new_id
from assay.params import BadParams, flatten_metadata, parse_params, priority_bucket, scan_key
from assay.results.search import QueryError, parse


def test_settings_layers_defaults_file_and_environment(tmp_path: Path) -> None:
    ini = tmp_path / "config.ini"
    ini.write_text("[web]\nport = 9000\n[limits]\nmax_depth = 3\n")
    settings = load_settings(
        ini, tmp_path / "d", environ={"ASSAY_LIMITS_MAX_DEPTH": "4", "ASSAY_QUEUE_BROKER_URL": ""}
    )
    assert settings.web.port == 9000
    assert settings.limits.max_depth == 4
    assert settings.limits.max_extracted_ingest == 100
    assert settings.database_url == f"sqlite:///{tmp_path / 'd' / 'assay.db'}"
    assert settings.embedded and settings.storage_path == tmp_path / "d" / "files"


def test_iotinsight_redis_section_is_an_alias_for_the_broker(tmp_path: Path) -> None:
    ini = tmp_path / "config.ini"
    ini.write_text(
        "[web]\nhost = 0.0.0.0\nport = 31337\nthreaded = true\n[redis]\nhost = 127.0.0.1\nport = 6379\ndb = 2\n"
    )
    settings = load_settings(ini, tmp_path, environ={})
    assert settings.broker_url == "redis://127.0.0.1:6379/2" and not settings.embedded
    assert settings.web.port == 31337


def test_bad_configuration_values_name_their_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"ASSAY_WEB_PORT: \[web\] port") as raised:
        load_settings(None, tmp_path, environ={"ASSAY_WEB_PORT": "eighty", "ASSAY_WEB_THREADED": "maybe"})
    assert "[web] threaded" in str(raised.value)
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "missing.ini", tmp_path, environ={})


def test_ids_are_22_base62_characters_and_distinct() -> None:
    ids = {new_id() for _ in range(2000)}
    assert len(ids) == 2000 and all(len(i) == 22 and is_id(i) for i in ids)


def test_scan_key_changes_with_what_changes_analysis_only() -> None:
    sha = "a" * 64
    base = scan_key(parse_params({}), sha)
    assert scan_key(parse_params({"description": "other", "priority": 300}), sha) == base
    assert scan_key(parse_params({"deep_scan": True}), sha) != base
    assert scan_key(parse_params({"service_spec": {"Extract": {"password": "x"}}}), sha) != base
    assert scan_key(parse_params({"services": {"selected": ["Extraction", "Filtering"]}}), sha) == scan_key(
        parse_params({"services": {"selected": ["Filtering", "Extraction"]}}), sha
    )
    assert scan_key(parse_params({}), "b" * 64) != base


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ({"priority": 0}, "priority"),
        ({"priority": "high"}, "priority"),
        ({"deep_scan": "sometimes"}, "deep_scan"),
        ({"service_spec": {"Extract": "pw"}}, "service_spec"),
        ({"max_extracted": -1}, "max_extracted"),
        ([1, 2], "JSON object"),
    ],
)
def test_bad_params_name_the_field(raw: object, fragment: str) -> None:
    with pytest.raises(BadParams, match=fragment):
        parse_params(raw)


def test_metadata_is_flattened_stringified_and_bounded() -> None:
    flat = flatten_metadata({"a": {"b": 1, "c": True, "d": None}, "e": [1, "x"]}, 10, 100)
    assert flat == {"a.b": "1", "a.c": "true", "a.d": "", "e": "1,x"}
    with pytest.raises(BadParams, match="keys"):
        flatten_metadata({str(i): i for i in range(11)}, 10, 100)
    with pytest.raises(BadParams, match="too long"):
        flatten_metadata({"k": "x" * 101}, 10, 100)
    deep: dict = {}
    node = deep
    for _ in range(40):
        node["n"] = {}
        node = node["n"]
    with pytest.raises(BadParams, match="nested"):
        flatten_metadata(deep, 10, 100)


def test_priority_buckets_follow_assemblyline() -> None:
    assert [priority_bucket(p) for p in (1, 100, 101, 250, 301, 450, 900, 1500)] == [
        "low",
        "low",
        "medium",
        "high",
        "critical",
        "user-low",
        "user-medium",
        "user-high",
    ]


def test_file_store_is_content_addressed_and_bounded(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "files")
    first = store.put_bytes(b"hello")
    again = store.put_stream(io.BytesIO(b"hello"))
    assert first == again and store.get(first.sha256) == b"hello"
    assert first.md5 == "5d41402abc4b2a76b9719d911017c592"
    assert store.describe(first.sha256) == first
    with pytest.raises(FileTooLarge, match=r"\(6 > 5\)"):
        store.put_bytes(b"123456", max_size=5)
    assert list((tmp_path / "files" / "tmp").iterdir()) == []
    with pytest.raises(ValueError, match="not a sha256"):
        store.path("../../etc/passwd")
    assert not store.exists("../../etc/passwd")


@pytest.mark.parametrize(
    "query",
    [
        "(",
        ")",
        "a:",
        "max_score:lots",
        "nosuch:1",
        "times.submitted:[yesterday TO *]",
        "max_score:[1 2]",
        "x" * 9000,
    ],
)
def test_bad_queries_are_query_errors(query: str) -> None:
    with pytest.raises(QueryError):
        parse(query)
