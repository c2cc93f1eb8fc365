"""Submissions, files and results as the Assemblyline v4 API shows them.

Every function reads with a :class:`Reader`: what lies above the reader's clearance or outside
their groups is left out, as if it did not exist (the routes have already refused a submission
or file the reader may not see; this drops the parts of a visible one that they may not).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from assay.access.visibility import Reader
from assay.db import models
from assay.services import registry
from assay.timestamps import iso_utc

VERDICTS = ((1000, "malicious"), (700, "highly_suspicious"), (300, "suspicious"), (0, "info"))


def verdict(score: int | None) -> str:
    """Assemblyline's bands: info 0, suspicious 300, highly suspicious 700, malicious 1000; below 0 safe."""
    if score is None:
        return "info"
    if score < 0:
        return "safe"
    return next(name for floor, name in VERDICTS if score >= floor)


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _iso(moment: datetime | None) -> str | None:
    return iso_utc(moment) if moment else None


def visible_result_keys(session: Session, sid: str, reader: Reader, sha256: str | None = None) -> list[str]:
    """Keys of the submission's results ``reader`` may see (of one file's when ``sha256`` is given)."""
    link, table = models.SubmissionResult, models.ResultRecord
    query = (
        select(link.result_key)
        .join(table, table.key == link.result_key)
        .where(link.sid == sid, reader.sees(table))
        .order_by(link.result_key)
    )
    if sha256 is not None:
        query = query.where(table.sha256 == sha256)
    return list(session.scalars(query))


def submission(session: Session, sub: models.Submission, reader: Reader) -> dict[str, Any]:
    result_keys = visible_result_keys(session, sub.sid, reader)
    error_keys = session.scalars(select(models.ServiceError.key).where(models.ServiceError.sid == sub.sid)).all()
    return {
        "sid": sub.sid,
        "state": sub.state,
        "max_score": sub.max_score,
        "score_verdict": verdict(sub.max_score) if sub.state == "completed" else None,
        "file_count": sub.file_count,
        "error_count": sub.error_count,
        "errors": list(error_keys),
        "results": list(result_keys),
        "files": [{"name": sub.name, "size": sub.size, "sha256": sub.sha256}],
        "metadata": dict(sub.meta),
        "params": dict(sub.params),
        "times": {"submitted": _iso(sub.created), "completed": _iso(sub.completed)},
        "verdict": {"malicious": [], "non_malicious": []},
        "classification": sub.classification,
        "expiry_ts": _iso(sub.expiry),
        "scan_key": sub.scan_key,
        "to_be_deleted": False,
        "archived": False,
    }


def file_info(row: models.File) -> dict[str, Any]:
    return {
        "sha256": row.sha256,
        "sha1": row.sha1,
        "md5": row.md5,
        "size": row.size,
        "type": row.type,
        "mime": row.mime,
        "magic": row.magic,
        "ssdeep": row.ssdeep,
        "tlsh": row.tlsh,
        "entropy": row.entropy,
        "classification": row.classification,
        "seen": {"count": row.seen_count, "first": _iso(row.seen_first), "last": _iso(row.seen_last)},
    }


def result(row: models.ResultRecord) -> dict[str, Any]:
    body = row.body
    return {
        "key": row.key,
        "sha256": row.sha256,
        "created": _iso(row.created),
        "classification": row.classification,
        "drop_file": bool(body.get("drop_file")),
        "response": {
            "service_name": row.service,
            "service_version": row.service_version,
            "extracted": [{"name": n, "sha256": s, "size": z} for n, s, z in body.get("children", [])],
            "supplementary": [],
        },
        "result": {
            "score": row.score,
            "sections": body.get("sections", []),
            "heuristics": body.get("heuristics", []),
            "anomalies": body.get("anomalies", []),
            "data": body.get("data", {}),
        },
    }


def error(row: models.ServiceError) -> dict[str, Any]:
    return {
        "key": row.key,
        "sha256": row.sha256,
        "created": _iso(row.created),
        "response": {"service_name": row.service, "message": row.message, "status": "FAIL_NONRECOVERABLE"},
        "type": row.error_type.upper(),
    }


