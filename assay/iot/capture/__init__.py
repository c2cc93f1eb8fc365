"""Network-capture analysis for IoT cases: pcap/pcapng in, hosts, conversations and protocol records out.

Usage::

    from assay.iot.capture import analyse_capture

    report = analyse_capture("dump.pcap", max_packets=1_000_000)
    report["hosts"], report["dns"], report["timeline"]
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from assay.iot.capture.analyser import DEFAULTS, CaptureAnalysis

__all__ = ["DEFAULTS", "CaptureAnalysis", "analyse_capture"]


def analyse_capture(path: str | Path, **options: Any) -> dict[str, Any]:
    """The full JSON-ready report for one capture; bounds are keyword options (see ``DEFAULTS``).

    Carved HTTP bodies are listed in ``report["carved"]`` by name and size; use
    :class:`CaptureAnalysis` directly to get their bytes.
    """
    analysis = CaptureAnalysis(Path(path), options)
    analysis.run()
    report = analysis.report.as_dict()
    report["carved"] = [{"name": n, "description": d, "size": len(b)} for n, d, b in analysis.report.carved]
    return report
