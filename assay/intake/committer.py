"""Group commit: ingests from many concurrent requests written in shared transactions.

A request hands its order over and waits; one writer thread takes every order waiting
(up to ``max_batch``), writes them in one transaction, commits once and then wakes each request
with its ingest id or its error. Nothing is acknowledged before its commit, and a busy server
pays one commit for many ingests instead of one each.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from assay.db.session import session_scope, write_isolating
from assay.intake.ingest import IngestOrder, Intake, Overloaded

log = logging.getLogger(__name__)


@dataclass
class _Pending:
    order: IngestOrder
    ingest_id: str | None = None
    error: Exception | None = None
    on_done: Callable[[_Pending], None] | None = None


class Committer:
    """The one writer of ingests in this process."""

    def __init__(self, intake: Intake, engine: Engine, max_batch: int = 128, linger: float = 0.01) -> None:
        self.intake = intake
        self.engine = engine
        self.max_batch = max_batch
        self.linger = linger
        self._orders: deque[_Pending] = deque()
        self._expected = 0
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="assay-ingest-writer", daemon=True)
        self._thread.start()

    @contextlib.contextmanager
    def expecting(self) -> Iterator[None]:
        """Wrap the reading of a request that will hand an order over.

        The writer waits up to ``linger`` seconds for orders announced this way, so requests
        read concurrently share one transaction instead of paying for one each.
        """
        with self._changed:
            self._expected += 1
        try:
            yield
        finally:
            with self._changed:
                self._expected -= 1
                self._changed.notify()

    async def ingest(self, order: IngestOrder, timeout: float = 120.0) -> str:
        """Write ``order``; returns its ingest id once committed (raises what the intake raises).

        The request waits on the event loop, holding no thread.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[_Pending] = loop.create_future()

        def settle(pending: _Pending) -> None:
            loop.call_soon_threadsafe(lambda: future.done() or future.set_result(pending))

        with self._changed:
            self._orders.append(_Pending(order, on_done=settle))
            self._changed.notify()
        try:
            pending = await asyncio.wait_for(future, timeout)
        except TimeoutError:
            raise Overloaded("the database did not take the ingest in time") from None
        if pending.error is not None:
            raise pending.error
        assert pending.ingest_id is not None
        return pending.ingest_id

    def _run(self) -> None:
        while True:
            self._write(self._next_batch())

    def _next_batch(self) -> list[_Pending]:
        with self._changed:
            while not self._orders:
                self._changed.wait()
            deadline = time.monotonic() + self.linger
            while len(self._orders) < self.max_batch and self._expected > 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._changed.wait(left)
            return [self._orders.popleft() for _ in range(min(len(self._orders), self.max_batch))]

    def _write(self, batch: list[_Pending]) -> None:
        try:
            self._store(batch)
        finally:
            for pending in batch:
                if pending.on_done is not None:
                    with contextlib.suppress(RuntimeError):  # the waiting event loop has closed
                        pending.on_done(pending)

    def _store(self, batch: list[_Pending]) -> None:
        """Write ``batch`` in one transaction; one order the database refuses fails alone.

        A database that is away fails them all at once: each request answers 503 and is retried.
        """
        try:
            write_isolating(batch, self._write_together, self._refused)
        except OperationalError as exc:
            log.warning("the database did not take %d ingests: %s", len(batch), exc)
            for pending in batch:
                if pending.ingest_id is None and pending.error is None:  # some may be written already
                    pending.error = exc

    def _write_together(self, batch: list[_Pending]) -> None:
        with session_scope(self.engine) as session, session.no_autoflush:
            outcomes = self.intake.ingest_many(session, [pending.order for pending in batch])
        for pending, outcome in zip(batch, outcomes, strict=True):
            if isinstance(outcome, str):
                pending.ingest_id = outcome
            else:  # refused before anything of it was written
                pending.error = outcome

    @staticmethod
    def _refused(pending: _Pending, exc: Exception) -> None:
        log.exception("writing an ingest failed")
        pending.ingest_id, pending.error = None, exc
