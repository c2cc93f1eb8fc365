"""The YARA service and rule-set store: bundled rules, live rule changes, scores, bounds,
and the same matches as the ``yara`` command line tool over the generated corpus of ``tests/corpus.py``."""

from __future__ import annotations

import json
import re
import shutil
import struct
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yara

from assay.services.base import FileRequest, Result
from assay.services.lib import rulesets
from assay.services.yara import Yara, render_bytes
from tests.helpers.corpus import corpus


def scan(path: Path, **params: Any) -> Result:
    request = FileRequest(path=path, sha256="0" * 64, name=path.name, size=path.stat().st_size, params=params)
    return Yara().execute(request)


def scan_bytes(tmp_path: Path, data: bytes, **params: Any) -> Result:
    path = tmp_path / "sample.bin"
    path.write_bytes(data)
    return scan(path, **params)


def rule_tags(result: Result) -> set[str]:
    return {tag.value for tag in result.tags() if tag.type == "file.rule.yara"}


def eicar() -> bytes:
    # Assembled at run time so this test file is not itself the test signature.
    return b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$" + b"EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"


def tiny_upx_pe() -> bytes:
    header = bytearray(0x200)
    header[0:2] = b"MZ"
    struct.pack_into("<I", header, 0x3C, 0x80)
    header[0x80:0x84] = b"PE\x00\x00"
    header[0x178:0x180] = b"UPX0\x00\x00\x00\x00"
    header[0x1A0:0x1A8] = b"UPX1\x00\x00\x00\x00"
    return bytes(header) + b"\x00" * 64 + b"UPX!"


ENCODED = "SQBFAFgAIAAoAE4AZQB3AC0ATwBiAGoA"


# --- bundled rules ------------------------------------------------------------------------


def test_bundled_rules_compile_and_carry_a_score_or_severity() -> None:
    loaded = rulesets.RuleCache().load(rulesets.BUNDLED_RULES_DIR)
    assert loaded.errors == ()
    assert loaded.rules is not None
    rules = list(loaded.rules)
    assert len(rules) >= 5
    for rule in rules:
        assert "score" in rule.meta or rule.meta.get("severity") in rulesets.SEVERITY_SCORES


def test_eicar_matches_with_critical_heuristic(tmp_path: Path) -> None:
    result = scan_bytes(tmp_path, eicar() + b"\r\n")
    assert rule_tags(result) == {"eicar.eicar_test_file"}
    section = result.sections[0]
    assert section.heuristic == "yara.critical"
    assert section.body["severity"] == "critical"
    strings = result.data["matches"][0]["strings"]
    assert strings[0]["offset"] == 0 and strings[0]["hex"] == eicar()[:64].hex()
    assert rule_tags(scan_bytes(tmp_path, eicar() + b"A" * 200)) == set()


@pytest.mark.parametrize(
    ("data", "rule"),
    [
        (b'Sub AutoOpen()\r\n  Set s = CreateObject("WScript.Shell")', "office.office_macro_autoexec_shell"),
        (f"powershell.exe -nop -w hidden -enc {ENCODED}".encode(), "scripts.powershell_encoded_command"),
        (f"powershell -ec {ENCODED}".encode("utf-16-le"), "scripts.powershell_encoded_command"),
        (b"IEX (New-Object Net.WebClient).DownloadString('x')", "scripts.powershell_download_cradle"),
        (tiny_upx_pe(), "packers.upx_packed_pe"),
        (
            b"\x7fELF" + b"\x00" * 60 + b"UPX!$Info: This file is packed with the UPX executable packer",
            "packers.upx_packed_elf",
        ),
    ],
)
def test_bundled_rules_match_their_samples(tmp_path: Path, data: bytes, rule: str) -> None:
    assert rule in rule_tags(scan_bytes(tmp_path, data))


def test_benign_text_matches_nothing(tmp_path: Path) -> None:
    result = scan_bytes(tmp_path, b"Dear reader, PowerShell and macros are discussed here. " * 50)
    assert result.sections == [] and result.anomalies == []
    assert result.data["matches"] == []


