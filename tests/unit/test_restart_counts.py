"""The live counters across an engine restart and a resync, against a fake AMI: every call is
counted once, by the process that saw each step happen (README "Counting").

After a restart the new process adopts the calls Asterisk still has. The old process counted
their offer (at the join) and, for those already talking, their answer: the new one counts
neither again, but counts an answer that happens after it started, and every end, once. So the
old process's counters plus the new one's equal `kpi.by_queue` over the records of the same
calls, which is what `increase()` over a window holding the restart adds up. An AMI reconnect
inside one process adopts only callers who joined while the link was down: counted once, there.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from acd.calls import CallState
from acd.commands import CallAnswered, CallRecord
from acd.events import AgentProfile
from acd.model import Outcome, QueueSettings
from cti.ami import AmiClient, AmiSettings
from cti.dispatcher import Dispatcher
from metrics import kpi
from metrics.exporter import Metrics
from tests.fake_ami import FakeAmi, Fields
from tests.unit.test_dispatcher import Sink, device, join, redirects, until

QUEUE = QueueSettings(name="main", ring_timeout=15, wrapup=0, max_wait=300, short_abandon=5, service_level=15)
COUNTERS = {"offered": "hotline_calls_offered_total", "answered": "hotline_calls_answered_total",
            "answered_within_sl": "hotline_calls_answered_within_service_level_total",
            "abandoned": "hotline_calls_abandoned_total", "short_abandoned": "hotline_calls_short_abandoned_total"}


@dataclass
class Process:
    """One engine process: its dispatcher on the fake AMI, its own counters and records."""

    dispatcher: Dispatcher
    ami: AmiClient
    registry: CollectorRegistry
    sink: Sink
    drafts: list[CallAnswered]  # what the ticket platform was told
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @property
    def records(self) -> list[CallRecord]:
        return self.sink.records

    def counted(self) -> kpi.Totals:
        def get(name: str, **labels: str) -> int:
            return int(self.registry.get_sample_value(name, {"queue": "main", **labels}) or 0)

        return kpi.Totals(**{kind: get(name) for kind, name in COUNTERS.items()},
                          closed=get("hotline_calls_ended_total", outcome="closed"))

    def call_state(self, call_id: str) -> CallState | None:
        call = self.dispatcher.state.calls.get(call_id)
        return call.state if call is not None else None


async def start(fake: FakeAmi, port: int, mark_file: Path | None = None) -> Process:
    registry, sink, drafts = CollectorRegistry(), Sink(), []
    profiles = tuple(AgentProfile(a, frozenset({"main"})) for a in ("1001", "1002"))
    dispatcher = Dispatcher((QUEUE,), profiles, sink, Metrics(registry))
    dispatcher.mark_file = mark_file
    dispatcher.on_answered = lambda cmd, call: drafts.append(cmd)
    ami = AmiClient(AmiSettings(port=port, secret="x" * 8, action_timeout=1.0, ping_interval=60,
                                backoff_initial=0.05, backoff_max=0.4),
                    dispatcher.on_ami_event, dispatcher.on_link_up, dispatcher.on_link_down)
    dispatcher.ami = ami
    p = Process(dispatcher, ami, registry, sink, drafts,
                [asyncio.create_task(dispatcher.run()), asyncio.create_task(ami.run())])
    await until(lambda: dispatcher.state.routing, what="routing after the resync")
    return p


async def stop(p: Process) -> None:
    """As serve() stops on SIGTERM: what was counted is marked in Asterisk, the link closes, every
    event already queued is handled."""
    await p.dispatcher.let_go()
    await p.ami.close()
    await p.dispatcher.drain()
    for task in p.tasks:
        task.cancel()
    await asyncio.gather(*p.tasks, return_exceptions=True)


@pytest.fixture
async def fake() -> AsyncIterator[tuple[FakeAmi, int]]:
    ami = FakeAmi()
    port = await ami.start()
    yield ami, port
    await ami.close()


def variables(**values: float | str) -> str:
    """Status's `Variable: NAME=value` lines (the fake writes one header per key: the rest ride
    in the value, one per line, as Asterisk sends them)."""
    return "\r\nVariable: ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items())


def waiting(call: str, joined: float) -> Fields:
    return {"Channel": f"PJSIP/carrier-{call}", "Uniqueid": call, "Linkedid": call, "Context": "hotline-hold",
            "Exten": "main", "Application": "Wait", "Seconds": f"{time.time() - joined:.0f}",
            "CallerIDNum": "13800000000", "Variable": variables(HOTLINE_QUEUE="main", HOTLINE_OFFERED="main",
                                                               HOTLINE_PATH="main", HOTLINE_JOINED_AT=joined)}


def talking(call: str, agent: str, attempt: int, joined: float, answered: float) -> list[Fields]:
    ring = f"{agent}*15*{attempt}"
    return [{"Channel": f"PJSIP/carrier-{call}", "Uniqueid": call, "Linkedid": call, "Context": "hotline-connect",
             "Exten": ring, "Application": "Dial", "Seconds": f"{time.time() - joined:.0f}",
             "CallerIDNum": "13800000000",
             "Variable": variables(HOTLINE_QUEUE="main", HOTLINE_OFFERED="main", HOTLINE_PATH="main",
                                   HOTLINE_JOINED_AT=joined, HOTLINE_ANSWERED_AT=answered, HOTLINE_AGENT=agent)},
            {"Channel": f"PJSIP/agent{agent}-0{attempt}", "Uniqueid": f"{call}.2", "Linkedid": call,
             "Context": "hotline-connect", "Exten": ring, "ChannelState": "6", "BridgeID": f"bridge-{call}"}]


async def answer(fake: FakeAmi, p: Process, call: str) -> tuple[str, int]:
    """The engine rings an agent for `call`; the agent picks up. (agent, attempt)"""
    def ring() -> Fields | None:
        return next((r for r in redirects(fake, "hotline-connect") if r["Channel"] == f"PJSIP/carrier-{call}"), None)

    await until(lambda: ring() is not None, what=f"a ring for {call}")
    exten = ring()["Exten"]  # type: ignore[index]
    agent, _, attempt = exten.split("*")
    leg = f"PJSIP/agent{agent}-0{attempt}"
    fake.push({"Event": "DialBegin", "Linkedid": call, "Channel": f"PJSIP/carrier-{call}",
               "Context": "hotline-connect", "Exten": exten, "DestChannel": leg},
              {"Event": "Newstate", "Channel": leg, "ChannelState": "6", "Linkedid": call, "Exten": exten})
    await until(lambda: p.call_state(call) is CallState.CONNECTED, what=f"{call} answered")
    return agent, int(attempt)


def hang_up(fake: FakeAmi, *calls: str) -> None:
    fake.push(*({"Event": "Hangup", "Linkedid": c, "Channel": f"PJSIP/carrier-{c}"} for c in calls))


async def test_a_restart_counts_the_calls_in_progress_once_old_and_new_together_equal_their_records(
        fake: tuple[FakeAmi, int]) -> None:
    """The old process: c0 hangs up at once; c1 is answered by 1001; c2, c3 and c4 wait (1002 is
    logged off). It stops (SIGTERM) with c1 talking and c2-c4 waiting; the new process adopts
    them from Asterisk's snapshot (c2 and c3 have waited 40 s and 30 s by then). 1002 logs in:
    c2 is answered after the restart, c3 and c4 hang up; c1 and c2 hang up. Before the fix the new process
    counted c1-c4 offered again at the adoption and c1 answered again: the window holding the
    restart read 9 offered and 3 answered for 5 calls and 2 answers."""
    ami, port = fake
    ami.devices = [device("1001"), device("1002", "UNAVAILABLE")]
    old = await start(ami, port)
    joined = {"c0": time.time()}
    ami.push(join("c0"))
    hang_up(ami, "c0")
    await until(lambda: bool(old.records), what="c0's record")
    joined["c1"] = time.time()
    ami.push(join("c1"))
    agent, attempt = await answer(ami, old, "c1")
    answered_c1 = time.time()
    for call in ("c2", "c3", "c4"):
        joined[call] = time.time()
        ami.push(join(call))
    await until(lambda: all(old.call_state(c) is CallState.IN_LINE for c in ("c2", "c3", "c4")), what="c2-c4 wait")
    await stop(old)
    assert old.counted() == kpi.Totals(offered=5, answered=1, answered_within_sl=1, abandoned=1, short_abandoned=1)

    # Asterisk's picture at the new start: c1 talking to 1001, the others in the hold loop.
    joined["c2"] -= 40  # the first in line: answered after the restart, beyond the service level
    joined["c3"] -= 30  # it had waited 30 s: a real abandon, not a short one
    ami.channels = [*talking("c1", agent, attempt, joined["c1"], answered_c1),
                    *(waiting(c, joined[c]) for c in ("c2", "c3", "c4"))]
    ami.devices = [device(agent, "INUSE"), device("1002")]
    ami.received.clear()
    new = await start(ami, port)
    assert new.counted().offered == 0  # adopted: the old process counted these offers
    await answer(ami, new, "c2")
    hang_up(ami, "c3", "c4", "c1", "c2")
    await until(lambda: len(new.records) == 4, what="the four records")
    await stop(new)

    records = old.records + new.records
    assert sorted(r.call_id for r in records) == ["c0", "c1", "c2", "c3", "c4"]
    outcomes = {r.call_id: r.outcome for r in records}
    assert (outcomes["c1"], outcomes["c2"], outcomes["c3"]) == (Outcome.ANSWERED, Outcome.ANSWERED, Outcome.ABANDONED)
    assert new.counted().answered == 1  # c2's answer, which happened after the restart
    assert old.counted() + new.counted() == kpi.by_queue(records)["main"]
    # The ticket platform still hears of c1's answer from the new process (its draft is opened
    # once whatever it is told), uncounted; c2's answer is counted.
    assert [(d.call_id, d.counted) for d in new.drafts] == [("c1", False), ("c2", True)]


async def test_an_ami_reconnect_counts_each_call_once_and_the_caller_who_joined_meanwhile_too(
        fake: tuple[FakeAmi, int]) -> None:
    """One process: c1 is answered, c2 waits; the AMI link drops and comes back. The resync
    shows c1 talking, c2 waiting and c3, who joined while the link was down: nobody counted c3
    yet, so this process counts its offer, once; c1 and c2 are not counted again."""
    ami, port = fake
    ami.devices = [device("1001"), device("1002", "UNAVAILABLE")]
    p = await start(ami, port)
    joined = {"c1": time.time()}
    ami.push(join("c1"))
    agent, attempt = await answer(ami, p, "c1")
    answered_c1 = time.time()
    joined["c2"] = time.time()
    ami.push(join("c2"))
    await until(lambda: p.call_state("c2") is CallState.IN_LINE, what="c2 waits")
    joined["c3"] = time.time()  # joins while the link is down
    ami.channels = [*talking("c1", agent, attempt, joined["c1"], answered_c1), waiting("c2", joined["c2"]),
                    waiting("c3", joined["c3"])]
    ami.devices = [device(agent, "INUSE"), device("1002")]
    ami.received.clear()
    resyncs = p.dispatcher.resyncs
    # This process's own heartbeats move Asterisk's mark on (here: past c3's join); at its
    # resync it must not take that for what an engine before it counted.
    ami.globals["HOTLINE_COUNTED_UNTIL"] = f"{time.time() + 60:.3f}"
    ami.drop()
    await until(lambda: p.dispatcher.resyncs > resyncs and p.dispatcher.state.routing, what="the resync")
    await answer(ami, p, "c2")
    hang_up(ami, "c3", "c1", "c2")
    await until(lambda: len(p.records) == 3, what="the three records")
    await stop(p)
    assert p.counted() == kpi.by_queue(p.records)["main"]
    assert (p.counted().offered, p.counted().answered) == (3, 2)


async def test_an_answer_between_the_old_engine_letting_go_and_the_new_one_starting_is_counted_once(
        fake: tuple[FakeAmi, int]) -> None:
    """c1 is offered and rung by the old process, which stops while it rings; the agent picks up
    before the new process starts. The old process marked in Asterisk what it had counted as it
    let go: the new one adopts c1 talking, answered after the mark, and counts that answer (not
    the offer). Counting from the new process's own start lost this answer."""
    ami, port = fake
    ami.devices = [device("1001"), device("1002", "UNAVAILABLE")]
    old = await start(ami, port)
    joined = time.time()
    ami.push(join("c1"))
    await until(lambda: bool(redirects(ami, "hotline-connect")), what="a ring for c1")
    exten = redirects(ami, "hotline-connect")[0]["Exten"]
    ami.push({"Event": "DialBegin", "Linkedid": "c1", "Channel": "PJSIP/carrier-c1", "Context": "hotline-connect",
              "Exten": exten, "DestChannel": "PJSIP/agent1001-01"})
    await until(lambda: old.call_state("c1") is CallState.DIALING, what="c1 rings")
    await stop(old)
    assert (old.counted().offered, old.counted().answered) == (1, 0)
    assert float(ami.globals["HOTLINE_COUNTED_UNTIL"]) >= joined
    picked_up = time.time()  # in the stretch: no engine counts
    ami.channels = talking("c1", "1001", 1, joined, picked_up)
    ami.devices = [device("1001", "INUSE"), device("1002")]
    new = await start(ami, port)
    hang_up(ami, "c1")
    await until(lambda: len(new.records) == 1, what="c1's record")
    await stop(new)
    assert (new.counted().offered, new.counted().answered) == (0, 1)
    assert old.counted() + new.counted() == kpi.by_queue(new.records)["main"]


