"""Edge cases a second pair of eyes found in the routing core, the shell and Asterisk's
account: each test states what must hold, with the scenario that once broke it."""
# ruff: noqa: F811  (the fake-AMI fixtures are imported from test_dispatcher)

from __future__ import annotations

import asyncio
import contextlib
from datetime import time
from pathlib import Path

from prometheus_client import CollectorRegistry

import cti.dispatcher
from acd.agents import Activity, Control
from acd.calendar import Hours
from acd.calls import CallState
from acd.commands import CallAnswered, CallOffered, CallRecord
from acd.events import (
    AgentProfile,
    CallerJoined,
    ChannelsSnapshot,
    DeviceChanged,
    DevicesSnapshot,
    DialEnded,
    DialStarted,
    LinkLost,
    Probed,
    QueuesConfigured,
    RingFailed,
    SnapshotCall,
    Where,
)
from acd.model import Outcome, Overflow, OverflowTo, QueueSettings, WhenEmpty
from cti import decode as decoding
from cti.account import AccountReader
from cti.dispatcher import Dispatcher
from metrics import kpi
from metrics.exporter import Metrics
from tests.unit.test_account import QUEUES, Ledger, cel_db, extra, settle_from_account
from tests.unit.test_dispatcher import Rig, queue, rig, routing, until  # noqa: F401 (fixtures)
from tests.unit.world import World, chan, rings, sendouts
from tickets.store import Outbox, migrate, open_engine

# Open only on Mondays 00:00-00:01 local time: closed at every moment these tests use
# (World's wall clock starts at the epoch, a Thursday).
NEVER_OPEN = Hours(((time(0, 0), time(0, 1)),) + ((),) * 6)


def live_counters(out: list[object]) -> tuple[CollectorRegistry, Metrics]:
    """Feed the commands to the real exporter, as the dispatcher does."""
    registry = CollectorRegistry()
    m = Metrics(registry)
    for cmd in out:
        if isinstance(cmd, CallOffered):
            m.offered_call(cmd)
        elif isinstance(cmd, CallAnswered):
            m.answered_call(cmd)
        elif isinstance(cmd, CallRecord):
            m.ended_call(cmd)
    return registry, m


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    value = registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


# -- KPI: live counters vs kpi.by_queue over the records -------------------------------------


def test_a_call_offered_then_overflowed_into_a_closed_queue_counts_offered_once_everywhere() -> None:
    """A caller is offered in `day` (CallOffered ticks hotline_calls_offered_total{day}), waits
    30 s, overflows to `night`, which is closed: the record says outcome `closed`, which
    kpi.is_offered() reads as "never offered". The live counter and kpi.by_queue over the
    record then disagree, and `day`'s answer rate loses a call from its denominator."""
    night = QueueSettings(name="night", hours=NEVER_OPEN)
    day = QueueSettings(name="day", max_wait=300, overflow=Overflow(after=30, to=OverflowTo.QUEUE, target="night"))
    w = World(queues=(day, night), agents={})
    w.join("c1", "day", at=0)
    w.run_until(31)
    w.hangup("c1", at=40)
    registry, _ = live_counters(w.out)
    (rec,) = w.records()
    assert sample(registry, "hotline_calls_offered_total", queue="day") == 1
    assert kpi.by_queue([rec])["day"].offered == 1, f"record outcome {rec.outcome}: kpi says not offered"


def test_answered_within_the_service_level_agrees_live_and_from_the_record_at_the_boundary() -> None:
    """The live counter judges the unrounded wait (15.0004 s > 15 s: not within), the record
    stores round(wait, 3) = 15.0 and kpi.classify() says within. Counters != kpi.by_queue."""
    w = World(agents=("1001",))
    w.register("1001")
    w.join("c1", at=0)
    w.dial_begin("c1", at=0.1)
    w.answer("c1", at=15.0004)
    w.hangup("c1", at=30)
    registry, _ = live_counters(w.out)
    (rec,) = w.records()
    live = sample(registry, "hotline_calls_answered_within_service_level_total", queue="main")
    assert live == kpi.by_queue([rec])["main"].answered_within_sl


def test_a_caller_whose_hangup_handler_runs_during_a_resync_is_recorded_as_abandoned() -> None:
    """The caller hangs up while waiting; the resync's Status catches the channel while its
    hangup handler (hotline-ended) runs: dialplan.where() says DONE, and _reconcile's
    `Where.LEAVING | Where.DONE` case forces LEAVING with leave_reason TIMEOUT (the default).
    The Hangup that follows records the abandoned caller as `timed_out` (and a short
    abandon is no longer excluded from the answer rate)."""
    w = World(agents=("1001",))
    w.join("c1", at=1000)  # nobody registered: the caller waits
    w.feed(LinkLost(), at=1002)
    w.feed(ChannelsSnapshot((SnapshotCall("c1", chan("c1"), Where.DONE, age=2, queue="main"),)), at=1002.5)
    w.feed(DevicesSnapshot(()), at=1002.5)
    w.hangup("c1", at=1002.6)
    (rec,) = w.records()
    assert rec.outcome is Outcome.ABANDONED
    assert kpi.classify(rec).short_abandoned


