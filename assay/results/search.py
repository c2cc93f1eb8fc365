"""A Lucene-like query language over submissions, as Assemblyline's search speaks it.

    metadata.file_path:"/tmp/x" AND max_score:>=500
    state:completed AND NOT name:*.exe
    times.submitted:[2026-01-01 TO *] OR (sha256:ab* AND error_count:>0)

Terms join with AND (also implied), OR, NOT/-, parentheses. Values may be quoted, may carry
``*``/``?`` wildcards, a comparison (``>``, ``>=``, ``<``, ``<=``) or a range ``[a TO b]``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, not_, or_, select, true

from assay.access.visibility import Reader
from assay.db.models import Submission, SubmissionMeta

MAX_DEPTH = 32
MAX_TERMS = 200
_TOKEN = re.compile(
    r'\s*(?:(?P<lp>\()|(?P<rp>\))|(?P<quoted>"(?:[^"\\]|\\.)*")|(?P<range>[\[{][^\]}]*[\]}])|(?P<word>[^\s()"\[{]+))'
)


class QueryError(ValueError):
    """The query cannot be understood; the message says where."""


@dataclass(frozen=True)
class _Field:
    column: Any
    kind: str  # "text" | "int" | "time"


_FIELDS: dict[str, _Field] = {
    "sid": _Field(Submission.sid, "text"),
    "state": _Field(Submission.state, "text"),
    "max_score": _Field(Submission.max_score, "int"),
    "file_count": _Field(Submission.file_count, "int"),
    "error_count": _Field(Submission.error_count, "int"),
    "scan_key": _Field(Submission.scan_key, "text"),
    "classification": _Field(Submission.classification, "text"),
    "params.priority": _Field(Submission.priority, "int"),
    "params.submitter": _Field(Submission.user, "text"),
    "name": _Field(Submission.name, "text"),
    "files.name": _Field(Submission.name, "text"),
    "sha256": _Field(Submission.sha256, "text"),
    "files.sha256": _Field(Submission.sha256, "text"),
    "times.submitted": _Field(Submission.created, "time"),
    "times.completed": _Field(Submission.completed, "time"),
}


def _tokens(text: str) -> list[tuple[str, str]]:
    tokens, pos = [], 0
    text = text.strip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise QueryError(f"cannot read the query at position {pos}: {text[pos : pos + 20]!r}")
        kind = match.lastgroup or "word"
        tokens.append((kind, match.group(kind)))
        pos = match.end()
    if len(tokens) > MAX_TERMS:
        raise QueryError(f"the query has more than {MAX_TERMS} terms")
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.pos = 0

    def parse(self) -> ColumnElement[bool]:
        if not self.tokens:
            return true()
        expression = self._or(0)
        if self.pos < len(self.tokens):
            raise QueryError(f"unexpected {self.tokens[self.pos][1]!r}")
        return expression

    def _peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def _or(self, depth: int) -> ColumnElement[bool]:
        parts = [self._and(depth)]
        while (tok := self._peek()) and tok == ("word", "OR"):
            self.pos += 1
            parts.append(self._and(depth))
        return parts[0] if len(parts) == 1 else or_(*parts)

    def _and(self, depth: int) -> ColumnElement[bool]:
        parts = [self._not(depth)]
        while (tok := self._peek()) and tok[0] != "rp" and tok != ("word", "OR"):
            if tok == ("word", "AND"):
                self.pos += 1
            parts.append(self._not(depth))
        return parts[0] if len(parts) == 1 else and_(*parts)

    def _not(self, depth: int) -> ColumnElement[bool]:
        tok = self._peek()
        if tok == ("word", "NOT"):
            self.pos += 1
            return not_(self._not(depth))
        if tok and tok[0] == "word" and tok[1].startswith("-") and len(tok[1]) > 1:
            self.tokens[self.pos] = ("word", tok[1][1:])
            return not_(self._atom(depth))
        return self._atom(depth)

    def _atom(self, depth: int) -> ColumnElement[bool]:
        if depth > MAX_DEPTH:
            raise QueryError("the query is nested too deeply")
        tok = self._peek()
        if tok is None:
            raise QueryError("the query ends where a term was expected")
        self.pos += 1
        if tok[0] == "lp":
            inner = self._or(depth + 1)
            if self._peek() != ("rp", ")"):
                raise QueryError("a '(' is never closed")
            self.pos += 1
            return inner
        if tok[0] == "rp":
            raise QueryError("a ')' closes nothing")
        if tok[0] == "word" and ":" in tok[1] and not tok[1].startswith(":"):
            field, _, value = tok[1].partition(":")
            if not value:  # field:"quoted" or field:[range] arrives as a separate token
                following = self._peek()
                if following is None or following[0] not in {"quoted", "range", "word"}:
                    raise QueryError(f"{field}: has no value")
                self.pos += 1
                value = following[1]
            return _condition(field, value)
        return _free_text(_unquote(tok[1]))


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value


def _like(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%").replace("?", "_")


def _text_match(column: Any, raw: str) -> ColumnElement[bool]:
    quoted = raw.startswith('"')
    value = _unquote(raw)
    if not quoted and ("*" in value or "?" in value):
        return column.like(_like(value), escape="\\")
    return column == value


def _convert(kind: str, value: str, field: str) -> Any:
    if value == "*":
        return None
    if kind == "text":
        return value
    try:
        if kind == "time":
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
            return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        number = int(value)
    except ValueError:
        raise QueryError(f"{field} needs a {'number' if kind == 'int' else 'date'}, not {value!r}") from None
    if not -(2**31) <= number < 2**31:  # the columns are 32-bit integers
        raise QueryError(f"{field} is a 32-bit number: {value} is out of range")
    return number


_COMPARE: dict[str, Callable[[Any, Any], Any]] = {
    ">=": lambda c, v: c >= v,
    "<=": lambda c, v: c <= v,
    ">": lambda c, v: c > v,
    "<": lambda c, v: c < v,
}


def _compare(column: Any, kind: str, field: str, raw: str) -> ColumnElement[bool]:
    if raw[:1] in "[{":
        low, sep, high = raw[1:-1].partition(" TO ")
        if not sep:
            raise QueryError(f"{field}: a range is written [low TO high]")
        lo, hi = _convert(kind, low.strip(), field), _convert(kind, high.strip(), field)
        parts = []
        if lo is not None:
            parts.append(column >= lo if raw[0] == "[" else column > lo)
        if hi is not None:
            parts.append(column <= hi if raw[-1] == "]" else column < hi)
        return and_(true(), *parts)
    for op in (">=", "<=", ">", "<"):
        if raw.startswith(op):
            return _COMPARE[op](column, _convert(kind, raw[len(op) :], field))
    if kind == "text":
        return _text_match(column, raw)
    converted = _convert(kind, _unquote(raw), field)
    return true() if converted is None else column == converted


def _condition(field: str, raw: str) -> ColumnElement[bool]:
    if field == "*" and raw == "*":
        return true()
    if field.startswith("metadata."):
        key = field[len("metadata.") :]
        if raw[:1] in "[{" or raw[:1] in "<>":
            inner = _compare(SubmissionMeta.value, "text", field, raw)
        else:
            inner = _text_match(SubmissionMeta.value, raw)
        return exists().where(SubmissionMeta.sid == Submission.sid, SubmissionMeta.key == key, inner)
    known = _FIELDS.get(field)
    if known is None:
        raise QueryError(f"unknown field {field!r}; known: {', '.join(sorted(_FIELDS))}, metadata.<key>")
    return _compare(known.column, known.kind, field, raw)


def _free_text(value: str) -> ColumnElement[bool]:
    pattern = _like(value if "*" in value else f"*{value}*")
    return or_(
        Submission.name.like(pattern, escape="\\"),
        Submission.sid == value,
        Submission.sha256 == value.lower(),
        exists().where(SubmissionMeta.sid == Submission.sid, SubmissionMeta.value.like(pattern, escape="\\")),
    )


def parse(query: str) -> ColumnElement[bool]:
    """The query as a SQLAlchemy condition on :class:`Submission`."""
    if len(query) > 8192:
        raise QueryError("the query is longer than 8192 characters")
    return _Parser(query or "*:*").parse()


def submissions_query(query: str, filters: list[str], reader: Reader) -> Any:
    """The submissions matching ``query`` and every filter that ``reader`` may see.

    The visibility condition is part of the query itself, so a count over it (the search
    total) counts only what the reader could list.
    """
    condition = parse(query)
    for extra in filters:
        condition = and_(condition, parse(extra))
    return select(Submission).where(condition, reader.sees(Submission))
