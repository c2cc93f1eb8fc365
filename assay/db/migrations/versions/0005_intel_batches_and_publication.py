"""intel batches and publication

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 23:53:26.604022
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import assay.db.base

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "intel_batch",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("user", sa.String(length=64), nullable=False),
        sa.Column("owner", sa.String(length=255), nullable=False),
        sa.Column(
            "settings", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("content_sha256", sa.String(length=64), nullable=True),
        sa.Column(
            "result", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=True
        ),
        sa.Column("lease_owner", sa.String(length=64), nullable=True),
        sa.Column("lease_until", assay.db.base.UtcDateTime(timezone=True), nullable=True),
        sa.Column("created", assay.db.base.UtcDateTime(timezone=True), nullable=False),
        sa.Column("completed", assay.db.base.UtcDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_intel_batch")),
    )
    with op.batch_alter_table("intel_batch", schema=None) as batch_op:
        batch_op.create_index("ix_intel_batch_state", ["state", "id"], unique=False)

    with op.batch_alter_table("submissions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("published", sa.Boolean(), server_default=sa.false(), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("submissions", schema=None) as batch_op:
        batch_op.drop_column("published")
    with op.batch_alter_table("intel_batch", schema=None) as batch_op:
        batch_op.drop_index("ix_intel_batch_state")
    op.drop_table("intel_batch")
