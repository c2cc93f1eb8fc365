"""Run a benchmark script of this tree and of an earlier one, interleaved, and print both side by side.

The earlier tree is a ``git worktree`` of the commit to compare against; each side runs its own
copy of the script with its own ``assay`` package (its folder first on ``PYTHONPATH`` and as the
working directory, which the servers the script starts inherit). Rounds alternate the order
(ABBA), so a drift of the machine's speed falls on both sides alike. Prints JSON: each side's
figures per round, their medians, and ratios of this tree to the earlier one (above 1 means this
tree is faster for rates, slower for seconds; see ``higher_is_better``).

    git worktree add /tmp/assay-before a35d6ef
    .venv/bin/python bench/compare.py --before /tmp/assay-before --script ingest_e2e.py --rounds 3
    .venv/bin/python bench/compare.py --before /tmp/assay-before --script services.py --rounds 3 -- --repeat 2

``--same-workload`` copies this tree's benchmark script and the workload it builds (corpus
writers, document builders, shipped samples) over the earlier tree's first, so both sides run
the same script on the same files and only the ``assay`` package differs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parents[1]
# ingest_e2e.py builds its files inline and starts servers through each tree's own test helpers,
# so each side keeps its own copy of that script.
WORKLOAD = (
    "bench/services.py",
    "tests/helpers",
    "tests/unit/test_service_documents.py",
    "tests/data",
)


def copy_workload(tree: Path) -> None:
    for name in WORKLOAD:
        source, target = HERE / name, tree / name
        if source.is_dir():
            shutil.copytree(source, target, dirs_exist_ok=True)
        else:
            shutil.copyfile(source, target)


def run_side(tree: Path, script: str, extra: list[str]) -> dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=str(tree))
    started = time.monotonic()
    answer = subprocess.run(
        [sys.executable, str(tree / "bench" / script), *extra],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if answer.returncode != 0:
        raise SystemExit(f"{tree}/bench/{script} failed ({answer.returncode}):\n{answer.stderr[-3000:]}")
    report = json.loads(answer.stdout)
    report["_wall_s"] = round(time.monotonic() - started, 1)
    return report


def headline(script: str, report: dict[str, Any]) -> dict[str, float]:
    """The figures to compare: files/s and CPU ms per file per mode, or seconds per service."""
    figures: dict[str, float] = {}
    if script == "ingest_e2e.py":
        for mode, value in report.items():
            if isinstance(value, dict) and "files_per_s" in value and "cpu_ms_per_file" in value:
                figures[f"{mode}.files_per_s"] = value["files_per_s"]
                figures[f"{mode}.cpu_ms_per_file"] = value["cpu_ms_per_file"]["total"]
        figures["calibration_s"] = report["calibration_loop_cpu_s_before"]
    else:
        figures["identification.wall_s"] = report["identification"]["wall_s"]
        for name, value in report["services"].items():
            if value.get("files"):
                figures[f"{name}.cpu_s"] = value["cpu_s"]
        figures["services.total_cpu_s"] = round(sum(v.get("cpu_s", 0.0) for v in report["services"].values()), 3)
    return figures


def higher_is_better(name: str) -> bool:
    return name.endswith("files_per_s")


def compare(before: list[dict[str, float]], after: list[dict[str, float]]) -> dict[str, Any]:
    table: dict[str, Any] = {}
    for name in before[0]:
        old = statistics.median(r[name] for r in before)
        new = statistics.median(r[name] for r in after if name in r)
        speedup = (new / old if higher_is_better(name) else old / new) if old and new else None
        table[name] = {"before": old, "after": new, "after_speed_vs_before": round(speedup, 4) if speedup else None}
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True, help="a worktree of the earlier commit")
    parser.add_argument("--script", required=True, choices=("ingest_e2e.py", "services.py"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--same-workload", action="store_true", help="this tree's script and workload on both sides")
    parser.add_argument("extra", nargs="*", help="arguments for the script (after --)")
    args = parser.parse_args()
    before_tree = args.before.resolve()
    if args.same_workload:
        copy_workload(before_tree)
    sides = {"before": before_tree, "after": HERE}
    runs: dict[str, list[dict[str, Any]]] = {"before": [], "after": []}
    for index in range(args.rounds):
        order = ("before", "after") if index % 2 == 0 else ("after", "before")
        for side in order:
            runs[side].append(run_side(sides[side], args.script, args.extra))
    heads = {side: [headline(args.script, r) for r in reports] for side, reports in runs.items()}
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=before_tree, capture_output=True, text=True)
    print(
        json.dumps(
            {
                "script": args.script,
                "arguments": args.extra,
                "before_commit": commit.stdout.strip(),
                "same_workload": args.same_workload,
                "rounds": heads,
                "median": compare(heads["before"], heads["after"]),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
