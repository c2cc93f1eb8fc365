"""access: users' clearance, groups and disabled flag; API keys' ACL and expiry

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04 19:20:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import assay.db.base

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

# Users from before clearances existed saw everything; they keep that (the highest TLP level).
EARLIER_USERS_CLEARANCE = "TLP:RED"


def upgrade() -> None:
    with op.batch_alter_table("users") as table:
        table.add_column(
            sa.Column("classification", sa.String(512), nullable=False, server_default=EARLIER_USERS_CLEARANCE)
        )
        table.add_column(sa.Column("groups", assay.db.base.JsonType, nullable=False, server_default=sa.text("'[]'")))
        table.add_column(sa.Column("disabled", sa.Boolean(), nullable=False, server_default=sa.false()))
    with op.batch_alter_table("apikeys") as table:
        table.add_column(sa.Column("acl", sa.String(8), nullable=True))
        table.add_column(sa.Column("expires", assay.db.base.UtcDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("apikeys") as table:
        table.drop_column("expires")
        table.drop_column("acl")
    with op.batch_alter_table("users") as table:
        table.drop_column("disabled")
        table.drop_column("groups")
        table.drop_column("classification")
