"""What a task is handed to: the database, the file store and the intake, bounded by the settings.

The task layer takes these explicitly rather than the API server's state, so it knows nothing of
HTTP and a caller other than the API (a test, a command) can build one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine

from assay.config import Settings
from assay.filestore import FileStore
from assay.intake.ingest import Intake
from assay.iotinsight import paths


@dataclass(frozen=True)
class Pipeline:
    engine: Engine
    settings: Settings
    store: FileStore
    intake: Intake

    @property
    def max_file_size(self) -> int:
        return self.settings.limits.max_file_size

    def roots(self) -> list[Path]:
        """The allowed roots as they exist now: one created or removed since start-up counts."""
        return paths.allowed_roots(self.settings)
