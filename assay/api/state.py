"""What the API process holds for its whole life: settings, database, file store, intake."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fastapi import Request
from sqlalchemy import Engine

from assay.config import Settings
from assay.filestore import FileStore
from assay.intake.committer import Committer
from assay.intake.ingest import Intake

if TYPE_CHECKING:
    from assay.execution.broker import Publisher


@dataclass
class AppState:
    settings: Settings
    engine: Engine
    store: FileStore
    intake: Intake
    committer: Committer
    publisher: Publisher | None = None
    sessions: dict[str, tuple[object, float]] = field(default_factory=dict)

    def work_added(self) -> None:
        if self.publisher is not None:
            self.publisher.wake()


def state_of(request: Request) -> AppState:
    return request.app.state.assay  # type: ignore[no-any-return]
