"""sessions: the API key a session was opened with (its ACL holds, its revocation ends the session)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Earlier sessions do not say which key opened them, so they would carry the user's whole
    # role past the key's ACL: they end, which costs each client one login.
    op.execute("DELETE FROM web_sessions")
    with op.batch_alter_table("web_sessions") as table:
        table.add_column(sa.Column("apikey_id", sa.Integer(), nullable=True))
        table.create_foreign_key(
            table.f("fk_web_sessions_apikey_id_apikeys"), "apikeys", ["apikey_id"], ["id"], ondelete="CASCADE"
        )
        table.create_index(table.f("ix_web_sessions_apikey_id"), ["apikey_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("web_sessions") as table:
        table.drop_index(table.f("ix_web_sessions_apikey_id"))
        table.drop_constraint(table.f("fk_web_sessions_apikey_id_apikeys"), type_="foreignkey")
        table.drop_column("apikey_id")
