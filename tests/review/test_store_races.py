"""Review probes: the outbox's quarantine and requeue against a running writer."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

import tickets.store as store_module
from tests.unit.store_helpers import record, spool_files, stored_ids, until, writing
from tests.unit.test_outbox import TOO_LONG, db, fast, refuse, spool  # noqa: F401  (fixtures)
from tickets.db import insert_record


async def test_a_record_requeued_while_the_writer_is_still_quarantining_it_is_written(
    db: Engine, spool: Path, monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    # quarantine() moves the file, then fsyncs two folders in a worker thread; only after it
    # returns does the writer drop the entry. An operator's retry (GET /quarantine shows it
    # as soon as the file is moved) in that window is lost from the running engine's line:
    # requeue() sees the path still queued and adds nothing, then _set_aside discards it.
    real = store_module.quarantine

    def slow_fsync(*args: Any, **kw: Any) -> Any:
        q = real(*args, **kw)
        time.sleep(0.3)  # a slow disk's fsync
        return q

    monkeypatch.setattr(store_module, "quarantine", slow_fsync)
    refuse(monkeypatch, {"c1"}, TOO_LONG)
    outbox = fast(db, spool)
    async with writing(outbox):
        outbox.put(record("c1"))
        await until(lambda: outbox.in_quarantine() == 1)
        monkeypatch.setattr(store_module, "insert_record", insert_record)  # the column was widened
        outbox.requeue("c1")  # ...and the operator retries
        await until(lambda: outbox.pending() == 0 and outbox.written + outbox.quarantined >= 1)
        await until(lambda: stored_ids(db) == ["c1"], timeout=2,
                    what="the requeued record to be written (it sits in the spool, not in line, until a restart)")
    assert spool_files(spool) == []