# --- scores -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("meta", "score", "band"),
    [
        ({"score": 450}, 450, "medium"),
        ({"score": "800"}, 800, "high"),
        ({"score": 5000}, 1000, "critical"),
        ({"score": -3}, 0, "info"),
        ({"score": 0, "severity": "high"}, 0, "info"),
        ({"severity": "HIGH"}, 700, "high"),
        ({"severity": "nonsense"}, 100, "low"),
        ({"score": True}, 100, "low"),
        ({}, 100, "low"),
    ],
)
def test_rule_score_and_band(meta: dict[str, Any], score: int, band: str) -> None:
    assert rulesets.rule_score(meta) == score
    assert rulesets.severity_band(score) == band


def test_heuristic_follows_the_rule_meta(tmp_path: Path) -> None:
    rules_dir = tmp_path / "rules"
    source = "\n".join(
        f'rule r{n} {{ meta: score = {score} strings: $a = "MARK{n}" condition: $a }}'
        for n, score in enumerate((0, 150, 300, 699, 700, 1000))
    )
    rulesets.add_rule_set(rules_dir, "scored", source)
    data = b" ".join(f"MARK{n}".encode() for n in range(6))
    result = scan_bytes(tmp_path, data, rules_dir=str(rules_dir))
    by_rule = {s.tags[0].value: s.heuristic for s in result.sections}
    assert by_rule == {
        "scored.r0": "yara.info",
        "scored.r1": "yara.low",
        "scored.r2": "yara.medium",
        "scored.r3": "yara.medium",
        "scored.r4": "yara.high",
        "scored.r5": "yara.critical",
    }
    declared = {h.id: h.score for h in Yara.heuristics}
    assert declared == {f"yara.{band}": score for band, score in rulesets.SEVERITY_SCORES.items()}


# --- rule set store and live reload -----------------------------------------------------


def test_add_list_remove_rule_sets(tmp_path: Path) -> None:
    info = rulesets.add_rule_set(tmp_path, "alpha", 'rule a { strings: $a = "alpha" condition: $a }')
    assert info.path == tmp_path / "alpha.yar" and info.path.is_file()
    assert [s.name for s in rulesets.list_rule_sets(tmp_path)] == ["alpha"]
    with pytest.raises(rulesets.RuleSetError, match="exists"):
        rulesets.add_rule_set(tmp_path, "alpha", "rule b { condition: true }")
    rulesets.add_rule_set(tmp_path, "alpha", "rule b { condition: true }", replace=True)
    assert "rule b" in info.path.read_text()
    assert rulesets.remove_rule_set(tmp_path, "alpha") is True
    assert rulesets.remove_rule_set(tmp_path, "alpha") is False
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["../escape", "a/b", "", "1abc", "x" * 65, "has space", "dot.name"])
def test_bad_rule_set_names_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(rulesets.RuleSetError):
        rulesets.add_rule_set(tmp_path, name, "rule ok { condition: true }")
    assert list(tmp_path.iterdir()) == []


def test_invalid_source_and_includes_are_refused_and_leave_no_file(tmp_path: Path) -> None:
    (tmp_path / "other.yar").write_text("rule other { condition: true }")
    outside = tmp_path.parent / "outside.yar"
    outside.write_text("rule outside { condition: true }")
    for source in (
        "rule broken { condition: nonsense_identifier }",
        'include "other.yar"\nrule x { condition: true }',
        f'include "{outside}"\nrule x {{ condition: true }}',
    ):
        with pytest.raises(rulesets.RuleSetError):
            rulesets.add_rule_set(tmp_path, "bad", source)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.yar"]


def test_rule_changes_are_picked_up_without_restart(tmp_path: Path) -> None:
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir()
    sample = tmp_path / "sample.txt"
    sample.write_bytes(b"hello LIVE-RELOAD-MARKER world")
    first = scan(sample, rules_dir=str(rules_dir))
    assert "yara_no_rules" in first.anomalies
    source = 'rule marker { strings: $m = "LIVE-RELOAD-MARKER" condition: $m }'
    rulesets.add_rule_set(rules_dir, "live", source)
    assert rule_tags(scan(sample, rules_dir=str(rules_dir))) == {"live.marker"}
    rulesets.add_rule_set(
        rules_dir, "live", 'rule marker2 { strings: $m = "RELOAD" condition: $m }', replace=True
    )
    assert rule_tags(scan(sample, rules_dir=str(rules_dir))) == {"live.marker2"}
    rulesets.remove_rule_set(rules_dir, "live")
    assert rule_tags(scan(sample, rules_dir=str(rules_dir))) == set()


