"""URLs in bytes, and the tags a URL gives (the URI and its host), shared by the document and script services."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from assay.services.base import Section

URL_RE = re.compile(rb"(?:https?|ftp)://[^\s\"'<>()\\`^{}|\x00-\x1f\x7f]{3,2000}", re.I)
_IP_RE = re.compile(r"^\d{1,3}(?:\.\d{1,3}){3}$")


def find_urls(data: bytes, limit: int) -> list[str]:
    """Distinct URLs in ``data``, in order of appearance, at most ``limit``."""
    found: dict[str, None] = {}
    for match in URL_RE.finditer(data):
        url = match.group().decode("latin-1").rstrip(".,;:'\"")
        found.setdefault(url)
        if len(found) >= limit:
            break
    return list(found)


def tag_urls(section: Section, urls: list[str]) -> None:
    """Tag each URL with ``network.static.uri`` and its host as a domain or IP."""
    for url in urls:
        section.add_tag("network.static.uri", url)
        try:
            host = urlsplit(url).hostname or ""
        except ValueError:
            continue
        if _IP_RE.match(host):
            section.add_tag("network.static.ip", host)
        elif "." in host:
            section.add_tag("network.static.domain", host)
