"""Per-type validation and normalisation of indicators and groups (no database needed)."""

from __future__ import annotations

import random
import string
from datetime import UTC, datetime

import pytest

from assay.intel.errors import Code, ItemError
from assay.intel.groups import parse_group
from assay.intel.indicators import Hashes, normalise_summary, parse_indicator, parse_occurrence
from assay.intel.result import EXIT_FAILURE, EXIT_PARTIAL, EXIT_SUCCESS, JobResult

MD5 = "BE7DE2F0CF48294400C714C9E28ECD01"
SHA1 = "A" * 40
SHA256 = "0123456789ABCDEF" * 4


@pytest.mark.parametrize(
    ("kind", "given", "expected"),
    [
        ("Address", " 1.1.1.1 ", "1.1.1.1"),
        ("Address", "2001:DB8:0:0:0:0:0:1", "2001:db8::1"),
        ("Address", "[2001:0db8::0001]", "2001:db8::1"),
        ("Host", "WWW.Example.COM.", "www.example.com"),
        ("Host", "bücher.example", "xn--bcher-kva.example"),
        ("EmailAddress", "Bob.Smith@EXAMPLE.Com", "Bob.Smith@example.com"),
        ("URL", "HTTP://Evil.EXAMPLE:8080/Path?q=A", "http://evil.example:8080/Path?q=A"),
        ("URL", "http://[2001:DB8::1]/x", "http://[2001:db8::1]/x"),
        ("ASN", "as13335", "ASN13335"),
        ("ASN", 64512, "ASN64512"),
        ("CIDR", "10.1.2.3/8", "10.0.0.0/8"),
        ("CIDR", "2001:DB8::/32", "2001:db8::/32"),
        ("Mutex", "  Global\\XYZ  ", "Global\\XYZ"),
        ("User Agent", "Mozilla/5.0 (X11)", "Mozilla/5.0 (X11)"),
        ("File", f"{MD5} : {SHA1} : {SHA256}", f"{MD5.lower()} : {SHA1.lower()} : {SHA256.lower()}"),
        ("File", f"{SHA256} : {MD5}", f"{MD5.lower()} : {SHA256.lower()}"),
        (
            "Registry Key",
            "HKLM\\Software\\Run : evil : reg_sz",
            "HKEY_LOCAL_MACHINE\\Software\\Run : evil : REG_SZ",
        ),
    ],
)
def test_summary_is_normalised_per_type(kind: str, given: object, expected: str) -> None:
    assert normalise_summary(kind, given)[0] == expected


@pytest.mark.parametrize(
    ("kind", "given"),
    [
        ("Address", "256.1.1.1"),
        ("Address", "1.1.1"),
        ("Address", "01.1.1.1"),
        ("Host", "no_dots"),
        ("Host", "-bad-.example"),
        ("Host", "a" * 64 + ".example"),
        ("EmailAddress", "no-at-sign.example"),
        ("EmailAddress", "a b@example.com"),
        ("URL", "not a url"),
        ("URL", "/relative/only"),
        ("ASN", "AS99999999999"),
        ("CIDR", "10.0.0.0"),
        ("CIDR", "10.0.0.0/33"),
        ("File", "abc"),
        ("File", "Z" * 32),
        ("File", f"{MD5} : {'b' * 32}"),
        ("Registry Key", "HKLM\\x : v : REG_NOPE"),
        ("Registry Key", "only one part"),
        ("Mutex", "a\x00b"),
        ("Mutex", ""),
        ("User Agent", "x" * 3000),
    ],
)
def test_invalid_summaries_are_rejected_as_invalid_indicator(kind: str, given: str) -> None:
    with pytest.raises(ItemError) as info:
        normalise_summary(kind, given)
    assert info.value.code == Code.INVALID_INDICATOR


