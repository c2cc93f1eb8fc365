"""The ASGI application: every dialect's routes, the envelope, and the process-wide state."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI

from assay import __version__
from assay.api import envelope, rules
from assay.api.al_v4 import apikey, auth, files, ingest, safelist, signatures, submission, user
from assay.api.state import AppState
from assay.config import Settings
from assay.db.session import get_engine, upgrade
from assay.filestore import FileStore
from assay.intake.committer import Committer
from assay.intake.ingest import Intake

log = logging.getLogger(__name__)


def _is_al_path(path: str) -> bool:
    return path.startswith("/api/")


def create_app(settings: Settings, *, migrate: bool = True, publish: bool = True) -> FastAPI:
    """Build the app; in scale-out mode it also runs the token sender that feeds Celery."""
    engine = get_engine(settings.database_url)
    if migrate:
        upgrade(engine)
    intake = Intake(settings)
    state = AppState(
        settings=settings,
        engine=engine,
        store=FileStore(settings.storage_path),
        intake=intake,
        committer=Committer(intake, engine),
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if publish and not settings.embedded:
            from assay.execution.broker import TokenSender

            state.token_sender = TokenSender(settings, engine)
            state.token_sender.start()
        yield
        if state.token_sender is not None:
            state.token_sender.stop()

    app = FastAPI(
        title="Assay",
        version=__version__,
        description="Files in, analysis results and threat intelligence out. Speaks Assemblyline v4, "
        "IoTInsight tasks and ThreatConnect-style batch jobs.",
        lifespan=lifespan,
        dependencies=[Depends(rules.enforce)],
    )
    app.state.assay = state
    envelope.install(app, _is_al_path)
    for module in (auth, ingest, submission, files, safelist, signatures, user, apikey):
        app.include_router(module.router)
    _optional_routers(app)
    if unguarded := rules.unenforceable(app):
        raise RuntimeError(f"routes the access rules cannot guard: {', '.join(unguarded)}")
    return app


def _optional_routers(app: FastAPI) -> None:
    """Dialects that live in their own packages join when present."""
    for name in ("assay.api.iotinsight", "assay.api.intel"):
        try:
            module = __import__(name, fromlist=["router"])
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        app.include_router(module.router)
