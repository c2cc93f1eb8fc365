"""Names say what they hold: no two public classes of the package share a name, and the project's
timestamp format is written in one place only.

Kinds with a fixed set of values are ``StrEnum``s whose values are the strings stored before.

Two classes of one name (two ``Settings``, two ``Publisher``) make every import a guess and every
traceback ambiguous; the check walks the source, so it holds for modules nobody imports in a test.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

from assay.dispatch.analysis import ErrorKind
from assay.intel.run.chunks import OutcomeStatus

PACKAGE = Path(__file__).resolve().parents[2] / "assay"


def public_classes() -> dict[str, list[str]]:
    """Class name -> where each class of that name is defined (nested classes included)."""
    found: dict[str, list[str]] = defaultdict(list)
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                found[node.name].append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}")
    return found


def test_no_two_public_classes_share_a_name() -> None:
    shared = {name: places for name, places in public_classes().items() if len(places) > 1}
    assert shared == {}


def test_the_walk_sees_the_package() -> None:
    classes = public_classes()
    assert {"Settings", "JobSettings", "TokenSender", "IntelPublisher", "ResultRecord"} <= set(classes)


def test_the_timestamp_format_has_one_home() -> None:
    """Everything Assay stamps goes through ``assay.timestamps.iso_utc``."""
    writers = [
        str(path.relative_to(PACKAGE.parent))
        for path in PACKAGE.rglob("*.py")
        if "%Y-%m-%dT%H:%M:%S" in path.read_text(encoding="utf-8")
    ]
    assert writers == ["assay/timestamps.py"]


def test_kinds_keep_the_strings_already_stored() -> None:
    """``service_errors.error_type`` rows and job counts written before the enums still match."""
    assert {k.value for k in ErrorKind} == {"exception", "timeout", "crash", "extract", "failed", "classification"}
    assert f"{ErrorKind.CRASH}" == "crash" and ErrorKind.TIMEOUT == "timeout"
    assert {s.value for s in OutcomeStatus} == {
        "insert", "update", "reuse", "replace", "delete", "merged", "failed", "saved", "existing", "absent"
    }
