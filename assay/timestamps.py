"""The one format Assay writes times in: UTC, microseconds, ``Z`` (``2017-07-16T08:00:00.000000Z``).

It is Assemblyline's, so notification messages, API answers and published intel dates all read
alike, whoever wrote them.
"""

from __future__ import annotations

from datetime import UTC, datetime


def iso_utc(moment: datetime) -> str:
    """``moment`` in UTC as ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (a naive one is taken as local time)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
