"""HTTP/1.x messages from one direction of a reassembled TCP stream, and SSE event streams.

Bodies are de-chunked and bounded; a response without a length runs to the end of what was
captured, which is how a ``text/event-stream`` usually looks.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterator
from typing import Any

METHODS = (b"GET ", b"POST ", b"PUT ", b"HEAD ", b"DELETE ", b"OPTIONS ", b"PATCH ", b"CONNECT ", b"TRACE ")
MAX_HEADER = 65536
MAX_SSE_EVENTS = 10000
_CHUNK_LINE = re.compile(rb"[0-9a-fA-F]{1,8}(;[^\r\n]*)?\r?\n")
_SSE_START = (b"event:", b"data:", b"id:", b"retry:", b": ")


def is_request(payload: bytes) -> bool:
    return payload.startswith(METHODS)


def is_response(payload: bytes) -> bool:
    return payload[:7] in (b"HTTP/1.", b"HTTP/2 ")


def looks_like_sse(payload: bytes) -> bool:
    """A mid-stream event stream: SSE field lines, possibly inside chunked framing."""
    head = bytes(payload[:64]).lstrip(b"\r\n")
    match = _CHUNK_LINE.match(head)
    if match:
        head = head[match.end() :]
    return head.startswith(_SSE_START)


def dechunk(data: bytes, limit: int) -> tuple[bytes, int]:
    """The de-chunked body (at most ``limit`` bytes) and how many stream bytes it used."""
    out = bytearray()
    off = 0
    while off < len(data):
        match = _CHUNK_LINE.match(data, off)
        if not match:
            break
        size = int(match.group(0).split(b";")[0].strip(), 16)
        off = match.end()
        if size == 0:
            end = data.find(b"\r\n\r\n", off - 2)
            return bytes(out), (end + 4 if end >= 0 else len(data))
        if len(out) < limit:
            out += data[off : off + min(size, limit - len(out))]
        off += size
        if data[off : off + 2] == b"\r\n":
            off += 2
        elif data[off : off + 1] == b"\n":
            off += 1
    return bytes(out), min(off, len(data))


def _headers(block: bytes) -> tuple[str, dict[str, str]]:
    lines = block.decode("latin-1").split("\r\n")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers.setdefault(name.strip().lower(), value.strip())
    return lines[0], headers


def _describe(start: str, headers: dict[str, str]) -> dict[str, Any]:
    parts = start.split(" ", 2)
    message: dict[str, Any]
    if start.startswith("HTTP/"):
        code = parts[1] if len(parts) > 1 else ""
        message = {"kind": "response", "status": int(code) if code.isdigit() else None,
                   "reason": parts[2] if len(parts) > 2 else "", "server": headers.get("server")}
    else:
        message = {"kind": "request", "method": parts[0], "uri": parts[1] if len(parts) > 1 else "",
                   "host": headers.get("host"), "user_agent": headers.get("user-agent")}
        auth = headers.get("authorization", "")
        if auth:
            message["auth_scheme"] = auth.split(" ", 1)[0]
            message["basic_user"] = basic_user(auth)
    message["content_type"] = headers.get("content-type")
    message["content_length"] = headers.get("content-length")
    return message


def basic_user(auth: str) -> str | None:
    scheme, _, value = auth.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        return base64.b64decode(value.strip(), validate=True).decode("utf-8", "replace").partition(":")[0]
    except (binascii.Error, ValueError):
        return None


def _body(stream: bytes, off: int, message: dict[str, Any], headers: dict[str, str], limit: int
          ) -> tuple[bytes, int]:
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body, used = dechunk(stream[off:], limit)
        return body, off + used
    length = headers.get("content-length", "")
    if length.isdigit():
        end = off + int(length)
        return bytes(stream[off : min(end, off + limit)]), end
    status = message.get("status")
    if message["kind"] == "response" and status not in (204, 304) and not (status and status < 200):
        return bytes(stream[off : off + limit]), len(stream)
    return b"", off


HttpMessage = tuple[int, dict[str, Any], bytes, int]


def iter_http(stream: bytes, max_messages: int, max_body: int) -> Iterator[HttpMessage]:
    """(offset, fields, body, body offset) for each message until the bytes stop being HTTP."""
    off = 0
    for _ in range(max_messages):
        head = stream[off : off + 8]
        if not (is_request(head) or is_response(head)):
            return
        end = stream.find(b"\r\n\r\n", off, off + MAX_HEADER)
        if end < 0:
            start, headers = _headers(bytes(stream[off : off + MAX_HEADER]))
            yield off, {**_describe(start, headers), "truncated": True}, b"", len(stream)
            return
        start, headers = _headers(bytes(stream[off:end]))
        message = _describe(start, headers)
        body, next_off = _body(stream, end + 4, message, headers, max_body)
        message["chunked"] = "chunked" in headers.get("transfer-encoding", "").lower()
        yield off, message, body, end + 4
        if next_off <= off or next_off >= len(stream):
            return
        off = next_off


def parse_sse_stream(raw: bytes, max_events: int = MAX_SSE_EVENTS) -> list[tuple[int, dict[str, str]]]:
    """(offset in ``raw``, event) for an event stream that may still carry chunked framing."""
    events: list[tuple[int, dict[str, str]]] = []
    start = -1
    current: dict[str, str] = {}
    off = 0
    while off < len(raw) and len(events) < max_events:
        nl = raw.find(b"\n", off)
        nl = len(raw) if nl < 0 else nl
        line = bytes(raw[off:nl]).rstrip(b"\r").decode("utf-8", "replace")
        if not line:
            if current:
                events.append((start, current))
            current, start = {}, -1
        elif ":" in line and not line.startswith(":"):
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name in ("id", "event", "data", "retry"):
                start = off if start < 0 else start
                current[name] = current[name] + "\n" + value if name == "data" and name in current else value
        off = nl + 1
    if current and len(events) < max_events:
        events.append((start, current))
    return events
