"""What the API process holds for its whole life: settings, database, file store, intake."""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fastapi import Request
from sqlalchemy import Engine

from assay.access import ClassificationEngine
from assay.access.configured import engine_for
from assay.access.visibility import Reader
from assay.config import Settings
from assay.filestore import FileStore
from assay.intake.committer import Committer
from assay.intake.ingest import Intake

if TYPE_CHECKING:
    from assay.execution.broker import TokenSender
    from assay.iotinsight.accounts import AccountRunner
    from assay.users import Principal


@dataclass
class AppState:
    settings: Settings
    engine: Engine
    store: FileStore
    intake: Intake
    committer: Committer
    token_sender: TokenSender | None = None
    _accounts: AccountRunner | None = field(default=None, init=False, repr=False)
    _accounts_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    @functools.cached_property
    def markings(self) -> ClassificationEngine:
        """The classification engine of this configuration (built once, cached by its settings)."""
        return engine_for(self.settings.classification)

    def reader(self, principal: Principal) -> Reader:
        """What ``principal`` may read, for the visibility condition every read query adds."""
        return Reader(self.markings, principal.clearance)

    def work_added(self) -> None:
        if self.token_sender is not None:
            self.token_sender.wake()

    def accounts(self) -> AccountRunner:
        """The pool that collects cloud accounts, made by the first account task.

        Most servers never collect an account, so they never read its settings; the IoTInsight
        dialect stays an optional package.
        """
        with self._accounts_lock:
            if self._accounts is None:
                self._accounts = self._new_account_runner()
            return self._accounts

    def _new_account_runner(self) -> AccountRunner:
        from assay.iotinsight.accounts import AccountRunner
        from assay.iotinsight.pipeline import Pipeline

        return AccountRunner(
            Pipeline(self.engine, self.settings, self.store, self.intake),
            on_work=self.work_added,
            workers=self.settings.tasks.account_workers,
            max_waiting=self.settings.tasks.account_max_waiting,
        )


def state_of(request: Request) -> AppState:
    return request.app.state.assay  # type: ignore[no-any-return]
