"""The tables IoTInsight tasks need beyond submissions: tasks, cases, and which tasks form a case.

A ``tasks`` row exists for every task. For a file task its ``task_id`` is the submission's
``sid`` (the task *is* the submission); an account task exists before its submission does
(collection takes a while), so it carries its own state until ``sid`` is filled in. Nothing
here holds a credential: account secrets live only in the collecting thread's memory.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from assay.db.base import Base, UtcDateTime, utcnow
from assay.db.models import Classified


class Task(Classified, Base):
    """One IoTInsight task; ``state`` matters only while ``sid`` is empty.

    Its marking is the one it was asked for, known before an account task has a submission;
    once there is one, the submission's (which may rise) must be visible too.
    """

    __tablename__ = "tasks"

    task_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    filetype: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16), default="pending")
    sid: Mapped[str | None] = mapped_column(String(32), index=True)
    path: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str] = mapped_column(Text, default="")
    created: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class Case(Classified, Base):
    """Tasks examined together (a bulk request makes one), merged into one inventory and timeline.

    Marked as the bulk request asked; a reader sees only the tasks of it they may see.
    """

    __tablename__ = "cases"

    case_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user: Mapped[str] = mapped_column(String(64))
    root: Mapped[str | None] = mapped_column(Text)
    created: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class CaseTask(Base):
    __tablename__ = "case_tasks"

    case_id: Mapped[str] = mapped_column(ForeignKey("cases.case_id", ondelete="CASCADE"), primary_key=True)
    task_id: Mapped[str] = mapped_column(
        ForeignKey("tasks.task_id", ondelete="CASCADE"), primary_key=True, index=True
    )
    path: Mapped[str | None] = mapped_column(Text)
