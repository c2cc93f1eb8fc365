"""Group commit: ingests announced together share one transaction."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from assay.committer import Committer
from assay.db import models
from assay.db.session import get_engine, session_scope
from assay.filestore import FileStore
from assay.ingest import IngestOrder, Intake, Overloaded
from assay.params import BadParams
from tests.conftest import local_settings


class CountingIntake(Intake):
    """The real intake, remembering how many orders each transaction carried."""

    batches: list[int]

    def ingest_many(self, session: Session, orders: list[IngestOrder]) -> list[str | BadParams | Overloaded]:
        self.batches.append(len(orders))
        return super().ingest_many(session, orders)


def test_requests_read_at_the_same_time_are_written_in_one_transaction(tmp_path: Path) -> None:
    settings = local_settings(tmp_path)
    engine = get_engine(settings.database_url)
    intake = CountingIntake(settings)
    intake.batches = []
    committer = Committer(intake, engine, linger=30.0)  # long enough that only the count can end the wait
    store = FileStore(settings.storage_path)

    async def one_request(index: int, announced: contextlib.ExitStack) -> str:
        await asyncio.sleep(0.01 * index)  # the uploads finish one after another
        order = IngestOrder("admin", store.put_bytes(b"file %d" % index), f"f{index}", {}, {}, "q")
        announced.close()
        return await committer.ingest(order)

    async def five_requests() -> list[str]:
        stacks = []
        for _ in range(5):
            stack = contextlib.ExitStack()
            stack.enter_context(committer.expecting())
            stacks.append(stack)
        return await asyncio.gather(*(one_request(i, stack) for i, stack in enumerate(stacks)))

    ids = asyncio.run(five_requests())
    assert len(set(ids)) == 5 and intake.batches == [5]
    lone = asyncio.run(committer.ingest(IngestOrder("admin", store.put_bytes(b"alone"), "a", {}, {}, "q")))
    assert intake.batches == [5, 1]  # an order nobody announced is written on its own
    with session_scope(engine, readonly=True) as session:
        assert session.scalar(select(func.count()).select_from(models.Ingest)) == 6
        assert session.get(models.Ingest, lone) is not None
