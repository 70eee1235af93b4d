"""Review probe: tests/unit/test_outbox.py::
test_a_record_held_while_the_spool_and_the_database_fail_is_spooled_once_there_is_room
fails for the wrong reason on a slow disk (it failed once in 30 unit runs here under load):
it waits until c1.json *exists*, then asserts `held() == 0`, but the writer's thread renames
the file into place, fsyncs the folder, and only then sets `entry.path`. A slow directory
fsync (as on a loaded 2-core box) makes the assertion see the record still "held"."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy import Engine

import tickets.spool as spool_module
from tests.unit import test_outbox


async def test_the_held_record_test_passes_on_a_slow_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = spool_module.fsync_dir

    def slow_fsync_dir(folder: Path) -> None:
        time.sleep(0.2)  # a loaded disk
        real(folder)

    monkeypatch.setattr(spool_module, "fsync_dir", slow_fsync_dir)
    db: Engine = test_outbox.db.__wrapped__(tmp_path)  # type: ignore[attr-defined]
    spool = tmp_path / "spool"
    await test_outbox.test_a_record_held_while_the_spool_and_the_database_fail_is_spooled_once_there_is_room(
        db, spool, monkeypatch)
