"""Engines and sessions for SQLite (embedded) and PostgreSQL (scale-out), and schema upgrades."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.exc import DisconnectionError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from assay import fastjson
from assay.config import DatabaseSettings, Settings

log = logging.getLogger(__name__)
T = TypeVar("T")
_engines: dict[str, Engine] = {}
_lock = threading.Lock()
_default_settings: Settings | None = None
MIGRATIONS = Path(__file__).with_name("migrations")
_UPGRADE_LOCK_ID = 0x4153_5341  # "ASSA": serialises concurrent upgrades on PostgreSQL


def configure(settings: Settings) -> None:
    """Make ``settings`` the process default for :func:`get_engine` without arguments."""
    global _default_settings
    _default_settings = settings


def get_engine(url: str | None = None) -> Engine:
    """One engine per URL per process (engines must not cross a fork: see :func:`dispose_all`)."""
    if url is None:
        if _default_settings is None:
            from assay.config import load_settings

            configure(load_settings())
        assert _default_settings is not None
        url = _default_settings.database_url
    with _lock:
        engine = _engines.get(url)
        if engine is None:
            engine = _engines[url] = _create(url)
        return engine


def dispose_all() -> None:
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()


_JSON = {"json_serializer": fastjson.dumps, "json_deserializer": fastjson.loads}


def _create(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 60, "check_same_thread": False}, **_JSON)
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    engine = create_engine(url, pool_size=_pool_size(), max_overflow=20, **_JSON)
    event.listen(engine, "connect", _note_idle)
    event.listen(engine, "checkin", _note_idle)
    event.listen(engine, "checkout", _ping_after_idle(engine))
    return engine


def _pool_size() -> int:
    """``[database] pool_size`` of the process settings; an engine made before :func:`configure` gets the default."""
    return (_default_settings.database if _default_settings else DatabaseSettings()).pool_size


PING_AFTER_IDLE = 5.0  # seconds a pooled PostgreSQL connection may sit unused before it is pinged


def _note_idle(_dbapi_connection: object, record: Any) -> None:
    record.info["idle_since"] = time.monotonic()


def _ping_after_idle(engine: Engine) -> Any:
    """Ping a pooled connection before use only if it sat idle (SQLAlchemy's pre-ping pings always).

    A connection used a few milliseconds ago is alive, and a ping costs a round trip per request
    (8 % of an empty notification poll). After an idle spell, the server may have restarted: a dead
    connection is replaced before the request sees it. One that dies mid-burst fails its request
    (a 503, which clients retry) and the pool replaces every connection of that generation.
    """

    def checkout(dbapi_connection: object, record: Any, _proxy: object) -> None:
        if time.monotonic() - record.info.get("idle_since", 0.0) < PING_AFTER_IDLE:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)  # type: ignore[arg-type]
        except Exception:
            raise DisconnectionError("the connection did not answer a ping") from None

    return checkout


def _sqlite_pragmas(dbapi_connection: object, _record: object) -> None:
    dbapi_connection.isolation_level = None  # type: ignore[attr-defined]  # we issue BEGIN ourselves
    cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
    # WAL + NORMAL: a commit survives a process crash (the kill -9 promise); only power loss
    # could take the last transactions back.
    for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON", "busy_timeout=60000"):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


def _sqlite_begin(connection: object) -> None:
    # Writers take the write lock at BEGIN, so two of them queue on busy_timeout instead of
    # deadlocking when both try to upgrade a read lock; readers never wait for writers (WAL).
    readonly = connection.get_execution_options().get(READONLY)  # type: ignore[attr-defined]
    connection.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")  # type: ignore[attr-defined]


READONLY = "assay_readonly"
_makers: dict[tuple[int, bool], sessionmaker[Session]] = {}
_writer_locks: dict[int, threading.RLock] = {}


@contextmanager
def session_scope(engine: Engine | None = None, *, readonly: bool = False) -> Iterator[Session]:
    """A session that commits on success and rolls back on error.

    ``readonly`` sessions must not write: on SQLite they run without taking the write lock.
    """
    engine = engine or get_engine()
    maker = _makers.get((id(engine), readonly))
    if maker is None:
        bind = engine.execution_options(**{READONLY: True}) if readonly else engine
        maker = _makers[(id(engine), readonly)] = sessionmaker(bind, expire_on_commit=False)
    # SQLite has one writer at a time and its busy handler waits by sleeping; writers of this
    # process queue on a lock instead, which hands the database over without those sleeps.
    writer_lock = _writer_locks.get(id(engine)) if not readonly else None
    if writer_lock is None and not readonly and engine.dialect.name == "sqlite":
        writer_lock = _writer_locks.setdefault(id(engine), threading.RLock())
    if writer_lock is not None:
        writer_lock.acquire()
    session = maker()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
        if writer_lock is not None:
            writer_lock.release()


@contextmanager
def reading(engine: Engine) -> Iterator[Connection]:
    """A Core connection for a quick read outside any transaction of ours.

    Lighter than a session for the hottest reads (empty notification polls): no ORM, no write
    lock on SQLite, and on PostgreSQL no BEGIN round trip (autocommit).
    """
    options = {READONLY: True} if engine.dialect.name == "sqlite" else {"isolation_level": "AUTOCOMMIT"}
    with engine.connect() as connection:
        yield connection.execution_options(**options)


def write_isolating(items: list[T], write: Callable[[list[T]], None], refused: Callable[[T, Exception], None]) -> None:
    """``write`` the items together; if the database refuses them, write each alone.

    Batching must not let one item the database cannot take fail its neighbours: only the
    culprits reach ``refused``. A database that is away refuses nothing in particular, so
    :class:`OperationalError` propagates at once.
    """
    try:
        write(items)
    except OperationalError:
        raise
    except Exception as exc:
        if len(items) == 1:
            refused(items[0], exc)
            return
        log.warning("writing %d items together failed (%s); writing them one by one", len(items), exc)
        for item in items:
            write_isolating([item], write, refused)


def upgrade(engine: Engine | None = None) -> None:
    """Bring the schema to the newest migration (safe to call from several processes)."""
    engine = engine or get_engine()
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_lock(:id)"), {"id": _UPGRADE_LOCK_ID})
            connection.commit()
        try:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
            connection.commit()
        finally:
            if connection.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": _UPGRADE_LOCK_ID})
                connection.commit()
