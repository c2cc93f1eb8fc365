"""Tables of the threat-intelligence store.

Attributes, tags and security labels live as JSON lists on their item's row: a job then writes an
indicator with one row, which is what lets the bulk path insert thousands of indicators per statement.
Associations and file occurrences are rows of their own because they are queried from both ends.

The two tables a job writes once per indicator, `intel_indicator` and `intel_group_indicator`, carry
no foreign keys: PostgreSQL checks a foreign key with one look-up per inserted row, which cost about
a third of the server's work on a large job. Their integrity is kept by the only code that writes
them (`assay.intel.store`, driven by `assay.intel.runner`): an association is written only with ids
the same job just stored or read, an indicator only under the owner the job just ensured, and
deleting an indicator or a group deletes its association rows explicitly in the same transaction
(owners are never deleted). One race is left: a job linking an item while another job deletes it
can leave a link to a missing row, so readers join links to both ends (as the API does) or skip
ends they cannot find.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from assay.db.base import Base, JsonType, UtcDateTime, utcnow
from assay.db.models import Classified

Json = dict[str, Any]


def _where_set(name: str, column: str, *, unique: bool = False) -> Index:
    """An (owner_id, column) index over the rows where the column is set: most rows leave hashes
    and xid empty, and a job then skips those index insertions (ON CONFLICT still sees it)."""
    where = text(f"{column} IS NOT NULL")
    return Index(name, "owner_id", column, unique=unique, postgresql_where=where, sqlite_where=where)


class Owner(Base):
    """An organisation, community or source; every item belongs to exactly one owner."""

    __tablename__ = "intel_owner"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    kind: Mapped[str] = mapped_column(String(32), default="Organization")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class OwnerMember(Base):
    """A user who may write an owner's intel (with the intel_writer role; admins need no membership).

    Users are named, as batches name them, rather than referenced: the intel tables stand alone
    (they are created without the users table in tests and benchmarks), and a deleted user's
    memberships grant nothing, since every write is made by a user who exists.
    """

    __tablename__ = "intel_owner_member"
    __table_args__ = (Index("ix_intel_owner_member_user", "user"),)

    owner_id: Mapped[int] = mapped_column(ForeignKey("intel_owner.id", ondelete="CASCADE"), primary_key=True)
    user: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class Group(Classified, Base):
    """Adversary, Campaign, Incident, Signature...: named containers indicators are associated with.

    Its marking (the `Classified` columns) is the least restrictive of its security labels, or
    the lowest level without any: see `assay.intel.marking`.
    """

    __tablename__ = "intel_group"
    __table_args__ = (
        UniqueConstraint("owner_id", "xid", name="uq_intel_group_owner_xid"),
        Index("ix_intel_group_owner_type_name", "owner_id", "type", "name"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("intel_owner.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(500))
    xid: Mapped[str | None] = mapped_column(String(255))
    fields: Mapped[Json] = mapped_column(JsonType, default=dict)
    attributes: Mapped[list[Json]] = mapped_column(JsonType, default=list)
    tags: Mapped[list[str]] = mapped_column(JsonType, default=list)
    security_labels: Mapped[list[str]] = mapped_column(JsonType, default=list)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class Indicator(Classified, Base):
    """One observable per (owner, type, normalised summary); File rows also carry their hashes.

    Its marking is the least restrictive of its security labels: an indicator published from a
    TLP:RED and a TLP:GREEN submission was seen at GREEN, so GREEN readers see it (but not the
    RED report, nor the occurrences seen there, which carry their own markings).
    """

    __tablename__ = "intel_indicator"
    __table_args__ = (
        UniqueConstraint("owner_id", "type", "summary", name="uq_intel_indicator_owner_type_summary"),
        *(_where_set(f"uq_intel_indicator_owner_{h}", h, unique=True) for h in ("md5", "sha1", "sha256")),
        _where_set("ix_intel_indicator_owner_xid", "xid"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    owner_id: Mapped[int] = mapped_column(Integer)  # no FK: see the module docstring
    type: Mapped[str] = mapped_column(String(32))
    summary: Mapped[str] = mapped_column(String(2048))
    md5: Mapped[str | None] = mapped_column(String(32))
    sha1: Mapped[str | None] = mapped_column(String(40))
    sha256: Mapped[str | None] = mapped_column(String(64))
    xid: Mapped[str | None] = mapped_column(String(255))
    rating: Mapped[float | None] = mapped_column(Float)
    confidence: Mapped[int | None] = mapped_column(Integer)
    attributes: Mapped[list[Json]] = mapped_column(JsonType, default=list)
    tags: Mapped[list[str]] = mapped_column(JsonType, default=list)
    security_labels: Mapped[list[str]] = mapped_column(JsonType, default=list)
    first_seen: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_seen: Mapped[datetime | None] = mapped_column(UtcDateTime)
    external_dates: Mapped[Json] = mapped_column(JsonType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class GroupIndicator(Base):
    """Group-indicator association."""

    __tablename__ = "intel_group_indicator"
    __table_args__ = (Index("ix_intel_group_indicator_indicator", "indicator_id"),)

    group_id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    indicator_id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class GroupGroup(Base):
    """Undirected group-group association, stored with the smaller id first."""

    __tablename__ = "intel_group_group"
    __table_args__ = (Index("ix_intel_group_group_group_id_2", "group_id_2"),)

    group_id_1: Mapped[int] = mapped_column(ForeignKey("intel_group.id", ondelete="CASCADE"), primary_key=True)
    group_id_2: Mapped[int] = mapped_column(ForeignKey("intel_group.id", ondelete="CASCADE"), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class IndicatorIndicator(Base):
    """Undirected indicator-indicator association, stored with the smaller id first."""

    __tablename__ = "intel_indicator_indicator"
    __table_args__ = (Index("ix_intel_indicator_indicator_indicator_id_2", "indicator_id_2"),)

    indicator_id_1: Mapped[int] = mapped_column(ForeignKey("intel_indicator.id", ondelete="CASCADE"), primary_key=True)
    indicator_id_2: Mapped[int] = mapped_column(ForeignKey("intel_indicator.id", ondelete="CASCADE"), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class FileOccurrence(Classified, Base):
    """Where and when a File indicator was seen; `fingerprint` makes re-submissions idempotent.

    It carries the marking of the item that reported it (a submission's file name and path are
    as classified as the submission), not its indicator's.
    """

    __tablename__ = "intel_file_occurrence"
    __table_args__ = (
        UniqueConstraint("indicator_id", "fingerprint", name="uq_intel_file_occurrence_indicator_fingerprint"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    indicator_id: Mapped[int] = mapped_column(ForeignKey("intel_indicator.id", ondelete="CASCADE"))
    fingerprint: Mapped[str] = mapped_column(String(64))
    file_name: Mapped[str | None] = mapped_column(Text)
    path: Mapped[str | None] = mapped_column(Text)
    date: Mapped[datetime | None] = mapped_column(UtcDateTime)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


INTEL_TABLES = [
    Owner.__table__,
    OwnerMember.__table__,
    Group.__table__,
    Indicator.__table__,
    GroupIndicator.__table__,
    GroupGroup.__table__,
    IndicatorIndicator.__table__,
    FileOccurrence.__table__,
]


class Batch(Base):
    """A V2-style batch: settings first (Created), content next (Queued), then run by a worker."""

    __tablename__ = "intel_batch"
    __table_args__ = (Index("ix_intel_batch_state", "state", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user: Mapped[str] = mapped_column(String(64))
    key_acl: Mapped[str | None] = mapped_column(String(8))  # the uploading key's ACL: the worker's checks use it
    owner: Mapped[str] = mapped_column(String(255))
    settings: Mapped[Json] = mapped_column(JsonType)
    state: Mapped[str] = mapped_column(String(16), default="Created")
    content_sha256: Mapped[str | None] = mapped_column(String(64))
    result: Mapped[Json | None] = mapped_column(JsonType)
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    created: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    completed: Mapped[datetime | None] = mapped_column(UtcDateTime)
