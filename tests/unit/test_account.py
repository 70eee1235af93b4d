"""Records from Asterisk's own account (CEL) for calls the engine never saw end: exactly once."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from acd.commands import CallRecord
from acd.events import AgentProfile, CallerJoined, ChannelsSnapshot, DeviceChanged, DevicesSnapshot, LinkLost
from acd.model import Outcome, QueueSettings
from cti.account import (
    AccountReader,
    AccountRow,
    parse_extra,
    read_rows,
    record_from,
    settled_checkpoint,
)
from cti.asterisk_conf import CEL_COLUMNS, CEL_TABLE
from cti.dispatcher import Dispatcher
from metrics import kpi
from metrics.exporter import Metrics
from tickets.store import Outbox, insert_record, migrate, open_engine, read_records

QUEUES = {"main": QueueSettings(name="main", service_level=20, short_abandon=3),
          "tax": QueueSettings(name="tax", service_level=15, short_abandon=5)}


def extra(**fields: str) -> str:
    rec = fields.pop("rec", "")
    return "&".join(f"{k}={v}" for k, v in {"v": "1", **fields}.items()) + (f"&rec={rec}" if rec else "&rec=")


def row(call: str, ended: float, rowid: int = 1, **fields: str) -> AccountRow:
    return AccountRow(rowid, ended, call, call, "13800000000", "王小明", parse_extra(extra(**fields)))


def test_the_extra_field_is_read_whether_or_not_cel_wraps_it_in_json() -> None:
    text = extra(queue="main", joined="1000.5", rec="/r/2026/11/26/1.1.wav")
    assert parse_extra(text)["rec"] == "/r/2026/11/26/1.1.wav"
    assert parse_extra('{"extra":"' + text + '"}') == parse_extra(text)
    assert parse_extra("{broken") == {}


def test_an_answered_call_from_the_account() -> None:
    rec = record_from(row("1.1", 1100.0, queue="main", offered="main", path="main", joined="1000.5",
                          answered="1010.5", agent="1001", prio="2", pres="allowed", rec="/r/1.1.wav"), QUEUES)
    assert rec is not None
    assert (rec.outcome, rec.agent_id, rec.wait_seconds, rec.talk_seconds) == (Outcome.ANSWERED, "1001", 10.0, 89.5)
    assert (rec.arrived, rec.answered, rec.ended, rec.recording) == (1000.5, 1010.5, 1100.0, "/r/1.1.wav")
    assert (rec.offered_queue, rec.path, rec.priority, rec.service_level, rec.short_abandon) == (
        "main", ("main",), 2, 20, 3)
    assert (rec.served_by, rec.source) == ("engine", "asterisk")


def test_a_call_the_dialplan_fallback_answered_is_marked_so() -> None:
    rec = record_from(row("2.1", 1100.0, queue="main", joined="1000", answered="1030", agent="1002",
                          fallback="1"), QUEUES)
    assert rec is not None and (rec.outcome, rec.served_by) == (Outcome.ANSWERED, "fallback")


@pytest.mark.parametrize(("leave", "outcome"), [("", Outcome.ABANDONED), ("timeout", Outcome.TIMED_OUT),
                                                 ("callback", Outcome.CALLBACK), ("forward", Outcome.FORWARDED),
                                                 ("closed", Outcome.CLOSED)])
def test_an_unanswered_call_ends_as_the_dialplan_says(leave: str, outcome: Outcome) -> None:
    rec = record_from(row("3.1", 1004.0, queue="tax", path="tax", joined="1000", leave=leave), QUEUES)
    assert rec is not None and rec.outcome is outcome and rec.agent_id is None
    assert (rec.wait_seconds, rec.short_abandon) == (4.0, 5)


def test_a_caller_who_hung_up_before_joining_a_queue_gives_no_record() -> None:
    assert record_from(row("4.1", 1001.0), QUEUES) is None


def test_a_row_of_another_channel_than_the_callers_own_gives_no_record() -> None:
    """One record per call, from the caller's own channel: a row an agent's leg wrote (its
    Uniqueid is not the call's Linkedid) is not the call's account."""
    agent_leg = AccountRow(1, 1100.0, "7.1", "7.2", "1001", "", parse_extra(extra(queue="main", joined="1000")))
    assert record_from(agent_leg, QUEUES) is None


@pytest.mark.parametrize("leave", ["closed", "forward", "callback", "overflow"])
def test_a_caller_the_engine_marked_never_offered_is_closed_wherever_the_closed_rule_sent_them(leave: str) -> None:
    """Review 3: `when_closed: overflow` forwards the night's callers to a duty number; the
    engine writes HOTLINE_OFFERED=- on them, and the account's record is `closed`, not
    offered, as the engine's own (lifecycle.finish) and the live counters say."""
    rec = record_from(row("8.1", 1030.0, queue="tax", offered="-", path="tax", joined="1000", leave=leave), QUEUES)
    assert rec is not None and rec.outcome is Outcome.CLOSED and rec.offered_queue == "tax"
    answered = record_from(row("8.2", 1030.0, queue="tax", offered="-", path="tax", joined="1000",
                               answered="1010", agent="1001", fallback="1"), QUEUES)
    assert answered is not None and answered.outcome is Outcome.ANSWERED  # a person answered: offered


def test_a_caller_offered_then_moved_into_a_closed_queue_is_an_overflow_in_the_account_too() -> None:
    rec = record_from(row("9.1", 1030.0, queue="night", offered="tax", path="tax>night", joined="1000",
                          leave="closed"), QUEUES)
    assert rec is not None and (rec.outcome, rec.offered_queue) == (Outcome.OVERFLOW, "tax")


def test_an_overflowed_call_keeps_its_offered_queue_and_path() -> None:
    rec = record_from(row("5.1", 1200.0, queue="main", offered="tax", path="tax>main", joined="1000",
                          answered="1150", agent="1001"), QUEUES)
    assert rec is not None and (rec.queue, rec.offered_queue, rec.path, rec.service_level) == (
        "main", "tax", ("tax", "main"), 15)


def test_the_whole_name_comes_from_the_from_header_and_a_withheld_number_is_marked() -> None:
    header = base64.b64encode('"欧阳娜娜" <sip:1@h>'.encode()).decode()
    rec = record_from(row("6.1", 1010.0, joined="1000", pres="prohib_passed_screen", **{"from": header}), QUEUES)
    assert rec is not None and (rec.caller_name, rec.restricted) == ("欧阳娜娜", True)


def test_the_checkpoint_stops_before_rows_too_young_to_be_settled() -> None:
    rows = [row("a", 1000.0, rowid=5), row("b", 1090.0, rowid=6), row("c", 1190.0, rowid=7)]
    assert settled_checkpoint(rows, 4, now_wall=1200.0) == 5  # b and c are read again next time
    assert settled_checkpoint([], 4, now_wall=1200.0) == 4


# -- the reconciler against a real CEL table and a real store ------------------------------


def cel_db(path: Path, rows: list[tuple[str, float, str]]) -> Path:
    conn = sqlite3.connect(path)
    # As Asterisk's cel_sqlite3_custom creates it: untyped columns, the time written as text,
    # the user event's name as the event type, its extra wrapped in JSON.
    conn.execute(f"CREATE TABLE {CEL_TABLE} (AcctId INTEGER PRIMARY KEY, {','.join(CEL_COLUMNS)})")
    for call, ended, text in rows:
        conn.execute(f"INSERT INTO {CEL_TABLE} ({','.join(CEL_COLUMNS)}) VALUES (?,?,?,?,?,?,?,?,?)",
                     (f"{ended:.6f}", "HOTLINE_END", "HOTLINE_END", json.dumps({"extra": text}), call, call,
                      "13900000001", "张三", f"PJSIP/carrier-{call}"))
    conn.commit()
    conn.close()
    return path


async def settle_from_account(d: Dispatcher, tmp_path: Path, fields: str) -> None:
    """Asterisk's account shows call c1 ended 130 s ago with `fields`; the reader reads it
    into the running dispatcher `d`."""
    wall = d.wall()
    db = cel_db(tmp_path / "cel.db", [("c1", wall - 130, fields)])
    store = open_engine(f"sqlite:///{tmp_path / 'h.db'}")
    migrate(store)
    outbox = Outbox(store, tmp_path / "spool")
    reader = AccountReader(db, tmp_path / "spool", store, d, outbox.knows, lambda: d.state.queues,
                           first_days=1, wall=d.wall)
    await reader.reconcile()
    await d.drain()


@dataclass
class Ledger:
    live: set[str] = field(default_factory=set)
    written: list[CallRecord] = field(default_factory=list)
    outbox: Outbox | None = None

    def unknown(self, call_id: str) -> bool:
        return call_id not in self.live and all(r.call_id != call_id for r in self.written)

    def holds(self, call_id: str) -> bool:
        return call_id in self.live

    def settle_provisional(self, everything: bool = False) -> int:
        return 0

    async def recovered(self, records: list[CallRecord]) -> int:
        for rec in records:
            self.written.append(rec)
            if self.outbox is not None:
                self.outbox.put(rec)
        return len(records)


async def test_each_call_the_account_shows_ended_is_recorded_once_and_only_if_nobody_did(tmp_path: Path) -> None:
    store = open_engine(f"sqlite:///{tmp_path / 'h.db'}")
    migrate(store)
    spool = tmp_path / "spool"
    outbox = Outbox(store, spool)
    ended = [("fallback1", 1000.0, extra(queue="main", joined="900", answered="930", agent="1001", fallback="1")),
             ("stored", 1001.0, extra(queue="main", joined="950")),
             ("spooled", 1002.0, extra(queue="main", joined="960")),
             ("live", 1003.0, extra(queue="main", joined="970")),
             ("prequeue", 1004.0, extra()),
             ("abandoned", 1005.0, extra(queue="main", joined="990"))]
    db = cel_db(tmp_path / "cel.db", ended)
    insert_record(store, CallRecord("stored", "main", "", "", 950, None, 1001, None, Outcome.ABANDONED, 51, 0, None))
    outbox.put(CallRecord("spooled", "main", "", "", 960, None, 1002, None, Outcome.ABANDONED, 42, 0, None))
    ledger = Ledger(live={"live"}, outbox=outbox)
    reader = AccountReader(db, spool, store, ledger, outbox.knows, lambda: QUEUES, wall=lambda: 5000.0)
    assert await reader.reconcile() == 2
    assert sorted(r.call_id for r in ledger.written) == ["abandoned", "fallback1"]
    assert await reader.reconcile() == 0  # the checkpoint moved on
    # A fresh start with the checkpoint lost reads everything again and still writes nothing twice.
    (spool / "account.checkpoint").unlink()
    outbox2 = Outbox(store, spool)
    outbox2.recover()
    ledger2 = Ledger()
    reader2 = AccountReader(db, spool, store, ledger2, outbox2.knows, lambda: QUEUES, wall=lambda: 5000.0)
    assert await reader2.reconcile() == 1  # only "live", which that first process would have recorded itself
    assert [r.call_id for r in ledger2.written] == ["live"]
    assert {r.call_id for r in read_records(store)} == {"stored"}  # nothing written behind the outbox's back


def test_an_account_not_written_yet_reads_as_empty(tmp_path: Path) -> None:
    assert read_rows(tmp_path / "missing.db", None, 0.0) == ([], None)
    sqlite3.connect(tmp_path / "empty.db").close()
    assert read_rows(tmp_path / "empty.db", None, 0.0) == ([], None)


def test_a_first_start_reads_only_the_configured_days_and_keeps_its_place(tmp_path: Path) -> None:
    db = cel_db(tmp_path / "cel.db", [("old", 100.0, extra(joined="90")), ("new", 900.0, extra(joined="890"))])
    rows, start = read_rows(db, None, since=500.0)
    assert ([r.call_id for r in rows], start) == (["new"], 1)
    assert settled_checkpoint([], start, now_wall=1000.0) == 1  # saved even with nothing to record


async def test_an_account_row_of_a_call_the_engine_held_while_blind_is_still_read_after_the_resync(
        tmp_path: Path) -> None:
    """The AMI link is down for three minutes while Asterisk runs on. A caller who was waiting
    when the link dropped is answered by the dialplan's fallback and hangs up; Asterisk's
    account has the row (answered, agent 1001, fallback). The engine still holds the call
    (it cannot see the hang-up), so the minute-by-minute reconcile skips the row, and once
    the row is older than SETTLE the checkpoint moves past it. At the resync the call's
    record becomes provisional ("abandoned", the engine's guess) and waits for the account,
    which no longer reads that row: the answered call is stored as abandoned. The row of a
    call the engine held must be read again once the engine lets the call go."""
    store = open_engine(f"sqlite:///{tmp_path / 'h.db'}")
    migrate(store)
    spool = tmp_path / "spool"
    outbox = Outbox(store, spool)
    db = cel_db(tmp_path / "cel.db", [("held", 1000.0, extra(queue="main", offered="main", path="main",
                                                              joined="900", answered="930", agent="1001",
                                                              fallback="1"))])
    ledger = Ledger(live={"held"}, outbox=outbox)
    clock = {"wall": 1060.0}
    reader = AccountReader(db, spool, store, ledger, outbox.knows, lambda: QUEUES, wall=lambda: clock["wall"])
    assert await reader.reconcile() == 0  # a minute after the hang-up: the engine still holds the call
    clock["wall"] = 1180.0
    assert await reader.reconcile() == 0  # three minutes: still held (the link is still down)
    ledger.live.clear()  # the resync: the call is gone, its record waits for the account
    clock["wall"] = 1190.0
    assert await reader.reconcile() == 1
    (rec,) = ledger.written
    assert (rec.call_id, rec.outcome, rec.agent_id, rec.served_by) == ("held", Outcome.ANSWERED, "1001", "fallback")


async def test_provisional_records_are_written_when_the_account_cannot_be_read(tmp_path: Path) -> None:
    """account.cel_db names a file the engine cannot read (Asterisk wrote it 0640 for its own
    group, or it is damaged). Every reconcile raises before it gets to `settle_provisional`,
    so the records of calls that ended while the engine was blind stay provisional in memory
    for good: not in the store, growing with every resync, and lost at a kill -9. A record
    must never be held back because the safety net is broken."""
    store = open_engine(f"sqlite:///{tmp_path / 'h.db'}")
    migrate(store)
    bad = tmp_path / "cel.db"
    bad.write_bytes(b"this is not a sqlite database" * 100)
    settled: list[bool] = []

    class Counting(Ledger):
        def settle_provisional(self, everything: bool = False) -> int:
            settled.append(everything)
            return 0

    reader = AccountReader(bad, tmp_path, store, Counting(), lambda _: False, lambda: QUEUES)
    task = asyncio.create_task(reader.run(every=0.01))
    await asyncio.sleep(0.2)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert settled, "the provisional records were never settled"
    assert reader.read_errors == len(settled)  # each failed read counted (hotline_account_read_errors_total)


async def test_a_caller_name_that_is_not_utf8_in_the_account_does_not_stop_the_rows_after_it(
        tmp_path: Path) -> None:
    """A carrier sends a GBK display name; Asterisk writes its bytes as they are into the CEL
    file. Python's sqlite3 refuses to decode that text column, so `read_rows` raises on the
    row, every reconcile fails at the same place, and no later call served by the fallback
    (or ended while the engine was stopped) is ever recorded from the account. One bad row
    must not block the rows behind it (B2's lesson, in the account)."""
    store = open_engine(f"sqlite:///{tmp_path / 'h.db'}")
    migrate(store)
    spool = tmp_path / "spool"
    outbox = Outbox(store, spool)
    db = cel_db(tmp_path / "cel.db", [("gbk", 1000.0, extra(queue="main", joined="900")),
                                       ("after", 1001.0, extra(queue="main", joined="950", answered="960",
                                                               agent="1001", fallback="1"))])
    conn = sqlite3.connect(db)
    conn.execute(f"UPDATE {CEL_TABLE} SET cidname = CAST(x'cdf5d0a1c3f7' AS TEXT) WHERE linkedid = 'gbk'")
    conn.commit()
    conn.close()
    ledger = Ledger(outbox=outbox)
    reader = AccountReader(db, spool, store, ledger, outbox.knows, lambda: QUEUES, wall=lambda: 5000.0)
    await reader.reconcile()
    assert "after" in [r.call_id for r in ledger.written]


async def test_a_closed_hours_caller_the_fallback_answered_while_the_engine_was_blind_is_offered_where_answered(
        tmp_path: Path) -> None:
    """c1 meets closed hours (never offered, tagged HOTLINE_OFFERED=-); the link drops before
    the send-out; the dialplan's fallback rings everyone and 1001 answers (the case
    lifecycle.answered's docstring names). The resync does not list c1: the engine's guess
    is `closed` (provisional). Asterisk's account then says answered, and
    Dispatcher._supersede counts the answer but never the offer: the live counters show
    main answered 1 of 0 offered (answer rate past 100%) while kpi.by_queue over the
    stored record says 1 of 1."""
    from tests.unit.test_edge_cases import NEVER_OPEN, _Sink, sample  # (it imports this module)

    sink = _Sink()
    registry = CollectorRegistry()
    closed = QueueSettings(name="main", hours=NEVER_OPEN)
    d = Dispatcher((closed,), (AgentProfile("1001", frozenset({"main"})),), sink,
                   Metrics(registry), wall=lambda: 1000.0 + asyncio.get_running_loop().time())
    d.account_enabled = True
    task = asyncio.create_task(d.run())
    try:
        d.submit(LinkLost())
        d.submit(CallerJoined("c1", "PJSIP/carrier-c1", "main", "13900000001"))
        d.submit(ChannelsSnapshot())
        d.submit(DevicesSnapshot((DeviceChanged("1001", True, False),)))
        await d.drain()
        assert not sink.records  # the guess waits for the account
        wall = d.wall()
        await settle_from_account(d, tmp_path, extra(queue="main", offered="-", path="main", joined=f"{wall - 170}",
                                                     answered=f"{wall - 160}", agent="1001", fallback="1"))
    finally:
        task.cancel()
    (rec,) = sink.records
    assert rec.outcome is Outcome.ANSWERED
    by_kpi = kpi.by_queue([rec])["main"]
    live_offered = sample(registry, "hotline_calls_offered_total", queue="main")
    live_answered = sample(registry, "hotline_calls_answered_total", queue="main")
    assert (live_offered, live_answered) == (by_kpi.offered, by_kpi.answered)


def test_a_never_offered_caller_answered_is_counted_in_the_same_queue_live_and_from_the_account() -> None:
    """tax is closed and sends its callers on to night (closed too, its message); the
    fallback rings agents and 1001 answers in night. Live, lifecycle.answered and
    resync._adopt offer such a caller at the answer in the queue it was in (`night`, with
    night's service level); Asterisk's account (record_from) puts the same call in
    path[0] (`tax`). The KPI of a call must not depend on whether the engine saw it end."""
    from cti.account import record_from
    from tests.unit.test_account import row

    queues = {"tax": QueueSettings(name="tax", service_level=15, short_abandon=5),
              "night": QueueSettings(name="night", service_level=30, short_abandon=8)}
    rec = record_from(row("9.9", 1100.0, queue="night", offered="-", path="tax>night", joined="1000",
                          answered="1020", agent="1001", fallback="1"), queues)
    assert rec is not None and rec.outcome is Outcome.ANSWERED
    assert (rec.offered_queue, rec.service_level) == ("night", 30)
