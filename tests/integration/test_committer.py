"""Group commit: ingests announced together share one transaction."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from assay.db import models
from assay.db.session import get_engine, session_scope
from assay.filestore import FileStore
from assay.intake.committer import Committer
from assay.intake.ingest import IngestOrder, Intake, Overloaded
from assay.params import BadParams
from tests.helpers.servers import local_settings


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


def test_an_order_the_database_refuses_fails_alone(tmp_path: Path) -> None:
    settings = local_settings(tmp_path)
    intake = CountingIntake(settings)
    intake.batches = []
    committer = Committer(intake, get_engine(settings.database_url), linger=30.0)
    store = FileStore(settings.storage_path)
    good = [store.put_bytes(b"good %d" % index) for index in range(2)]
    unstorable = dataclasses.replace(store.put_bytes(b"bad"), size=2**64)  # no SQL integer holds it

    async def three_requests() -> list[str | BaseException]:
        stored = [good[0], unstorable, good[1]]
        orders = [IngestOrder("admin", one, f"f{index}", {}, {}, "q") for index, one in enumerate(stored)]
        with contextlib.ExitStack() as announced:
            for _ in orders:
                announced.enter_context(committer.expecting())
            tasks = [asyncio.ensure_future(committer.ingest(order)) for order in orders]
            await asyncio.sleep(0.05)  # every order handed over while all three are announced
        return await asyncio.gather(*tasks, return_exceptions=True)

    first, refused, last = asyncio.run(three_requests())
    assert isinstance(first, str) and isinstance(last, str)
    assert isinstance(refused, Exception)
    assert intake.batches[0] == 3 and sorted(intake.batches[1:]) == [1, 1, 1]  # then each alone
    with session_scope(get_engine(settings.database_url), readonly=True) as session:
        assert {i.ingest_id for i in session.scalars(select(models.Ingest))} == {first, last}
