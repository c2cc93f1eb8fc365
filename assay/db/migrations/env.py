"""Alembic environment: runs on the connection handed over by :func:`assay.db.session.upgrade`."""

from __future__ import annotations

from alembic import context

import assay.db.models
import assay.intel.models
import assay.iotinsight.models  # noqa: F401  (every table registered on Base.metadata)
from assay.db.base import Base

connection = context.config.attributes.get("connection")
if connection is None:
    from assay.db.session import get_engine

    connection = get_engine().connect()

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