def test_compiled_once_per_content(tmp_path: Path) -> None:
    cache = rulesets.RuleCache()
    rulesets.add_rule_set(tmp_path, "one", "rule one { condition: true }")
    first = cache.load(tmp_path)
    assert cache.load(tmp_path) is first
    rulesets.add_rule_set(tmp_path, "two", "rule two { condition: true }")
    second = cache.load(tmp_path)
    assert second is not first and {s.name for s in second.sets} == {"one", "two"}
    rulesets.remove_rule_set(tmp_path, "two")
    assert cache.load(tmp_path) is first  # same (name, sha256) set as before: no recompilation
    other = tmp_path / "copy"
    other.mkdir()
    shutil.copy(tmp_path / "one.yar", other / "one.yar")
    copied = cache.load(other)
    assert copied.key == first.key and copied.rules is first.rules
    assert [info.path for info in copied.sets] == [other / "one.yar"]


def test_a_broken_file_dropped_by_hand_does_not_hide_the_others(tmp_path: Path) -> None:
    rules_dir = tmp_path / "rules"
    rulesets.add_rule_set(rules_dir, "good", 'rule good { strings: $a = "GOOD" condition: $a }')
    (rules_dir / "broken.yara").write_text("rule broken { condition: ")
    (rules_dir / "latin.yar").write_bytes(b'rule latin { strings: $a = "\xe9" condition: $a }')
    (rules_dir / "notes.txt").write_text("not a rule file")
    result = scan_bytes(tmp_path, b"GOOD stuff", rules_dir=str(rules_dir))
    assert rule_tags(result) == {"good.good"}
    assert "yara_rules_invalid" in result.anomalies
    failures = next(s for s in result.sections if s.title.startswith("Rule sets that failed"))
    assert "broken" in failures.body and "latin" in failures.body
    assert [s["name"] for s in result.data["rule_sets"]] == ["good"]


def test_missing_rules_dir_is_an_anomaly(tmp_path: Path) -> None:
    result = scan_bytes(tmp_path, b"data", rules_dir=str(tmp_path / "nowhere"))
    assert "yara_no_rules" in result.anomalies and result.data["matches"] == []


# --- bounds and errors --------------------------------------------------------------------


def test_matched_strings_are_bounded_per_rule(tmp_path: Path) -> None:
    rules_dir = tmp_path / "rules"
    rulesets.add_rule_set(rules_dir, "many", 'rule many { strings: $a = "ABAB" condition: #a > 10 }')
    result = scan_bytes(
        tmp_path,
        b"ABAB-" * 100 + b"\x00\xff" * 200,
        rules_dir=str(rules_dir),
        max_strings_per_rule=7,
        max_data_bytes=2,
    )
    match = result.data["matches"][0]
    assert len(match["strings"]) == 7 and match["string_count"] == 100
    assert [s["offset"] for s in match["strings"]] == [5 * n for n in range(7)]
    assert all(s["hex"] == "4142" and s["length"] == 4 for s in match["strings"])
    assert result.sections[0].subsections[0].title == "Matched strings (7 of 100)"
    json.dumps(result.data)


def test_match_count_is_bounded(tmp_path: Path) -> None:
    rules_dir = tmp_path / "rules"
    source = "\n".join(f"rule r{n} {{ condition: true }}" for n in range(12))
    rulesets.add_rule_set(rules_dir, "all", source)
    result = scan_bytes(tmp_path, b"x", rules_dir=str(rules_dir), max_matches=5)
    assert len(result.sections) == 5 and "yara_match_limit_reached" in result.anomalies


def test_render_bytes_escapes_non_printables() -> None:
    assert render_bytes(b"ab\\c\x00\xff\n") == "ab\\\\c\\x00\\xff\\x0a"


class _FailingRules:
    def __init__(self, error: Exception) -> None:
        self.error = error

    def match(self, *args: Any, **kwargs: Any) -> list[Any]:
        assert kwargs["timeout"] == 3
        raise self.error


