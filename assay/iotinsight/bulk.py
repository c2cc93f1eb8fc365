"""A server directory as a case: every regular file under it a task, typed by its content.

One file that cannot be read or stored is reported in the answer and the others go on; the
case, its tasks and their submissions are written in one transaction.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from assay.access.visibility import StoredMarking
from assay.db.session import session_scope
from assay.filestore import FileTooLarge
from assay.ids import new_id
from assay.iotinsight import files, paths, tasks
from assay.iotinsight.models import Case, CaseTask
from assay.iotinsight.pipeline import Pipeline


def open_case(pipeline: Pipeline, user: str, raw: str, marking: StoredMarking) -> tuple[str, dict[str, Any]]:
    """The case id, and for each file found its type and task id (or why it has none); the case
    and each task are marked ``marking``.

    Raises :class:`paths.PathRefused` for a directory the caller may not name or that holds no files.
    """
    roots = pipeline.roots()
    directory, found = _walk(pipeline, raw, roots)
    answer: dict[str, Any] = {}
    case_id = new_id()
    with session_scope(pipeline.engine) as session:
        session.add(Case(case_id=case_id, user=user, root=str(directory), **marking.columns()))
        session.flush()
        for path in found:
            answer[str(path)] = _file(session, pipeline, user, path, roots, marking)
        session.flush()  # the tasks exist before the rows that point at them
        session.add_all(
            CaseTask(case_id=case_id, task_id=entry["task_id"], path=path)
            for path, entry in answer.items()
            if entry["task_id"]
        )
    return case_id, answer


def _walk(pipeline: Pipeline, raw: str, roots: list[Path]) -> tuple[Path, list[Path]]:
    """The directory's real path and the regular files under it, within the configured bounds."""
    settings = pipeline.settings
    directory = paths.resolve_allowed(raw, roots)
    walked = paths.walk(
        directory, settings.tasks.bulk_max_files, settings.tasks.bulk_max_depth
    )
    if not walked.files:
        raise paths.PathRefused(f"{raw} holds no regular files")
    return directory, walked.files


def _file(
    session: Session, pipeline: Pipeline, user: str, path: Path, roots: list[Path], marking: StoredMarking
) -> dict[str, Any]:
    try:
        stored = files.store_path(pipeline, path, roots, str(path))
    except files.EmptyFile:
        return {"filetype": "other", "task_id": None, "error": "empty file"}
    except (paths.PathRefused, FileTooLarge) as exc:
        return {"filetype": "other", "task_id": None, "error": str(exc)}
    filetype = files.detect_stored(pipeline.store, stored)
    task_id = tasks.add_file_task(session, pipeline, user, "bulk", filetype, stored, path.name, str(path), marking)
    return {"filetype": filetype, "task_id": task_id}
