"""The YARA service: every file against the analysts' rule sets, one section per matching rule.

Rules live as files in a directory (see :mod:`assay.services.lib.rulesets`), so analysts add and
remove rule sets without restarting workers: the directory is looked at for every file and
recompiled only when its content changed. A rule's weight is the analyst's to give through
its meta (``score`` or ``severity``); since heuristics are the only source of scores, each
matching rule is attached to the heuristic of its severity band.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yara

from assay.services.base import FileRequest, Heuristic, Result, Section, Service, Stage
from assay.services.lib import rulesets

_BAND_TEXT = {
    "info": "informational",
    "low": "low severity",
    "medium": "medium severity",
    "high": "high severity",
    "critical": "critical severity",
}


def _heuristic(band: str) -> Heuristic:
    return Heuristic(
        f"yara.{band}",
        f"YARA rule match ({_BAND_TEXT[band]})",
        f"A YARA rule whose meta score or severity falls in the {band} band matched the file.",
        rulesets.SEVERITY_SCORES[band],
    )


def render_bytes(data: bytes) -> str:
    """Printable ASCII as is, everything else as ``\\xNN`` (backslash doubled)."""
    out = []
    for byte in data:
        if byte == 0x5C:
            out.append("\\\\")
        elif 0x20 <= byte < 0x7F:
            out.append(chr(byte))
        else:
            out.append(f"\\x{byte:02x}")
    return "".join(out)


class Yara(Service):
    """Matches the file against every rule set of a rules directory.

    Parameters:

    * ``rules_dir`` (str or None, default None): directory of ``*.yar``/``*.yara`` files,
      one rule set (YARA namespace) per file; None means the bundled ``rules/`` directory.
    * ``timeout`` (int seconds, default 50): passed to YARA's scan; past it the file gets
      the ``yara_timeout`` anomaly and no matches.
    * ``max_strings_per_rule`` (int, default 32): matched string instances reported per rule.
    * ``max_data_bytes`` (int, default 64): bytes of each matched string shown.
    * ``max_matches`` (int, default 200): matching rules reported per file.
    """

    name = "YARA"
    version = "1"
    stage = Stage.CORE
    category = "Static Analysis"
    accepts = ".*"
    rejects = r"empty"
    parameters = {
        "rules_dir": None,
        "timeout": 50,
        "max_strings_per_rule": 32,
        "max_data_bytes": 64,
        "max_matches": 200,
    }
    heuristics = tuple(_heuristic(band) for band in rulesets.SEVERITY_SCORES)

    def execute(self, request: FileRequest) -> Result:
        opts = self.options(request.params)
        result = Result()
        rules_dir = Path(opts["rules_dir"]) if opts["rules_dir"] else rulesets.BUNDLED_RULES_DIR
        loaded = rulesets.DEFAULT_CACHE.load(rules_dir)
        result.data["rule_sets"] = [{"name": s.name, "sha256": s.sha256} for s in loaded.sets]
        if loaded.errors:
            result.anomalies.append("yara_rules_invalid")
            result.add_section("Rule sets that failed to load", "\n".join(loaded.errors))
        if loaded.rules is None:
            result.anomalies.append("yara_no_rules")
            result.data["matches"] = []
            return result
        matches = self._match(loaded.rules, request, opts, result)
        self._report(matches, opts, result)
        return result

    def _match(
        self, rules: yara.Rules, request: FileRequest, opts: dict[str, Any], result: Result
    ) -> list[Any]:
        try:
            return list(rules.match(str(request.path), timeout=int(opts["timeout"])))
        except yara.TimeoutError:
            result.anomalies.append("yara_timeout")
        except yara.Error as exc:
            result.anomalies.append("yara_scan_error")
            result.add_section("YARA could not scan the file", str(exc))
        return []

    def _report(self, matches: list[Any], opts: dict[str, Any], result: Result) -> None:
        limit = int(opts["max_matches"])
        if len(matches) > limit:
            result.anomalies.append("yara_match_limit_reached")
        entries = []
        for match in matches[:limit]:
            entry = describe_match(match, int(opts["max_strings_per_rule"]), int(opts["max_data_bytes"]))
            entries.append(entry)
            result.sections.append(_section(entry))
        result.data["matches"] = entries


def describe_match(match: Any, max_strings: int, max_data: int) -> dict[str, Any]:
    """A JSON-ready description of one ``yara.Match``: rule, meta, score and matched strings."""
    meta = {str(k): v for k, v in match.meta.items()}
    score = rulesets.rule_score(meta)
    strings: list[dict[str, Any]] = []
    total = 0
    for string in match.strings:
        for instance in string.instances:
            total += 1
            if len(strings) < max_strings:
                data = bytes(instance.matched_data[:max_data])
                strings.append(
                    {
                        "identifier": string.identifier,
                        "offset": instance.offset,
                        "length": instance.matched_length,
                        "data": render_bytes(data),
                        "hex": data.hex(),
                    }
                )
    return {
        "namespace": match.namespace,
        "rule": match.rule,
        "tags": list(match.tags),
        "meta": meta,
        "score": score,
        "severity": rulesets.severity_band(score),
        "strings": strings,
        "string_count": total,
    }


def _section(entry: dict[str, Any]) -> Section:
    full_name = f"{entry['namespace']}.{entry['rule']}"
    section = Section(f"YARA rule {full_name}", entry["meta"] or {"rule": full_name}, "kv")
    section.heuristic = f"yara.{entry['severity']}"
    section.add_tag("file.rule.yara", full_name)
    if entry["strings"]:
        shown = [{k: s[k] for k in ("identifier", "offset", "length", "data")} for s in entry["strings"]]
        title = f"Matched strings ({len(shown)} of {entry['string_count']})"
        section.add_subsection(title, shown, "table")
    return section
