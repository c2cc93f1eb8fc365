"""JSON for the hot paths (database columns and row batches, API answers): orjson, with the
standard library's behaviour where orjson refuses a value (integers beyond 64 bits). Dates are
written as UTC ISO 8601 either way, naive ones taken as UTC, as the database columns hold them."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import orjson

_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_NAIVE_UTC


def _default(value: Any) -> str:
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def dumps_bytes(value: Any) -> bytes:
    try:
        return orjson.dumps(value, default=_default, option=_OPTIONS)
    except orjson.JSONEncodeError:
        return json.dumps(value, ensure_ascii=False, allow_nan=False, default=_default).encode()


def dumps(value: Any) -> str:
    return dumps_bytes(value).decode()


def loads(text: str | bytes) -> Any:
    """Parse JSON; raises :class:`json.JSONDecodeError` (with ``msg`` and ``pos``) when it is not."""
    return orjson.loads(text)
