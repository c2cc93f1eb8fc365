"""Indicator (IOC) extraction from text: the shared, pure half of the Strings service.

Services that see text (strings of a binary, a decoded script, a document body) ask this
module for the network and host indicators in it, so every service tags the same value the
same way. Noise control lives here too, because an indicator list full of ``libc.so`` and
``1.2.3.4.5`` is worse than none:

* defanged forms (``hxxp``, ``[.]``, ``(.)``, ``[:]``, ``[at]``) are refanged first;
* an IPv4/IPv6 address must parse (``ipaddress``) and must not be part of a longer dotted run;
* a domain must end in a public suffix from the bundled Public Suffix List with a label before
  it; a two-label name whose suffix is also a common file extension (``libc.so``, ``setup.py``,
  ``readme.md``) counts only inside a URI or an email address; a name whose suffix is in mixed
  case against the rest (``System.Net``) is a code identifier, not a host;
* Unix paths must start at a well-known root directory.

Example::

    >>> found = extract_indicators("beacon to hxxp://evil[.]example[.]com/x from 10.0.0.5")
    >>> found.uris, found.ips
    (['http://evil.example.com/x'], ['10.0.0.5'])
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from urllib.parse import urlsplit

import publicsuffix2

TAG_IP = "network.static.ip"
TAG_DOMAIN = "network.static.domain"
TAG_URI = "network.static.uri"
TAG_EMAIL = "network.email.address"
TAG_PATH = "file.path"
TAG_REGISTRY = "dynamic.registry_key"

# Public suffixes that are also everyday file extensions or code attribute names: a bare
# two-label ``name.<suffix>`` with one of these is far more often a file than a host.
AMBIGUOUS_SUFFIXES = frozenset({
    # file extensions
    "ac", "ai", "am", "app", "cab", "cat", "cc", "dev", "dot", "gmo", "in", "inc", "info", "java", "la",
    "md", "mk", "ml", "mm", "mo", "mov", "ms", "pl", "pm", "pro", "ps", "py", "rs", "sh", "so", "st", "tab",
    "target", "tf", "zip",
    # attribute and method names (``self.name``, ``stream.read``, ``entry.data``)
    "build", "call", "data", "date", "global", "host", "id", "link", "map", "name", "new", "next", "now",
    "one", "open", "plus", "read", "rest", "run", "save", "store",
})

UNIX_ROOTS = frozenset({
    "bin", "boot", "dev", "etc", "home", "lib", "lib32", "lib64", "libx32", "media", "mnt", "opt", "proc",
    "root", "run", "sbin", "srv", "sys", "tmp", "usr", "var", "system", "data", "sdcard", "storage",
    "Users", "Library", "Applications", "System", "private", "Volumes",
})

# (literal hints in the lower-cased text, pattern, replacement): a pattern runs only when one
# of its hints is present, which spares most texts every substitution.
_REFANG = (
    (("hxxp",), re.compile(r"\bhxxp(s?)(?=://|\[:\]//)", re.I), r"http\1"),
    (("fxp",), re.compile(r"\bfxp(?=://|\[:\]//)", re.I), "ftp"),
    (("[.]", "(.)", "{.}", "[dot]", "(dot)"), re.compile(r"\[\.\]|\(\.\)|\{\.\}|\[dot\]|\(dot\)", re.I), "."),
    (("[:]",), re.compile(r"\[:\]"), ":"),
    (("[at]", "(at)", "[@]"), re.compile(r"\s?(?:\[at\]|\(at\)|\[@\])\s?", re.I), "@"),
)

_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_DOMAIN = rf"(?:{_LABEL}\.)+(?:xn--[a-z0-9-]{{1,59}}|[a-z]{{2,63}})"
# Not after "/" or "\\": a file name in a path is not a host (hosts in URIs are found as URIs).
# The look-behinds sit after the first character (and look back over it) so the engine
# tests them only where a candidate can start: several times faster on binary strings.
_DOMAIN_RE = re.compile(
    rf"[a-z0-9](?<![\w.@/\\-][a-z0-9])(?:[a-z0-9-]{{0,61}}[a-z0-9])?\.(?:{_LABEL}\.)*"
    r"(?:xn--[a-z0-9-]{1,59}|[a-z]{2,63})(?![\w-]|\.\w)",
    re.I,
)
_IPV4_RE = re.compile(r"\d(?<![\w.]\d)\d{0,2}\.(?:\d{1,3}\.){2}\d{1,3}(?![\w]|\.\d)")
_IPV6_RE = re.compile(
    r"(?<![\w:.])(?:[0-9a-f]{0,4}:){2,7}(?:(?:\d{1,3}\.){3}\d{1,3}|[0-9a-f]{0,4})(?![\w:.])", re.I
)
_URI_RE = re.compile(
    r"(?<![\w+.-])(?:https?|ftps?|wss?)://"
    r"(?:[^\s/?#@\"'<>\\\[\]`{}|^]+@)?"  # userinfo
    r"(?:\[[0-9a-f:.]+\](?::\d{1,5})?|[^\s/?#\"'<>\\\[\]`{}|^@]+)"  # host[:port]
    r"(?:[/?#][^\s\"'<>\\`{}|^]*)?",
    re.I,
)
_EMAIL_RE = re.compile(rf"(?<![\w.%+-])[a-z0-9][a-z0-9._%+-]{{0,63}}@({_DOMAIN})(?![\w-]|\.\w)", re.I)
_PATH_CHARS = r"[^\\/:*?\"<>|\r\n\t\x00]"
_PATH_PART = r"[^\\/:*?\"<>|\s\x00]"
# A directory may hold inner spaces ("Program Files"); the last component may not, so a
# path inside a sentence stops at the first space after it.
_DIR = rf"{_PATH_PART}(?:{_PATH_CHARS}{{0,253}}{_PATH_PART})?\\"
_WIN_PATH_RE = re.compile(
    rf"(?<![\w%\\])(?:[a-z]:\\|\\\\[\w.$-]+\\|%[a-z_][\w()]*%\\)(?:{_DIR})*{_PATH_PART}{{0,255}}",
    re.I,
)
_UNIX_PATH_RE = re.compile(r"(?<![\w.:/~%$-])/([\w.@+-]{1,255})((?:/[\w.@+-]{1,255})+)/?")
_REGISTRY_RE = re.compile(
    r"(?<![\w\\])(?:HKEY_(?:LOCAL_MACHINE|CURRENT_USER|CLASSES_ROOT|USERS|CURRENT_CONFIG|PERFORMANCE_DATA)"
    rf"|HKLM|HKCU|HKCR|HKU|HKCC)\\(?:{_DIR})*{_PATH_PART}{{1,255}}",
    re.I,
)
_TRAILING = ".,;:!?)]}'\"> "


@dataclass
class Indicators:
    """Indicators found in one text, each list in first-seen order without duplicates."""

    ips: list[str] = field(default_factory=list)
    domains: list[str] = field(default_factory=list)
    uris: list[str] = field(default_factory=list)
    emails: list[str] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    registry_keys: list[str] = field(default_factory=list)

    def by_tag(self) -> dict[str, list[str]]:
        """The lists keyed by the Assemblyline tag type each kind is tagged with."""
        return {
            TAG_IP: self.ips,
            TAG_DOMAIN: self.domains,
            TAG_URI: self.uris,
            TAG_EMAIL: self.emails,
            TAG_PATH: self.paths,
            TAG_REGISTRY: self.registry_keys,
        }

    def merge(self, other: Indicators) -> None:
        for mine, theirs in zip(self.by_tag().values(), other.by_tag().values(), strict=True):
            _extend_unique(mine, theirs)


def _extend_unique(target: list[str], values: Iterable[str]) -> None:
    seen = set(target)
    for value in values:
        if value not in seen:
            seen.add(value)
            target.append(value)


@cache
def _psl() -> publicsuffix2.PublicSuffixList:
    # The bundled list, named explicitly: publicsuffix2 only downloads through fetch().
    return publicsuffix2.PublicSuffixList(publicsuffix2.PSL_FILE)


def refang(text: str) -> str:
    """Undo the usual defanging (``hxxp``, ``[.]``, ``(.)``, ``[:]``, ``[at]``...)."""
    lowered = text.lower()
    for hints, pattern, replacement in _REFANG:
        if any(hint in lowered for hint in hints):
            text = pattern.sub(replacement, text)
    return text


def valid_ip(value: str) -> str | None:
    """The canonical form of an IPv4/IPv6 address, or None (unspecified ``::``/``0.0.0.0`` too)."""
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    if address.is_unspecified:
        return None
    return address.compressed


def valid_domain(candidate: str, *, in_context: bool = False) -> str | None:
    """The lower-cased domain if it has a public suffix and a label before it, else None.

    ``in_context`` is true for the host of a URI or an email address, where a suffix that is
    also a file extension is no reason for doubt.
    """
    domain = candidate.rstrip(".")
    labels = domain.split(".")
    if len(labels) < 2 or len(domain) > 253:
        return None
    if not in_context and not (labels[-1].islower() or domain.isupper()):
        return None  # ``System.Net``: a code identifier, not a host
    lowered = domain.lower()
    suffix = _psl().get_tld(lowered, strict=True)
    if not suffix or suffix.count(".") + 1 >= len(labels):
        return None
    # ``libc.so``, ``libfoo-0.21.so``: a bare or versioned name is a file's, not a host's
    file_like = len(labels) == 2 or any(label.isdigit() for label in labels)
    if not in_context and file_like and labels[-1].lower() in AMBIGUOUS_SUFFIXES:
        return None
    return lowered


def _trim(value: str) -> str:
    return value.rstrip(_TRAILING)


def extract_ips(text: str) -> list[str]:
    found: list[str] = []
    for match in _IPV4_RE.finditer(text):
        ip = valid_ip(match.group())
        if ip:
            found.append(ip)
    for match in _IPV6_RE.finditer(text):
        ip = valid_ip(match.group())
        if ip and ":" in ip and any(c.isdigit() for c in ip):
            found.append(ip)
    return list(dict.fromkeys(found))


def extract_domains(text: str) -> list[str]:
    found = (valid_domain(m.group()) for m in _DOMAIN_RE.finditer(text))
    return list(dict.fromkeys(d for d in found if d))


def uri_host(uri: str) -> str | None:
    """The host of a URI (brackets stripped for IPv6), or None if it has none or cannot parse."""
    try:
        return urlsplit(uri).hostname
    except ValueError:
        return None


def extract_uris(text: str) -> list[str]:
    found: list[str] = []
    if "://" not in text:
        return found
    for match in _URI_RE.finditer(text):
        uri = _trim(match.group())
        host = uri_host(uri)
        if host and (valid_ip(host) or valid_domain(host, in_context=True)):
            found.append(uri)
    return list(dict.fromkeys(found))


def extract_emails(text: str) -> list[str]:
    found: list[str] = []
    if "@" not in text:
        return found
    for match in _EMAIL_RE.finditer(text):
        if valid_domain(match.group(1), in_context=True):
            found.append(match.group().lower())
    return list(dict.fromkeys(found))


def extract_paths(text: str) -> list[str]:
    found = [_trim(m.group()) for m in _WIN_PATH_RE.finditer(text)] if "\\" in text else []
    for match in _UNIX_PATH_RE.finditer(text):
        if match.group(1) in UNIX_ROOTS:
            found.append(_trim(match.group()))
    return list(dict.fromkeys(p for p in found if len(p) > 3))


def extract_registry_keys(text: str) -> list[str]:
    if "\\" not in text:
        return []
    return list(dict.fromkeys(_trim(m.group()) for m in _REGISTRY_RE.finditer(text)))


def extract_indicators(text: str) -> Indicators:
    """Every indicator in ``text`` after refanging; hosts of URIs and emails count as domains/IPs."""
    text = refang(text)
    found = Indicators(
        ips=extract_ips(text),
        domains=extract_domains(text),
        uris=extract_uris(text),
        emails=extract_emails(text),
        paths=extract_paths(text),
        registry_keys=extract_registry_keys(text),
    )
    for uri in found.uris:
        host = uri_host(uri) or ""
        if valid_ip(host):
            _extend_unique(found.ips, [valid_ip(host) or host])
        elif host:
            _extend_unique(found.domains, [host.lower()])
    _extend_unique(found.domains, [email.rsplit("@", 1)[1] for email in found.emails])
    return found


def _domain_safelisted(domain: str, safe_domains: Iterable[str]) -> bool:
    domain = domain.lower().rstrip(".")
    for safe in safe_domains:
        safe = safe.lower().strip(".")
        if safe and (domain == safe or domain.endswith("." + safe)):
            return True
    return False


def is_safelisted(tag_type: str, value: str, safelist: Mapping[str, Iterable[str]]) -> bool:
    """Whether ``value`` (tagged ``tag_type``) is safelisted.

    Exact match within its own tag type; domains also match by suffix (``a.example.com`` is
    covered by ``example.com``); a URI is also covered when its host is a safelisted domain
    or IP, and an email address when its domain is.
    """
    if value in set(safelist.get(tag_type, ())):
        return True
    domains = list(safelist.get(TAG_DOMAIN, ()))
    if tag_type == TAG_DOMAIN:
        return _domain_safelisted(value, domains)
    if tag_type == TAG_URI:
        host = uri_host(value) or ""
        if valid_ip(host):
            return valid_ip(host) in set(safelist.get(TAG_IP, ()))
        return bool(host) and _domain_safelisted(host, domains)
    if tag_type == TAG_EMAIL:
        return _domain_safelisted(value.rsplit("@", 1)[-1], domains)
    return False


def drop_safelisted(found: Indicators, safelist: Mapping[str, Iterable[str]]) -> Indicators:
    """A copy of ``found`` without the safelisted values."""
    kept = {
        tag: [value for value in values if not is_safelisted(tag, value, safelist)]
        for tag, values in found.by_tag().items()
    }
    return Indicators(
        ips=kept[TAG_IP],
        domains=kept[TAG_DOMAIN],
        uris=kept[TAG_URI],
        emails=kept[TAG_EMAIL],
        paths=kept[TAG_PATH],
        registry_keys=kept[TAG_REGISTRY],
    )
