"""A tolerant reader for "JSON" that browsers' viewers and scrapers write.

Scraped cloud answers (the DFRWS 2017 Alexa activity files) look like JSON but carry unquoted
keys and string values with unescaped inner quotes, e.g. ``description: "{"summary":"x"}",``.
:func:`loads` tries strict JSON first, then a relaxed grammar (bare keys, single quotes,
``undefined``, trailing commas), then a line mode where a string ends at the last quote on
its line that only structure (``,`` ``}`` ``]``) follows. Strings read in line mode keep
their text raw, so an embedded JSON document stays parseable. Depth and size are bounded.
"""

from __future__ import annotations

import json
import re
from typing import Any

MAX_DEPTH = 64
MAX_SIZE = 16 * 1024 * 1024
_BARE = re.compile(r"[A-Za-z0-9_$@.\-+]+")
_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?")
_LINE_TAIL = re.compile(r"[\s,}\]]*")
_LITERALS: dict[str, Any] = {"null": None, "true": True, "false": False, "undefined": None}
_ESCAPES = {'"': '"', "'": "'", "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}


class TolerantJSONError(ValueError):
    """The text is not even loosely JSON."""


class _Parser:
    def __init__(self, text: str, line_mode: bool, max_depth: int) -> None:
        self.text = text
        self.pos = 0
        self.line_mode = line_mode
        self.max_depth = max_depth

    def fail(self, what: str) -> TolerantJSONError:
        return TolerantJSONError(f"{what} at offset {self.pos}")

    def skip(self) -> None:
        text, pos = self.text, self.pos
        while pos < len(text) and text[pos] in " \t\r\n\ufeff":
            pos += 1
        self.pos = pos

    def document(self) -> Any:
        value = self.value(0)
        self.skip()
        if self.pos != len(self.text):
            raise self.fail("trailing data")
        return value

    def value(self, depth: int) -> Any:
        if depth > self.max_depth:
            raise self.fail("nesting too deep")
        self.skip()
        if self.pos >= len(self.text):
            raise self.fail("unexpected end")
        char = self.text[self.pos]
        if char == "{":
            return self.obj(depth)
        if char == "[":
            return self.array(depth)
        if char in "\"'":
            return self.string()
        return self.scalar()

    def obj(self, depth: int) -> dict[str, Any]:
        self.pos += 1
        out: dict[str, Any] = {}
        while True:
            self.skip()
            if self.peek("}"):
                return out
            key = self.string() if self.text[self.pos : self.pos + 1] in ('"', "'") else self.bare()
            self.skip()
            if not self.peek(":"):
                raise self.fail("expected ':'")
            out[key] = self.value(depth + 1)
            self.skip()
            if self.peek(","):
                continue
            if self.peek("}"):
                return out
            raise self.fail("expected ',' or '}'")

    def array(self, depth: int) -> list[Any]:
        self.pos += 1
        out: list[Any] = []
        while True:
            self.skip()
            if self.peek("]"):
                return out
            out.append(self.value(depth + 1))
            self.skip()
            if self.peek(","):
                continue
            if self.peek("]"):
                return out
            raise self.fail("expected ',' or ']'")

    def peek(self, char: str) -> bool:
        if self.text.startswith(char, self.pos):
            self.pos += len(char)
            return True
        return False

    def bare(self) -> str:
        match = _BARE.match(self.text, self.pos)
        if match is None:
            raise self.fail("expected a key")
        self.pos = match.end()
        return match.group()

    def scalar(self) -> Any:
        match = _NUMBER.match(self.text, self.pos)
        word = _BARE.match(self.text, self.pos)
        if word is not None and word.group() in _LITERALS:
            self.pos = word.end()
            return _LITERALS[word.group()]
        if match is None or (word is not None and word.end() > match.end()):
            raise self.fail("unexpected character")
        self.pos = match.end()
        number = match.group()
        try:
            return int(number) if number.lstrip("-").isdigit() else float(number)
        except ValueError:  # beyond Python's digit limit for int()
            raise self.fail("number too long") from None

    def string(self) -> str:
        quote = self.text[self.pos]
        if self.line_mode:
            raw = self.line_string(quote)
            if raw is not None:
                return raw
        return self.strict_string(quote)

    def line_string(self, quote: str) -> str | None:
        start = self.pos + 1
        end = self.text.find("\n", start)
        end = len(self.text) if end < 0 else end
        close = self.text.rfind(quote, start, end)
        while close >= start:
            if _LINE_TAIL.fullmatch(self.text, close + 1, end):
                self.pos = close + 1
                return self.text[start:close]
            close = self.text.rfind(quote, start, close)
        return None

    def strict_string(self, quote: str) -> str:
        text = self.text
        pos = self.pos + 1
        out: list[str] = []
        while pos < len(text):
            char = text[pos]
            if char == quote:
                self.pos = pos + 1
                return "".join(out)
            if char == "\\" and pos + 1 < len(text):
                pos, piece = self.escape(pos + 1)
                out.append(piece)
                continue
            out.append(char)
            pos += 1
        raise self.fail("unterminated string")

    def escape(self, pos: int) -> tuple[int, str]:
        char = self.text[pos]
        if char == "u":
            digits = self.text[pos + 1 : pos + 5]
            if len(digits) == 4 and all(c in "0123456789abcdefABCDEF" for c in digits):
                return pos + 5, chr(int(digits, 16))
            return pos + 1, "u"
        return pos + 1, _ESCAPES.get(char, char)


def loads(text: str | bytes, *, max_depth: int = MAX_DEPTH, max_size: int = MAX_SIZE) -> Any:
    """The value of loosely-JSON ``text``; raises :class:`TolerantJSONError` when nothing fits."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    if len(text) > max_size:
        raise TolerantJSONError(f"text of {len(text)} characters exceeds {max_size}")
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        pass
    last: TolerantJSONError | None = None
    for line_mode in (False, True):
        try:
            return _Parser(text, line_mode, max_depth).document()
        except TolerantJSONError as exc:
            last = exc
    raise last or TolerantJSONError("not JSON")


def loads_or_none(text: str | bytes | None, **limits: int) -> Any:
    """:func:`loads`, or ``None`` for empty or hopeless text."""
    if not text:
        return None
    try:
        return loads(text, **limits)
    except TolerantJSONError:
        return None
