"""A tolerant reader for the protobuf text format blobs inside OnHub reports.

The network configuration, the WAN information and newer ``station_info`` blocks are text
format of schemas nobody published, so this reader needs no schema: it turns the text into
nested dicts of lists (``{"ssid": ["HOME"], "channel_2400mhz": [{...}]}``). Bad tokens are
skipped and counted, nesting deeper than ``max_depth`` is skipped, never raised.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

TextMessage = dict[str, list[Any]]

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+|\#[^\n]*)
  | (?P<string>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')
  | (?P<number>[-+]?(?:0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)[fF]?(?![\w.]))
  | (?P<ident>[-]?[A-Za-z_][\w.\-]*|\[[\w./]+\])
  | (?P<punct>[{}<>:\[\],;])
    """,
    re.VERBOSE,
)
_ESCAPES = {"n": 10, "t": 9, "r": 13, "a": 7, "b": 8, "f": 12, "v": 11, "\\": 92, "'": 39, '"': 34, "?": 63}
_CLOSE = {"{": "}", "<": ">"}


@dataclass
class TextParse:
    """The parsed message plus how much of the input had to be skipped."""

    message: TextMessage
    skipped_tokens: int = 0
    too_deep: bool = False
    truncated: bool = False
    anomalies: list[str] = field(default_factory=list)


def _unescape(body: str) -> str:
    out = bytearray()
    i = 0
    while i < len(body):
        char = body[i]
        if char != "\\" or i + 1 >= len(body):
            out += char.encode("utf-8", "replace")
            i += 1
            continue
        nxt = body[i + 1]
        if nxt in _ESCAPES:
            out.append(_ESCAPES[nxt])
            i += 2
        elif nxt in "01234567":
            digits = re.match(r"[0-7]{1,3}", body[i + 1 :]).group(0)  # type: ignore[union-attr]
            out.append(int(digits, 8) & 0xFF)
            i += 1 + len(digits)
        elif nxt == "x" and re.match(r"[0-9a-fA-F]{1,2}", body[i + 2 :]):
            digits = re.match(r"[0-9a-fA-F]{1,2}", body[i + 2 :]).group(0)  # type: ignore[union-attr]
            out.append(int(digits, 16))
            i += 2 + len(digits)
        else:
            out += nxt.encode("utf-8", "replace")
            i += 2
    return out.decode("utf-8", "replace")


def _scalar(kind: str, raw: str) -> Any:
    if kind == "string":
        return _unescape(raw[1:-1])
    if kind == "number":
        text = raw.rstrip("fF") if not raw.lower().startswith(("0x", "-0x", "+0x")) else raw
        try:
            return int(text, 0) if re.fullmatch(r"[-+]?(0[xX][0-9a-fA-F]+|[1-9]\d*|0)", text) else float(text)
        except ValueError:
            return raw
    if raw in ("true", "True", "t"):
        return True
    if raw in ("false", "False", "f"):
        return False
    return raw


