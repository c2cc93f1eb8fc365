"""Claimed submissions through the services: identify, pick services by stage, recurse into
children, score; then hand the batch to :mod:`assay.dispatch.record` to be stored in one transaction.

It runs the same way under the embedded workers and under Celery.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import logging
import os
import shutil
import tempfile
import time
from collections import deque
from pathlib import Path
from typing import Any

from sqlalchemy import select

from assay.access import ClassificationEngine, NoCommonGroup, UnknownMarking
from assay.access.configured import engine_for
from assay.config import Settings
from assay.db import models
from assay.db.base import storable
from assay.db.session import session_scope, write_isolating
from assay.dispatch.analysis import Analysis, ErrorKind, ErrorRecord, FileNode, StoredResult
from assay.dispatch.provisions import Provisions
from assay.dispatch.record import record, record_failure
from assay.dispatch.sandbox import Call, Sandbox, ServiceFailure
from assay.filestore import FileStore, FileTooLarge
from assay.params import Params
from assay.services import registry
from assay.services.base import FileRequest, Result, Service, Stage

log = logging.getLogger(__name__)

FLUSH_SECONDS = 0.25


def result_key(sha256: str, service: Service, options: dict[str, Any]) -> str:
    digest = hashlib.md5(json.dumps(options, sort_keys=True, default=str).encode()).hexdigest()[:12]
    return f"{sha256}.{service.name}.v{service.version}.c{digest}"


def key_marking(markings: ClassificationEngine, marking: str) -> dict[str, str]:
    """What of a submission's marking enters its result keys: a result made under one marking is
    never reused under another, so a cached result cannot leak from a higher marking to a lower.

    The unrestricted marking adds nothing, so results from before markings existed (which the
    migration marked unrestricted) keep their keys and stay reusable.
    """
    return {} if marking == markings.unrestricted else {"classification": marking}


def raised_marking(markings: ClassificationEngine, base: str, added: str) -> tuple[str, str | None]:
    """``max_of(base, added)``, and why it fell back when they share no group (else None).

    Disjoint groups would make something nobody may see; the fallback keeps ``base``'s groups
    (whoever could see the submission) at the higher level, so the level is never lowered.
    """
    try:
        return markings.max_of(base, added), None
    except NoCommonGroup as exc:
        level_only = markings.levels[markings.level_index(added)]
        return markings.max_of(base, level_only), f"{exc}; kept the groups of {base} at {level_only}"


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
        self.max_file_size = settings.limits.max_file_size
        self.timeout = float(settings.limits.service_timeout)
        self.attempts = settings.limits.service_attempts
        self.disabled = {s.lower() for s in settings.services.disabled}
        self.markings = engine_for(settings.classification)
        self._prefetched: dict[str, dict[str, StoredResult]] = {}
        self.scratch = Path(tempfile.mkdtemp(prefix=f"assay-{worker_id}-"))

    # -- claimed submissions --------------------------------------------------------------
    def run(self, submissions: list[models.Submission]) -> None:
        """Analyse submissions this worker has claimed and store them, several per transaction.

        Storing together saves a transaction per submission; a batch is stored as soon as it has
        taken ``FLUSH_SECONDS``, so one slow file does not hold the others' notifications back.
        """
        crashes = self._crash_counts([s.sha256 for s in submissions])
        self._prefetched = self._results_for([s.sha256 for s in submissions])
        done: list[tuple[models.Submission, Analysis]] = []
        started = time.monotonic()
        for submission in submissions:
            if submission.attempts > self.attempts:
                with session_scope(self.engine) as session:
                    reason = f"Analysis failed {submission.attempts - 1} times; not retried"
                    record_failure(session, self.worker_id, submission.sid, reason)
                continue
            try:
                analysis = self.analyse(submission, Params.model_validate(submission.params), crashes)
            except Exception:
                # The lease runs out and another attempt follows; attempts are bounded.
                log.exception("analysis of %s failed; it will be retried", submission.sid)
                continue
            done.append((submission, analysis))
            if time.monotonic() - started > FLUSH_SECONDS:
                self._persist_all(done)
                done, started = [], time.monotonic()
        self._persist_all(done)
        self._prefetched = {}

    def _persist_all(self, done: list[tuple[models.Submission, Analysis]]) -> None:
        """Store analyses together; one the database refuses fails alone, with a message to its
        submitter, instead of taking its batch down with it at every attempt. A database that is
        away propagates: the work is retried once the lease runs out."""
        if done:
            write_isolating(done, self._record, self._unstorable)

    def _record(self, done: list[tuple[models.Submission, Analysis]]) -> None:
        with session_scope(self.engine) as session:
            record(session, self.worker_id, done, self.markings)

    def _unstorable(self, item: tuple[models.Submission, Analysis], exc: Exception) -> None:
        sid = item[0].sid
        log.exception("the analysis of %s could not be stored", sid)
        reason = f"the results could not be stored: {getattr(exc, 'orig', None) or exc}"
        with session_scope(self.engine) as session:
            record_failure(session, self.worker_id, sid, storable(reason[:500]))

    def analyse(
        self,
        submission: models.Submission,
        params: Params,
        crashes: dict[tuple[str, str], int],
    ) -> Analysis:
        analysis = Analysis()
        analysis.marking = analysis.classification = self._submitted_marking(submission)
        services = select_services(params, self.disabled)
        pending = deque([FileNode(submission.sha256, submission.name, None, 0, 0)])
        analysed: set[str] = set()
        extracted_budget = params.max_extracted
        try:
            while pending:
                node = pending.popleft()
                analysis.nodes.append(node)
                if node.sha256 in analysed and not params.ignore_recursion_prevention:
                    continue
                analysed.add(node.sha256)
                if node.depth:
                    crashes.update(self._crash_counts([node.sha256]))
                children = self._analyse_file(node, params, services, crashes, analysis)
                for child_name, child_sha, child_size in children:
                    if node.depth + 1 > self.provisions.max_depth or extracted_budget <= 0:
                        node.truncated = True
                        continue
                    extracted_budget -= 1
                    pending.append(FileNode(child_sha, child_name, node.sha256, node.depth + 1, child_size))
        finally:
            self._clear_scratch()
        return analysis

    def _submitted_marking(self, submission: models.Submission) -> str:
        """The marking the submission was accepted with; one this configuration cannot read (the
        levels were changed since) is taken as the most restrictive rather than guessed."""
        return self.markings.normalise_stored(submission.classification)

    def _mark(self, analysis: Analysis, sha256: str, service: str, marking: str) -> None:
        """Raise the submission's marking to include a result's (an error says when groups clash)."""
        try:
            analysis.classification, clash = raised_marking(self.markings, analysis.classification, marking)
        except UnknownMarking as exc:  # a stored result from before the levels were changed
            analysis.classification, clash = self.markings.restricted, str(exc)
        if clash is not None:
            analysis.errors.append(ErrorRecord(sha256, service, ErrorKind.CLASSIFICATION, clash))

    def _result_marking(self, analysis: Analysis, node: FileNode, service: Service, outcome: Result) -> str:
        """The result's marking: the submission's, raised by what the service marked (if it can be read)."""
        if outcome.classification is None:
            return analysis.marking
        try:
            added = self.markings.normalise(outcome.classification)
        except UnknownMarking as exc:
            analysis.errors.append(ErrorRecord(node.sha256, service.name, ErrorKind.CLASSIFICATION, str(exc)))
            return analysis.marking
        marking, clash = raised_marking(self.markings, analysis.marking, added)
        if clash is not None:
            analysis.errors.append(ErrorRecord(node.sha256, service.name, ErrorKind.CLASSIFICATION, clash))
        return marking

    def _analyse_file(
        self,
        node: FileNode,
        params: Params,
        services: list[Service],
        crashes: dict[tuple[str, str], int],
        analysis: Analysis,
    ) -> list[tuple[str, str, int]]:
        """Run the services on one file stage by stage: a stage sees what earlier stages found,
        and its services go to the sandbox together."""
        path = self.store.path(node.sha256)
        node.size = path.stat().st_size
        info: dict[str, Any] = analysis.files.setdefault(node.sha256, {"size": node.size, "sha256": node.sha256})
        children: list[tuple[str, str, int]] = []
        cached = {} if params.ignore_cache else self._cached_results(node.sha256)
        dropped = False
        for stage, staged in itertools.groupby(services, key=lambda service: service.stage):
            if dropped and stage > Stage.FILTER:
                break
            if stage == Stage.FILTER and params.ignore_filtering:
                continue
            planned = self._plan_stage(node, path, params, list(staged), info, crashes, cached, analysis)
            for stored in self._run_stage(node, planned, analysis):
                info.update(stored.body.get("file_info", {}))
                node.score += stored.score
                children.extend((name, sha, size) for name, sha, size in stored.body.get("children", []))
                dropped = dropped or bool(stored.body.get("drop_file"))
        self._clear_scratch()
        return children

    def _plan_stage(
        self,
        node: FileNode,
        path: Path,
        params: Params,
        services: list[Service],
        info: dict[str, Any],
        crashes: dict[tuple[str, str], int],
        cached: dict[str, StoredResult],
        analysis: Analysis,
    ) -> list[tuple[Service, str, StoredResult | Call]]:
        """For each service of a stage that should run: its result key, and its cached result or
        the sandbox call that makes it."""
        file_type = info.get("type", "unknown")
        planned: list[tuple[Service, str, StoredResult | Call]] = []
        for service in services:
            if service.stage != Stage.IDENTIFY and not service.accepts_type(file_type):
                continue
            if crashes.get((node.sha256, service.name), 0) >= self.attempts:
                reason = "service crashed on this file before; not retried"
                analysis.errors.append(ErrorRecord(node.sha256, service.name, ErrorKind.CRASH, reason))
                continue
            options = service.options(params.service_spec.get(service.name))
            provided, key_view = self.provisions.for_service(service, params, info)
            marked = key_marking(self.markings, analysis.marking)
            key = result_key(node.sha256, service, options | key_view | {"deep_scan": params.deep_scan} | marked)
            stored = cached.get(key)
            if stored is not None:
                planned.append((service, key, stored))
                continue
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
                workdir=self.scratch,
            )
            planned.append((service, key, Call(service.name, request, min(self.timeout, service.timeout))))
        return planned

    def _run_stage(
        self, node: FileNode, planned: list[tuple[Service, str, StoredResult | Call]], analysis: Analysis
    ) -> list[StoredResult]:
        """The stage's results in service order: cached ones as they are, the rest from one sandbox trip."""
        calls = [step for _, _, step in planned if isinstance(step, Call)]
        outcomes = iter(self.sandbox.execute_many(calls) if calls else [])
        results: list[StoredResult] = []
        for service, key, step in planned:
            if isinstance(step, StoredResult):
                analysis.results.append(step)
                results.append(step)
                self._mark(analysis, node.sha256, service.name, step.classification)
                continue
            outcome = next(outcomes)
            if isinstance(outcome, ServiceFailure):
                analysis.errors.append(ErrorRecord(node.sha256, service.name, outcome.kind, outcome.message))
                if outcome.kind in {ErrorKind.CRASH, ErrorKind.TIMEOUT}:
                    analysis.crashes.append((node.sha256, service.name))
                continue
            results.append(self._store_result(key, node, service, outcome, analysis))
        return results

    def _clear_scratch(self) -> None:
        """Empty the scratch directory services extract into (most files leave nothing there)."""
        with os.scandir(self.scratch) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path, ignore_errors=True)
                else:
                    with contextlib.suppress(OSError):
                        os.unlink(entry.path)

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
                reason = f"{extracted.name}: {exc}"
                analysis.errors.append(ErrorRecord(node.sha256, service.name, ErrorKind.EXTRACT, reason))
                continue
            children.append((extracted.name[:1024], stored.sha256, stored.size))
        heuristics = outcome.heuristic_ids()
        catalogue = registry.heuristics()
        score = registry.score_of(heuristics)
        body = storable(
            {
                "sections": [s.as_dict() for s in outcome.sections],
                "heuristics": [catalogue[h].as_dict() for h in heuristics if h in catalogue],
                "file_info": outcome.file_info,
                "data": outcome.data,
                "anomalies": outcome.anomalies,
                "children": children,
                "drop_file": outcome.drop_file,
            }
        )
        tags = [
            (t.type, storable(t.value[:4096])) for t in outcome.tags() if self.provisions.tag_allowed(t.type, t.value)
        ]
        marking = self._result_marking(analysis, node, service, outcome)
        stored_result = StoredResult(key, node.sha256, service, score, body, tags, new=True, classification=marking)
        analysis.results.append(stored_result)
        self._mark(analysis, node.sha256, service.name, marking)
        return stored_result

    def _cached_results(self, sha256: str) -> dict[str, StoredResult]:
        if sha256 in self._prefetched:
            return self._prefetched[sha256]
        return self._results_for([sha256]).get(sha256, {})

    def _results_for(self, shas: list[str]) -> dict[str, dict[str, StoredResult]]:
        """Stored results of these contents, by sha256 then key (one query for a whole batch)."""
        found: dict[str, dict[str, StoredResult]] = {sha: {} for sha in shas}
        with session_scope(self.engine, readonly=True) as session:
            rows = session.scalars(select(models.ResultRecord).where(models.ResultRecord.sha256.in_(shas))).all()
        for row in rows:
            service = registry.service(row.service)
            if service is not None:
                found[row.sha256][row.key] = StoredResult(
                    row.key, row.sha256, service, row.score, row.body, [], new=False, classification=row.classification
                )
        return found

    def _crash_counts(self, shas: list[str]) -> dict[tuple[str, str], int]:
        with session_scope(self.engine, readonly=True) as session:
            rows = session.scalars(select(models.ServiceCrash).where(models.ServiceCrash.sha256.in_(shas)))
            return {(row.sha256, row.service): row.count for row in rows}
