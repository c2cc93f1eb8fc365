"""Live servers and workers of the tests' own, real PostgreSQL databases, and in-process helpers.

Plain functions and classes, imported by the tests that use them; the fixtures built on them are
in ``tests/conftest.py``.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg

from assay.config import Settings, load_settings
from assay.db.session import get_engine, session_scope, upgrade
from assay.execution.worker import Worker
from assay.filestore import FileStore, Stored
from assay.intake.ingest import Intake

PG_ADMIN = os.environ.get("ASSAY_TEST_PG", "host=127.0.0.1 port=5432 dbname=test user=postgres")
REDIS_URL = "redis://127.0.0.1:6379/{db}"
RABBIT_URL = "amqp://guest:guest@127.0.0.1:5672//"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def new_pg_url() -> tuple[str, str]:
    name = f"assay_test_{secrets.token_hex(4)}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return name, f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"


def drop_pg(name: str) -> None:
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def assay_env(data_dir: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASSAY_")}
    env.update({"ASSAY_DATA_DIR": str(data_dir), "ASSAY_CONFIG": str(data_dir / "none.ini")})
    (data_dir).mkdir(parents=True, exist_ok=True)
    (data_dir / "none.ini").write_text("")
    env.update(extra or {})
    return env


def run_assay(
    args: list[str], env: dict[str, str], timeout: float = 120, **kwargs: object
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "assay", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        **kwargs,
    )


@dataclass
class Server:
    """An ``assay serve`` process of the test's own, and how to reach it."""

    url: str
    data_dir: Path
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    log: Path | None = None

    @property
    def apikey(self) -> str:
        return (self.data_dir / "admin.apikey").read_text().strip()

    @property
    def headers(self) -> dict[str, str]:
        return {"X-USER": "admin", "X-APIKEY": self.apikey}

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=self.headers, timeout=60)

    def start(self, extra_args: list[str] | None = None) -> None:
        port = int(self.url.rsplit(":", 1)[1])
        self.log = self.data_dir / "server.log"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "assay", "serve", "--port", str(port), *(extra_args or [])],
            env=self.env,
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_until_up(self.url, self.process, self.log)

    def start_celery_worker(self, concurrency: int = 2) -> subprocess.Popen[bytes]:
        log = self.data_dir / f"worker{len(self.workers)}.log"
        worker = subprocess.Popen(
            [sys.executable, "-m", "assay", "worker", "--concurrency", str(concurrency)],
            env=self.env,
            stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.workers.append(worker)
        return worker

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Kill the server and everything it started (its process group)."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, sig)
            self.process.wait(30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
        for worker in self.workers:
            if worker.poll() is None:
                os.killpg(worker.pid, signal.SIGTERM)
                try:
                    worker.wait(20)
                except subprocess.TimeoutExpired:
                    os.killpg(worker.pid, signal.SIGKILL)


def wait_until_up(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited early:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/api/", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"server did not come up:\n{log.read_text()[-3000:]}")


@contextmanager
def database_env(backend: str, extra_env: dict[str, str] | None = None) -> Iterator[dict[str, str]]:
    """``extra_env`` plus, for ``postgresql``, a fresh database's URL (dropped afterwards); SQLite needs none."""
    env, pg_name = dict(extra_env or {}), None
    if backend == "postgresql":
        pg_name, env["ASSAY_DATABASE_URL"] = new_pg_url()
    try:
        yield env
    finally:
        if pg_name:
            drop_pg(pg_name)


@contextmanager
def running_server(data_dir: Path, backend: str, extra_env: dict[str, str] | None = None) -> Iterator[Server]:
    """A started server over SQLite or a fresh PostgreSQL database, stopped afterwards."""
    with database_env(backend, extra_env) as env:
        server = make_server(data_dir, env)
        try:
            server.start()
            yield server
        finally:
            server.stop()


def make_server(data_dir: Path, extra_env: dict[str, str] | None = None) -> Server:
    port = free_port()
    return Server(url=f"http://127.0.0.1:{port}", data_dir=data_dir, env=assay_env(data_dir, extra_env))


def wait_for_messages(client: httpx.Client, queue: str, count: int, timeout: float = 90) -> list[dict]:
    got: list[dict] = []
    deadline = time.monotonic() + timeout
    while len(got) < count and time.monotonic() < deadline:
        response = client.get(f"/api/v4/ingest/get_message_list/{queue}/")
        response.raise_for_status()
        got.extend(response.json()["api_response"])
        if len(got) < count:
            time.sleep(0.1)
    return got


def ingest_bytes(client: httpx.Client, data: bytes, name: str, **description: object) -> str:
    import json

    body = {"name": name, **description}
    response = client.post("/api/v4/ingest/", files={"json": (None, json.dumps(body)), "bin": (name, data)})
    assert response.status_code == 200, response.text
    return str(response.json()["api_response"]["ingest_id"])


# -- in-process helpers: a data directory, a submission, one round of a worker -------------------
def local_settings(root: Path, environ: dict[str, str] | None = None) -> Settings:
    """Settings over a fresh, migrated data directory under ``root`` (no config file, only ``environ``)."""
    (root / "none.ini").write_text("")
    settings = load_settings(root / "none.ini", root / "data", environ=environ or {})
    upgrade(get_engine(settings.database_url))
    return settings


def submit_file(
    settings: Settings, data: bytes, name: str, metadata: dict | None = None, params: dict | None = None
) -> tuple[str, Stored]:
    """Store ``data`` and submit it as ``admin``; returns the sid and what was stored."""
    stored = FileStore(settings.storage_path).put_bytes(data)
    with session_scope(get_engine(settings.database_url)) as session:
        sid = Intake(settings).submit(session, "admin", stored, name, metadata or {}, params or {}).sid
    return sid, stored


def work_once(settings: Settings, worker_id: str, limit: int = 1) -> int:
    """One claim-and-analyse round of a worker of this process; returns how many it took."""
    worker = Worker(settings, worker_id)
    try:
        return worker.take(limit)
    finally:
        worker.close()
