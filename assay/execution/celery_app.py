"""Scale-out mode: Celery workers on any number of machines, sharing the database and file store.

A message carries no submission: it asks a worker to claim the best submission available
(see :mod:`assay.execution.queue`), so priorities are decided in one place for both modes and
a lost message costs only a delay until the token sender sends another.
"""

from __future__ import annotations

import logging
import threading

from celery import Celery
from celery.signals import worker_process_shutdown

from assay.config import Settings, load_settings
from assay.execution.worker import Worker

log = logging.getLogger(__name__)
TASK = "assay.take_one"
QUEUE = "assay"

app = Celery("assay")
_settings: Settings | None = None
_local = threading.local()
_workers: list[Worker] = []


def configure(settings: Settings) -> Celery:
    """Point the app at ``settings``' broker with the delivery guarantees Assay relies on."""
    global _settings
    _settings = settings
    app.conf.update(
        broker_url=settings.broker_url,
        task_default_queue=QUEUE,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=2,
        broker_transport_options={"visibility_timeout": settings.queue.lease_seconds * 2},
        worker_hijack_root_logger=False,
    )
    return app


def _worker() -> Worker:
    worker = getattr(_local, "worker", None)
    if worker is None:
        worker = _local.worker = Worker(_settings or load_settings())
        _workers.append(worker)
    return worker


@app.task(name=TASK)
def take_one() -> int:
    """Claim and analyse the best waiting submissions (a few at once; spare messages find none)."""
    settings = _settings or load_settings()
    return _worker().take(settings.queue.batch_size)


@worker_process_shutdown.connect
def _close_sandboxes(**_: object) -> None:
    for worker in _workers:
        worker.close()


def run_workers(settings: Settings, name: str | None = None, loglevel: str = "INFO") -> None:
    """One Celery worker process with one analysis thread (and its sandbox); ``assay worker -c N``
    supervises N of these."""
    configure(settings)
    app.worker_main(
        [
            "worker",
            "--pool=threads",
            "--concurrency=1",
            "-Q",
            QUEUE,
            f"--loglevel={loglevel}",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            *([f"--hostname={name}@%h"] if name else []),
        ]
    )
