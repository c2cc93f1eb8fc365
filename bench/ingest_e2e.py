"""End-to-end ingest benchmark: N distinct small files over HTTP, until every notification arrives.

Runs the embedded default (SQLite, local workers) and scale-out (Celery on Redis, PostgreSQL)
side by side in one run, and the limit for the same work: hashing and storing the same bytes
with no API or queue. Prints JSON. Not a test.

    .venv/bin/python bench/ingest_e2e.py --files 2000 --modes embedded,celery-redis,celery-rabbitmq
    .venv/bin/python bench/ingest_e2e.py --sensors 100 --idle-poll 1   # 100 sensors, each its own queue
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import http.client
import io
import json
import os
import random
import statistics
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
import zipfile
from dataclasses import dataclass
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from assay.filestore import FileStore
from tests.helpers.servers import RABBIT_URL, REDIS_URL, Server, drop_pg, make_server, new_pg_url


def make_files(count: int, seed: int = 7) -> list[tuple[str, bytes]]:
    """Distinct files of 1-64 KiB: text, binary, JSON, scripts, gzip, zip, HTML."""
    rng = random.Random(seed)
    files = []
    for index in range(count):
        size = rng.randint(1024, 64 * 1024)
        kind = index % 7
        tag = f"{index}-{rng.random()}".encode()
        if kind == 0:
            data = (b"log line %d " % index + tag + b"\n") * (size // 40)
        elif kind == 1:
            data = tag + rng.randbytes(size)
        elif kind == 2:
            data = json.dumps({"id": index, "tag": tag.decode(), "values": list(range(size // 8))}).encode()
        elif kind == 3:
            data = b"#!/bin/sh\n# " + tag + b"\n" + b"echo hello; curl http://example.com/a\n" * (size // 40)
        elif kind == 4:
            data = gzip.compress(tag + rng.randbytes(size // 2) + b"\0" * (size // 2))
        elif kind == 5:
            buffer = io.BytesIO()
            with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
                archive.writestr(f"inner{index}.txt", tag * (size // len(tag)))
            data = buffer.getvalue()
        else:
            data = (
                b"<html><body><p>"
                + tag
                + b"</p>"
                + b"<a href='http://x.example/'>x</a>" * (size // 40)
                + b"</body></html>"
            )
        files.append((f"file{index}.{['txt', 'bin', 'json', 'sh', 'gz', 'zip', 'html'][kind]}", data))
    return files


class LeanClient:
    """A keep-alive HTTP/1.1 connection from the standard library.

    The senders share the server's two cores, so the bench uses the cheapest correct client it
    can: httpx cost about 4 ms of CPU per ingest on this machine, more than some servers' work.
    """

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        parsed = urllib.parse.urlsplit(url)
        self.connection = http.client.HTTPConnection(parsed.hostname or "127.0.0.1", parsed.port, timeout=120)
        self.headers = headers

    def request(self, method: str, path: str, body: bytes | None = None, content_type: str = "") -> tuple[int, bytes]:
        headers = dict(self.headers)
        if content_type:
            headers["Content-Type"] = content_type
        self.connection.request(method, path, body=body, headers=headers)
        response = self.connection.getresponse()
        return response.status, response.read()

    def __enter__(self) -> LeanClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.connection.close()


def multipart(parts: dict[str, tuple[str | None, bytes]]) -> tuple[str, bytes]:
    """Encode form parts as ``multipart/form-data`` (what the Assemblyline client sends)."""
    boundary = uuid.uuid4().hex
    chunks = []
    for field, (filename, data) in parts.items():
        disposition = f'form-data; name="{field}"' + (f'; filename="{filename}"' if filename else "")
        kind = "application/octet-stream" if filename else "text/plain; charset=utf-8"
        chunks.append(f"--{boundary}\r\nContent-Disposition: {disposition}\r\nContent-Type: {kind}\r\n\r\n".encode())
        chunks.append(data)
        chunks.append(b"\r\n")
    chunks.append(f"--{boundary}--\r\n".encode())
    return f"multipart/form-data; boundary={boundary}", b"".join(chunks)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


@dataclass(frozen=True)
class Load:
    """How the clients behave: the senders share the files; each sensor has its own notification
    queue and a receiver polling it (every ``idle_poll`` seconds while it finds nothing)."""

    senders: int = 16
    sensors: int = 1
    idle_poll: float = 0.1
    services: tuple[str, ...] = ()


def run_load(url: str, headers: dict[str, str], files: list[tuple[str, bytes]], load: Load, prefix: str) -> dict:
    sent_at: dict[str, float] = {}
    got_at: dict[str, float] = {}
    lock = threading.Lock()
    cursor = iter(range(len(files)))
    errors: list[str] = []
    params = {"services": {"selected": list(load.services)}} if load.services else {}
    queues = [f"{prefix}-{k}" for k in range(load.sensors)]

    def send() -> None:
        with LeanClient(url, headers) as client:
            while True:
                with lock:
                    index = next(cursor, None)
                if index is None:
                    return
                name, data = files[index]
                description = json.dumps(
                    {
                        "name": name,
                        "metadata": {"file_path": f"/bench/{name}"},
                        "notification_queue": queues[index % len(queues)],
                        "params": params,
                    }
                )
                content_type, body = multipart({"json": (None, description.encode()), "bin": (name, data)})
                started = time.monotonic()
                while True:
                    status, answer = client.request("POST", "/api/v4/ingest/", body, content_type)
                    if status != 503:
                        break
                    time.sleep(0.05)
                if status != 200:
                    errors.append(answer[:200].decode(errors="replace"))
                    continue
                with lock:
                    sent_at[json.loads(answer)["api_response"]["ingest_id"]] = started

    def receive(stop: threading.Event, queue: str) -> None:
        with LeanClient(url, headers) as client:
            while not stop.is_set():
                _, answer = client.request("GET", f"/api/v4/ingest/get_message_list/{queue}/?page_size=1000")
                now = time.monotonic()
                messages = json.loads(answer)["api_response"]
                with lock:
                    for message in messages:
                        got_at[message["ingest_id"]] = now
                if not messages:
                    stop.wait(load.idle_poll)

    stop = threading.Event()
    receivers = [threading.Thread(target=receive, args=(stop, queue)) for queue in queues]
    for receiver in receivers:
        receiver.start()
    started = time.monotonic()
    threads = [threading.Thread(target=send) for _ in range(load.senders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ingest_done = time.monotonic()
    deadline = ingest_done + 600
    while len(got_at) < len(files) - len(errors) and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    for receiver in receivers:
        receiver.join()
    finished = max(got_at.values(), default=time.monotonic())
    latencies = [got_at[i] - sent_at[i] for i in sent_at if i in got_at]
    return {
        "files": len(files),
        "notified": len(got_at),
        "errors": len(errors),
        "seconds": round(finished - started, 2),
        "files_per_s": round(len(got_at) / (finished - started), 1),
        "ingest_only_files_per_s": round(len(sent_at) / (ingest_done - started), 1),
        "latency_p50_s": round(statistics.median(latencies), 3) if latencies else None,
        "latency_p99_s": round(percentile(latencies, 0.99), 3) if latencies else None,
    }


def bench_mode(mode: str, files: list[tuple[str, bytes]], workers: int, load: Load) -> dict:
    with tempfile.TemporaryDirectory(prefix=f"assay-bench-{mode}-") as tmp:
        data_dir = Path(tmp) / "data"
        pg_name = None
        if mode == "embedded":
            server = make_server(data_dir, {"ASSAY_QUEUE_WORKERS": str(workers)})
        else:
            pg_name, url = new_pg_url()
            server = make_server(
                data_dir, {"ASSAY_DATABASE_URL": url, "ASSAY_QUEUE_BROKER_URL": _broker(mode)}
            )
        try:
            server.start()
            if mode != "embedded":
                server.start_celery_worker(concurrency=workers)
            # Warm-up: the first files pay for starting the sandboxes.
            run_load(server.url, server.headers, make_files(20, seed=99), load, "warmup")
            meter = CpuMeter(server, pg_name)
            figures = run_load(server.url, server.headers, files, load, "bench")
            figures["cpu_ms_per_file"] = meter.per_file(len(files))
            figures["intel_published_s_after_last_message"] = intel_lag(server.url, server.headers, len(files) + 20)
        finally:
            server.stop()
            if pg_name:
                drop_pg(pg_name)
    return figures


def _broker(mode: str) -> str:
    """``celery-rabbitmq`` runs on RabbitMQ; any other scale-out mode on Redis."""
    return RABBIT_URL if mode.endswith("rabbitmq") else REDIS_URL.format(db=9)


class CpuMeter:
    """CPU time spent during the load by each part, from the operating system's counters."""

    def __init__(self, server: Server, pg_name: str | None) -> None:
        self.pg_name = pg_name
        self.roles = self._roles(server)
        self.before = self._times()
        self.client_before = time.process_time()

    def _roles(self, server: Server) -> dict[int, str]:
        roles: dict[int, str] = {}
        for role, popen in [("api", server.process)] + [("workers", w) for w in server.workers]:
            if popen is None:
                continue
            root = psutil.Process(popen.pid)
            roles[root.pid] = role
            for child in root.children(recursive=True):
                command = " ".join(child.cmdline())
                roles[child.pid] = "sandboxes" if "spawn_main" in command else "workers"
        if self.pg_name:
            for process in psutil.process_iter(["cmdline"]):
                if self.pg_name in " ".join(process.info["cmdline"] or []):
                    roles[process.pid] = "postgres"
        return roles

    def _times(self) -> dict[int, float]:
        times = {}
        for pid in self.roles:
            with contextlib.suppress(psutil.Error):
                cpu = psutil.Process(pid).cpu_times()
                times[pid] = cpu.user + cpu.system
        return times

    def per_file(self, files: int) -> dict[str, float]:
        after = self._times()
        spent: dict[str, float] = {}
        for pid, seconds in after.items():
            role = self.roles[pid]
            spent[role] = spent.get(role, 0.0) + seconds - self.before.get(pid, 0.0)
        spent["bench_client"] = time.process_time() - self.client_before
        figures = {role: round(seconds * 1000 / files, 2) for role, seconds in sorted(spent.items())}
        figures["total"] = round(sum(spent.values()) * 1000 / files, 2)
        return figures