def tree(session: Session, sub: models.Submission, reader: Reader) -> dict[str, Any]:
    """The file tree; a file the reader may not see is left out with what hangs below it."""
    nodes = session.scalars(
        select(models.SubmissionFile).where(models.SubmissionFile.sid == sub.sid).order_by(models.SubmissionFile.id)
    ).all()
    known = {
        row.sha256: row
        for row in session.execute(
            select(models.File.sha256, models.File.type, models.File.size).where(
                models.File.sha256.in_({n.sha256 for n in nodes}), reader.sees(models.File)
            )
        )
    }
    by_parent: dict[str | None, list[models.SubmissionFile]] = defaultdict(list)
    for node in nodes:
        if node.sha256 in known:
            by_parent[node.parent].append(node)

    def build(parent: str | None, trail: frozenset[str]) -> dict[str, Any]:
        level: dict[str, Any] = {}
        for node in by_parent.get(parent, []):
            entry = level.setdefault(
                node.sha256,
                {
                    "name": [],
                    "type": known[node.sha256].type,
                    "sha256": node.sha256,
                    "size": known[node.sha256].size,
                    "score": node.score,
                    "truncated": node.truncated,
                    "children": {},
                },
            )
            if node.name not in entry["name"]:
                entry["name"].append(node.name)
            if node.sha256 not in trail:
                entry["children"] = build(node.sha256, trail | {node.sha256})
        return level

    filtered = len(known) < len({n.sha256 for n in nodes})
    return {
        "tree": build(None, frozenset()),
        "classification": sub.classification,
        "filtered": filtered,
        "partial": False,
    }


def full(session: Session, sub: models.Submission, reader: Reader) -> dict[str, Any]:
    record = submission(session, sub, reader)
    results = session.scalars(
        select(models.ResultRecord).where(
            models.ResultRecord.key.in_(record["results"]), reader.sees(models.ResultRecord)
        )
    ).all()
    errors = session.scalars(select(models.ServiceError).where(models.ServiceError.sid == sub.sid)).all()
    file_tree = tree(session, sub, reader)["tree"]
    shas = {n["sha256"] for n in _walk(file_tree)}
    files = session.scalars(select(models.File).where(models.File.sha256.in_(shas), reader.sees(models.File))).all()
    record["file_tree"] = file_tree
    record["file_infos"] = {f.sha256: file_info(f) for f in files}
    record["results"] = {r.key: result(r) for r in results}
    record["errors"] = {e.key: error(e) for e in errors}
    return record


def _walk(level: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for entry in level.values():
        out.append(entry)
        out.extend(_walk(entry["children"]))
    return out


def summary(session: Session, sub: models.Submission, reader: Reader) -> dict[str, Any]:
    """Tags and heuristics of the results the reader may see (a tag carries its result's marking)."""
    keys = visible_result_keys(session, sub.sid, reader)
    tags: dict[str, list[str]] = defaultdict(list)
    for tag_type, value in session.execute(
        select(models.TagRecord.type, models.TagRecord.value).where(models.TagRecord.result_key.in_(keys))
    ):
        if value not in tags[tag_type]:
            tags[tag_type].append(value)
    heuristics: dict[str, list[dict[str, Any]]] = defaultdict(list)
    attack: dict[str, list[str]] = defaultdict(list)
    catalogue = registry.heuristics()
    for body in session.scalars(select(models.ResultRecord.body).where(models.ResultRecord.key.in_(keys))):
        for heur in body.get("heuristics", []):
            level = verdict(heur["score"])
            entry = {"heur_id": heur["heur_id"], "name": heur["name"], "score": heur["score"]}
            if entry not in heuristics[level]:
                heuristics[level].append(entry)
            known = catalogue.get(heur["heur_id"])
            for attack_id in known.attack_ids if known else heur.get("attack_ids", []):
                if heur["name"] not in attack[attack_id]:
                    attack[attack_id].append(heur["name"])
    return {
        "tags": dict(tags),
        "heuristics": dict(heuristics),
        "attack_matrix": dict(attack),
        "classification": sub.classification,
        "filtered": False,
        "partial": sub.state != "completed",
    }


def file_in_submission(session: Session, sid: str, sha256: str, reader: Reader) -> dict[str, Any] | None:
    row = session.scalars(select(models.File).where(models.File.sha256 == sha256, reader.sees(models.File))).first()
    if row is None:
        return None
    keys = visible_result_keys(session, sid, reader, sha256)
    results = session.scalars(select(models.ResultRecord).where(models.ResultRecord.key.in_(keys))).all()
    errors = session.scalars(
        select(models.ServiceError).where(models.ServiceError.sid == sid, models.ServiceError.sha256 == sha256)
    ).all()
    tags: dict[str, list[str]] = defaultdict(list)
    for tag_type, value in session.execute(
        select(models.TagRecord.type, models.TagRecord.value).where(models.TagRecord.result_key.in_(keys))
    ):
        tags[tag_type].append(value)
    return {
        "file_info": file_info(row),
        "results": [result(r) for r in results],
        "errors": [error(e) for e in errors],
        "tags": dict(tags),
        "childrens": [],
        "parents": [],
    }
