"""The tables of the analysis side: who may call, what was submitted, what was found, who to tell."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, Float, ForeignKey, Index, Integer, String, Text, false, text
from sqlalchemy.orm import Mapped, mapped_column

from assay.db.base import Base, JsonType, UtcDateTime, utcnow

UNRESTRICTED = "TLP:CLEAR"
"""What a classified row holds when nothing marked it: the lowest TLP level, released to no group."""


class Classified:
    """A marking as the three columns :mod:`assay.access.visibility` writes and filters on.

    The text is what answers show; the level index and the ``,G1,G2,`` group list are what the
    read queries compare, so filtering costs two column tests and no parsing.
    """

    classification: Mapped[str] = mapped_column(Text, default=UNRESTRICTED, server_default=UNRESTRICTED)
    classification_level: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    classification_groups: Mapped[str] = mapped_column(Text, default="", server_default="")


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str | None] = mapped_column(String(256))
    created: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    classification: Mapped[str] = mapped_column(String(512), server_default="TLP:RED")  # the user's clearance
    groups: Mapped[list[str]] = mapped_column(JsonType, default=list, server_default=text("'[]'"))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class ApiKey(Base):
    """Only a hash of the secret is kept; the secret is shown once when the key is made."""

    __tablename__ = "apikeys"
    __table_args__ = (Index("uq_apikeys_user_name", "user_id", "name", unique=True),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(64))
    secret_hash: Mapped[str] = mapped_column(String(64))
    created: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    acl: Mapped[str | None] = mapped_column(String(8))  # R, W, E letters; None: the user's whole role
    expires: Mapped[datetime | None] = mapped_column(UtcDateTime)


class WebSession(Base):
    __tablename__ = "web_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    expires: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    # The key a session was opened with: it keeps that key's ACL and ends when the key is revoked.
    apikey_id: Mapped[int | None] = mapped_column(ForeignKey("apikeys.id", ondelete="CASCADE"), index=True)


class File(Classified, Base):
    """A distinct content, shared by every submission that contains it.

    Its marking is the lowest it was submitted at (``min_of``): whoever could see one of its
    submissions may see the file, though not the other submissions or their results.
    """

    __tablename__ = "files"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    md5: Mapped[str] = mapped_column(String(32), index=True)
    sha1: Mapped[str] = mapped_column(String(40), index=True)
    size: Mapped[int] = mapped_column(BigInteger)
    type: Mapped[str | None] = mapped_column(String(128))
    mime: Mapped[str | None] = mapped_column(String(128))
    magic: Mapped[str | None] = mapped_column(Text)
    ssdeep: Mapped[str | None] = mapped_column(Text)
    tlsh: Mapped[str | None] = mapped_column(String(80))
    entropy: Mapped[float | None] = mapped_column(Float)
    seen_count: Mapped[int] = mapped_column(Integer, default=1)
    seen_first: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    seen_last: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class Submission(Classified, Base):
    """One analysis run over a root file and everything extracted from it.

    The ``lease_*``/``dispatched_at`` columns make this table the queue of record: a worker
    owns a submission while its lease runs, and an expired lease hands it to another.
    """

    __tablename__ = "submissions"
    __table_args__ = (
        Index("ix_submissions_queue", "state", "priority", "created"),
        Index("ix_submissions_scan_key", "scan_key", "state"),
        # Only the few submissions not yet published to intel, which workers look for every round.
        Index(
            "ix_submissions_unpublished",
            "state",
            "completed",
            sqlite_where=text("published IS 0"),
            postgresql_where=text("published IS false"),
        ),
    )

    sid: Mapped[str] = mapped_column(String(32), primary_key=True)
    user: Mapped[str] = mapped_column(String(64), index=True)
    state: Mapped[str] = mapped_column(String(16), default="submitted")
    priority: Mapped[int] = mapped_column(Integer, default=150)
    scan_key: Mapped[str] = mapped_column(String(40))
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    name: Mapped[str] = mapped_column(Text)
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    params: Mapped[dict[str, Any]] = mapped_column(JsonType)
    meta: Mapped[dict[str, str]] = mapped_column("metadata", JsonType)
    max_score: Mapped[int] = mapped_column(Integer, default=0)
    file_count: Mapped[int] = mapped_column(Integer, default=0)
    error_count: Mapped[int] = mapped_column(Integer, default=0)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, index=True)
    completed: Mapped[datetime | None] = mapped_column(UtcDateTime)
    expiry: Mapped[datetime | None] = mapped_column(UtcDateTime)
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    dispatched_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    published: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class SubmissionMeta(Base):
    """Flattened metadata as rows, so ``metadata.file_path:"/x"`` is an indexed look-up everywhere."""

    __tablename__ = "submission_meta"
    __table_args__ = (Index("ix_submission_meta_kv", "key", "value"),)

    sid: Mapped[str] = mapped_column(ForeignKey("submissions.sid", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(256), primary_key=True)
    value: Mapped[str] = mapped_column(String(4096))


class SubmissionFile(Base):
    """A node of a submission's file tree (a file may appear under several parents)."""

    __tablename__ = "submission_files"
    __table_args__ = (Index("ix_submission_files_sid", "sid"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    sid: Mapped[str] = mapped_column(ForeignKey("submissions.sid", ondelete="CASCADE"))
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    parent: Mapped[str | None] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(Text)
    depth: Mapped[int] = mapped_column(Integer, default=0)
    score: Mapped[int] = mapped_column(Integer, default=0)
    truncated: Mapped[bool] = mapped_column(Boolean, default=False)


class ResultRecord(Classified, Base):
    """One service's findings on one content; keyed so identical reruns reuse it.

    The key holds the marking the submission asked for, so a result made under one marking is
    never reused, nor shown, under a lower one.
    """

    __tablename__ = "results"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    service: Mapped[str] = mapped_column(String(64))
    service_version: Mapped[str] = mapped_column(String(32))
    score: Mapped[int] = mapped_column(Integer, default=0)
    body: Mapped[dict[str, Any]] = mapped_column(JsonType)
    created: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class SubmissionResult(Base):
    __tablename__ = "submission_results"

    sid: Mapped[str] = mapped_column(ForeignKey("submissions.sid", ondelete="CASCADE"), primary_key=True)
    result_key: Mapped[str] = mapped_column(String(200), primary_key=True)


class ServiceError(Base):
    __tablename__ = "service_errors"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    sid: Mapped[str] = mapped_column(ForeignKey("submissions.sid", ondelete="CASCADE"), index=True)
    sha256: Mapped[str] = mapped_column(String(64))
    service: Mapped[str] = mapped_column(String(64))
    error_type: Mapped[str] = mapped_column(String(32))
    message: Mapped[str] = mapped_column(Text)
    created: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class ServiceCrash(Base):
    """How often a service died on a content; at the limit it is not run on it again."""

    __tablename__ = "service_crashes"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    service: Mapped[str] = mapped_column(String(64), primary_key=True)
    count: Mapped[int] = mapped_column(Integer, default=0)


class TagRecord(Base):
    """A tag as a searchable row: ``network.static.domain = example.com`` on a content."""

    __tablename__ = "tags"
    __table_args__ = (Index("ix_tags_type_value", "type", "value"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    result_key: Mapped[str] = mapped_column(ForeignKey("results.key", ondelete="CASCADE"), index=True)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    type: Mapped[str] = mapped_column(String(128))
    value: Mapped[str] = mapped_column(Text)


class Ingest(Base):
    """One fire-and-forget ingest: who sent it, whom to tell, and which submission answers it."""

    __tablename__ = "ingests"
    __table_args__ = (Index("ix_ingests_sid_state", "sid", "state"),)

    ingest_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user: Mapped[str] = mapped_column(String(64))
    queue: Mapped[str | None] = mapped_column(String(256))
    threshold: Mapped[int | None] = mapped_column(Integer)
    sid: Mapped[str | None] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(16), default="waiting")
    failure: Mapped[str] = mapped_column(Text, default="")
    message: Mapped[dict[str, Any]] = mapped_column(JsonType)
    created: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class Notification(Classified, Base):
    """A message waiting in a user's notification queue until it is popped."""

    __tablename__ = "notifications"
    __table_args__ = (Index("ix_notifications_queue", "user", "queue", "id"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    user: Mapped[str] = mapped_column(String(64))
    queue: Mapped[str] = mapped_column(String(256))
    message: Mapped[dict[str, Any]] = mapped_column(JsonType)
    created: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class SafelistEntry(Base):
    """A known-good hash (``md5``/``sha1``/``sha256``) or network indicator (by its tag type)."""

    __tablename__ = "safelist"
    __table_args__ = (Index("uq_safelist_kind_value", "kind", "value", unique=True),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(64))
    value: Mapped[str] = mapped_column(String(2048))
    source: Mapped[str] = mapped_column(String(256), default="")
    reason: Mapped[str] = mapped_column(Text, default="")
    user: Mapped[str] = mapped_column(String(64), default="")
    created: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
