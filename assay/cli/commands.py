"""What each ``assay`` sub-command does (parsing lives in :mod:`assay.cli`)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any, Protocol

from assay.cli.common import CliError, wait_for, walk
from assay.config import Settings

log = logging.getLogger("assay")


# -- server and workers --------------------------------------------------------------------------
def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from assay.api.app import create_app
    from assay.db.session import configure, get_engine, upgrade
    from assay.execution.local import Supervisor

    configure(settings)
    upgrade(get_engine(settings.database_url))
    _first_run_admin(settings)
    host = args.host or settings.web.host
    port = args.port or settings.web.port
    cert, key = (
        args.tls_cert or settings.web.tls_cert,
        args.tls_key or settings.web.tls_key,
    )
    if bool(cert) != bool(key):
        raise CliError("HTTPS needs both --tls-cert and --tls-key")
    if not 1 <= port <= 65535:
        raise CliError(f"port {port} must be from 1 to 65535")
    for tls_file in (cert, key):
        if tls_file and not os.access(tls_file, os.R_OK):
            raise CliError(f"cannot read TLS file {tls_file}")
    workers = args.workers if args.workers is not None else settings.queue.workers
    supervisor = None
    if settings.embedded and workers > 0:
        supervisor = Supervisor(settings, workers, getattr(args, "config", None))
        supervisor.start()
    mode = "embedded" if settings.embedded else f"scale-out ({settings.broker_url.split('@')[-1]})"
    print(f"Assay serving on {'https' if cert else 'http'}://{host}:{port} — {mode}, data in {settings.data_dir}")
    # The app marks its session cookies Secure under TLS, so it must know of TLS given as flags.
    web = settings.web.model_copy(update={"tls_cert": cert, "tls_key": key})
    try:
        uvicorn.run(
            create_app(settings.model_copy(update={"web": web}), migrate=False),
            host=host,
            port=port,
            ssl_certfile=cert or None,
            ssl_keyfile=key or None,
            log_level="warning",
            access_log=False,
        )
    finally:
        if supervisor is not None:
            supervisor.stop()
    return 0


def _first_run_admin(settings: Settings) -> None:
    from assay import users
    from assay.access.configured import engine_for
    from assay.db.session import session_scope

    with session_scope() as session:
        if users.count_users(session):
            return
        engine = engine_for(settings.classification)
        users.add_user(session, "admin", "admin", engine.clearance(engine.levels[-1], engine.groups))
        key = users.create_apikey(session, "admin", "default")
    path = settings.data_dir / "admin.apikey"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_text(key + "\n")
    print(f"First run: created user 'admin'; its API key is in {path}")


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    from assay.db.session import configure, get_engine, upgrade

    configure(settings)
    if args.embedded or settings.embedded:
        from assay.execution.local import run_worker
        from assay.execution.worker import worker_name

        run_worker(settings, args.worker_id or worker_name("local"), supervisor_pid=args.supervisor_pid)
        return 0
    from assay.execution.celery_app import run_workers
    from assay.execution.local import Supervisor, stop_when_orphaned, supervise_until_stopped

    upgrade(get_engine(settings.database_url))
    if args.concurrency > 1:
        supervise_until_stopped(Supervisor(settings, args.concurrency, getattr(args, "config", None), celery=True))
    else:
        if args.supervisor_pid is not None:  # a Celery worker shuts down cleanly on SIGTERM
            stop_when_orphaned(args.supervisor_pid, lambda: os.kill(os.getpid(), signal.SIGTERM))
        run_workers(settings, args.worker_id, "DEBUG" if args.debug else "INFO")
    return 0


def cmd_db(args: argparse.Namespace, settings: Settings) -> int:
    from assay.db.session import get_engine, upgrade

    upgrade(get_engine(settings.database_url))
    print("database is up to date")
    return 0


# -- users and keys -----------------------------------------------------------------------------
def _db(settings: Settings) -> Any:
    from assay.db.session import configure, get_engine, session_scope, upgrade

    configure(settings)
    upgrade(get_engine(settings.database_url))
    return session_scope()


def cmd_user(args: argparse.Namespace, settings: Settings) -> int:
    from assay import users
    from assay.access import UnknownMarking
    from assay.access.configured import engine_for

    engine = engine_for(settings.classification)
    try:
        with _db(settings) as session:
            if args.action == "add":
                level = args.classification or settings.classification.new_user_clearance or engine.levels[0]
                clearance = engine.clearance(level, args.group or ())
                users.add_user(session, args.name, args.role, clearance, args.password)
                groups = f", groups {', '.join(sorted(clearance.groups))}" if clearance.groups else ""
                print(f"added user {args.name} ({args.role}, cleared for {clearance.level}{groups})")
            else:
                from sqlalchemy import select

                from assay.db.models import User

                for user in session.scalars(select(User).order_by(User.name)):
                    print(f"{user.name}\t{user.role}\t{user.classification}\t{','.join(user.groups or ())}")
    except (users.UserError, UnknownMarking) as exc:
        raise CliError(str(exc)) from None
    return 0


def cmd_apikey(args: argparse.Namespace, settings: Settings) -> int:
    from assay import users

    try:
        with _db(settings) as session:
            key = users.create_apikey(session, args.name, args.keyname)
    except users.UserError as exc:
        raise CliError(str(exc)) from None
    print(f"API key for {args.name} (shown once; only its hash is stored):")
    print(key)
    return 0


# -- safelist and signatures -----------------------------------------------------------------------
def cmd_safelist(args: argparse.Namespace, settings: Settings) -> int:
    from assay import safelist

    try:
        with _db(settings) as session:
            if args.action == "add":
                entries = [safelist.classify(v, args.kind) for v in args.values]
                added = safelist.add(session, entries, args.source, args.reason, "cli")
                print(f"added {added} of {len(entries)} (the rest were listed already)")
            elif args.action == "import":
                path = Path(args.csv)
                if not path.is_file():
                    raise CliError(f"{path}: no such file")
                with path.open(encoding="utf-8", errors="replace", newline="") as handle:
                    added = safelist.import_csv(session, handle, args.source, "cli")
                print(f"imported {added} new hashes from {path}")
            elif args.action == "remove":
                missing = [v for v in args.values if not safelist.remove(session, safelist.classify(v, args.kind))]
                if missing:
                    raise CliError(f"not on the safelist: {', '.join(missing)}")
                print(f"removed {len(args.values)}")
            else:
                for item in safelist.listing(session, 0, 1_000_000, args.kind)["items"]:
                    print(f"{item['kind']}\t{item['value']}\t{item['source']}")
    except safelist.SafelistError as exc:
        raise CliError(str(exc)) from None
    return 0


def cmd_yara(args: argparse.Namespace, settings: Settings) -> int:
    from assay.services.lib import rulesets

    directory = rulesets.seed_directory(settings.yara_dir)
    try:
        if args.action == "add":
            path = Path(args.file)
            if not path.is_file():
                raise CliError(f"{path}: no such file")
            info = rulesets.add_rule_set(directory, args.name, path.read_text("utf-8"), replace=True)
            print(f"rule set {info.name} saved ({info.size} bytes); workers use it from their next file")
        elif args.action == "remove":
            if not rulesets.remove_rule_set(directory, args.name):
                raise CliError(f"no YARA rule set named {args.name}")
            print(f"rule set {args.name} removed")
        else:
            for info in rulesets.list_rule_sets(directory):
                print(f"{info.name}\t{info.size}\t{info.sha256}")
    except (rulesets.RuleSetError, UnicodeDecodeError) as exc:
        raise CliError(str(exc)) from None
    return 0


# -- sending files and reading results -------------------------------------------------------
class Backend(Protocol):
    def ingest(self, path: Path, nq: str | None, metadata: dict[str, Any], params: dict[str, Any]) -> str: ...
    def messages(self, nq: str) -> list[dict[str, Any]]: ...
    def submit(self, path: Path, params: dict[str, Any]) -> dict[str, Any]: ...
    def submission(self, sid: str) -> dict[str, Any]: ...


class LocalBackend:
    """The data directory itself, for when no server is named."""

    def __init__(self, settings: Settings, user: str) -> None:
        from assay import users
        from assay.access.visibility import Reader
        from assay.db.session import configure, get_engine, session_scope, upgrade
        from assay.filestore import FileStore
        from assay.intake.ingest import Intake

        configure(settings)
        upgrade(get_engine(settings.database_url))
        self.sessions = session_scope
        self.store = FileStore(settings.storage_path)
        self.intake = Intake(settings)
        self.limit = settings.limits.max_file_size
        with session_scope() as session:
            found = users.find_user(session, user)
            if found is None:
                raise CliError(f"no user named {user} (assay user add {user} --role submitter)")
            # The command reads and marks as that user would through the API, clearance and all.
            self.clearance = users.principal_of(found).clearance
        self.user = user
        self.reader = Reader(self.intake.markings, self.clearance)

    def _store(self, path: Path) -> Any:
        from assay.filestore import FileTooLarge

        try:
            with path.open("rb") as handle:
                stored = self.store.put_stream(handle, self.limit)
        except FileTooLarge as exc:
            raise CliError(f"{path}: {exc}") from None
        if not stored.size:
            raise CliError(f"{path}: file is empty")
        return stored

    def ingest(self, path: Path, nq: str | None, metadata: dict[str, Any], params: dict[str, Any]) -> str:
        from assay.intake.ingest import IngestOrder

        order = IngestOrder(self.user, self._store(path), path.name, metadata, params, nq, clearance=self.clearance)
        with self.sessions() as session:
            return self.intake.ingest(session, order)

    def messages(self, nq: str) -> list[dict[str, Any]]:
        from assay import notify
        from assay.db.models import Notification

        with self.sessions() as session:
            return notify.pop(session.connection(), self.user, nq, 1000, self.reader.sees(Notification))

    def submit(self, path: Path, params: dict[str, Any]) -> dict[str, Any]:
        from assay.results import views

        with self.sessions() as session:
            stored = self._store(path)
            submission = self.intake.submit(session, self.user, stored, path.name, {}, params, self.clearance)
            session.flush()
            return views.submission(session, submission, self.reader)

    def submission(self, sid: str) -> dict[str, Any]:
        from sqlalchemy import select

        from assay.db.models import Submission
        from assay.results import views

        with self.sessions() as session:
            query = select(Submission).where(Submission.sid == sid, self.reader.sees(Submission))
            found = session.scalars(query).first()
            if found is None:
                raise CliError(f"no submission {sid}")
            return views.submission(session, found, self.reader)


class RemoteBackend:
    def __init__(self, args: argparse.Namespace, settings: Settings) -> None:
        from assay.client import Client

        apikey = args.apikey or _saved_key(settings)
        if not apikey:
            raise CliError("give --apikey KEYNAME:SECRET (or set ASSAY_APIKEY)")
        self.client = Client(args.server, args.user, apikey, verify=not args.insecure)

    def ingest(self, path: Path, nq: str | None, metadata: dict[str, Any], params: dict[str, Any]) -> str:
        return self.client.ingest(path, nq=nq, metadata=metadata, params=params)

    def messages(self, nq: str) -> list[dict[str, Any]]:
        return self.client.messages(nq)

    def submit(self, path: Path, params: dict[str, Any]) -> dict[str, Any]:
        return self.client.submit(path, params=params)

    def submission(self, sid: str) -> dict[str, Any]:
        return self.client.submission(sid)


def _saved_key(settings: Settings) -> str | None:
    path = settings.data_dir / "admin.apikey"
    return path.read_text().strip() if path.is_file() else None


def backend_for(args: argparse.Namespace, settings: Settings) -> Backend:
    from assay.client import ClientError

    try:
        return RemoteBackend(args, settings) if args.server else LocalBackend(settings, args.user)
    except ClientError as exc:
        raise CliError(str(exc)) from None


def cmd_ingest(args: argparse.Namespace, settings: Settings) -> int:
    from rich.progress import Progress

    from assay.client import ClientError

    files = list(walk(args.paths))
    backend = backend_for(args, settings)
    params: dict[str, Any] = {}
    if args.priority is not None:
        params["priority"] = args.priority
    if args.ignore_cache:
        params["ignore_cache"] = True
    failed = 0
    with Progress(transient=not sys.stderr.isatty()) as progress:
        task = progress.add_task("ingesting", total=len(files))
        for path in files:
            try:
                backend.ingest(path, args.nq, {"file_path": str(path.absolute())}, params)
            except (CliError, ClientError) as exc:
                failed += 1
                progress.console.print(f"[red]{path}: {exc}[/red]")
            progress.advance(task)
    print(f"ingested {len(files) - failed} of {len(files)} files" + (f" into queue {args.nq}" if args.nq else ""))
    return 2 if failed else 0


def cmd_listen(args: argparse.Namespace, settings: Settings) -> int:
    backend = backend_for(args, settings)
    seen = 0
    last = time.monotonic()
    while args.count is None or seen < args.count:
        messages = backend.messages(args.queue)
        for message in messages:
            seen += 1
            submission = message.get("submission") or {}
            path = (submission.get("metadata") or {}).get("file_path") or (submission.get("files") or [{}])[0].get(
                "name"
            )
            score = message.get("score")
            status = message.get("failure") or f"score {score}"
            print(f"{path}\t{status}\t{submission.get('sid')}", flush=True)
        if messages:
            last = time.monotonic()
        elif args.timeout is not None and time.monotonic() - last > args.timeout:
            print(f"assay: no message for {args.timeout:g} s; received {seen}", file=sys.stderr)
            return 1
        else:
            time.sleep(0.2)
    return 0


def cmd_submit(args: argparse.Namespace, settings: Settings) -> int:
    path = Path(args.file)
    if not path.is_file():
        raise CliError(f"{path}: no such file")
    backend = backend_for(args, settings)
    record = backend.submit(path, {})
    sid = record["sid"]
    if not args.wait:
        print(sid)
        return 0
    done = wait_for(lambda: _finished(backend, sid), args.timeout)
    if done is None:
        raise CliError(f"submission {sid} did not complete within {args.timeout:g} s (are workers running?)")
    print(json.dumps(done, indent=2))
    return 0


def _finished(backend: Backend, sid: str) -> dict[str, Any] | None:
    record = backend.submission(sid)
    return record if record["state"] in {"completed", "failed"} else None