@pytest.mark.parametrize(
    ("error", "anomaly"),
    [(yara.TimeoutError("slow"), "yara_timeout"), (yara.Error("boom"), "yara_scan_error")],
)
def test_scan_errors_become_anomalies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: Exception, anomaly: str
) -> None:
    loaded = rulesets.LoadedRules(frozenset(), _FailingRules(error), (), ())  # type: ignore[arg-type]

    class _Cache:
        def load(self, directory: Path) -> rulesets.LoadedRules:
            return loaded

    monkeypatch.setattr(rulesets, "DEFAULT_CACHE", _Cache())
    result = scan_bytes(tmp_path, b"data", timeout=3)
    assert anomaly in result.anomalies and result.data["matches"] == []


# --- same answers as the yara command line tool ------------------------------------------

COMPARISON_RULES = {
    "formats": r"""
rule elf_file : binary { meta: severity = "info" condition: uint32(0) == 0x464C457F }
rule elf_magic_string { meta: score = 5 strings: $m = { 7F 45 4C 46 } condition: $m at 0 }
rule shebang : script { strings: $s = "#!/" condition: $s at 0 }
rule gzip_data { strings: $g = { 1F 8B 08 } condition: $g at 0 }
""",
    "text": r"""
rule gnu_mention {
    meta: severity = "low"
    strings: $a = "GNU" $b = "Free Software" nocase
    condition: any of them
}
rule license_words { strings: $l = "license" nocase wide ascii condition: #l >= 2 }
rule email_like { strings: $e = /[a-z0-9._-]{2,20}@[a-z0-9-]{2,20}\.(org|com|net)/ condition: $e }
rule glibc_version { strings: $v = /GLIBC_2\.[0-9]{1,2}/ condition: $v and filesize < 3MB }
""",
}


Matches = dict[tuple[str, str], set[tuple[str, int]]]


def _cli_matches(rule_files: dict[str, Path], files: list[Path], tmp_path: Path) -> Matches:
    scan_list = tmp_path / "scan-list.txt"
    scan_list.write_text("".join(f"{path}\n" for path in files))
    namespaced = [f"{ns}:{path}" for ns, path in rule_files.items()]
    args = ["yara", "-s", "-e", "-w", *namespaced, "--scan-list", str(scan_list)]
    run = subprocess.run(args, capture_output=True, text=True, errors="replace", check=True, timeout=240)
    matches: Matches = {}
    current: set[tuple[str, int]] | None = None
    for line in run.stdout.splitlines():
        string_line = re.match(r"0x([0-9a-f]+):(\$\w*): ", line)
        if string_line and current is not None:
            current.add((string_line.group(2), int(string_line.group(1), 16)))
            continue
        rule_line = re.fullmatch(r"(\w+):(\w+) (/\S+)", line)
        if rule_line:
            path, rule = rule_line.group(3), f"{rule_line.group(1)}.{rule_line.group(2)}"
            current = matches.setdefault((path, rule), set())
    return matches


def _service_matches(rules_dir: Path, files: list[Path]) -> Matches:
    matches: Matches = {}
    for path in files:
        result = scan(path, rules_dir=str(rules_dir), max_strings_per_rule=1_000_000, max_data_bytes=1)
        assert "yara_match_limit_reached" not in result.anomalies
        for match in result.data["matches"]:
            strings = {(s["identifier"], s["offset"]) for s in match["strings"]}
            assert len(strings) == match["string_count"]
            matches[(str(path), f"{match['namespace']}.{match['rule']}")] = strings
    return matches


def test_matches_equal_the_yara_command_line_tool(tmp_path: Path) -> None:
    rules_dir = tmp_path / "rules"
    for name, source in COMPARISON_RULES.items():
        rulesets.add_rule_set(rules_dir, name, source)
    rule_files = {name: rules_dir / f"{name}.yar" for name in COMPARISON_RULES}
    files = corpus(tmp_path / "corpus")
    assert len(files) >= 500 and not any(re.search(r"\s", str(path)) for path in files)  # one path a line
    expected = _cli_matches(rule_files, files, tmp_path)
    got = _service_matches(rules_dir, files)
    assert set(got) == set(expected)
    assert got == expected
    matched_rules = {rule for _, rule in got}
    assert len(matched_rules) >= 6  # the corpus exercised most rules
    assert len({path for path, _ in got}) >= 100
