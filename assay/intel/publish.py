"""Publication: a completed submission's findings written to the intel store through a Job.

What is published (a rule in ``[intel]``): the File indicator of every file scoring at least
``min_score``, with a file occurrence (submitted name, ``metadata.file_path``, submission time);
Address/Host/URL/EmailAddress indicators from the network tags; a Report group per submission;
a Signature group per YARA rule that matched; and the associations between them. Every item
has a stable identity (xids, normalised summaries, occurrence fingerprints), so publishing the
same submission twice adds nothing twice.

Every item published from a submission carries the submission's classification as its security
label (`submission_marking`), so readers and exports are filtered by it (`assay.intel.marking`).
Signature groups carry none: a YARA rule comes from the platform's rule sets, not from the files.
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from assay.access import ClassificationEngine
from assay.access.configured import engine_for
from assay.config import Settings
from assay.db import models
from assay.db.base import utcnow
from assay.db.session import session_scope
from assay.intel.job import Job
from assay.intel.marking import TLP
from assay.intel.result import JobResult
from assay.timestamps import iso_utc

log = logging.getLogger(__name__)

NETWORK_TYPES = {
    "network.static.ip": "Address",
    "network.dynamic.ip": "Address",
    "network.static.domain": "Host",
    "network.dynamic.domain": "Host",
    "network.static.uri": "URL",
    "network.dynamic.uri": "URL",
    "network.email.address": "EmailAddress",
}
YARA_TAG = "file.rule.yara"
MAX_RULE_TEXT = 64 * 1024


@dataclass(frozen=True)
class Rule:
    """Which findings become intel, and under which owner."""

    enabled: bool
    owner: str
    min_score: int
    tag_types: tuple[str, ...]
    yara_dir: Path | None = None
    classification: ClassificationEngine = TLP

    @classmethod
    def from_settings(cls, settings: Settings) -> Rule:

        tag_types = settings.intel.tag_types or tuple(NETWORK_TYPES)
        unknown = [t for t in tag_types if t not in NETWORK_TYPES]
        if unknown:
            raise ValueError(f"[intel] tag_types: cannot publish {', '.join(unknown)}")
        return cls(
            enabled=settings.intel.publish,
            owner=settings.intel.owner,
            min_score=settings.intel.min_score,
            tag_types=tag_types,
            yara_dir=settings.yara_dir,
            classification=engine_for(settings.classification),
        )


def rating_for(score: int) -> int:
    """0-5 from the verdict bands: safe 0, info 1, suspicious 3, highly suspicious 4, malicious 5."""
    if score < 0:
        return 0
    if score >= 1000:
        return 5
    if score >= 700:
        return 4
    if score >= 300:
        return 3
    return 1


def confidence_for(score: int) -> int:
    return max(0, min(100, score // 10))


def report_xid(sid: str) -> str:
    return f"assay-submission-{sid}"


def submission_marking(submission: models.Submission, classification: ClassificationEngine) -> str:
    """The canonical marking of a submission: what its intel is labelled with.

    The one place publication reads it: the row's marking, which recording raised to the highest
    of its parameters and of what its services marked. A marking that cannot be read is taken as
    the highest, so it hides rather than shares.
    """
    return classification.normalise_stored(submission.classification or classification.default)


@dataclass
class Findings:
    """What publication reads of a set of submissions, fetched in three queries for all of them."""

    nodes: dict[str, list[models.SubmissionFile]]
    files: dict[str, models.File]
    tags: dict[str, dict[str, list[str]]]  # sha256 -> tag type -> values

    @classmethod
    def load(cls, session: Session, sids: list[str]) -> Findings:
        nodes: dict[str, list[models.SubmissionFile]] = defaultdict(list)
        for node in session.scalars(select(models.SubmissionFile).where(models.SubmissionFile.sid.in_(sids))):
            nodes[node.sid].append(node)
        shas = {n.sha256 for group in nodes.values() for n in group}
        files = {f.sha256: f for f in session.scalars(select(models.File).where(models.File.sha256.in_(shas)))}
        keys = select(models.SubmissionResult.result_key).where(models.SubmissionResult.sid.in_(sids))
        tags: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
        rows = session.execute(
            select(models.TagRecord.sha256, models.TagRecord.type, models.TagRecord.value).where(
                models.TagRecord.result_key.in_(keys)
            )
        )
        for sha256, tag_type, value in rows:
            if value not in tags[sha256][tag_type]:
                tags[sha256][tag_type].append(value)
        return cls(nodes, files, tags)


def add_submission(job: Job, submission: models.Submission, findings: Findings, rule: Rule) -> None:
    """Queue on ``job`` everything ``rule`` publishes of ``submission``."""
    report = report_xid(submission.sid)
    labels = [submission_marking(submission, rule.classification)]
    job.group(
        {
            "type": "Report",
            "name": f"Assay submission {submission.sid}: {submission.name}"[:255],
            "xid": report,
            "publishDate": iso_utc(submission.completed or submission.created),
            "fileName": submission.name[:255],
            "attribute": [{"type": "Description", "value": f"max_score {submission.max_score}"}],
            "securityLabel": labels,
        }
    )
    nodes = findings.nodes.get(submission.sid, [])
    scores: dict[str, int] = defaultdict(int)
    for node in nodes:
        scores[node.sha256] = max(scores[node.sha256], node.score)
    for sha256, score in scores.items():
        found = findings.files.get(sha256)
        if found is None:
            continue
        tags = findings.tags.get(sha256, {})
        for rule_name in tags.get(YARA_TAG, []):
            job.group(_signature(rule_name, rule.yara_dir))
        if score >= rule.min_score:
            indicator = _file_indicator(found, score, submission, nodes, report, tags.get(YARA_TAG, []))
            job.indicator({**indicator, "securityLabel": labels})
        for tag_type in rule.tag_types:
            for value in tags.get(tag_type, []):
                job.indicator(
                    {
                        "type": NETWORK_TYPES[tag_type],
                        "summary": value,
                        "rating": rating_for(score),
                        "confidence": confidence_for(score),
                        "tag": [{"name": tag_type}],
                        "associatedGroups": [{"groupXid": report}],
                        "securityLabel": labels,
                    }
                )


def _file_indicator(
    found: models.File,
    score: int,
    submission: models.Submission,
    nodes: Any,
    report: str,
    rules: list[str],
) -> dict[str, Any]:
    occurrences = []
    for node in nodes:
        if node.sha256 != found.sha256:
            continue
        occurrence: dict[str, Any] = {"fileName": node.name[:255], "date": iso_utc(submission.created)}
        if node.parent is None and submission.meta.get("file_path"):
            occurrence["path"] = submission.meta["file_path"][:1024]
        occurrences.append(occurrence)
    return {
        "type": "File",
        "summary": " : ".join(h for h in (found.md5, found.sha1, found.sha256) if h),
        "rating": rating_for(score),
        "confidence": confidence_for(score),
        "attribute": [{"type": "File Type", "value": found.type or "unknown"}] if found.type else [],
        "associatedGroups": [{"groupXid": report}, *({"groupXid": _signature_xid(r)} for r in rules)],
        "fileOccurrence": occurrences,
    }


def _signature_xid(rule_name: str) -> str:
    return f"assay-yara-{rule_name}"[:255]


def _signature(full_name: str, yara_dir: Path | None) -> dict[str, Any]:
    namespace, _, name = full_name.rpartition(".")
    return {
        "type": "Signature",
        "name": name or full_name,
        "xid": _signature_xid(full_name),
        "fileName": f"{namespace or name}.yar",
        "fileType": "YARA",
        "fileText": _rule_text(yara_dir, namespace, name) or f"rule {name} /* rule set {namespace} */",
    }


def _rule_text(yara_dir: Path | None, namespace: str, name: str) -> str | None:
    """The source of one rule, cut from its rule-set file (best effort)."""
    if yara_dir is None or not re.fullmatch(r"\w{1,64}", namespace or ""):
        return None
    path = yara_dir / f"{namespace}.yar"
    try:
        text = path.read_text("utf-8", "replace")[: 4 * MAX_RULE_TEXT]
    except OSError:
        return None
    match = re.search(rf"(?m)^[^\n]*\brule\s+{re.escape(name)}\b", text)
    if not match:
        return None
    depth, end = 0, None
    for index in range(text.find("{", match.start()), len(text)):
        if text[index] == "{":
            depth += 1
        elif text[index] == "}":
            depth -= 1
            if depth == 0:
                end = index + 1
                break
    return text[match.start() : end][:MAX_RULE_TEXT] if end else None


class IntelPublisher:
    """Publishes completed submissions, many per Job so the store's bulk path does the work.

    Workers call :meth:`publish_pending` every few seconds; a submission is marked published
    once its Job ran (item errors are final and logged; a critical failure, such as the store
    being away, leaves it pending for the next round).
    """

    def __init__(self, settings: Settings, engine: Engine) -> None:
        self.rule = Rule.from_settings(settings)
        self.engine = engine
        self.batch = settings.intel.publish_batch

    def publish(self, sids: list[str]) -> JobResult | None:
        if not self.rule.enabled or not sids:
            return None
        job = Job(owner=self.rule.owner, engine=self.engine, classification=self.rule.classification)
        with session_scope(self.engine, readonly=True) as session:
            chosen = session.scalars(
                select(models.Submission).where(
                    models.Submission.sid.in_(sids),
                    models.Submission.state == "completed",
                    models.Submission.published.is_(False),
                )
            ).all()
            findings = Findings.load(session, [s.sid for s in chosen])
            for submission in chosen:
                add_submission(job, submission, findings, self.rule)
        if not chosen:
            return None
        result = job.process()
        if result.exit_code != 0:
            log.warning("publishing %d submissions: exit %s, %s", len(chosen), result.exit_code, result.errors[:3])
        if result.exit_code != 1:
            with session_scope(self.engine) as session:
                session.execute(
                    update(models.Submission)
                    .where(models.Submission.sid.in_([s.sid for s in chosen]))
                    .values(published=True)
                )
        return result

    def overdue(self, max_delay: float) -> bool:
        """Whether a completed submission has waited more than ``max_delay`` seconds for publication."""
        if not self.rule.enabled:
            return False
        with session_scope(self.engine, readonly=True) as session:
            return waited_longer_than(session, max_delay)

    def publish_pending(self) -> int:
        """Publish up to one batch of completed, unpublished submissions (oldest first)."""
        if not self.rule.enabled:
            return 0
        with session_scope(self.engine, readonly=True) as session:
            sids = session.scalars(
                select(models.Submission.sid)
                .where(models.Submission.state == "completed", models.Submission.published.is_(False))
                .order_by(models.Submission.completed)
                .limit(self.batch)
            ).all()
        self.publish(list(sids))
        return len(sids)


def waited_longer_than(session: Session, seconds: float) -> bool:
    """Whether a completed submission has waited more than ``seconds`` to be published."""
    oldest = session.scalar(
        select(models.Submission.completed)
        .where(models.Submission.state == "completed", models.Submission.published.is_(False))
        .order_by(models.Submission.completed)
        .limit(1)
    )
    return oldest is not None and (utcnow() - oldest).total_seconds() > seconds
