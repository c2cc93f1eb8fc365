"""SSDP (UPnP discovery) datagrams: NOTIFY, M-SEARCH and their HTTP-over-UDP responses."""

from __future__ import annotations

from typing import Any

_KEEP = ("host", "nt", "nts", "st", "usn", "location", "server", "man", "user-agent", "mx", "cache-control")


def parse_ssdp(data: bytes) -> dict[str, Any] | None:
    text = bytes(data[:4096]).decode("utf-8", "replace")
    lines = text.split("\r\n") if "\r\n" in text else text.split("\n")
    start = lines[0].strip()
    if start.startswith("NOTIFY"):
        kind = "NOTIFY"
    elif start.startswith("M-SEARCH"):
        kind = "M-SEARCH"
    elif start.startswith("HTTP/"):
        kind = "RESPONSE"
    else:
        return None
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep and name.strip().lower() in _KEEP:
            headers[name.strip().lower()] = value.strip()
    return {"kind": kind, "start_line": start, **headers}