def calibration_seconds() -> float:
    """CPU seconds of a fixed pure-Python loop: this machine's speed varies from day to day,
    so figures measured on different days are comparable only next to this."""
    started = time.process_time()
    total = 0
    for value in range(5_000_000):
        total += value
    return round(time.process_time() - started, 3)


def intel_lag(url: str, headers: dict[str, str], expected: int, timeout: float = 300) -> float | None:
    """Seconds from now (the last notification) until every submission is in the intel store.

    Workers analyse first and publish to intel when idle, or once a submission has waited
    ``[intel] publish_max_delay``; this shows what that deferral costs.
    """
    started = time.monotonic()
    with LeanClient(url, headers) as client:
        while time.monotonic() - started < timeout:
            _, answer = client.request("GET", "/api/v4/intel/groups/?type=Report&rows=1")
            if json.loads(answer)["api_response"]["total"] >= expected:
                return round(time.monotonic() - started, 2)
            time.sleep(0.2)
    return None


def store_limit(files: list[tuple[str, bytes]]) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        store = FileStore(Path(tmp))
        started = time.monotonic()
        for _, data in files:
            store.put_bytes(data)
        elapsed = time.monotonic() - started
    return {"files_per_s": round(len(files) / elapsed, 1), "seconds": round(elapsed, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--senders", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--modes", default="embedded,celery-redis")
    parser.add_argument(
        "--services",
        default="",
        help="comma-separated services or categories to select (default: every default service)",
    )
    parser.add_argument("--sensors", type=int, default=1, help="notification queues, one receiver each")
    parser.add_argument("--idle-poll", type=float, default=0.1, help="seconds a receiver waits after an empty poll")
    args = parser.parse_args()
    files = make_files(args.files)
    services = tuple(s for s in args.services.split(",") if s)
    load = Load(args.senders, args.sensors, args.idle_poll, services)
    report: dict = {
        "services": list(services) or "default",
        "files": args.files,
        "bytes": sum(len(d) for _, d in files),
        "cpus": os.cpu_count(),
        "senders": args.senders,
        "sensors": args.sensors,
        "idle_poll_s": args.idle_poll,
        "workers": args.workers,
        "limit_hash_and_store": store_limit(files),
        "calibration_loop_cpu_s_before": calibration_seconds(),
    }
    for mode in args.modes.split(","):
        report[mode] = bench_mode(mode, files, args.workers, load)
        report[mode]["ratio_to_limit"] = round(
            report[mode]["files_per_s"] / report["limit_hash_and_store"]["files_per_s"], 4
        )
    report["calibration_loop_cpu_s_after"] = calibration_seconds()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
