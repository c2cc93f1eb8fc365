"""The reference tools the comparison tests run are installed: ``make test`` runs ``make tools`` first.

The tests that compare with ``file``, ``7z``, ``tar``, ``tshark``, ``yara``, ``readelf`` and
``redis-server`` do not skip when one is missing; this test says which one, and how to install it.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

TOOLS_SCRIPT = Path(__file__).resolve().parents[2] / ".ci" / "tools"


def test_every_reference_tool_is_on_the_path() -> None:
    check = subprocess.run(["bash", str(TOOLS_SCRIPT), "--check"], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
