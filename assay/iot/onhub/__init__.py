"""Google OnHub / Google Wifi diagnostic reports (``/api/v1/diagnostic-report``).

A report is a protobuf holding the router's logs, command outputs, configuration (as
protobuf text format) and a JSON snapshot of its state. :func:`analyse` turns one into a
station inventory, the network configuration (keys masked), timelines and embedded files;
:func:`looks_like_onhub` tells a report apart from other bytes for bulk detection.

Example::

    from assay.iot.onhub import OnHubLimits, analyse
    analysis = analyse(Path("004-Onhub-diagnostic-report").read_bytes(), OnHubLimits())
    analysis.data["stations"][0]["mac"]
"""

from __future__ import annotations

from assay.iot.onhub.report import OnHubAnalysis, OnHubLimits, analyse
from assay.iot.onhub.schema import decode

__all__ = ["OnHubAnalysis", "OnHubLimits", "analyse", "looks_like_onhub"]

_EVIDENCE_FIELDS = (
    "report_time",
    "network_config",
    "wan_info",
    "info_json",
    "storm_version",
    "whirlwind_version",
)


def looks_like_onhub(data: bytes) -> bool:
    """True when ``data`` parses as a diagnostic report with a printable version and other report fields."""
    if data[:1] != b"\x0a":
        return False
    decoded = decode(data)
    report = decoded.report
    if not report.HasField("version") or not decoded.consumed:
        return False
    try:
        version = report.version.decode("utf-8")
    except UnicodeDecodeError:
        return False
    if not 0 < len(version) < 512 or not version.isprintable():
        return False
    evidence = sum(report.HasField(name) for name in _EVIDENCE_FIELDS)
    evidence += bool(len(report.files)) + bool(len(report.command_outputs)) + bool(len(report.station_macs))
    return evidence >= 2 or (evidence >= 1 and "(Official Build)" in version)
