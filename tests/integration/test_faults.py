"""Faults end with every accepted file analysed and notified: crashing services, killed workers,
a killed server, a broker that is down."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psycopg
import pytest

from assay.db.models import ServiceError, Submission
from assay.db.session import get_engine, session_scope
from assay.dispatch.sandbox import Call, Sandbox, ServiceFailure
from assay.execution.worker import Worker
from assay.services.base import FileRequest, Result
from tests.helpers.servers import (
    PG_ADMIN,
    REDIS_URL,
    assay_env,
    drop_pg,
    free_port,
    ingest_bytes,
    local_settings,
    make_server,
    new_pg_url,
    submit_file,
    wait_for_messages,
)

PLUGIN = "tests.plugins.faulty"


# -- the sandbox ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sandbox() -> Sandbox:
    box = Sandbox(memory_mb=768, extra_modules=(PLUGIN,))
    yield box
    box.close()


def request_for(tmp_path: Path, content: bytes) -> FileRequest:
    path = tmp_path / "sample"
    path.write_bytes(content)
    return FileRequest(path=path, sha256="0" * 64, name="sample", size=len(content))


@pytest.mark.parametrize(
    ("service", "content", "kind"),
    [
        ("Raiser", b"RAISE\n", "exception"),
        ("Hanger", b"HANG\n", "timeout"),
        ("Crasher", b"CRASH\n", "crash"),
        ("Hog", b"HOG\n", "exception"),
    ],
)
def test_a_misbehaving_service_costs_only_its_own_result(
    sandbox: Sandbox, tmp_path: Path, service: str, content: bytes, kind: str
) -> None:
    outcome = sandbox.execute(service, request_for(tmp_path, content), timeout=1.0 if kind == "timeout" else 30)
    assert isinstance(outcome, ServiceFailure) and outcome.kind == kind
    after = sandbox.execute("Digests", request_for(tmp_path, b"fine afterwards"), timeout=30)
    assert isinstance(after, Result) and after.file_info["sha256"]


@pytest.mark.parametrize(
    ("service", "content", "kind"), [("Hanger", b"HANG\n", "timeout"), ("Crasher", b"CRASH\n", "crash")]
)
def test_calls_sent_together_keep_answers_before_a_failure_and_run_those_after_it(
    sandbox: Sandbox, tmp_path: Path, service: str, content: bytes, kind: str
) -> None:
    bad = request_for(tmp_path, content)
    good = tmp_path / "good"
    good.write_bytes(b"a file every service is fine with")
    fine = FileRequest(path=good, sha256="0" * 64, name="good", size=good.stat().st_size)
    calls = [Call("Digests", fine, 30), Call(service, bad, 1.0), Call("Raiser", fine, 30), Call("Digests", fine, 30)]
    first, failed, quiet, last = sandbox.execute_many(calls)
    assert isinstance(first, Result) and isinstance(last, Result)
    assert first.file_info["sha256"] == last.file_info["sha256"]
    assert isinstance(failed, ServiceFailure) and failed.kind == kind and service in failed.message
    assert isinstance(quiet, Result)  # Raiser acts only on RAISE files


# -- the dispatcher, in process ------------------------------------------------------------------
@pytest.fixture
def local(tmp_path: Path) -> tuple:
    settings = local_settings(
        tmp_path,
        {
            "ASSAY_SERVICES_EXTRA_MODULES": PLUGIN,
            "ASSAY_LIMITS_SERVICE_TIMEOUT": "2",
            "ASSAY_LIMITS_SERVICE_MEMORY_MB": "768",
        },
    )
    engine = get_engine(settings.database_url)
    worker = Worker(settings, "test-worker")
    yield settings, engine, worker
    worker.close()


def submit(settings, engine, content: bytes, services: list[str]) -> str:
    return submit_file(settings, content, "sample", params={"services": {"selected": services}})[0]


def test_failing_services_become_error_records_and_the_submission_completes(local: tuple) -> None:
    settings, engine, worker = local
    sid = submit(settings, engine, b"RAISE\nCRASH\n", ["Raiser", "Crasher", "Entropy"])
    assert worker.take(5) == 1
    with session_scope(engine) as session:
        submission = session.get(Submission, sid)
        errors = session.query(ServiceError).filter_by(sid=sid).all()
        assert submission.state == "completed" and submission.error_count == 1
        assert {e.service for e in errors} == {"Raiser"}
    sid = submit(settings, engine, b"CRASH\n", ["Crasher", "Entropy"])
    worker.take(5)
    with session_scope(engine) as session:
        errors = session.query(ServiceError).filter_by(sid=sid).all()
        assert [(e.service, e.error_type) for e in errors] == [("Crasher", "crash")]
        assert any(
            k.startswith(f"{session.get(Submission, sid).sha256}.Entropy")
            for k in [
                r.result_key
                for r in session.execute(
                    __import__("sqlalchemy").text("select result_key from submission_results where sid=:s"),
                    {"s": sid},
                )
            ]
        )


def test_a_file_that_kills_a_service_three_times_is_not_tried_a_fourth(local: tuple) -> None:
    settings, engine, worker = local
    kinds = []
    for _ in range(4):
        sid = submit(settings, engine, b"CRASH\nsame bytes every time\n", ["Crasher"])
        worker.take(1)
        with session_scope(engine) as session:
            [error] = session.query(ServiceError).filter_by(sid=sid).all()
            kinds.append((error.error_type, "not retried" in error.message))
    assert kinds == [("crash", False)] * 3 + [("crash", True)]


def test_hanging_service_is_stopped_at_its_time_limit(local: tuple) -> None:
    settings, engine, worker = local
    sid = submit(settings, engine, b"HANG\n", ["Hanger", "Entropy"])
    worker.take(1)
    with session_scope(engine) as session:
        assert session.get(Submission, sid).state == "completed"
        [error] = session.query(ServiceError).filter_by(sid=sid).all()
        assert error.error_type == "timeout"


# -- processes killed ------------------------------------------------------------------------------
def worker_pids(data_dir: Path) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
            environ = (proc / "environ").read_bytes()
        except OSError:
            continue
        if b"--embedded" in cmdline and str(data_dir).encode() in environ + b"".join(cmdline):
            pids.append(int(proc.name))
    return pids


def wait_for_file(path: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def start_slow_analysis(client: httpx.Client, marker: Path, queue: str) -> str:
    """Ingest a file the Slow test service works on, and return once its analysis has begun."""
    ingest_id = ingest_bytes(
        client,
        f"SLOW {marker}\n".encode(),
        "slow.txt",
        notification_queue=queue,
        params={"services": {"selected": ["Slow"]}},
    )
    wait_for_file(marker)
    return ingest_id


def test_worker_killed_mid_analysis_still_analyses_and_notifies_once(tmp_path: Path) -> None:
    server = make_server(tmp_path / "data", {"ASSAY_SERVICES_EXTRA_MODULES": PLUGIN, "ASSAY_TEST_SLOW_SECONDS": "2"})
    server.start()
    try:
        marker = tmp_path / "slow-started"
        with server.client() as client:
            ingest_id = start_slow_analysis(client, marker, "kill-q")
            pids = worker_pids(server.data_dir)
            assert pids
            for pid in pids:
                os.kill(pid, signal.SIGKILL)
            messages = wait_for_messages(client, "kill-q", 1, timeout=90)
            time.sleep(1)
            messages += wait_for_messages(client, "kill-q", 1, timeout=1)
        assert [m["ingest_id"] for m in messages] == [ingest_id]
        assert messages[0]["score"] == 42
        assert len(marker.read_text().split()) == 2  # started, killed, started again, finished
    finally:
        server.stop()


@pytest.mark.services
def test_server_killed_after_accepting_loses_nothing(tmp_path: Path) -> None:
    server = make_server(tmp_path / "data")
    server.start()
    with server.client() as client:
        ids = {
            ingest_bytes(client, os.urandom(256) + bytes([i]), f"f{i}.bin", notification_queue="crash-q")
            for i in range(60)
        }
    server.kill(signal.SIGKILL)
    server.start()
    try:
        with server.client() as client:
            messages = wait_for_messages(client, "crash-q", len(ids), timeout=120)
            time.sleep(1)
            messages += wait_for_messages(client, "crash-q", 1, timeout=1)
        assert sorted(m["ingest_id"] for m in messages) == sorted(ids)
    finally:
        server.stop()


# -- the broker ------------------------------------------------------------------------------------
def start_redis(port: int, directory: Path) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(directory),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True).stdout.strip() != b"PONG":
        assert time.monotonic() < deadline, "redis did not start"
        time.sleep(0.1)
    return process


@pytest.mark.services
def test_broker_down_ingest_stays_open_and_work_runs_when_it_is_back(tmp_path: Path) -> None:
    """Answer: ingest keeps answering 200; the work waits in the database until the broker returns."""
    port = free_port()
    redis = start_redis(port, tmp_path)
    name, url = new_pg_url()
    server = make_server(
        tmp_path / "data",
        {"ASSAY_DATABASE_URL": url, "ASSAY_QUEUE_BROKER_URL": f"redis://127.0.0.1:{port}/0"},
    )
    try:
        server.start()
        redis.kill()
        redis.wait()
        with server.client() as client:
            ids = {ingest_bytes(client, os.urandom(300), f"b{i}.bin", notification_queue="down-q") for i in range(10)}
            time.sleep(1.5)
            redis = start_redis(port, tmp_path)
            server.start_celery_worker(concurrency=2)
            messages = wait_for_messages(client, "down-q", len(ids), timeout=120)
        assert {m["ingest_id"] for m in messages} == ids
    finally:
        server.stop()
        redis.kill()
        drop_pg(name)


@pytest.mark.services
def test_celery_worker_killed_mid_analysis_is_taken_over(tmp_path: Path) -> None:
    name, url = new_pg_url()
    env = {
        "ASSAY_DATABASE_URL": url,
        "ASSAY_QUEUE_BROKER_URL": REDIS_URL.format(db=6),
        "ASSAY_QUEUE_LEASE_SECONDS": "4",
        "ASSAY_QUEUE_REDISPATCH_SECONDS": "2",
        "ASSAY_SERVICES_EXTRA_MODULES": PLUGIN,
        "ASSAY_TEST_SLOW_SECONDS": "2",
    }
    server = make_server(tmp_path / "data", env)
    try:
        server.start()
        first = server.start_celery_worker(concurrency=1)
        marker = tmp_path / "slow-started"
        with server.client() as client:
            ingest_id = start_slow_analysis(client, marker, "ckill-q")
            os.killpg(first.pid, signal.SIGKILL)
            server.start_celery_worker(concurrency=1)
            messages = wait_for_messages(client, "ckill-q", 1, timeout=120)
        assert [m["ingest_id"] for m in messages] == [ingest_id] and messages[0]["score"] == 42
        record = json.loads(json.dumps(messages[0]))
        assert record["failure"] == ""
    finally:
        server.stop()
        drop_pg(name)


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


def test_a_worker_stops_when_its_supervisor_is_killed(tmp_path: Path) -> None:
    local_settings(tmp_path)  # a migrated data directory under tmp_path / "data"
    env = assay_env(tmp_path / "data")
    supervisor = subprocess.Popen(
        [sys.executable, "-c", ORPHAN_MAKER, str(tmp_path / "data")], env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        worker_pid = int(supervisor.stdout.readline())
        time.sleep(3)
        assert _running(worker_pid)  # it started and polls for work
        supervisor.kill()
        supervisor.wait()
        deadline = time.monotonic() + 60
        while _running(worker_pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _running(worker_pid)
    finally:
        supervisor.kill()
        if _running(worker_pid):
            os.kill(worker_pid, signal.SIGKILL)


# A stand-in for `assay serve`: starts one embedded worker as its supervisor would, then waits.
ORPHAN_MAKER = """
import os, subprocess, sys, time
command = [sys.executable, "-m", "assay", "--data-dir", sys.argv[1], "worker", "--embedded",
           "--worker-id", "orphan-0", "--supervisor-pid", str(os.getpid())]
