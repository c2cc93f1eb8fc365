"""One submission through the services: identify, pick services by stage, recurse into children,
score, and store everything in one transaction.

The dispatcher is the only place that turns service results into rows. It runs the same way
under the embedded workers and under Celery; a run may happen twice after a crash, so storing
it is idempotent (rows of an earlier attempt are replaced, results are shared by key).
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
from collections import deque
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from assay import notify
from assay.config import Settings
from assay.db import models
from assay.db.base import utcnow
from assay.db.session import session_scope
from assay.db.upsert import insert_ignore
from assay.execution.sandbox import Sandbox, ServiceFailure
from assay.filestore import FileStore, FileTooLarge
from assay.params import Params
from assay.provisions import Provisions
from assay.services import registry
from assay.services.base import FileRequest, Result, Service, Stage

log = logging.getLogger(__name__)

IDENTITY_FIELDS = ("type", "mime", "magic", "ssdeep", "tlsh", "entropy")


@dataclass
class FileNode:
    sha256: str
    name: str
    parent: str | None
    depth: int
    size: int
    score: int = 0
    truncated: bool = False


@dataclass
class StoredResult:
    key: str
    sha256: str
    service: Service
    score: int
    body: dict[str, Any]
    tags: list[tuple[str, str]]
    new: bool


@dataclass
class ErrorRecord:
    sha256: str
    service: str
    kind: str
    message: str


@dataclass
class Analysis:
    """Everything one run found, held in memory until it is stored in one go."""

    nodes: list[FileNode] = field(default_factory=list)
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    results: list[StoredResult] = field(default_factory=list)
    errors: list[ErrorRecord] = field(default_factory=list)
    crashes: list[tuple[str, str]] = field(default_factory=list)

    @property
    def max_score(self) -> int:
        return max((node.score for node in self.nodes), default=0)


def result_key(sha256: str, service: Service, options: dict[str, Any]) -> str:
    digest = hashlib.md5(json.dumps(options, sort_keys=True, default=str).encode()).hexdigest()[:12]
    return f"{sha256}.{service.name}.v{service.version}.c{digest}"


def select_services(params: Params, disabled: set[str]) -> list[Service]:
    """Services chosen by name or category, minus exclusions; Identify and Digests always run."""
    wanted = {s.lower() for s in params.services.selected}
    excluded = {s.lower() for s in params.services.excluded}
    chosen = []
    for service in registry.services():
        keys = {service.name.lower(), service.category.lower()}
        if service.stage == Stage.IDENTIFY:
            chosen.append(service)
            continue
        named = service.name.lower() in wanted
        if keys & excluded or (service.name.lower() in disabled and not named):
            continue
        if named or (service.category.lower() in wanted and service.default_enabled):
            chosen.append(service)
    return chosen


class Dispatcher:
    """Analyses claimed submissions; one per worker thread (it owns a sandbox)."""

    def __init__(
        self, settings: Settings, store: FileStore, sandbox: Sandbox, worker_id: str, provisions: Provisions
    ) -> None:
        self.settings = settings
        self.provisions = provisions
        self.engine = provisions.engine
        self.store = store
        self.sandbox = sandbox
        self.worker_id = worker_id
        self.max_file_size = settings.get_int("limits", "max_file_size", 100 << 20)
        self.timeout = float(settings.get_int("limits", "service_timeout", 60))
        self.attempts = settings.get_int("limits", "service_attempts", 3)
        self.disabled = {s.lower() for s in settings.get_list("services", "disabled")}

    # -- one submission -------------------------------------------------------------------
    def run(self, submission: models.Submission) -> None:
        """Analyse a submission this worker has claimed, then store the outcome."""
        if submission.attempts > self.attempts:
            with session_scope(self.engine) as session:
                self._fail(session, submission, f"Analysis failed {submission.attempts - 1} times; not retried")
            return
        params = Params.model_validate(submission.params)
        with session_scope(self.engine, readonly=True) as session:
            known_crashes = self._crash_counts(session, submission.sha256)
        analysis = self.analyse(submission, params, known_crashes)
        with session_scope(self.engine) as session:
            self.persist(session, submission, analysis)

    def analyse(
        self,
        submission: models.Submission,
        params: Params,
        crashes: dict[tuple[str, str], int],
    ) -> Analysis:
        analysis = Analysis()
        services = select_services(params, self.disabled)
        pending = deque([FileNode(submission.sha256, submission.name, None, 0, 0)])
        analysed: set[str] = set()
        extracted_budget = params.max_extracted
        workdir = Path(tempfile.mkdtemp(prefix="assay-"))
        try:
            while pending:
                node = pending.popleft()
                analysis.nodes.append(node)
                if node.sha256 in analysed and not params.ignore_recursion_prevention:
                    continue
                analysed.add(node.sha256)
                children = self._analyse_file(node, params, services, crashes, analysis, workdir)
                for child_name, child_sha, child_size in children:
                    if node.depth + 1 > self.provisions.max_depth or extracted_budget <= 0:
                        node.truncated = True
                        continue
                    extracted_budget -= 1
                    pending.append(FileNode(child_sha, child_name, node.sha256, node.depth + 1, child_size))
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        return analysis

    def _analyse_file(
        self,
        node: FileNode,
        params: Params,
        services: list[Service],
        crashes: dict[tuple[str, str], int],
        analysis: Analysis,
        workdir: Path,
    ) -> list[tuple[str, str, int]]:
        path = self.store.path(node.sha256)
        node.size = path.stat().st_size
        info: dict[str, Any] = analysis.files.setdefault(node.sha256, {"size": node.size, "sha256": node.sha256})
        file_dir = Path(tempfile.mkdtemp(dir=workdir))
        children: list[tuple[str, str, int]] = []
        cached = {} if params.ignore_cache else self._cached_results(node.sha256)
        dropped = False
        for service in services:
            if dropped and service.stage > Stage.FILTER:
                break
            if service.stage == Stage.FILTER and params.ignore_filtering:
                continue
            file_type = info.get("type", "unknown")
            if service.stage != Stage.IDENTIFY and not service.accepts_type(file_type):
                continue
            if crashes.get((node.sha256, service.name), 0) >= self.attempts:
                analysis.errors.append(
                    ErrorRecord(node.sha256, service.name, "crash", "service crashed on this file before; not retried")
                )
                continue
            options = service.options(params.service_spec.get(service.name))
            provided, key_view = self.provisions.for_service(service, params, info)
            key = result_key(node.sha256, service, options | key_view | {"deep_scan": params.deep_scan})
            stored = cached.get(key)
            if stored is None:
                request = FileRequest(
                    path=path,
                    sha256=node.sha256,
                    name=node.name,
                    size=node.size,
                    file_type=file_type,
                    mime=info.get("mime", "application/octet-stream"),
                    params=options | provided,
                    depth=node.depth,
                    deep_scan=params.deep_scan,
                    workdir=file_dir,
                )
                outcome = self.sandbox.execute(service.name, request, min(self.timeout, service.timeout))
                if isinstance(outcome, ServiceFailure):
                    analysis.errors.append(ErrorRecord(node.sha256, service.name, outcome.kind, outcome.message))
                    if outcome.kind in {"crash", "timeout"}:
                        analysis.crashes.append((node.sha256, service.name))
                    continue
                stored = self._store_result(key, node, service, outcome, analysis)
            else:
                analysis.results.append(stored)
            info.update(stored.body.get("file_info", {}))
            node.score += stored.score
            children.extend((name, sha, size) for name, sha, size in stored.body.get("children", []))
            dropped = dropped or bool(stored.body.get("drop_file"))
        shutil.rmtree(file_dir, ignore_errors=True)
        return children

    def _store_result(
        self, key: str, node: FileNode, service: Service, outcome: Result, analysis: Analysis
    ) -> StoredResult:
        children = []
        for extracted in outcome.extracted:
            try:
                if extracted.path is not None:
                    with extracted.path.open("rb") as handle:
                        stored = self.store.put_stream(handle, self.max_file_size)
                else:
                    stored = self.store.put_bytes(extracted.read(), self.max_file_size)
            except (FileTooLarge, OSError, ValueError) as exc:
                analysis.errors.append(ErrorRecord(node.sha256, service.name, "extract", f"{extracted.name}: {exc}"))
                continue
            children.append((extracted.name[:1024], stored.sha256, stored.size))
        heuristics = outcome.heuristic_ids()
        catalogue = registry.heuristics()
        score = sum(catalogue[h].score for h in heuristics if h in catalogue)
        body = {
            "sections": [s.as_dict() for s in outcome.sections],
            "heuristics": [catalogue[h].as_dict() for h in heuristics if h in catalogue],
            "file_info": outcome.file_info,
            "data": outcome.data,
            "anomalies": outcome.anomalies,
            "children": children,
            "drop_file": outcome.drop_file,
        }
        tags = [(t.type, t.value[:4096]) for t in outcome.tags() if self.provisions.tag_allowed(t.type, t.value)]
        stored_result = StoredResult(key, node.sha256, service, score, body, tags, new=True)
        analysis.results.append(stored_result)
        return stored_result

    def _cached_results(self, sha256: str) -> dict[str, StoredResult]:
        with session_scope(self.engine, readonly=True) as session:
            rows = session.scalars(select(models.Result).where(models.Result.sha256 == sha256)).all()
        found = {}
        for row in rows:
            service = registry.service(row.service)
            if service is not None:
                found[row.key] = StoredResult(row.key, row.sha256, service, row.score, row.body, [], new=False)
        return found

    def _crash_counts(self, session: Session, sha256: str) -> dict[tuple[str, str], int]:
        rows = session.scalars(select(models.ServiceCrash).where(models.ServiceCrash.sha256 == sha256))
        return {(row.sha256, row.service): row.count for row in rows}

    # -- storing --------------------------------------------------------------------------
    def persist(self, session: Session, submission: models.Submission, analysis: Analysis) -> None:
        sid = submission.sid
        now = utcnow()
        owned = session.execute(
            update(models.Submission)
            .where(models.Submission.sid == sid, models.Submission.lease_owner == self.worker_id)
            .where(models.Submission.state == "submitted")
            .values(
                state="completed",
                max_score=analysis.max_score,
                file_count=len({n.sha256 for n in analysis.nodes}),
                error_count=len(analysis.errors),
                completed=now,
                lease_owner=None,
                lease_until=None,
            )
        ).rowcount
        if not owned:
            log.warning("lost the lease on %s; another worker stores it", sid)
            session.rollback()
            return
        self._store_files(session, analysis, now)
        self._store_results(session, sid, analysis)
        self._store_tree(session, sid, analysis)
        self._store_errors(session, sid, analysis, now)
        notify.complete_ingests(session, sid, analysis.max_score, "")
        session.commit()

    def _store_files(self, session: Session, analysis: Analysis, now: Any) -> None:
        shas = list(analysis.files)
        existing = {f.sha256: f for f in session.scalars(select(models.File).where(models.File.sha256.in_(shas)))}
        for sha, info in analysis.files.items():
            row = existing.get(sha)
            if row is None:
                row = models.File(sha256=sha, md5=info.get("md5", ""), sha1=info.get("sha1", ""), size=info["size"])
                row.seen_first = now
                session.add(row)
            else:
                row.seen_count = (row.seen_count or 0) + 1
            row.seen_last = now
            for name in IDENTITY_FIELDS:
                if info.get(name) is not None:
                    setattr(row, name, info[name])
            for name in ("md5", "sha1"):
                if info.get(name):
                    setattr(row, name, info[name])
        session.flush()

    def _store_results(self, session: Session, sid: str, analysis: Analysis) -> None:
        new = [r for r in analysis.results if r.new]
        inserted = insert_ignore(
            session,
            models.Result.__table__,
            [
                {
                    "key": r.key,
                    "sha256": r.sha256,
                    "service": r.service.name,
                    "service_version": r.service.version,
                    "score": r.score,
                    "body": r.body,
                    "created": utcnow(),
                }
                for r in new
            ],
            returning="key",
        )
        tag_rows = [
            {"result_key": r.key, "sha256": r.sha256, "type": t, "value": v}
            for r in new
            if r.key in inserted
            for t, v in r.tags
        ]
        if tag_rows:
            session.execute(models.TagRecord.__table__.insert(), tag_rows)
        session.execute(delete(models.SubmissionResult).where(models.SubmissionResult.sid == sid))
        keys = sorted({r.key for r in analysis.results})
        if keys:
            session.execute(models.SubmissionResult.__table__.insert(), [{"sid": sid, "result_key": k} for k in keys])

    def _store_tree(self, session: Session, sid: str, analysis: Analysis) -> None:
        session.execute(delete(models.SubmissionFile).where(models.SubmissionFile.sid == sid))
        scores = {n.sha256: n.score for n in analysis.nodes if n.score or n.sha256}
        session.execute(
            models.SubmissionFile.__table__.insert(),
            [
                {
                    "sid": sid,
                    "sha256": n.sha256,
                    "parent": n.parent,
                    "name": n.name,
                    "depth": n.depth,
                    "score": scores.get(n.sha256, 0),
                    "truncated": n.truncated,
                }
                for n in analysis.nodes
            ],
        )

    def _store_errors(self, session: Session, sid: str, analysis: Analysis, now: Any) -> None:
        session.execute(delete(models.ServiceError).where(models.ServiceError.sid == sid))
        rows = {}
        for error in analysis.errors:
            key = f"{sid}.{error.sha256}.{error.service}.{error.kind}"
            rows[key] = {
                "key": key,
                "sid": sid,
                "sha256": error.sha256,
                "service": error.service,
                "error_type": error.kind,
                "message": error.message,
                "created": now,
            }
        if rows:
            session.execute(models.ServiceError.__table__.insert(), list(rows.values()))
        for sha256, service in analysis.crashes:
            row = session.get(models.ServiceCrash, (sha256, service))
            if row is None:
                session.add(models.ServiceCrash(sha256=sha256, service=service, count=1))
            else:
                row.count += 1

    def _fail(self, session: Session, claimed: models.Submission, reason: str) -> None:
        submission = session.get(models.Submission, claimed.sid)
        if submission is None or submission.lease_owner != self.worker_id:
            return
        submission.state = "failed"
        submission.completed = utcnow()
        submission.lease_owner = None
        submission.lease_until = None
        submission.error_count = max(submission.error_count, 1)
        session.add(
            models.ServiceError(
                key=f"{submission.sid}.{submission.sha256}.dispatcher.failed",
                sid=submission.sid,
                sha256=submission.sha256,
                service="dispatcher",
                error_type="failed",
                message=reason,
                created=utcnow(),
            )
        )
        notify.complete_ingests(session, submission.sid, None, reason)
        session.commit()


def lease_deadline(settings: Settings) -> Any:
    return utcnow() + timedelta(seconds=settings.get_int("queue", "lease_seconds", 300))