def _tokenize(text: str, limit: int) -> tuple[list[tuple[str, str]], int, bool]:
    tokens: list[tuple[str, str]] = []
    skipped = 0
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            skipped += 1
            pos += 1
            continue
        pos = match.end()
        kind = match.lastgroup or "ws"
        if kind != "ws":
            tokens.append((kind, match.group(0)))
            if len(tokens) >= limit:
                return tokens, skipped, True
    return tokens, skipped, False


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]], max_depth: int) -> None:
        self.tokens = tokens
        self.pos = 0
        self.max_depth = max_depth
        self.skipped = 0
        self.too_deep = False

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def message(self, depth: int, closer: str | None) -> TextMessage:
        result: TextMessage = {}
        while (token := self.peek()) is not None:
            kind, raw = token
            if kind == "punct" and raw == closer:
                self.pos += 1
                return result
            if kind == "punct" and raw in "}>":
                if closer is None:  # stray closer at top level
                    self.skipped += 1
                    self.pos += 1
                    continue
                return result  # mismatched closer: let the caller's level see it
            if kind != "ident":
                self.skipped += 1
                self.pos += 1
                continue
            self.pos += 1
            self.field(raw, result, depth)
        return result

    def field(self, name: str, result: TextMessage, depth: int) -> None:
        token = self.peek()
        if token == ("punct", ":"):
            self.pos += 1
            token = self.peek()
        if token is None:
            return
        kind, raw = token
        if kind == "punct" and raw in _CLOSE:
            self.pos += 1
            if depth >= self.max_depth:
                self.too_deep = True
                self.skip_block()
            else:
                result.setdefault(name, []).append(self.message(depth + 1, _CLOSE[raw]))
        elif kind == "punct" and raw == "[":
            self.pos += 1
            result.setdefault(name, []).extend(self.list_values(depth))
        elif kind in ("string", "number", "ident"):
            result.setdefault(name, []).append(self.value())
        else:
            self.skipped += 1
        if self.peek() in (("punct", ","), ("punct", ";")):
            self.pos += 1

    def value(self) -> Any:
        kind, raw = self.tokens[self.pos]
        self.pos += 1
        if kind != "string":
            return _scalar(kind, raw)
        parts = [_scalar(kind, raw)]
        while (token := self.peek()) is not None and token[0] == "string":
            parts.append(_scalar(*token))
            self.pos += 1
        return "".join(parts)

    def list_values(self, depth: int) -> list[Any]:
        values: list[Any] = []
        while (token := self.peek()) is not None:
            kind, raw = token
            if kind == "punct" and raw == "]":
                self.pos += 1
                break
            if kind == "punct" and raw in _CLOSE:
                self.pos += 1
                if depth >= self.max_depth:
                    self.too_deep = True
                    self.skip_block()
                else:
                    values.append(self.message(depth + 1, _CLOSE[raw]))
            elif kind in ("string", "number", "ident"):
                values.append(self.value())
            else:
                self.pos += 1
        return values

    def skip_block(self) -> None:
        level = 1
        while level and (token := self.peek()) is not None:
            self.pos += 1
            if token[0] == "punct" and token[1] in "{<":
                level += 1
            elif token[0] == "punct" and token[1] in "}>":
                level -= 1


def parse(text: str, *, max_depth: int = 32, max_tokens: int = 2_000_000) -> TextParse:
    """Parse text-format protobuf without a schema; never raises on bad input."""
    tokens, bad_chars, truncated = _tokenize(text, max_tokens)
    parser = _Parser(tokens, max_depth)
    message: TextMessage = {}
    while parser.pos < len(tokens):
        start = parser.pos
        for key, values in parser.message(0, None).items():
            message.setdefault(key, []).extend(values)
        if parser.pos == start:
            parser.pos += 1
            parser.skipped += 1
    parsed = TextParse(message, parser.skipped + bad_chars, parser.too_deep, truncated)
    if parsed.skipped_tokens:
        parsed.anomalies.append("textproto_unparsed_tokens")
    if parsed.too_deep:
        parsed.anomalies.append("textproto_too_deep")
    if parsed.truncated:
        parsed.anomalies.append("textproto_token_limit")
    return parsed


def first(message: TextMessage | None, key: str, default: Any = None) -> Any:
    """The first value of ``key`` or ``default``."""
    if not isinstance(message, dict):
        return default
    values = message.get(key) or []
    return values[0] if values else default


def many(message: TextMessage | None, key: str) -> list[Any]:
    """Every value of ``key`` (repeated fields)."""
    if not isinstance(message, dict):
        return []
    return list(message.get(key) or [])


def submessages(message: TextMessage | None, key: str) -> list[TextMessage]:
    """Every value of ``key`` that is itself a message."""
    return [value for value in many(message, key) if isinstance(value, dict)]


def find_all(message: TextMessage, key: str, *, limit: int = 100_000) -> list[TextMessage]:
    """Every sub-message named ``key`` at any depth (e.g. ``station_info`` wherever it sits)."""
    found: list[TextMessage] = []
    stack: list[TextMessage] = [message]
    while stack and len(found) < limit:
        current = stack.pop()
        for name, values in current.items():
            for value in values:
                if isinstance(value, dict):
                    if name == key:
                        found.append(value)
                    stack.append(value)
    return found


def plain(message: TextMessage) -> dict[str, Any]:
    """JSON-friendly form: single values unwrapped, repeated ones kept as lists."""
    out: dict[str, Any] = {}
    for name, values in message.items():
        converted = [plain(v) if isinstance(v, dict) else v for v in values]
        out[name] = converted[0] if len(converted) == 1 else converted
    return out