print(subprocess.Popen(command).pid, flush=True)
time.sleep(600)
"""


@pytest.mark.services
def test_database_away_is_a_503_the_client_retries_and_the_server_recovers(tmp_path: Path) -> None:
    name, url = new_pg_url()
    server = make_server(tmp_path / "data", {"ASSAY_DATABASE_URL": url, "ASSAY_QUEUE_WORKERS": "0"})
    poll = "/api/v4/ingest/get_message_list/away-q/"
    try:
        server.start()
        with server.client() as client:
            assert client.get(poll).status_code == 200
            _allow_connections(name, False)  # like a restart that has not come back yet
            for _ in range(3):
                away = client.get(poll)
                assert away.status_code == 503, away.text
                assert "daily" not in away.json()["api_error_message"]  # so assemblyline-client retries
            refused = client.post(
                "/api/v4/ingest/", files={"json": (None, json.dumps({"name": "a"})), "bin": ("a", b"away")}
            )
            assert refused.status_code == 503
            _allow_connections(name, True)
            assert client.get(poll).status_code == 200
            assert ingest_bytes(client, b"back again", "b.txt", notification_queue="away-q")
    finally:
        server.stop()
        _allow_connections(name, True)
        drop_pg(name)


def _allow_connections(database: str, allowed: bool) -> None:
    """Open or close ``database`` to new connections; closing also ends the ones it has."""
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS {str(allowed).lower()}')
        if not allowed:
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (database,))
