"""intel owners and markings: owners' members, a marking on groups, indicators and occurrences, batches' key ACL

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 09:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import assay.db.base

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

MARKED_TABLES = ("intel_group", "intel_indicator", "intel_file_occurrence")
# TLP 2.0 as the engine reads it, lowest first: the only labels the store could hold so far.
TLP_LEVELS = ("TLP:CLEAR", "TLP:GREEN", "TLP:AMBER", "TLP:AMBER+STRICT", "TLP:RED")
RESTRICTED = len(TLP_LEVELS) - 1


def upgrade() -> None:
    op.create_table(
        "intel_owner_member",
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("user", sa.String(length=64), nullable=False),
        sa.Column("created_at", assay.db.base.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["owner_id"],
            ["intel_owner.id"],
            name=op.f("fk_intel_owner_member_owner_id_intel_owner"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("owner_id", "user", name=op.f("pk_intel_owner_member")),
    )
    op.create_index("ix_intel_owner_member_user", "intel_owner_member", ["user"], unique=False)
    for name in MARKED_TABLES:
        with op.batch_alter_table(name) as table:
            for column in _marking_columns():
                table.add_column(column)
    with op.batch_alter_table("intel_batch") as table:
        table.add_column(sa.Column("key_acl", sa.String(length=8), nullable=True))
    _mark_labelled_items()
    _mark_occurrences()
    # Publication labels items with their submission's marking from now on; publishing again
    # (which adds nothing twice) labels what was published before it did.
    submissions = sa.table("submissions", sa.column("state"), sa.column("published"))
    op.execute(submissions.update().where(submissions.c.state == "completed").values(published=sa.false()))


def _marking(name: str, *others: str) -> sa.TableClause:
    """A lightweight table of `name` with its marking columns and `others`."""
    columns = ("classification", "classification_level", *others)
    return sa.table(name, *(sa.column(c) for c in columns))


def _marking_columns() -> list[sa.Column]:
    """The columns of assay.db.models.Classified; what existed before is unrestricted (the lowest level)."""
    return [
        sa.Column("classification", sa.Text(), nullable=False, server_default=TLP_LEVELS[0]),
        sa.Column("classification_level", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("classification_groups", sa.Text(), nullable=False, server_default=""),
    ]


def _mark_labelled_items() -> None:
    """An item's marking is its least restrictive label: highest first, so the lowest is written last."""
    for name in ("intel_group", "intel_indicator"):
        table = _marking(name, "security_labels")
        text = sa.cast(table.c.security_labels, sa.Text)
        for level in reversed(range(len(TLP_LEVELS))):
            label = TLP_LEVELS[level]
            op.execute(
                table.update().where(text.like(f'%"{label}"%')).values(classification=label, classification_level=level)
            )


def _mark_occurrences() -> None:
    """Occurrences take their indicator's marking; those of published files the highest.

    Publication never said which submission reported an occurrence, so an occurrence of a file
    it published may come from a restricted one: it is shown only to the fully cleared from now on.
    """
    occurrence = _marking("intel_file_occurrence", "indicator_id")
    indicator = _marking("intel_indicator", "id")
    link = sa.table("intel_group_indicator", sa.column("group_id"), sa.column("indicator_id"))
    group = sa.table("intel_group", sa.column("id"), sa.column("type"), sa.column("xid"))
    own = indicator.c.id == occurrence.c.indicator_id
    op.execute(
        occurrence.update()
        .values(
            classification=sa.select(indicator.c.classification).where(own).scalar_subquery(),
            classification_level=sa.select(indicator.c.classification_level).where(own).scalar_subquery(),
        )
        .where(sa.exists().where(own))
    )
    published = (
        sa.select(link.c.indicator_id)
        .join(group, group.c.id == link.c.group_id)
        .where(group.c.type == "Report", group.c.xid.like("assay-submission-%"))
    )
    op.execute(
        occurrence.update()
        .where(occurrence.c.indicator_id.in_(published))
        .values(classification=TLP_LEVELS[RESTRICTED], classification_level=RESTRICTED)
    )


def downgrade() -> None:
    with op.batch_alter_table("intel_batch") as table:
        table.drop_column("key_acl")
    for name in reversed(MARKED_TABLES):
        with op.batch_alter_table(name) as table:
            table.drop_column("classification_groups")
            table.drop_column("classification_level")
            table.drop_column("classification")
    op.drop_index("ix_intel_owner_member_user", table_name="intel_owner_member")
    op.drop_table("intel_owner_member")
