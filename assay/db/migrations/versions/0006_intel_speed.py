"""intel speed: no per-row foreign key checks on the hot tables, partial indexes for sparse columns

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24 00:15:00.000000

`intel_indicator.owner_id` and both ends of `intel_group_indicator` lose their foreign keys (the
store keeps those links itself, see `assay.intel.models`). The hash unique constraints and the xid
index become partial indexes over the rows where the column is set.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

HASHES = ("md5", "sha1", "sha256")


def _where(column: str) -> dict[str, sa.TextClause]:
    clause = sa.text(f"{column} IS NOT NULL")
    return {"postgresql_where": clause, "sqlite_where": clause}


def upgrade() -> None:
    with op.batch_alter_table("intel_group_indicator", schema=None) as batch_op:
        batch_op.drop_constraint("fk_intel_group_indicator_group_id_intel_group", type_="foreignkey")
        batch_op.drop_constraint("fk_intel_group_indicator_indicator_id_intel_indicator", type_="foreignkey")

    with op.batch_alter_table("intel_indicator", schema=None) as batch_op:
        batch_op.drop_constraint("fk_intel_indicator_owner_id_intel_owner", type_="foreignkey")
        for column in HASHES:
            batch_op.drop_constraint(f"uq_intel_indicator_owner_{column}", type_="unique")
        batch_op.drop_index("ix_intel_indicator_owner_xid")

    with op.batch_alter_table("intel_indicator", schema=None) as batch_op:
        for column in HASHES:
            batch_op.create_index(
                f"uq_intel_indicator_owner_{column}", ["owner_id", column], unique=True, **_where(column)
            )
        batch_op.create_index("ix_intel_indicator_owner_xid", ["owner_id", "xid"], unique=False, **_where("xid"))


def downgrade() -> None:
    with op.batch_alter_table("intel_indicator", schema=None) as batch_op:
        batch_op.drop_index("ix_intel_indicator_owner_xid")
        for column in HASHES:
            batch_op.drop_index(f"uq_intel_indicator_owner_{column}")

    with op.batch_alter_table("intel_indicator", schema=None) as batch_op:
        batch_op.create_index("ix_intel_indicator_owner_xid", ["owner_id", "xid"], unique=False)
        for column in HASHES:
            batch_op.create_unique_constraint(f"uq_intel_indicator_owner_{column}", ["owner_id", column])
        batch_op.create_foreign_key(
            "fk_intel_indicator_owner_id_intel_owner", "intel_owner", ["owner_id"], ["id"], ondelete="CASCADE"
        )

    with op.batch_alter_table("intel_group_indicator", schema=None) as batch_op:
        batch_op.create_foreign_key(
            "fk_intel_group_indicator_group_id_intel_group", "intel_group", ["group_id"], ["id"], ondelete="CASCADE"
        )
        batch_op.create_foreign_key(
            "fk_intel_group_indicator_indicator_id_intel_indicator",
            "intel_indicator",
            ["indicator_id"],
            ["id"],
            ondelete="CASCADE",
        )
