"""JSON for the hot paths (database columns, API answers): orjson, with the standard library's
behaviour where orjson refuses a value (integers beyond 64 bits, non-string keys)."""

from __future__ import annotations

import json
from typing import Any

import orjson

_OPTIONS = orjson.OPT_NON_STR_KEYS


def dumps_bytes(value: Any) -> bytes:
    try:
        return orjson.dumps(value, option=_OPTIONS)
    except orjson.JSONEncodeError:
        return json.dumps(value, ensure_ascii=False, allow_nan=False).encode()


def dumps(value: Any) -> str:
    return dumps_bytes(value).decode()


def loads(text: str | bytes) -> Any:
    """Parse JSON; raises :class:`json.JSONDecodeError` (with ``msg`` and ``pos``) when it is not."""
    return orjson.loads(text)
