"""The migrations build exactly the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

import assay.db.models
import assay.intel.models
import assay.iotinsight.models  # noqa: F401  (all tables registered)
from assay.db.base import Base
from assay.db.session import get_engine, upgrade
from tests.helpers.servers import drop_pg, new_pg_url


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
@pytest.mark.services
def test_migrated_schema_equals_the_models(backend: str, tmp_path: Path) -> None:
    name = None
    url = f"sqlite:///{tmp_path / 'm.db'}"
    if backend == "postgresql":
        name, url = new_pg_url()
    try:
        engine = get_engine(url)
        upgrade(engine)
        upgrade(engine)  # a second run is a no-op
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []
        engine.dispose()
    finally:
        if name:
            drop_pg(name)
