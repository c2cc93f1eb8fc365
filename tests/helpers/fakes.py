"""A stand-in for the service sandbox, a small registry of fake services, and fresh data directories.

The unit tests of the dispatcher, the recording and the views drive the real
:class:`~assay.dispatch.dispatcher.Dispatcher` over a real SQLite data directory; only the sandbox
(a child process in production) is replaced by :class:`FakeSandbox`, which runs the services in
this process and remembers every trip the dispatcher made to it.

The fake services read *fake documents*: JSON objects that name their own ``type`` (see
:func:`document` and :func:`archive`), so a test says in one line what a file is and holds.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Engine

from assay.config import Settings, load_settings
from assay.db import models
from assay.db.session import get_engine, session_scope
from assay.dispatch.analysis import Analysis, ErrorKind
from assay.dispatch.dispatcher import Dispatcher
from assay.dispatch.provisions import Provisions
from assay.dispatch.sandbox import Call, Sandbox, ServiceFailure
from assay.execution import queue
from assay.filestore import FileStore
from assay.intake.ingest import IngestOrder, Intake
from assay.params import Params
from assay.services import registry
from assay.services.base import FileRequest, Heuristic, Result, Service, Stage
from tests.helpers.servers import local_settings

FAKE_SERVICES = __name__

# -- fake documents ------------------------------------------------------------------------------


def document(kind: str, **fields: Any) -> bytes:
    """A file the fake services understand: ``{"type": kind, ...fields}``."""
    return json.dumps({"type": kind, **fields}, sort_keys=True).encode()


def archive(members: dict[str, bytes], **fields: Any) -> bytes:
    """A fake archive; its members are base64-encoded, so their bytes do not show in the archive's."""
    encoded = {name: base64.b64encode(data).decode() for name, data in members.items()}
    return document("archive/fake", members=encoded, **fields)


def read_document(data: bytes) -> dict[str, Any] | None:
    try:
        doc = json.loads(data)
    except ValueError:
        return None
    return doc if isinstance(doc, dict) and isinstance(doc.get("type"), str) else None


# -- fake services (registered only inside fake_registry()) -----------------------------------------


class Typer(Service):
    """Identification: a fake document's declared type, ``text/plain`` for anything else."""

    name = "Typer"
    stage = Stage.IDENTIFY
    rejects = r"$^"

    def execute(self, request: FileRequest) -> Result:
        data = request.read()
        doc = read_document(data)
        kind = doc["type"] if doc else ("empty" if not data else "text/plain")
        return Result(
            file_info={
                "type": kind,
                "mime": "application/json" if doc else "text/plain",
                "md5": hashlib.md5(data).hexdigest(),
                "sha1": hashlib.sha1(data).hexdigest(),
            }
        )


class Gate(Service):
    """Filtering: drops documents that say they are ``known_good``."""

    name = "Gate"
    stage = Stage.FILTER
    category = "Filtering"

    def execute(self, request: FileRequest) -> Result:
        doc = read_document(request.read()) or {}
        return Result(drop_file=bool(doc.get("known_good")))


class Unpacker(Service):
    """Extraction: every member of a fake archive; members named ``disk/...`` are written to the workdir."""

    name = "Unpacker"
    stage = Stage.EXTRACT
    category = "Extraction"
    accepts = r"archive/fake"

    def execute(self, request: FileRequest) -> Result:
        doc = read_document(request.read()) or {}
        result = Result()
        for name, encoded in doc.get("members", {}).items():
            data = base64.b64decode(encoded)
            if name.startswith("disk/") and request.workdir is not None:
                path = request.workdir / name.replace("/", "_")
                path.write_bytes(data)
                result.add_extracted(name, path=path)
            else:
                result.add_extracted(name, data=data)
        result.add_section(f"{len(result.extracted)} members")
        return result


class Sniffer(Service):
    """Antivirus: scores ``EVIL``; tags the domains a document lists; quotes a document's ``quote``;
    marks its result with a document's ``marking``."""

    name = "Sniffer"
    stage = Stage.CORE
    category = "Antivirus"
    heuristics = (
        Heuristic("sniffer.evil", "Evil marker", "The file holds the EVIL marker.", 100),
        Heuristic("sniffer.clean", "Looks fine", "Nothing was found.", 0),
    )

    def execute(self, request: FileRequest) -> Result:
        data = request.read()
        doc = read_document(data) or {}
        result = Result()
        if b"EVIL" in data:
            section = result.add_section("Marker found")
            section.heuristic = "sniffer.evil"
            section.add_tag("file.string.extracted", "EVIL")
        if b"UNCATALOGUED" in data:
            result.add_section("A finding nobody catalogued").heuristic = "sniffer.not_in_catalogue"
        for domain in doc.get("domains", []):
            result.add_section("Domain").add_tag("network.static.domain", domain)
        if "quote" in doc:
            result.add_section(doc["quote"], {"quoted": doc["quote"]}, body_format="json")
        if "marking" in doc:
            result.classification = doc["marking"]  # e.g. what it found comes from a TLP:AMBER feed
        if "unstorable" in doc:
            result.data = {"a set is not JSON": {1, 2, 3}}  # a service bug the database refuses
        return result


