"""Review (review1): tests that pass today and kill mutants the suite let survive.

Each names the condition it guards; see the review report ("conditions flipped").
"""
# ruff: noqa: F811  (the fake-AMI fixtures are imported from test_dispatcher)

from __future__ import annotations

import asyncio

from prometheus_client import CollectorRegistry

from acd.commands import CallAnswered, CallRecord
from acd.events import AgentProfile, CallerHungUp, CallerJoined, ChannelsSnapshot, DevicesSnapshot, LeaveFailed
from acd.model import Outcome, QueueSettings
from cti.dispatcher import Dispatcher
from metrics.exporter import Metrics
from tests.unit.test_dispatcher import Rig, queue, rig, routing, until  # noqa: F401 (fixtures)
from tests.unit.world import World, sendouts


async def test_no_heartbeat_while_connected_but_the_resync_has_not_finished(rig: Rig) -> None:
    """B3 as the review describes it (a resync that takes longer than it should, the link
    up): the suite's B3 test refuses DeviceStateList, so the link is up only for
    milliseconds and a heartbeat gated on `ami.connected` alone survived it."""
    rig.fake.silent.add("DeviceStateList")  # never answered: the link stays up, routing off
    await until(lambda: rig.ami.connected, what="the link")
    await asyncio.sleep(1.0)
    assert not rig.state.routing
    assert [a for a in rig.fake.actions("Setvar") if a.get("Variable") == "HOTLINE_ENGINE_SEEN"] == []


class _Sink:
    def __init__(self) -> None:
        self.records: list[CallRecord] = []

    def put(self, rec: CallRecord) -> None:
        self.records.append(rec)


async def test_a_call_this_process_recorded_is_not_recorded_again_from_the_account() -> None:
    """Dispatcher.unknown()'s `_recent` check was untested (the account tests use a ledger of
    their own): dropping it survived."""
    sink = _Sink()
    d = Dispatcher((QueueSettings(),), (AgentProfile("1001", frozenset({"main"})),), sink,
                   Metrics(CollectorRegistry()))
    task = asyncio.create_task(d.run())
    try:
        d.submit(ChannelsSnapshot())
        d.submit(DevicesSnapshot(()))
        d.submit(CallerJoined("c1", "PJSIP/carrier-c1", "main"))
        d.submit(CallerHungUp("c1", "PJSIP/carrier-c1"))
        await d.drain()
        (live,) = sink.records
        again = CallRecord("c1", "main", "", "", live.arrived, None, live.ended, None, Outcome.ABANDONED, 1, 0,
                           None, source="asterisk")
        assert await d.recovered([again]) == 0
    finally:
        task.cancel()
    assert [r.call_id for r in sink.records] == ["c1"]


def test_a_caller_who_hangs_up_before_a_refused_send_out_is_retried_is_abandoned() -> None:
    """`finish` reads the outcome of a leave only in LEAVING: a caller whose time-out Redirect
    was refused (back in line, retry pending) and who then hangs up never heard the message.
    Reading it whenever `leave_reason` is set survived the suite."""
    w = World(agents=())
    w.join("c1", at=0)
    assert sendouts(w.run_until(300))
    w.feed(LeaveFailed("c1", sure=True), at=300.1)
    w.hangup("c1", at=300.5)
    (rec,) = w.records()
    assert rec.outcome is Outcome.ABANDONED


def test_an_answer_exactly_at_the_service_level_is_within_it() -> None:
    """README and the reference: answered with wait <= the level. `<` survived."""
    registry = CollectorRegistry()
    m = Metrics(registry)
    m.answered_call(CallAnswered("c1", "main", "1001", 15.0, service_level=15.0))
    assert registry.get_sample_value("hotline_calls_answered_within_service_level_total", {"queue": "main"}) == 1
