"""Taking a submission back: its rows go, the results of its files stay.

Results are keyed by content and shared by every submission of the same file, so deleting one
submission only unlinks them; the file store is left alone for the same reason.
"""

from __future__ import annotations

from sqlalchemy import delete
from sqlalchemy.orm import Session

from assay.db import models

_BELONGING = (models.SubmissionMeta, models.SubmissionFile, models.SubmissionResult, models.ServiceError)


def delete_submission(session: Session, sid: str) -> bool:
    """Delete submission ``sid`` and the rows that belong to it; False when there is none."""
    if session.get(models.Submission, sid) is None:
        return False
    for table in _BELONGING:
        session.execute(delete(table).where(table.sid == sid))
    session.execute(delete(models.Submission).where(models.Submission.sid == sid))
    return True