async def test_a_caller_the_fallback_put_through_while_no_engine_ran_is_offered_and_answered_once(
        fake: tuple[FakeAmi, int]) -> None:
    """No engine ran when c1 called (the mark is an hour old): the dialplan's fallback rang the
    agents and 1001 answered. The new engine adopts c1 talking and counts it whole: offered at
    the answer, answered; nobody counted it before."""
    ami, port = fake
    ami.globals["HOTLINE_COUNTED_UNTIL"] = f"{time.time() - 3600:.3f}"
    joined = time.time() - 60
    ami.channels = talking("c1", "1001", 1, joined, joined + 10)
    ami.devices = [device("1001", "INUSE"), device("1002")]
    new = await start(ami, port)
    hang_up(ami, "c1")
    await until(lambda: len(new.records) == 1, what="c1's record")
    await stop(new)
    assert (new.counted().offered, new.counted().answered) == (1, 1)
    assert new.counted() == kpi.by_queue(new.records)["main"]


def test_a_call_rebuilt_from_the_account_counts_only_what_no_engine_counted() -> None:
    """A call talking at a stop that ended before the next start is rebuilt from Asterisk's
    account: the engine before counted its join and its answer (before the mark), so only its
    end is counted; one that joined after the mark is counted whole."""
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    mark = 1000.0

    def rec(call_id: str, arrived: float) -> CallRecord:
        return CallRecord(call_id=call_id, queue="main", caller_num="", caller_name="", arrived=arrived,
                          answered=arrived + 5, ended=arrived + 60, agent_id="1001", outcome=Outcome.ANSWERED,
                          wait_seconds=5, talk_seconds=55, recording=None, offered_queue="main", service_level=15,
                          short_abandon=5, source="asterisk")

    metrics.reconstructed_call(rec("before", mark - 100), mark)
    metrics.reconstructed_call(rec("after", mark + 10), mark)

    def get(name: str) -> float:
        return registry.get_sample_value(name, {"queue": "main"}) or 0

    assert (get("hotline_calls_offered_total"), get("hotline_calls_answered_total"),
            get("hotline_calls_answered_within_service_level_total")) == (1, 1, 1)
    assert registry.get_sample_value("hotline_calls_ended_total", {"queue": "main", "outcome": "answered"}) == 2


