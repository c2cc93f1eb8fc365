"""Identifiers in Assemblyline's shape: 22 characters of base62 from 128 random bits."""

from __future__ import annotations

import secrets

_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def new_id() -> str:
    value = secrets.randbits(128)
    chars = []
    for _ in range(22):
        value, digit = divmod(value, 62)
        chars.append(_ALPHABET[digit])
    return "".join(reversed(chars))


def is_id(text: str) -> bool:
    return 0 < len(text) <= 32 and all(c in _ALPHABET for c in text)
