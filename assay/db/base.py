"""The declarative base every table derives from, with constraint names Alembic can diff."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, MetaData
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator

from assay import fastjson

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# JSON everywhere, JSONB on PostgreSQL.
JsonType = JSON().with_variant(JSONB(), "postgresql")


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite keeps no offset of its own)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def storable(value: Any) -> Any:
    """``value`` with every NUL character replaced by U+FFFD, in keys and strings at any depth.

    PostgreSQL stores no NUL in text or JSON, and analysis output quotes hostile files: one NUL
    would fail the whole batch its submission is recorded in. Most values hold none, so a JSON
    encoding (fast, in C) is searched first and the copy is made only when one is there.
    """
    if isinstance(value, str):
        return _replace_nul(value)
    try:
        if b"\\u0000" not in fastjson.dumps_bytes(value):
            return value
    except (TypeError, ValueError):  # not JSON at all: look everywhere
        pass
    return _replace_nul(value)


def holds_nul(value: Any) -> bool:
    """Whether any string of ``value`` (keys too, at any depth) holds a NUL character."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list | tuple):
            pending.extend(item)
    return False


def _replace_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {_replace_nul(key): _replace_nul(inner) for key, inner in value.items()}
    if isinstance(value, list | tuple):
        return [_replace_nul(inner) for inner in value]
    return value


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
