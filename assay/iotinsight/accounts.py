"""Collecting a cloud account (SmartThings, Alexa) outside the request, credentials in memory only.

:meth:`AccountRunner.open` makes a ``tasks`` row and returns its id at once; a bounded pool of
threads in the API process does the collection. The credentials travel only inside the
:class:`Credentials` object handed to that thread: they are never written to the database, the
file store, the submission's metadata or a log line, and a collector's error message is scrubbed
of them before it is kept. The collected bundle becomes an ordinary file submission whose ``sid`` is
written onto the task. The collectors themselves live in :mod:`assay.iot.cloud` and are
imported only when a collection runs.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from assay.access.visibility import StoredMarking
from assay.db.session import session_scope
from assay.filestore import FileTooLarge
from assay.iotinsight import tasks
from assay.iotinsight.models import Task
from assay.iotinsight.pipeline import Pipeline

log = logging.getLogger(__name__)
COLLECTORS = "assay.iot.cloud"
SERVICES = ("smartthings", "alexa")
_MAX_ERROR = 500


class Unavailable(RuntimeError):
    """Account collection cannot run on this server (the collector package is missing)."""


class Busy(RuntimeError):
    """Too many collections are running or waiting; the caller should come back later."""


class BadCredentials(ValueError):
    """The request does not carry a usable set of credentials; the message says what is missing."""


@dataclass(frozen=True, repr=False)
class Credentials:
    """What one collection needs; ``repr`` never shows a secret."""

    service: str
    token: str | None = None
    cookie: str | None = None
    username: str | None = None
    password: str | None = None

    def __repr__(self) -> str:
        return f"Credentials(service={self.service!r}, secrets hidden)"

    def secrets(self) -> list[str]:
        return [s for s in (self.token, self.cookie, self.password) if s]

    def scrub(self, text: str) -> str:
        for secret in sorted(self.secrets(), key=len, reverse=True):
            text = text.replace(secret, "***")
        return text[:_MAX_ERROR]


def _module(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name and name.startswith(exc.name):
            raise Unavailable("account collection is not available on this server") from None
        raise


def _export(name: str, submodule: str) -> Any:
    """``name`` from the collector package, or from its submodule when the package does not export it."""
    found = getattr(_module(COLLECTORS), name, None)
    if found is None:
        found = getattr(_module(f"{COLLECTORS}.{submodule}"), name, None)
    if found is None:
        raise Unavailable("account collection is not available on this server")
    return found


def _accepts(function: Callable[..., Any], name: str) -> bool:
    try:
        return name in inspect.signature(function).parameters
    except (TypeError, ValueError):
        return False


def _collector(service: str) -> Callable[..., Any]:
    return _export(f"collect_{service}", service)  # type: ignore[no-any-return]


def parse_credentials(fields: Mapping[str, str]) -> Credentials:
    """The credentials in a request, checked against what the collector can use."""
    service = fields.get("service", "").strip().lower()
    if service not in SERVICES:
        raise BadCredentials(f"service must be one of {', '.join(SERVICES)}")
    creds = Credentials(
        service=service,
        token=fields.get("access_token") or None,
        cookie=fields.get("cookie") or None,
        username=fields.get("username") or None,
        password=fields.get("password") or None,
    )
    if creds.cookie and service != "alexa":
        raise BadCredentials("cookie is accepted for alexa only")
    if bool(creds.username) != bool(creds.password):
        raise BadCredentials("send both username and password, or neither")
    if not (creds.token or creds.cookie or creds.username):
        also = ", or cookie" if service == "alexa" else ""
        raise BadCredentials(f"send access_token, or username and password{also}")
    if creds.username and not (creds.token or creds.cookie) and not _accepts(_collector(service), "username"):
        raise BadCredentials(f"{service} collection cannot log in with a username and password")
    return creds


def collect(creds: Credentials, base_url: str) -> bytes:
    """Run the collector for ``creds`` and return the bundle as bytes (raises the collector's errors)."""
    function = _collector(creds.service)
    kwargs: dict[str, Any] = {"base_url": base_url} if base_url else {}
    if creds.username and _accepts(function, "username"):
        kwargs.update(username=creds.username, password=creds.password)
    if creds.service == "smartthings":
        bundle = function(creds.token, **kwargs)
    else:
        bundle = function(cookie=creds.cookie, token=creds.token, **kwargs)
    return _export("bundle_bytes", "bundle")(bundle)  # type: ignore[no-any-return]


class AccountRunner:
    """A bounded pool that runs collections and turns their bundles into submissions.

    ``on_work`` is called once a bundle's submission is written, to wake whatever runs submissions.
    """

    def __init__(
        self, pipeline: Pipeline, on_work: Callable[[], None], *, workers: int, max_waiting: int
    ) -> None:
        self.pipeline = pipeline
        self.on_work = on_work
        self.max_waiting = max_waiting
        self._pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="assay-account")
        self._lock = threading.Lock()
        self._outstanding = 0

    def open(self, user: str, creds: Credentials, marking: StoredMarking) -> str:
        """A new account task's id; its collection runs in the pool (raises :class:`Busy`).

        The row comes first because the collecting thread writes to it; a collection the pool
        refuses takes its row away again, so no caller waits on a task that will never run.
        The bundle's submission gets the task's ``marking`` (the caller's clearance was checked).
        """
        base_url = self.pipeline.settings.tasks.base_url(creds.service)
        task_id = tasks.open_account_task(self.pipeline.engine, user, creds.service, marking)
        try:
            self._start(task_id, creds, base_url)
        except Busy:
            tasks.forget_task(self.pipeline.engine, task_id)
            raise
        return task_id

    def _start(self, task_id: str, creds: Credentials, base_url: str) -> None:
        with self._lock:
            if self._outstanding >= self.max_waiting:
                raise Busy(f"{self._outstanding} account collections are waiting; try again later")
            self._outstanding += 1
        self._pool.submit(self._run, task_id, creds, base_url)

    def _run(self, task_id: str, creds: Credentials, base_url: str) -> None:
        try:
            self._set(task_id, state="processing")
            data = self._collect(task_id, creds, base_url)
            if data is not None:
                self._submit(task_id, creds, data)
        except Exception as exc:  # the task must end in a state whatever went wrong
            log.warning("account task %s failed: %s", task_id, type(exc).__name__)
            self._set(task_id, state="failure", error=creds.scrub(f"collection failed: {exc}"))
        finally:
            with self._lock:
                self._outstanding -= 1

    def _collect(self, task_id: str, creds: Credentials, base_url: str) -> bytes | None:
        try:
            data = collect(creds, base_url)
        except Exception as exc:  # CollectorError and anything a collector lets escape
            log.info("account task %s: collector refused (%s)", task_id, type(exc).__name__)
            self._set(task_id, state="failure", error=creds.scrub(str(exc) or type(exc).__name__))
            return None
        if not data:
            self._set(task_id, state="failure", error="the account returned nothing to analyse")
            return None
        if any(secret.encode() in data for secret in creds.secrets()):
            self._set(task_id, state="failure", error="the collected data held the credential; not kept")
            return None
        return data

    def _submit(self, task_id: str, creds: Credentials, data: bytes) -> None:
        pipeline = self.pipeline
        try:
            stored = pipeline.store.put_bytes(data, pipeline.max_file_size)
        except FileTooLarge as exc:
            self._set(task_id, state="failure", error=str(exc))
            return
        meta = {"iotinsight.filetype": "account", "iotinsight.service": creds.service}
        name, description = f"{creds.service}-account.json", f"IoTInsight {creds.service} account task"
        with session_scope(pipeline.engine) as session:
            task = session.get(Task, task_id)
            if task is None:
                return
            marking = tasks.marking_of(task)
            submission = tasks.submit(session, pipeline, task.user, stored, name, meta, description, marking)
            task.sid = submission.sid
            task.state = "success"
        self.on_work()

    def _set(self, task_id: str, **values: Any) -> None:
        with session_scope(self.pipeline.engine) as session:
            task = session.get(Task, task_id)
            if task is not None:
                for key, value in values.items():
                    setattr(task, key, value)