class Refiner(Service):
    """Static analysis of fake documents: one with ``macros`` is really ``document/fake/macro``."""

    name = "Refiner"
    stage = Stage.CORE
    accepts = r"document/fake"

    def execute(self, request: FileRequest) -> Result:
        doc = read_document(request.read()) or {}
        return Result(file_info={"type": "document/fake/macro"} if doc.get("macros") else {})


class Peeker(Service):
    """Accepts only the refined type, but runs in the same stage as :class:`Refiner`."""

    name = "Peeker"
    stage = Stage.CORE
    accepts = r"document/fake/macro"

    def execute(self, request: FileRequest) -> Result:
        return Result()


class Judge(Service):
    """A later stage that accepts only the type :class:`Refiner` found."""

    name = "Judge"
    stage = Stage.SECONDARY
    accepts = r"document/fake/macro"
    heuristics = (Heuristic("judge.macro", "Macro document", "The document carries macros.", 500, ("T1204",)),)

    def execute(self, request: FileRequest) -> Result:
        result = Result()
        result.add_section("Macros").heuristic = "judge.macro"
        return result


class Reporter(Service):
    """The last stage: notes the type it was told."""

    name = "Reporter"
    stage = Stage.POST

    def execute(self, request: FileRequest) -> Result:
        return Result(data={"seen_type": request.file_type})


class Detonator(Service):
    """A service of a category the default selection does not hold."""

    name = "Detonator"
    stage = Stage.CORE
    category = "Dynamic Analysis"

    def execute(self, request: FileRequest) -> Result:
        return Result()


class Matcher(Service):
    """Off by default; declares every provision the dispatcher hands out, and one option of its own."""

    name = "Matcher"
    stage = Stage.CORE
    default_enabled = False
    parameters = {
        "sensitivity": "normal",
        "rules_dir": "",
        "safelist": {},
        "safelisted": None,
        "max_depth": 0,
        "max_extracted": 0,
    }

    def execute(self, request: FileRequest) -> Result:
        return Result(data={"rules_dir": request.params["rules_dir"], "sensitivity": request.params["sensitivity"]})


@contextmanager
def fake_registry() -> Iterator[None]:
    """The service registry holds only the fake services of this module while inside.

    The real discovery (``registry.services()``: module scan, order by stage then name) runs over
    this module instead of ``assay.services``; the caches are cleared on the way in and out.
    """
    saved = (registry.SERVICE_PACKAGES, registry._extra_modules)
    registry.SERVICE_PACKAGES = ()
    registry._extra_modules = []
    registry.load_extra([FAKE_SERVICES])
    try:
        yield
    finally:
        registry.SERVICE_PACKAGES, registry._extra_modules = saved
        registry.services.cache_clear()
        registry.heuristics.cache_clear()


# -- the sandbox ---------------------------------------------------------------------------------


class FakeSandbox:
    """What :class:`~assay.dispatch.sandbox.Sandbox` offers the dispatcher, in this process.

    Each ``execute_many`` is one *trip*; a service raising becomes an ``EXCEPTION`` failure as in
    the child process, and :meth:`fail` makes a service fail the way a crash or a timeout would.
    """

    def __init__(self) -> None:
        self.trips: list[list[Call]] = []
        self.failures: dict[tuple[str, str | None], ServiceFailure] = {}
        self.closed = False

    def fail(self, service: str, kind: ErrorKind, message: str, sha256: str | None = None) -> None:
        """From now on ``service`` fails with ``kind`` (on ``sha256`` only, if given)."""
        self.failures[(service, sha256)] = ServiceFailure(kind, message)

    def execute(self, service: str, request: FileRequest, timeout: float) -> Result | ServiceFailure:
        return self.execute_many([Call(service, request, timeout)])[0]

    def execute_many(self, calls: list[Call]) -> list[Result | ServiceFailure]:
        self.trips.append(list(calls))
        return [self._outcome(call) for call in calls]

    def close(self) -> None:
        self.closed = True

    def _outcome(self, call: Call) -> Result | ServiceFailure:
        failure = self.failures.get((call.service, call.request.sha256)) or self.failures.get((call.service, None))
        if failure is not None:
            return failure
        service = registry.service(call.service)
        if service is None:
            return ServiceFailure(ErrorKind.EXCEPTION, f"no service named {call.service}")
        try:
            return service.execute(call.request)
        except Exception as exc:
            return ServiceFailure(ErrorKind.EXCEPTION, f"{type(exc).__name__}: {exc}")

    # what the dispatcher asked for
    @property
    def calls(self) -> list[Call]:
        return [call for trip in self.trips for call in trip]

    def ran_on(self, sha256: str) -> list[str]:
        """The services called on this content, in call order."""
        return [call.service for call in self.calls if call.request.sha256 == sha256]

    def last_request(self, service: str) -> FileRequest:
        """What ``service`` was last asked to analyse."""
        return [call.request for call in self.calls if call.service == service][-1]

    def forget(self) -> None:
        self.trips.clear()


