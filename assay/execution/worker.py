"""What every worker does with a claimed submission, whichever mode claimed it."""

from __future__ import annotations

import logging
import os
import shutil
import socket
import threading
import time

from assay.config import Settings
from assay.db.session import get_engine, session_scope
from assay.dispatch.dispatcher import Dispatcher
from assay.dispatch.provisions import Provisions
from assay.dispatch.sandbox import Sandbox
from assay.execution import queue
from assay.filestore import FileStore
from assay.intel import batch_queue
from assay.intel.publish import IntelPublisher
from assay.services import registry

log = logging.getLogger(__name__)


def worker_name(prefix: str = "worker") -> str:
    return f"{prefix}-{socket.gethostname()}-{os.getpid()}-{threading.get_ident() % 100000}"


class Worker:
    """A dispatcher, its sandbox and its lease identity (one per thread or process)."""

    def __init__(self, settings: Settings, worker_id: str | None = None) -> None:
        self.settings = settings
        self.worker_id = worker_id or worker_name()
        extra = settings.services.extra_modules
        registry.load_extra(extra)
        self.sandbox = Sandbox(settings.limits.service_memory_mb, extra)
        self.engine = get_engine(settings.database_url)
        provisions = Provisions(settings, self.engine)
        self.store = FileStore(settings.storage_path)
        self.dispatcher = Dispatcher(settings, self.store, self.sandbox, self.worker_id, provisions)
        self.lease_seconds = settings.queue.lease_seconds
        self.publisher = IntelPublisher(settings, self.engine)
        self.publish_interval = float(settings.intel.publish_interval)
        self.publish_max_delay = float(settings.intel.publish_max_delay)
        self._next_publication = 0.0
        self._next_overdue_check = 0.0

    def take(self, limit: int) -> int:
        """Claim up to ``limit`` submissions and analyse them; returns how many were claimed."""
        with session_scope(self.engine) as session:
            claimed = queue.claim(session, self.worker_id, limit, self.lease_seconds)
        if claimed:
            self.dispatcher.run(claimed)
        else:
            claimed_batch = batch_queue.claim(self.engine, self.worker_id, self.lease_seconds)
            if claimed_batch is not None:
                batch_queue.run(self.engine, self.store, claimed_batch, self.worker_id, self.settings)
                return 1
        self._publish_due(busy=bool(claimed))
        return len(claimed)

    def _publish_due(self, busy: bool) -> None:
        """Publish completed submissions to intel, a batch per round.

        Analysis and its notifications come first: an idle worker publishes every
        ``publish_interval`` seconds (every round while full batches wait); a busy one only once
        a submission has waited ``publish_max_delay`` seconds, and then every round until it has
        caught up.
        """
        now = time.monotonic()
        try:
            if busy:
                if now < self._next_overdue_check:
                    return
                self._next_overdue_check = now + self.publish_interval
                if not self.publisher.overdue(self.publish_max_delay):
                    return
                self._next_overdue_check = now  # behind: publish every round until caught up
            elif now < self._next_publication:
                return
            self._next_publication = now + self.publish_interval
            if self.publisher.publish_pending() >= self.publisher.batch:
                self._next_publication = now  # a full batch: more are waiting, go on next round
        except Exception:  # intel must never cost analysis; the next round retries
            log.exception("publishing to intel failed; it will be retried")

    def close(self) -> None:
        self.sandbox.close()
        shutil.rmtree(self.dispatcher.scratch, ignore_errors=True)