async def test_after_an_asterisk_restart_the_engines_own_mark_keeps_a_rebuilt_call_from_counting_twice(
        fake: tuple[FakeAmi, int], tmp_path: Path) -> None:
    """c1 talks when the old engine stops (it counted the offer and the answer and marked that);
    then Asterisk restarts too: its globals, the mark among them, are gone, and c1 ended. The
    new engine rebuilds c1 from Asterisk's account: the mark the old engine left in the spool
    folder says those steps were counted; only the end is the new engine's."""
    ami, port = fake
    mark = tmp_path / "counted_until"
    ami.devices = [device("1001"), device("1002", "UNAVAILABLE")]
    old = await start(ami, port, mark)
    joined = time.time()
    ami.push(join("c1"))
    await answer(ami, old, "c1")
    await stop(old)
    assert (old.counted().offered, old.counted().answered) == (1, 1) and float(mark.read_text()) >= joined
    ami.globals.clear()  # Asterisk restarted
    ami.channels, ami.devices = [], [device("1001"), device("1002")]
    new = await start(ami, port, mark)
    rebuilt = CallRecord(call_id="c1", queue="main", caller_num="13800000000", caller_name="", arrived=joined,
                         answered=joined, ended=time.time(), agent_id="1001", outcome=Outcome.ANSWERED,
                         wait_seconds=0.0, talk_seconds=1.0, recording=None, offered_queue="main",
                         service_level=15, short_abandon=5, source="asterisk")
    new.dispatcher.execute(rebuilt, new.dispatcher.clock())
    await stop(new)
    assert (new.counted().offered, new.counted().answered) == (0, 0)
    assert old.counted() + new.counted() == kpi.by_queue([rebuilt])["main"]
