"""unpublished index: workers find submissions still to publish without scanning the completed ones

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-24 02:10:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_submissions_unpublished",
        "submissions",
        ["state", "completed"],
        unique=False,
        sqlite_where=sa.text("published IS 0"),
        postgresql_where=sa.text("published IS false"),
    )


def downgrade() -> None:
    op.drop_index("ix_submissions_unpublished", table_name="submissions")
