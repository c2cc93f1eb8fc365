"""Notification queues under concurrent receivers, on both databases."""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path

from sqlalchemy import true

from assay import notify
from assay.db import bulk, models
from assay.db.base import utcnow
from assay.db.session import get_engine, reading, session_scope
from tests.helpers.servers import local_settings


def test_concurrent_receivers_of_one_queue_get_each_message_once_in_order(
    tmp_path: Path, database_environ: dict
) -> None:
    engine = get_engine(local_settings(tmp_path, database_environ).database_url)
    now = utcnow()
    rows = [{"user": "admin", "queue": "shared", "message": {"n": n}, "created": now} for n in range(600)]
    rows.append({"user": "other", "queue": "shared", "message": {"n": -1}, "created": now})
    with session_scope(engine) as session:
        bulk.insert_rows(session, models.Notification.__table__, rows)
    received: list[list[int]] = []
    lock = threading.Lock()

    def receive() -> None:
        while True:
            with reading(engine) as connection:
                if not notify.waiting(connection, "admin", "shared", true()):
                    return
            with session_scope(engine) as session:
                batch = [m["n"] for m in notify.pop(session.connection(), "admin", "shared", 7, true())]
            with lock:
                received.append(batch)

    receivers = [threading.Thread(target=receive) for _ in range(6)]
    for receiver in receivers:
        receiver.start()
    for receiver in receivers:
        receiver.join()
    counts = Counter(n for batch in received for n in batch)
    assert sorted(counts) == list(range(600)) and set(counts.values()) == {1}  # none lost, none twice
    assert all(batch == sorted(batch) and len(batch) <= 7 for batch in received)
    with session_scope(engine) as session:  # another user's queue of the same name is untouched
        assert notify.pop(session.connection(), "other", "shared", 10, true()) == [{"n": -1}]
