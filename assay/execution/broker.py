"""Sends Celery messages for submissions that need one, from the database, so a broker outage
delays analysis but loses nothing: ingest stays open and the backlog drains when it is back."""

from __future__ import annotations

import logging
import math
import threading
import time

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from assay.config import Settings
from assay.db.session import session_scope
from assay.execution import queue
from assay.intel.publish import waited_longer_than

log = logging.getLogger(__name__)
BATCH = 500
ROUND_GAP = 0.05  # at most twenty rounds a second, however many ingests arrive
IDLE_POLL = 0.5  # and at least two: leases run out and intel waits without anyone waking us


class TokenSender:
    """Sends broker tokens from a background thread of the API process (scale-out mode only)."""

    def __init__(self, settings: Settings, engine: Engine) -> None:
        from assay.execution.celery_app import configure

        self.app = configure(settings)
        self.engine = engine
        self.redispatch = settings.queue.redispatch_seconds
        self.take_size = settings.queue.batch_size
        self.intel_interval = float(settings.intel.publish_interval)
        self.intel_enabled = settings.intel.publish
        self._next_intel_check = 0.0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="assay-token-sender", daemon=True)
        self.broker_up = True
        self._announced_batches: set[int] = set()

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(5)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                sent = self.publish_once()
                self.broker_up = True
            except Exception as exc:  # broker or database away: keep the work, try again
                if self.broker_up:
                    log.warning("cannot publish work (%s); will retry", exc)
                self.broker_up = False
                self._stop.wait(1.0)
                continue
            if sent < BATCH:
                self._stop.wait(ROUND_GAP)  # ingests wake this thread one by one: let a round serve many
                self._wake.wait(IDLE_POLL)
                self._wake.clear()

    def _tokens_for(self, submissions: int) -> int:
        """Messages enough for ``submissions``: each makes a worker take up to ``batch_size``
        of the best waiting, and one more lets a second worker start on them at once."""
        return min(submissions, math.ceil(submissions / self.take_size) + 1)

    def _intel_waiting(self, session: Session) -> bool:
        """Completed submissions not yet in intel, and no work left to send: a spare message makes
        a Celery worker idle for one round, and idle workers publish (checked every few seconds)."""
        now = time.monotonic()
        if not self.intel_enabled or now < self._next_intel_check:
            return False
        self._next_intel_check = now + self.intel_interval
        return waited_longer_than(session, self.intel_interval)

    def publish_once(self) -> int:
        from assay.execution.celery_app import TASK

        with session_scope(self.engine, readonly=True) as session:
            pending = queue.to_publish(session, BATCH, self.redispatch)
            batches = queue.queued_batches(session)
            nudge = not pending and self._intel_waiting(session)
        new_batches = [b for b in batches if b not in self._announced_batches]
        if not pending and not new_batches and not nudge:
            self._announced_batches &= set(batches)
            return 0
        with self.app.producer_or_acquire() as producer:
            for _ in range(self._tokens_for(len(pending)) + len(new_batches) + int(nudge)):
                self.app.send_task(TASK, producer=producer, retry=False)
        self._announced_batches = set(batches)
        if pending:
            with session_scope(self.engine) as session:
                queue.mark_published(session, [sid for sid, _ in pending])
        return len(pending)