# -- routing ------------------------------------------------------------------------------


def test_a_dial_end_that_overtakes_its_dial_begin_does_not_hold_the_caller_for_a_phantom_ring() -> None:
    """DialEnd NOANSWER (attempt 1) is handled before the DialBegin of the same attempt:
    the ring is over (WALKING_BACK), then the late DialBegin moves the call back to DIALING
    (the WALKING_BACK --DIAL_BEGIN--> DIALING row meant for rings only *assumed* over), and
    the HotlineParked that follows is ignored. The caller sits in the loop unrouted for the
    ring timeout + grace (20 s) and agent 1001 is charged a second no-answer."""
    w = World(agents=("1001", "1002"))
    w.register("1001")
    w.join("c1", at=0)
    w.no_answer("c1", "1001", at=15)
    w.feed(DialStarted("c1", "1001", attempt=1), at=15.001)
    w.register("1002", at=15.5)
    w.park("c1", at=16)
    assert w.call("c1").state is not CallState.DIALING, "a finished ring came back to life"
    w.run_until(40)
    assert w.agent("1001").no_answer_streak == 1


def test_a_reload_that_shortens_ring_timeout_mid_ring_does_not_cut_the_ring_asterisk_is_running() -> None:
    """Asterisk's Dial carries the ring time in the extension (1001*30*1). A reload to
    ring_timeout 5 s re-times the DIALING deadline to since+5+5: at t=10 the core declares the
    ring over, charges 1001 a no-answer, and at t=15 rings the caller elsewhere, pulling them
    out of a Dial that still has 15 s to run."""
    q = QueueSettings(ring_timeout=30, ring_grace=5)
    w = World(queues=(q,), agents=("1001", "1002"))
    w.register("1001")
    w.join("c1", at=0)
    w.dial_begin("c1", at=0.1)
    w.register("1002", at=1)
    w.feed(QueuesConfigured((QueueSettings(ring_timeout=5, ring_grace=5),)), at=2)
    out = w.run_until(20)
    assert w.agent("1001").no_answer_streak == 0
    assert rings(out) == []


def test_when_empty_overflow_is_not_decided_on_a_picture_not_yet_rebuilt() -> None:
    """At engine start every phone is `registered=False` until the DevicesSnapshot. A
    HotlineJoin that comes before it (stream order) to a `when_empty: overflow` queue is
    judged EMPTY and the overflow is decided; the snapshot then shows 1001 registered and
    free, yet the caller is still sent to the overflow message."""
    q = QueueSettings(when_empty=WhenEmpty.OVERFLOW, overflow=Overflow(after=60))
    w = World(queues=(q,), agents=("1001",), routing=False)
    w.join("c1", at=0)
    w.feed(ChannelsSnapshot((SnapshotCall("c1", chan("c1"), Where.HOLD, age=0.1, queue="main"),)), at=0.2)
    out = w.feed(DevicesSnapshot((DeviceChanged("1001", True, False),)), at=0.2)
    assert sendouts(out) == []
    assert rings(out) == [("c1", "1001")]


def test_when_empty_overflow_moves_on_a_caller_who_was_ringing_when_the_last_agent_left() -> None:
    """README: with `when_empty: overflow` the callers already waiting move on when the last
    agent logs out. A caller who was ringing that agent at the time is not in the line, is
    skipped by leave_empty_queues, comes back to the line after the ring and waits until
    max_wait (300 s) in a queue nobody serves."""
    q = QueueSettings(when_empty=WhenEmpty.OVERFLOW, overflow=Overflow(after=250))
    w = World(queues=(q,), agents=("1001",))
    w.register("1001")
    w.join("c1", at=0)
    w.dial_begin("c1", at=0.1)
    w.control("1001", Control.LOGOUT, at=1)
    w.no_answer("c1", at=15)
    w.park("c1", at=15.2)  # back in the loop of a queue nobody serves any more: moved on now
    w.run_until(30)
    assert [s.call_id for s in sendouts(w.out)] == ["c1"]


# -- lost events: nothing notices them until the next link drop ------------------------------


