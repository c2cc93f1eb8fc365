"""classification: files, results, notifications, tasks and cases carry a marking; submissions filter on theirs

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06 14:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

UNRESTRICTED = "TLP:CLEAR"
RESTRICTED = "TLP:RED"
MARKED_TABLES = ("files", "results", "notifications", "tasks", "cases")
# TLP 2.0 as the engine read it when this migration was written: spelling -> (canonical, level).
TLP_SPELLINGS = {
    "TLP:GREEN": ("TLP:GREEN", 1),
    "TLP:G": ("TLP:GREEN", 1),
    "TLP:AMBER": ("TLP:AMBER", 2),
    "TLP:A": ("TLP:AMBER", 2),
    "TLP:AMBER+STRICT": ("TLP:AMBER+STRICT", 3),
    "TLP:A+S": ("TLP:AMBER+STRICT", 3),
    "TLP:RED": ("TLP:RED", 4),
    "TLP:R": ("TLP:RED", 4),
}
CLEAR_SPELLINGS = ("", "TLP:CLEAR", "TLP:C", "TLP:W", "TLP:WHITE")


def _marking_columns() -> list[sa.Column]:
    return [
        sa.Column("classification_level", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("classification_groups", sa.Text(), nullable=False, server_default=""),
    ]


def upgrade() -> None:
    # Rows from before markings were enforced are unrestricted: the engine's default, TLP:CLEAR.
    for name in MARKED_TABLES:
        with op.batch_alter_table(name) as table:
            table.add_column(sa.Column("classification", sa.Text(), nullable=False, server_default=UNRESTRICTED))
            for column in _marking_columns():
                table.add_column(column)
    with op.batch_alter_table("submissions") as table:
        # Canonical markings with several REL TO groups outgrow 128 characters.
        table.alter_column("classification", type_=sa.Text(), existing_type=sa.String(128), existing_nullable=False)
        for column in _marking_columns():
            table.add_column(column)
    _mark_earlier_submissions()


def _mark_earlier_submissions() -> None:
    """Earlier submissions keep the TLP level they asked for, in canonical form.

    Their text was never checked: what names no plain TLP level is taken as the highest, so a
    marking that cannot be read hides its submission from everyone but the fully cleared.
    """
    spelled = sa.func.upper(sa.func.trim(sa.column("classification")))
    submissions = sa.table("submissions", sa.column("classification"), sa.column("classification_level"))
    for canonical, level in sorted(set(TLP_SPELLINGS.values()), key=lambda item: item[1]):
        names = [name for name, target in TLP_SPELLINGS.items() if target == (canonical, level)]
        op.execute(
            submissions.update().where(spelled.in_(names)).values(classification=canonical, classification_level=level)
        )
    op.execute(submissions.update().where(spelled.in_(CLEAR_SPELLINGS)).values(classification=UNRESTRICTED))
    readable = [*TLP_SPELLINGS, *CLEAR_SPELLINGS]
    op.execute(
        submissions.update()
        .where(spelled.not_in(readable))
        .values(classification=RESTRICTED, classification_level=TLP_SPELLINGS[RESTRICTED][1])
    )


def downgrade() -> None:
    with op.batch_alter_table("submissions") as table:
        table.drop_column("classification_groups")
        table.drop_column("classification_level")
        table.alter_column("classification", type_=sa.String(128), existing_type=sa.Text(), existing_nullable=False)
    for name in reversed(MARKED_TABLES):
        with op.batch_alter_table(name) as table:
            table.drop_column("classification_groups")
            table.drop_column("classification_level")
            table.drop_column("classification")
