"""The sensor integrator's two scripts, with the unmodified assemblyline-client, in every mode.

Sender: walks a directory and ingests each file with its path in metadata and a notification
queue. Receiver: loops on get_message_list, reads file_path and sid, asks for max_score.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from assemblyline_client import get_client

from tests.helpers.servers import RABBIT_URL, REDIS_URL, Server, drop_pg, make_server, new_pg_url


def make_tree(root: Path, count: int) -> dict[str, bytes]:
    files = {}
    for index in range(count):
        folder = root / f"dir{index % 3}"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"file{index}.{['txt', 'bin', 'sh'][index % 3]}"
        data = (f"#!/bin/sh\necho {index}\n" if index % 3 == 2 else f"sample {index} ").encode() + os.urandom(64)
        path.write_bytes(data)
        files[str(path)] = data
    return files


def sender(url: str, apikey: str, directory: Path, queue: str) -> int:
    client = get_client(url, apikey=("admin", apikey), verify=False)
    sent = 0
    for root, _dirs, names in os.walk(directory):
        for name in names:
            path = os.path.join(root, name)
            client.ingest(path=path, metadata={"file_path": path}, nq=queue)
            sent += 1
    return sent


def receiver(url: str, apikey: str, queue: str, expected: int, timeout: float = 120) -> dict[str, int]:
    client = get_client(url, apikey=("admin", apikey), verify=False)
    scores: dict[str, int] = {}
    deadline = time.monotonic() + timeout
    while len(scores) < expected and time.monotonic() < deadline:
        for message in client.ingest.get_message_list(queue):
            path = message["submission"]["metadata"]["file_path"]
            sid = message["submission"]["sid"]
            scores[path] = client.submission(sid)["max_score"]
        time.sleep(0.1)
    return scores


@pytest.fixture(
    params=[
        "embedded",
        pytest.param("celery-redis", marks=pytest.mark.services),
        pytest.param("celery-rabbitmq", marks=pytest.mark.services),
    ]
)
def any_mode_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Server]:
    mode = request.param
    if mode == "embedded":
        server = make_server(tmp_path / "data")
        server.start()
        yield server
        server.stop()
        return
    name, url = new_pg_url()
    broker = REDIS_URL.format(db=5) if mode == "celery-redis" else RABBIT_URL
    env = {"ASSAY_DATABASE_URL": url, "ASSAY_QUEUE_BROKER_URL": broker}
    server = make_server(tmp_path / "data", env)
    _purge(broker)
    try:
        server.start()
        server.start_celery_worker(concurrency=2)
        yield server
    finally:
        server.stop()
        drop_pg(name)


def _purge(broker: str) -> None:
    from celery import Celery

    app = Celery(broker=broker)
    app.conf.task_default_queue = "assay"
    with app.connection_for_write() as connection, contextlib.suppress(Exception):  # the queue may not exist yet
        connection.default_channel.queue_purge("assay")


def test_sensor_sender_and_receiver_scripts(any_mode_server: Server, tmp_path: Path) -> None:
    files = make_tree(tmp_path / "sensor", 24)
    sent = sender(any_mode_server.url, any_mode_server.apikey, tmp_path / "sensor", "sensor-q")
    assert sent == len(files)
    scores = receiver(any_mode_server.url, any_mode_server.apikey, "sensor-q", len(files))
    assert set(scores) == set(files)
    assert all(isinstance(score, int) for score in scores.values())
    # Once the work is done, every submission reaches the intel store, whichever mode ran it.
    deadline = time.monotonic() + 60
    with any_mode_server.client() as client:
        while True:
            reports = client.get("/api/v4/intel/groups/", params={"type": "Report"}).json()["api_response"]
            if reports["total"] >= len(files):
                break
            assert time.monotonic() < deadline, f"{reports['total']} of {len(files)} submissions published"
            time.sleep(0.5)
    assert reports["total"] == len(files)