def test_a_probe_that_finds_the_caller_gone_frees_the_agents_reserved_for_them() -> None:
    """The ring's Redirect is of unknown fate (RingFailed sure=False): CONFIRMING, ProbeCall.
    Asterisk answers "No such channel" (Probed where=None) and the Hangup never comes (lost,
    or the channel's name changed). The core asks again every 5 s forever; 1001 stays
    RINGING for a caller who does not exist and is never offered another caller."""
    w = World(agents=("1001",))
    w.register("1001")
    w.join("c1", at=0)
    w.feed(RingFailed("c1", 1, sure=False), at=5)
    for t in range(10, 70, 5):
        call = w.state.calls.get("c1")
        if call is not None and call.state is CallState.CONFIRMING:
            w.feed(Probed("c1", None, probe=call.probe), at=t)
        w.run_until(t + 4)
    assert w.agent("1001").activity is Activity.IDLE


def test_a_caller_back_from_the_dialplans_fallback_dial_is_routed_even_if_one_dial_end_was_lost() -> None:
    """The fallback rang 1001 and 1002 (DialBegin with no attempt); 1001's DialEnd arrives,
    1002's is lost; the dialplan walks the caller back and raises HotlineParked. FALLBACK has
    no deadline and no (FALLBACK, PARKED) row: the caller is never routed again (the
    heartbeat is fresh, so the fallback does not come back either) until max_hold."""
    w = World(agents=("1001", "1002", "1003"))
    w.join("c1", at=0)
    w.feed(DialStarted("c1", "1001", None), at=1)
    w.feed(DialStarted("c1", "1002", None), at=1)
    w.feed(DialEnded("c1", "1001", "NOANSWER", None), at=21)
    w.park("c1", at=21.1)
    w.register("1003", at=22)
    out = w.run_until(200)
    assert rings(w.out) and rings(w.out)[-1] == ("c1", "1003"), f"state {w.call('c1').state}, {out}"


# -- the shell: records of calls that ended while the AMI link was down -----------------------


class _Sink:
    def __init__(self) -> None:
        self.records: list[CallRecord] = []

    def put(self, rec: CallRecord) -> None:
        self.records.append(rec)


async def test_a_call_answered_by_the_fallback_during_an_ami_outage_is_recorded_as_answered(
        tmp_path: Path) -> None:
    """The engine (alive) knows c1 waiting in line; the AMI link drops for longer than
    engine_stale; the dialplan's fallback rings everyone, 1001 answers, they talk, hang up.
    The resync does not list c1, so `resync.channels` finishes it from the engine's stale
    picture: outcome `abandoned`, no agent, served_by engine, source resync. Asterisk's
    account has the truth (answered by 1001, fallback=1) but the account reader skips c1,
    which the dispatcher has recorded. An answered call is counted as abandoned."""
    sink = _Sink()
    d = Dispatcher((QueueSettings(),), (AgentProfile("1001", frozenset({"main"})),), sink,
                   Metrics(CollectorRegistry()), wall=lambda: 1000.0 + asyncio.get_running_loop().time())
    d.account_enabled = True
    task = asyncio.create_task(d.run())
    try:
        d.submit(ChannelsSnapshot())
        d.submit(DevicesSnapshot(()))
        d.submit(CallerJoined("c1", "PJSIP/carrier-c1", "main", "13900000001"))
        d.submit(LinkLost())
        # ... 40 s later the link is back: c1 is gone from Asterisk.
        d.submit(ChannelsSnapshot())
        d.submit(DevicesSnapshot((DeviceChanged("1001", True, False),)))
        await d.drain()
        wall = d.wall()
        await settle_from_account(d, tmp_path, extra(queue="main", offered="main", path="main", joined=f"{wall - 170}",
                                                     answered=f"{wall - 145}", agent="1001", fallback="1"))
    finally:
        task.cancel()
    mine = [r for r in sink.records if r.call_id == "c1"]
    assert len(mine) == 1
    assert (mine[0].outcome, mine[0].agent_id, mine[0].served_by) == (Outcome.ANSWERED, "1001", "fallback"), mine[0]


# -- Asterisk's account (CEL) -----------------------------------------------------------------


async def test_a_new_cel_file_after_rotation_is_read_from_its_start(tmp_path: Path) -> None:
    """The checkpoint is a bare rowid. The CEL file grows one row per call forever; once an
    operator rotates or recreates it (or restores a backup), Asterisk numbers rows from 1
    again and every row below the old checkpoint is skipped without a word: calls the
    fallback served, or that ended while the engine was away, get no record."""
    store = open_engine(f"sqlite:///{tmp_path / 'h.db'}")
    migrate(store)
    spool = tmp_path / "spool"
    outbox = Outbox(store, spool)
    old = cel_db(tmp_path / "cel.db", [(f"old{i}", 1000.0 + i, extra(queue="main", joined=f"{990 + i}"))
                                       for i in range(50)])
    reader = AccountReader(old, spool, store, Ledger(outbox=outbox), outbox.knows, lambda: QUEUES,
                           wall=lambda: 5000.0)
    assert await reader.reconcile() == 50
    # Rotation: the file is moved away and Asterisk starts a new one.
    old.rename(tmp_path / "cel.db.1")
    cel_db(tmp_path / "cel.db", [("fallback-served", 4000.0, extra(queue="main", joined="3900", answered="3930",
                                                                    agent="1001", fallback="1"))])
    ledger = Ledger(outbox=outbox)
    reader2 = AccountReader(tmp_path / "cel.db", spool, store, ledger, outbox.knows, lambda: QUEUES,
                            wall=lambda: 5000.0)
    await reader2.reconcile()
    assert [r.call_id for r in ledger.written] == ["fallback-served"]