def test_random_garbage_never_escapes_as_anything_but_item_error() -> None:
    rng = random.Random(1234)
    alphabet = string.printable + "ü\u202e\x00"
    kinds = ["Address", "EmailAddress", "File", "Host", "URL", "ASN", "CIDR", "Mutex", "Registry Key"]
    for _ in range(2000):
        raw = {
            "type": rng.choice([*kinds, "Nope", None, 5, ["Address"]]),
            "summary": rng.choice(["", None, 7, [], "".join(rng.choices(alphabet, k=rng.randint(1, 60)))]),
            "rating": rng.choice([None, "3", 9, "x", -1, 2.5]),
            "confidence": rng.choice([None, 50, 101, "z", 7.5]),
            "tag": rng.choice([None, ["a"], [{"name": 3}], "solo", [""]]),
        }
        try:
            item = parse_indicator(raw)
        except ItemError as exc:
            assert exc.code in (Code.INVALID_INDICATOR, Code.FILE_HASH_MERGE)
        else:
            assert item.summary == normalise_summary(item.type, item.summary)[0]


@pytest.mark.parametrize(("field", "value"), [("rating", 6), ("rating", -0.5), ("confidence", 101), ("confidence", -1)])
def test_rating_and_confidence_ranges(field: str, value: float) -> None:
    with pytest.raises(ItemError) as info:
        parse_indicator({"type": "Address", "summary": "1.2.3.4", field: value})
    assert info.value.code == Code.INVALID_INDICATOR


def test_tcex_indicator_shape_is_read_verbatim() -> None:
    item = parse_indicator(
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
    assert (item.rating, item.confidence, item.tags, item.group_refs) == (
        3.0,
        5,
        ["APT", "Crimeware"],
        ["1", "8"],
    )
    assert item.attributes == [{"type": "Description", "value": "Test Description"}]


def test_security_labels_are_tlp_only() -> None:
    item = parse_indicator({"type": "Host", "summary": "a.example", "securityLabel": [{"name": "tlp:white"}]})
    assert item.labels == ["TLP:CLEAR"]
    with pytest.raises(ItemError):
        parse_indicator({"type": "Host", "summary": "a.example", "securityLabel": ["SECRET"]})


def test_occurrence_date_with_offset_is_kept_in_utc() -> None:
    occ = parse_occurrence({"date": "2014-11-03T00:00:00-05:00", "fileName": "win999301.dll", "path": "C:\\W"})
    assert datetime.fromisoformat(occ["date"]) == datetime(2014, 11, 3, 5, tzinfo=UTC)
    assert occ["date"].endswith("+00:00")


def test_hash_merge_detects_collisions() -> None:
    merged = Hashes(md5="a" * 32).merge(Hashes(sha256="b" * 64))
    assert merged.summary() == f"{'a' * 32} : {'b' * 64}"
    with pytest.raises(ItemError) as info:
        merged.merge(Hashes(md5="c" * 32))
    assert info.value.code == Code.FILE_HASH_MERGE


def test_group_type_specific_fields() -> None:
    sig = parse_group({"type": "Signature", "name": "s", "fileName": "a.yar", "fileType": "yara", "fileText": "x"})
    assert sig.fields == {"fileName": "a.yar", "fileType": "YARA", "fileText": "x"}
    event = parse_group({"type": "Event", "name": "e", "eventDate": "2020-01-01T02:00:00+02:00"})
    assert event.fields["eventDate"] == "2020-01-01T00:00:00+00:00"
    for bad in (
        {"type": "Signature", "name": "s", "fileName": "a", "fileType": "Word", "fileText": "x"},
        {"type": "Signature", "name": "s"},
        {"type": "Incident", "name": "i", "status": "Panicking"},
        {"type": "Nope", "name": "x"},
        {"type": "Adversary", "name": "   "},
    ):
        with pytest.raises(ItemError) as info:
            parse_group(bad)
        assert info.value.code == Code.INVALID_GROUP


def test_exit_code_failure_is_never_lowered_to_partial() -> None:
    result = JobResult()
    result.raise_exit(EXIT_PARTIAL)
    result.raise_exit(EXIT_FAILURE)
    result.raise_exit(EXIT_PARTIAL)
    result.raise_exit(EXIT_SUCCESS)
    assert result.exit_code == EXIT_FAILURE
