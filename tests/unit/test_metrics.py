"""The live counters: attributed by the KPI module, time in state shown while it lasts,
unexpected events counted, withheld numbers masked in the log."""

from __future__ import annotations

import asyncio

from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from acd.commands import AgentStateChanged, CallAnswered, CallOffered, CallRecord, Unexpected
from acd.events import AgentProfile, CallerHungUp, CallerJoined
from acd.model import Outcome, QueueSettings
from cti.dispatcher import CoreEvent, Dispatcher
from metrics import kpi
from metrics.exporter import Metrics


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    value = registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def record(call: str, offered: str, queue: str, outcome: Outcome, wait: float, sl: float = 15,
           short: float = 5) -> CallRecord:
    return CallRecord(call, queue, "138", "", 0, 1 if outcome is Outcome.ANSWERED else None, 30, None, outcome, wait,
                      0, None, offered_queue=offered, path=(offered, queue), service_level=sl, short_abandon=short)


def test_an_overflowed_call_counts_where_it_was_offered_with_that_queues_thresholds() -> None:
    registry = CollectorRegistry()
    m = Metrics(registry)
    m.offered_call(CallOffered("c1", "tax"))
    m.answered_call(CallAnswered("c1", "tax", "1001", 12.0, service_level=10, answered_in="main"))
    m.ended_call(record("c1", "tax", "main", Outcome.ANSWERED, 12.0, sl=10))
    assert sample(registry, "hotline_calls_answered_total", queue="tax") == 1
    assert sample(registry, "hotline_calls_answered_total", queue="main") == 0
    assert sample(registry, "hotline_calls_answered_within_service_level_total", queue="tax") == 0  # 12 > 10


def test_a_short_abandon_is_the_kpi_modules_call_with_the_threshold_of_the_record() -> None:
    registry = CollectorRegistry()
    m = Metrics(registry)
    for call, wait in (("a", 2.9), ("b", 3.0)):
        rec = record(call, "main", "main", Outcome.ABANDONED, wait, short=3)
        m.ended_call(rec)
        assert kpi.classify(rec).short_abandoned is (wait < 3)
    assert sample(registry, "hotline_calls_abandoned_total", queue="main") == 2
    assert sample(registry, "hotline_calls_short_abandoned_total", queue="main") == 1


def test_a_closed_hours_call_is_ended_but_never_offered() -> None:
    registry = CollectorRegistry()
    m = Metrics(registry)
    m.ended_call(record("n", "night", "night", Outcome.CLOSED, 0.5))
    assert sample(registry, "hotline_calls_offered_total", queue="night") == 0
    assert sample(registry, "hotline_calls_ended_total", queue="night", outcome="closed") == 1


def test_time_in_the_current_state_counts_before_the_agent_leaves_it() -> None:
    now = [100.0]
    registry = CollectorRegistry()
    m = Metrics(registry, clock=lambda: now[0])
    m.agent_changed(AgentStateChanged("1001", "available", "on_call"), 100.0)
    now[0] = 7300.0  # a two-hour call, still going
    assert sample(registry, "hotline_agent_state_seconds_total", agent="1001", state="on_call") == 7200.0
    m.agent_changed(AgentStateChanged("1001", "on_call", "wrap_up"), 7300.0)
    now[0] = 7305.0
    assert sample(registry, "hotline_agent_state_seconds_total", agent="1001", state="on_call") == 7200.0
    assert sample(registry, "hotline_agent_state_seconds_total", agent="1001", state="wrap_up") == 5.0


def test_unexpected_events_are_counted_by_machine_state_and_trigger() -> None:
    registry = CollectorRegistry()
    m = Metrics(registry)
    m.unexpected_event(Unexpected("call", "joining", "unknown_queue:tax9", "c1"))
    assert sample(registry, "hotline_unexpected_events_total", machine="call", state="joining",
                  trigger="unknown_queue") == 1


class Sink:
    def __init__(self) -> None:
        self.records: list[CallRecord] = []

    def put(self, rec: CallRecord) -> None:
        self.records.append(rec)


async def test_a_withheld_number_is_masked_in_every_log_line_about_the_call() -> None:
    d = Dispatcher((QueueSettings(name="main"),), (AgentProfile("1001", frozenset({"main"})),), Sink(),
                   Metrics(CollectorRegistry()))
    d.state.routing = True
    with capture_logs() as logs:
        d.handle(CoreEvent(CallerJoined("c1", "chan-c1", "main", caller_num="13812345678", restricted=True)))
        d.handle(CoreEvent(CallerHungUp("c1", "chan-c1")))
        d.handle(CoreEvent(CallerJoined("c2", "chan-c2", "main", caller_num="13900000000")))
    d.cancel_timers()
    await asyncio.sleep(0)
    about_c1 = [line for line in logs if line.get("call_id") == "c1"]
    assert {line["event"] for line in about_c1} >= {"call_offered", "call_ended"}
    assert all("13812345678" not in str(line) for line in logs)
    assert [line["caller"] for line in about_c1 if "caller" in line] == ["*******5678"] * 2
    assert any(line.get("caller") == "13900000000" for line in logs)  # a number shown by the caller stays


def test_every_outcome_of_a_queue_is_exported_from_the_start() -> None:
    """Review 4: Prometheus's increase() misses the first call of a series that appears
    mid-range; the answer-rate alert reads hotline_calls_ended_total by outcome."""
    registry = CollectorRegistry()
    Metrics(registry).init_queue("tax")
    for outcome in Outcome:
        assert registry.get_sample_value("hotline_calls_ended_total", {"queue": "tax", "outcome": outcome.value}) == 0