# -- data directories ----------------------------------------------------------------------------

_TEMPLATE: list[Path] = []


def fresh_settings(root: Path, environ: dict[str, str] | None = None) -> Settings:
    """What :func:`tests.helpers.servers.local_settings` gives (a fresh, migrated SQLite data dir),
    made by copying a database migrated once per process instead of migrating every time."""
    if not _TEMPLATE:
        template_root = root.parent / "migrated-template"
        template_root.mkdir(exist_ok=True)
        _TEMPLATE.append(local_settings(template_root).data_dir / "assay.db")
    (root / "none.ini").write_text("")
    settings = load_settings(root / "none.ini", root / "data", environ=environ or {})
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    source = sqlite3.connect(_TEMPLATE[0])
    target = sqlite3.connect(settings.data_dir / "assay.db")
    try:
        source.backup(target)
    finally:
        target.close()
        source.close()
    return settings


# -- a dispatcher over a data directory ----------------------------------------------------------


@dataclass
class Bench:
    """A data directory, a dispatcher over it with a :class:`FakeSandbox`, and ways to feed it."""

    settings: Settings
    worker_id: str = "worker-1"
    sandbox: FakeSandbox = field(default_factory=FakeSandbox)
    dispatcher: Dispatcher = field(init=False)

    def __post_init__(self) -> None:
        self.store = FileStore(self.settings.storage_path)
        self.provisions = Provisions(self.settings, self.engine)
        # The provisions cache the safelist and the rule stamp for two seconds; tests re-read them.
        self.provisions.network.ttl = 0
        self.provisions.rules_stamp.ttl = 0
        sandbox = cast(Sandbox, self.sandbox)  # the same interface: execute_many, execute, close
        self.dispatcher = Dispatcher(self.settings, self.store, sandbox, self.worker_id, self.provisions)
        self.intake = Intake(self.settings)

    @property
    def engine(self) -> Engine:
        return get_engine(self.settings.database_url)

    def put(self, data: bytes) -> str:
        return self.store.put_bytes(data).sha256

    def submit(self, data: bytes, name: str = "sample", params: dict[str, Any] | None = None, **metadata: str) -> str:
        """A direct submission of ``data``; returns its sid."""
        stored = self.store.put_bytes(data)
        with session_scope(self.engine) as session:
            return self.intake.submit(session, "admin", stored, name, metadata, params or {}).sid

    def ingest(
        self,
        data: bytes,
        name: str = "sample",
        queue_name: str | None = "sensor",
        params: dict[str, Any] | None = None,
        threshold: int | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> str:
        """An ingest of ``data`` whose message goes to ``queue_name``; returns the ingest id."""
        order = IngestOrder(
            "admin", self.store.put_bytes(data), name, metadata or {}, params or {}, queue_name, threshold
        )
        with session_scope(self.engine) as session:
            return self.intake.ingest(session, order)

    def claim(self, worker_id: str | None = None) -> list[models.Submission]:
        """Lease every waiting submission to this bench's worker (or ``worker_id``)."""
        with session_scope(self.engine) as session:
            return queue.claim(session, worker_id or self.worker_id, 1000, self.settings.queue.lease_seconds)

    def analyse(self, data: bytes, name: str = "sample", params: dict[str, Any] | None = None) -> Analysis:
        """Submit ``data`` and analyse it, without recording anything."""
        sid = self.submit(data, name, params)
        [submission] = [s for s in self.claim() if s.sid == sid]
        return self.dispatcher.analyse(submission, Params.model_validate(submission.params), {})

    def run(self) -> list[str]:
        """One worker round: claim what waits, analyse it and record it; returns the sids claimed."""
        claimed = self.claim()
        self.dispatcher.run(claimed)
        return [s.sid for s in claimed]

    def submission(self, sid: str) -> models.Submission:
        with session_scope(self.engine, readonly=True) as session:
            found = session.get(models.Submission, sid)
            assert found is not None
            return found

    def close(self) -> None:
        shutil.rmtree(self.dispatcher.scratch, ignore_errors=True)
        self.engine.dispose()


@contextmanager
def open_bench(root: Path, environ: dict[str, str] | None = None, worker_id: str = "worker-1") -> Iterator[Bench]:
    """A :class:`Bench` over a fresh data directory under ``root``, with only the fake services."""
    root.mkdir(parents=True, exist_ok=True)
    with fake_registry():
        bench = Bench(fresh_settings(root, environ), worker_id)
        try:
            yield bench
        finally:
            bench.close()


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
