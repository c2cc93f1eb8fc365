"""Keeping Wi-Fi keys out of every output, whatever the report holds.

The router masks pre-shared keys with asterisks, but a report from other firmware (or a
crafted one) may not; analysts need to know a key was there, never what it was.
"""

from __future__ import annotations

import re
from typing import Any

MASK = "********"
_SECRET_KEY = re.compile(r"psk|pass(?:word|phrase)?|secret|kek|key|token|credential|bundlemac", re.IGNORECASE)
_CLEAR_CANDIDATE = re.compile(r"psk$|passphrase|password", re.IGNORECASE)
_NOT_A_KEY = re.compile(r"encoded|hash|enabled|_id$", re.IGNORECASE)
_MAX_DEPTH = 64


def is_secret_name(name: str) -> bool:
    return bool(_SECRET_KEY.search(name)) and not name.lower().endswith(("enabled", "_enabled"))


def _masked(value: str) -> bool:
    return not value or set(value) <= {"*"}


def mask(
    value: Any, *, secret: bool = False, depth: int = 0, found: list[str] | None = None, path: str = ""
) -> Any:
    """A copy of ``value`` (JSON-like) with every string under a secret-looking key replaced.

    Names of fields that held a key in clear are appended to ``found``.
    """
    if depth > _MAX_DEPTH:
        return "<too deep>"
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            name = str(key)
            child_secret = secret or is_secret_name(name)
            out[name] = mask(item, secret=child_secret, depth=depth + 1, found=found, path=f"{path}.{name}")
        return out
    if isinstance(value, list):
        return [mask(item, secret=secret, depth=depth + 1, found=found, path=path) for item in value]
    if secret and isinstance(value, str):
        field = path.rsplit(".", 1)[-1]
        if (
            found is not None
            and not _masked(value)
            and _CLEAR_CANDIDATE.search(field)
            and not _NOT_A_KEY.search(field)
        ):
            found.append(path.lstrip("."))
        return value if _masked(value) else MASK
    return value