async def test_one_junk_cel_row_does_not_stop_the_account_for_good(tmp_path: Path) -> None:
    """`record_from` trusts `str.isdigit()` before `int()`: a priority field of '²' (isdigit
    is True, int() raises) makes reconcile() raise; the checkpoint never moves past that row,
    so every later call the account shows is never recorded (the same shape as B2)."""
    store = open_engine(f"sqlite:///{tmp_path / 'h.db'}")
    migrate(store)
    spool = tmp_path / "spool"
    outbox = Outbox(store, spool)
    db = cel_db(tmp_path / "cel.db", [("junk", 1000.0, extra(queue="main", joined="990", prio="²")),
                                      ("good", 1001.0, extra(queue="main", joined="991"))])
    ledger = Ledger(outbox=outbox)
    reader = AccountReader(db, spool, store, ledger, outbox.knows, lambda: QUEUES, first_days=1,
                           wall=lambda: 5000.0)
    with contextlib.suppress(Exception):  # the run() loop logs it and tries again in a minute
        await reader.reconcile()
    assert "good" in [r.call_id for r in ledger.written]


# -- the dialplan contract ----------------------------------------------------------------------


def test_the_engines_max_wait_cannot_exceed_the_dialplans_own_max_hold(tmp_path: Path) -> None:
    """engine.yaml's fallback.max_hold (default 1800 s) makes the dialplan send a waiting
    caller to hotline-leave,timeout on its own, with no event the engine sees. A queue with
    max_wait 3600 is accepted with neither an error nor a warning: past 1800 s the engine
    still thinks the caller is in line (it may Redirect them out of the time-out message into
    a ring) and records their hang-up as `abandoned`, not `timed_out`."""
    from config.loader import ConfigError, load

    (tmp_path / "queues.yaml").write_text(
        "queues:\n  - name: main\n    number: '12345'\n    max_wait: 3600\n", encoding="utf-8")
    (tmp_path / "agents.yaml").write_text("agents: []\n", encoding="utf-8")
    try:
        settings = load(tmp_path)
    except ConfigError:
        return  # refused: fine
    assert any("max_hold" in w or "max_wait" in w for w in settings.warnings), settings.warnings


def test_the_walk_back_after_a_ring_needs_no_extension_of_the_callers_queue() -> None:
    """A queue an engine reload adds (say, a new overflow target) has no extension in the
    dialplan Asterisk runs. The walk back after an unanswered ring once went to
    `hotline-hold,${HOTLINE_QUEUE},back`: a missing label, and Asterisk hung the caller up.
    Every queue now shares one wait loop; only the first second after joining is per queue."""
    from config.loader import load
    from cti import dialplan
    from cti.asterisk_conf import render

    extensions = render(load(None))["extensions.conf"]
    assert "${HOTLINE_QUEUE},back" not in extensions and "${HOTLINE_QUEUE},park" not in extensions
    assert extensions.count(f"Goto({dialplan.WAIT},s,back)") == 3  # after a ring, a ring_all, the fallback


# -- the shell: a list action whose result cannot be decoded ----------------------------------


async def test_a_resync_whose_snapshot_fails_to_decode_is_retried(rig: Rig, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The snapshot callbacks run inside AmiClient._answer (in_order). If decoding raises there
    (the first time only, here), _Wire.data_received logs it and goes on, but the pending
    action was already popped: neither Snapshot nor SnapshotFailed is ever queued, and
    _snapshot_deadline's expire() finds nothing to expire. The link stays up with routing off
    for good (the fallback answers everyone; no queue rule applies) until some other fault
    drops the link. Decoding errors in events are contained; in list results they are not."""
    await routing(rig)
    real = decoding.snapshot
    calls = {"n": 0}

    def flaky(rows, wall):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 1:
            raise ValueError("a row the decoder did not expect")
        return real(rows, wall)

    monkeypatch.setattr(decoding, "snapshot", flaky)
    monkeypatch.setattr(cti.dispatcher, "SNAPSHOT_TIMEOUT", 0.5)
    rig.fake.drop()
    await until(lambda: calls["n"] >= 1, what="the resync after the drop")
    await until(lambda: rig.state.routing, timeout=8, what="routing after a resync whose decoding failed once")
