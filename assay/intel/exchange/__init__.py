"""Sharing the intel store: STIX 2.1 and MISP export of a selection, STIX 2.1 (and V2 batch) import.

    text = export_owner("Example Org", "stix")          # or "misp"
    text = export_group(42, "misp")                     # a group (by id) and its associations
    text = export_submission(sid, "stix", owner="Assay")
    text = export_owner("Assay", "misp", reader=reader)     # only what `reader` may see, marked so
    result = import_file(Path("bundle.json"), "Other Org")   # a JobResult

Exports are deterministic (same store → same bytes). Imports go through a `Job`, so validation,
deduplication and exit codes are the Job's; `import_file` also accepts a V2 batch / Jobs document
(`{"group": [...], "indicator": [...], "association": [...]}`) and runs it as `assay.intel.batch_document`
would.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from assay.intel import batch_document
from assay.intel.errors import Code
from assay.intel.exchange.select import (
    Selection,
    SelectionError,
    group_selection,
    indicator_selection,
    owner_selection,
    submission_selection,
)
from assay.intel.exchange.stix_import import MAX_BYTES, StixImportResult, import_bundle, import_stix
from assay.intel.result import JobResult

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from assay.access.visibility import Reader

FORMATS = ("stix", "misp")

__all__ = [
    "FORMATS",
    "Selection",
    "SelectionError",
    "StixImportResult",
    "export",
    "export_group",
    "export_indicators",
    "export_owner",
    "export_submission",
    "import_file",
    "import_stix",
]


def export(sel: Selection, fmt: str) -> str:
    """A selection as STIX 2.1 bundle or MISP event JSON text."""
    if fmt == "stix":
        from assay.intel.exchange.stix import export_stix

        return export_stix(sel)
    if fmt == "misp":
        from assay.intel.exchange.misp import export_misp

        return export_misp(sel)
    raise ValueError(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}")


def export_owner(owner: str, fmt: str, engine: Engine | None = None, reader: Reader | None = None) -> str:
    """Everything an owner holds; with `reader`, only what they may see (see `select`)."""
    return export(owner_selection(owner, engine, reader), fmt)


def export_group(
    group: int | str, fmt: str, owner: str | None = None, engine: Engine | None = None, reader: Reader | None = None
) -> str:
    """A group by id (or by xid, with its owner) and everything associated with it."""
    return export(group_selection(group, owner, engine, reader), fmt)


def export_submission(
    sid: str, fmt: str, owner: str | None = None, engine: Engine | None = None, reader: Reader | None = None
) -> str:
    """What a submission published: its Report group and the intel associated with it."""
    return export(submission_selection(sid, owner, engine, reader), fmt)


def export_indicators(
    owner: str, ids: list[int], fmt: str, engine: Engine | None = None, reader: Reader | None = None
) -> str:
    return export(indicator_selection(owner, ids, engine, reader), fmt)


def _read(source: str | bytes | Path, max_bytes: int) -> str | bytes:
    """The document's text: `source` itself when it is JSON text, else the file it names."""
    if isinstance(source, bytes):
        return source
    if isinstance(source, str) and source.lstrip()[:1] in ("{", "["):
        return source
    path = Path(source)
    if path.stat().st_size > max_bytes:
        raise ValueError(f"{path}: larger than {max_bytes} bytes")
    return path.read_bytes()


def _failed(code: Code, reason: str) -> JobResult:
    result = JobResult()
    result.critical("indicator", code, reason)
    return result


def import_file(
    path_or_text: str | bytes | Path, owner: str, engine: Engine | None = None, *, max_bytes: int = MAX_BYTES
) -> JobResult:
    """Import a STIX 2.1 bundle or a V2 batch / Jobs document; problems come back in the result."""
    try:
        text = _read(path_or_text, max_bytes)
    except (OSError, ValueError) as exc:
        return _failed(Code.FILE_IO, f"cannot read the document: {exc}")
    if len(text) > max_bytes:
        return _failed(Code.JSON_SYNTAX, f"document larger than {max_bytes} bytes")
    try:
        document: Any = json.loads(text)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        return _failed(Code.JSON_SYNTAX, f"not JSON: {str(exc)[:200]}")
    if isinstance(document, dict) and document.get("type") == "bundle":
        return import_bundle(document, owner, engine, max_bytes=max_bytes)
    if not isinstance(document, dict) or not {"group", "indicator", "association"} & set(document):
        return _failed(Code.JSON_SYNTAX, "neither a STIX bundle nor a V2 batch document (group/indicator/association)")
    try:
        data = batch_document.load_document(document)
        settings = batch_document.BatchSettings(owner=owner.strip() if isinstance(owner, str) else owner)
        return batch_document.fill_job(settings.job(engine), data).process()
    except (batch_document.BatchDocumentError, ValueError) as exc:
        return _failed(Code.JSON_SYNTAX, f"neither a STIX bundle nor a V2 batch document: {exc}")
