"""The ``assay`` command as people use it: users and keys, ingest and listen, submit --wait."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from tests.helpers.servers import Server, assay_env, run_assay


def test_user_and_apikey_commands_work_without_a_server(tmp_path: Path) -> None:
    env = assay_env(tmp_path / "data")
    added = run_assay(["user", "add", "alice", "--role", "submitter"], env)
    assert added.returncode == 0, added.stderr
    key = run_assay(["apikey", "create", "alice", "laptop"], env)
    assert key.returncode == 0
    last = key.stdout.strip().splitlines()[-1]
    name, secret = last.split(":", 1)
    assert name == "laptop" and len(secret) >= 32
    assert secret not in (tmp_path / "data" / "assay.db").read_bytes().decode("latin-1")
    listed = run_assay(["user", "list", "--data-dir", str(tmp_path / "data")], env)
    assert "alice\tsubmitter" in listed.stdout


def test_mistakes_give_one_line_and_a_non_zero_exit(tmp_path: Path) -> None:
    env = assay_env(tmp_path / "data")
    run_assay(["user", "add", "bob"], env)
    for args, fragment in [
        (["user", "add", "bob"], "already exists"),
        (["user", "add", "bad name!"], "user names"),
        (["apikey", "create", "nobody", "k"], "no user named nobody"),
        (["ingest", str(tmp_path / "missing")], "no such file"),
        (["submit", str(tmp_path / "missing")], "no such file"),
        (["user", "add", "x", "--role", "god"], "invalid choice"),
        (["serve", "--port", "99999"], "must be from 1 to 65535"),
        (["serve", "--workers", "-1"], "must be from 0 to 64"),
        (["worker", "--concurrency", "0"], "must be from 1 to 64"),
        (["listen", "q", "--count", "zero"], "not a whole number"),
        (["serve", "--tls-cert", str(tmp_path / "c.pem"), "--tls-key", str(tmp_path / "k.pem")], "cannot read TLS"),
    ]:
        result = run_assay(args, env)
        assert result.returncode != 0, args
        assert fragment in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr


def test_config_file_that_does_not_exist_is_a_clear_error(tmp_path: Path) -> None:
    env = assay_env(tmp_path / "data")
    result = run_assay(["--config", str(tmp_path / "nope.ini"), "user", "list"], env)
    assert result.returncode == 2 and "does not exist" in result.stderr


def test_ingest_directory_then_listen_prints_each_path_and_score(
    embedded_server: Server, tmp_path: Path
) -> None:
    folder = tmp_path / "case"
    (folder / "sub").mkdir(parents=True)
    paths = []
    for index in range(5):
        path = folder / ("sub" if index % 2 else "") / f"f{index}.txt"
        path.write_bytes(os.urandom(32) + b" hello")
        paths.append(str(path.absolute()))
    env = dict(embedded_server.env)
    common = ["--server", embedded_server.url, "--apikey", embedded_server.apikey]
    sent = run_assay(["ingest", str(folder), "--nq", "cli-q", *common], env)
    assert sent.returncode == 0, sent.stderr
    assert "ingested 5 of 5" in sent.stdout
    heard = run_assay(["listen", "cli-q", "--count", "5", "--timeout", "60", *common], env)
    assert heard.returncode == 0, heard.stderr
    lines = heard.stdout.strip().splitlines()
    assert sorted(line.split("\t")[0] for line in lines) == sorted(paths)
    assert all(line.split("\t")[1].startswith("score ") for line in lines)


def test_local_mode_ingest_is_analysed_by_a_server_started_later(tmp_path: Path) -> None:
    from tests.helpers.servers import make_server

    server = make_server(tmp_path / "data")
    server.start()  # creates the admin user, then stops so the ingest happens with no server at all
    server.stop()
    sample = tmp_path / "later.txt"
    sample.write_text("analysed once a server runs")
    assert run_assay(["ingest", str(sample), "--nq", "later-q"], server.env).returncode == 0
    server.start()
    try:
        heard = run_assay(["listen", "later-q", "--count", "1", "--timeout", "60"], server.env)
        assert heard.returncode == 0, heard.stderr
        assert heard.stdout.startswith(str(sample.absolute()))
    finally:
        server.stop()


def test_submit_wait_prints_the_completed_submission(embedded_server: Server, tmp_path: Path) -> None:
    sample = tmp_path / "w.txt"
    sample.write_bytes(b"wait for me " + os.urandom(8))
    result = run_assay(
        [
            "submit",
            str(sample),
            "--wait",
            "--server",
            embedded_server.url,
            "--apikey",
            embedded_server.apikey,
        ],
        embedded_server.env,
    )
    assert result.returncode == 0, result.stderr
    assert '"state": "completed"' in result.stdout


def test_listen_gives_up_after_its_timeout(embedded_server: Server) -> None:
    started = time.monotonic()
    result = run_assay(
        [
            "listen",
            "empty-q",
            "--timeout",
            "1",
            "--server",
            embedded_server.url,
            "--apikey",
            embedded_server.apikey,
        ],
        embedded_server.env,
    )
    assert result.returncode == 1 and "no message" in result.stderr
    assert time.monotonic() - started < 60


def test_serve_refuses_half_a_tls_setup(tmp_path: Path) -> None:
    result = run_assay(
        ["serve", "--tls-cert", str(tmp_path / "c.pem"), "--port", "1"], assay_env(tmp_path / "d")
    )
    assert result.returncode == 2 and "both --tls-cert and --tls-key" in result.stderr


def test_serve_over_https(tmp_path: Path) -> None:
    import httpx

    from tests.helpers.servers import free_port, wait_until_up

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    port = free_port()
    env = assay_env(tmp_path / "data", {"ASSAY_QUEUE_WORKERS": "0"})
    log = tmp_path / "log"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "assay",
            "serve",
            "--port",
            str(port),
            "--tls-cert",
            str(cert),
            "--tls-key",
            str(key),
        ],
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        url = f"https://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                assert httpx.get(f"{url}/api/", verify=False).json()["api_response"] == ["v4"]
                break
            except httpx.TransportError:
                assert process.poll() is None and time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)
        _ = wait_until_up
    finally:
        process.terminate()
        process.wait(20)
