"""Worker processes and their supervisor.

Embedded mode: ``assay serve`` supervises workers that poll the database. Scale-out mode:
``assay worker -c N`` supervises N Celery workers, one process each, because the threads of one
Python process share one interpreter lock and analysis is mostly Python.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from assay.config import Settings
from assay.db.session import get_engine, session_scope
from assay.execution import queue
from assay.execution.worker import Worker

log = logging.getLogger(__name__)
IDLE_SLEEP = (0.02, 0.25)


def run_worker(
    settings: Settings, worker_id: str, stop: threading.Event | None = None, supervisor_pid: int | None = None
) -> None:
    """Poll for work until stopped: busy, claim again at once; idle, back off to 250 ms."""
    stop = stop or threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    if supervisor_pid is not None:
        stop_when_orphaned(supervisor_pid, stop.set)
    worker = Worker(settings, worker_id)
    batch = settings.queue.batch_size
    pause = IDLE_SLEEP[0]
    try:
        while not stop.is_set():
            if worker.take(batch):
                pause = IDLE_SLEEP[0]
                continue
            stop.wait(pause)
            pause = min(pause * 2, IDLE_SLEEP[1])
    finally:
        worker.close()


class Supervisor:
    """Starts ``count`` worker processes and restarts any that dies, handing back its leases
    (a Celery worker's leases run out instead: its threads name them)."""

    def __init__(self, settings: Settings, count: int, config_file: str | None, celery: bool = False) -> None:
        self.settings = settings
        self.count = count
        self.celery = celery
        self.config_file = config_file
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="assay-supervisor", daemon=True)

    def _command(self, worker_id: str) -> list[str]:
        command = [sys.executable, "-m", "assay", "--data-dir", str(self.settings.data_dir)]
        if self.config_file:
            command += ["--config", str(Path(self.config_file).absolute())]
        mode = ["--concurrency", "1"] if self.celery else ["--embedded"]
        return [*command, "worker", *mode, "--worker-id", worker_id, "--supervisor-pid", str(os.getpid())]

    def start(self) -> None:
        for index in range(self.count):
            worker_id = f"{'celery' if self.celery else 'local'}-{index}"
            self._release(worker_id)  # leases left by a server that was killed
            self._spawn(worker_id)
        self._thread.start()

    def _spawn(self, worker_id: str) -> None:
        self.processes[worker_id] = subprocess.Popen(self._command(worker_id))

    def _watch(self) -> None:
        while not self._stop.wait(0.5):
            for worker_id, process in list(self.processes.items()):
                if process.poll() is None or self._stop.is_set():
                    continue
                if process.returncode in (0, -signal.SIGTERM):  # told to stop (a shutdown): stays stopped
                    continue
                log.warning("worker %s exited with %s; restarting it", worker_id, process.returncode)
                self._release(worker_id)
                self._spawn(worker_id)

    def _release(self, worker_id: str) -> None:
        if not self.celery:
            with session_scope(get_engine(self.settings.database_url)) as session:
                queue.release(session, worker_id)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)  # no restart may race the shutdown
        for process in self.processes.values():
            process.terminate()
        deadline = time.monotonic() + 10
        for process in self.processes.values():
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()


def stop_when_orphaned(supervisor_pid: int, stop: Callable[[], None]) -> None:
    """Call ``stop`` once the supervising process is gone: a worker whose server died (even by
    SIGKILL) must not go on working beside the next server's workers."""

    def watch() -> None:
        while os.getppid() == supervisor_pid:
            time.sleep(1.0)
        log.warning("the supervising process %s is gone; stopping", supervisor_pid)
        stop()

    threading.Thread(target=watch, name="assay-orphan-watch", daemon=True).start()


def supervise_until_stopped(supervisor: Supervisor) -> None:
    """Run ``supervisor`` until SIGTERM or Ctrl-C, then stop its workers."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    supervisor.start()
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        supervisor.stop()
