"""The Strings service: printable strings of any file, and the indicators hidden in them.

Malware carries its infrastructure as plain text: command-and-control hosts, download URLs,
drop paths, autorun registry keys, sometimes an encoded PowerShell stage. Pulling ASCII and
UTF-16LE strings and running the shared extractors of :mod:`assay.services.lib.indicators` over
them gives the tags the threat-intel side publishes, for every file type at once.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from assay.services.base import FileRequest, Heuristic, Result, Section, Service, Stage
from assay.services.lib import indicators as ioc

_SECTION_TITLES = {
    ioc.TAG_IP: "IP addresses",
    ioc.TAG_DOMAIN: "Domains",
    ioc.TAG_URI: "URIs",
    ioc.TAG_EMAIL: "Email addresses",
    ioc.TAG_PATH: "File paths",
    ioc.TAG_REGISTRY: "Registry keys",
}
# PowerShell takes any prefix of -EncodedCommand (and -ec) as the same switch.
_ENCODED_SWITCHES = sorted({"ec", *("encodedcommand"[:n] for n in range(1, 15))}, key=len, reverse=True)
_POWERSHELL_RE = re.compile(
    r"powershell(?:\.exe)?[\"']?\s(?:[^\r\n]{0,200}?\s)?[-/]"
    rf"(?:{'|'.join(_ENCODED_SWITCHES)})\s+[\"']?(?P<payload>[A-Za-z0-9+/]{{16,}}={{0,2}})",
    re.I,
)


@dataclass
class ExtractedStrings:
    """Strings of one file, split by encoding, and whether a bound cut the list short."""

    ascii: list[str] = field(default_factory=list)
    utf16: list[str] = field(default_factory=list)
    truncated: bool = False


def extract_strings(data: bytes, min_length: int, max_strings: int) -> ExtractedStrings:
    """ASCII and UTF-16LE runs of printable characters (tab included) of ``min_length`` or more."""
    found = ExtractedStrings()
    more = max(1, int(min_length)) - 1
    # The first character spelled out apart from the repeat lets the regex engine skip
    # non-candidates about three times faster.
    ascii_re = re.compile(rb"[\t\x20-\x7e][\t\x20-\x7e]{%d,}" % more)
    utf16_re = re.compile(rb"[\t\x20-\x7e]\x00(?:[\t\x20-\x7e]\x00){%d,}" % more)
    for pattern, target, codec in ((ascii_re, found.ascii, "ascii"), (utf16_re, found.utf16, "utf-16-le")):
        for match in pattern.finditer(data):
            if len(target) >= max_strings:
                found.truncated = True
                break
            target.append(match.group().decode(codec))
    return found


def powershell_commands(text: str, max_commands: int = 10) -> list[dict[str, str]]:
    """Encoded PowerShell commands in ``text``: the command line and its decoded script."""
    commands: list[dict[str, str]] = []
    for match in _POWERSHELL_RE.finditer(text):
        decoded = _decode_utf16_base64(match.group("payload"))
        if decoded is None:
            continue
        commands.append({"command": match.group()[:300], "decoded": decoded[:2000]})
        if len(commands) >= max_commands:
            break
    return commands


def _decode_utf16_base64(payload: str) -> str | None:
    payload = payload[: len(payload) - len(payload) % 4]
    try:
        raw = base64.b64decode(payload, validate=True)
        text = raw[: len(raw) - len(raw) % 2].decode("utf-16-le")
    except (binascii.Error, UnicodeDecodeError):
        return None
    printable = sum(ch.isprintable() or ch in "\r\n\t" for ch in text)
    return text if text and printable >= 0.9 * len(text) else None


class Strings(Service):
    """Extracts ASCII/UTF-16LE strings and tags the network and host indicators in them.

    Parameters:

    * ``min_length`` (int, default 6): shortest string kept.
    * ``max_bytes`` (int, default 64 MiB): bytes of the file read; more sets ``strings_input_truncated``.
    * ``max_strings`` (int, default 200000): strings kept per encoding; more sets
      ``string_limit_reached``.
    * ``max_indicators`` (int, default 500): values tagged per indicator type; more sets
      ``indicator_limit_reached`` (``result.data`` keeps the same bounded lists).
    * ``many_ips`` (int, default 10): distinct IP addresses from which ``strings.many_ips`` fires.
    * ``max_commands`` (int, default 10): encoded PowerShell commands decoded and reported.
    * ``safelist`` (dict, default empty): tag type -> values never tagged (exact match; domains
      also by suffix, URIs and emails by their safelisted host/domain).
    """

    name = "Strings"
    version = "1"
    stage = Stage.CORE
    category = "Static Analysis"
    accepts = ".*"
    rejects = r"empty"
    parameters = {
        "min_length": 6,
        "max_bytes": 64 << 20,
        "max_strings": 200_000,
        "max_indicators": 500,
        "many_ips": 10,
        "max_commands": 10,
        "safelist": {},
    }
    heuristics = (
        Heuristic(
            "strings.many_ips", "Many IP addresses",
            "The file embeds many distinct IP addresses, as bot configurations and scanners do.", 50,
        ),
        Heuristic(
            "strings.powershell_encoded", "Encoded PowerShell command",
            "A PowerShell command line carries a base64 (-EncodedCommand) script.", 300, ("T1059.001",),
        ),
        Heuristic(
            "strings.url_raw_ip", "URL with a raw IP host",
            "A URL points at an IP address instead of a host name, common for staging servers.", 100,
        ),
    )

    def execute(self, request: FileRequest) -> Result:
        opts = self.options(request.params)
        result = Result()
        data = self._read(request, int(opts["max_bytes"]), result)
        strings = extract_strings(data, int(opts["min_length"]), int(opts["max_strings"]))
        if strings.truncated:
            result.anomalies.append("string_limit_reached")
        text = "\n".join([*strings.ascii, *strings.utf16])
        commands = powershell_commands(text, int(opts["max_commands"]))
        found = ioc.extract_indicators(text)
        for command in commands:
            found.merge(ioc.extract_indicators(command["decoded"]))
        found = ioc.drop_safelisted(found, _safelist(opts["safelist"]))
        indicators = self._bounded(found, int(opts["max_indicators"]), result)
        self._report(indicators, commands, int(opts["many_ips"]), result)
        result.data["strings"] = {
            "ascii": len(strings.ascii),
            "utf16le": len(strings.utf16),
            "truncated": strings.truncated,
        }
        result.data["indicators"] = indicators
        return result

    @staticmethod
    def _read(request: FileRequest, max_bytes: int, result: Result) -> bytes:
        try:
            data = request.read(max_bytes + 1)
        except OSError:
            result.anomalies.append("file_unreadable")
            return b""
        if len(data) > max_bytes:
            result.anomalies.append("strings_input_truncated")
        return data[:max_bytes]

    @staticmethod
    def _bounded(found: ioc.Indicators, limit: int, result: Result) -> dict[str, list[str]]:
        bounded = {tag: values[:limit] for tag, values in found.by_tag().items()}
        if any(len(values) > limit for values in found.by_tag().values()):
            result.anomalies.append("indicator_limit_reached")
        return bounded

    @staticmethod
    def _report(
        indicators: dict[str, list[str]], commands: list[dict[str, str]], many_ips: int, result: Result
    ) -> None:
        for tag_type, values in indicators.items():
            if not values:
                continue
            section = result.add_section(_SECTION_TITLES[tag_type], "\n".join(values))
            for value in values:
                section.add_tag(tag_type, value)
            if tag_type == ioc.TAG_IP and len(values) >= many_ips:
                section.heuristic = "strings.many_ips"
            if tag_type == ioc.TAG_URI:
                _raw_ip_urls(section, values)
        if commands:
            section = result.add_section("Encoded PowerShell commands", commands, "json")
            section.heuristic = "strings.powershell_encoded"


def _raw_ip_urls(section: Section, uris: list[str]) -> None:
    raw = [uri for uri in uris if ioc.valid_ip(ioc.uri_host(uri) or "")]
    if raw:
        sub = section.add_subsection("URIs with a raw IP host", "\n".join(raw))
        sub.heuristic = "strings.url_raw_ip"


def _safelist(value: Any) -> Mapping[str, Iterable[str]]:
    """Accept only ``{tag type: [values]}``; anything else is treated as empty."""
    if not isinstance(value, Mapping):
        return {}
    return {
        str(tag): [str(v) for v in values]
        for tag, values in value.items()
        if isinstance(values, list | tuple | set | frozenset)
    }
