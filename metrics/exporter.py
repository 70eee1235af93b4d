"""Live counters for Prometheus. They observe commands and state; no rules live here.

Counting rules (what supervisors and the 月接通率 report rely on):
- offered: a caller entered the queue (the HotlineJoin event);
- answered: an agent answered (counted at the moment of answer);
- answered_within_service_level: answered with wait <= the queue's service level (15 s);
- abandoned: hung up before an agent answered, short abandons included;
- short_abandoned: the part of abandoned that hung up within `short_abandon` seconds;
- timed_out: reached max_wait and heard the time-out message.
Answer rate = answered / (offered - short_abandoned), summed over the period.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from acd import agent_state
from acd.commands import AgentStateChanged, CallAnswered, CallOffered, CallRecord, Command
from acd.model import CallPhase, Outcome, State

WAIT_BUCKETS = (1, 2, 5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 300, 600)
TALK_BUCKETS = (5, 15, 30, 60, 120, 180, 300, 600, 900, 1800, 3600)
AGENT_STATES = ("logged_out", "available", "paused", "busy_other", "ringing", "on_call", "wrap_up")


class Metrics:
    def __init__(self, registry: CollectorRegistry, service_level: float = 15.0) -> None:
        self.registry = registry
        self.service_level = service_level
        q = ["queue"]
        self.offered = Counter("hotline_calls_offered", "Callers who entered a queue", q, registry=registry)
        self.answered = Counter("hotline_calls_answered", "Calls answered by an agent", q, registry=registry)
        self.answered_sl = Counter(
            "hotline_calls_answered_within_service_level",
            "Calls answered within the queue's service level (seconds label)",
            ["queue", "seconds"],
            registry=registry,
        )
        self.abandoned = Counter(
            "hotline_calls_abandoned", "Callers who hung up before an answer (short abandons included)", q,
            registry=registry,
        )
        self.short_abandoned = Counter(
            "hotline_calls_short_abandoned", "Abandons within the short-abandon threshold", q, registry=registry
        )
        self.overflowed = Counter("hotline_calls_overflowed", "Callers sent to the overflow message", q,
                                  registry=registry)
        self.timed_out = Counter("hotline_calls_timed_out", "Callers sent to the time-out message", q,
                                 registry=registry)
        self.ended = Counter("hotline_calls_ended", "Finished calls by outcome", ["queue", "outcome"],
                             registry=registry)
        self.wait = Histogram("hotline_wait_seconds", "Queue wait of finished calls", ["queue", "outcome"],
                              buckets=WAIT_BUCKETS, registry=registry)
        self.talk = Histogram("hotline_talk_seconds", "Talk time of answered calls", q, buckets=TALK_BUCKETS,
                              registry=registry)
        self.ring_dispatch = Histogram(
            "hotline_ring_dispatch_seconds",
            "From reading the AMI event that freed an agent or brought a caller to writing the Redirect",
            buckets=(0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5),
            registry=registry,
        )
        self.agent_seconds = Counter(
            "hotline_agent_state_seconds", "Time each agent spent in each state (counted when it leaves it)",
            ["agent", "state"], registry=registry,
        )
        self.agent_changes = Counter(
            "hotline_agent_state_changes", "Agent state changes by the state entered", ["state"], registry=registry
        )
        self._agent_since: dict[str, tuple[str, float]] = {}
        self.event_errors = Counter("hotline_event_errors", "Events whose handling raised; the engine went on",
                                    registry=registry)
        self.decode_errors = Counter("hotline_ami_decode_errors", "AMI events of ours with a missing field",
                                     registry=registry)
        self.store_errors = Counter("hotline_store_write_errors", "Failed store writes (retried)",
                                    registry=registry)

    def init_queue(self, queue: str) -> None:
        """Create the per-queue series at 0 so that dashboards show a queue before its first call."""
        for counter in (self.offered, self.answered, self.abandoned, self.short_abandoned, self.timed_out,
                        self.overflowed):
            counter.labels(queue)
        self.answered_sl.labels(queue, f"{self.service_level:g}")

    def agent_changed(self, cmd: AgentStateChanged, now: float) -> None:
        old, since = self._agent_since.get(cmd.agent_id, (cmd.old, now))
        self.agent_seconds.labels(cmd.agent_id, old).inc(max(0.0, now - since))
        self._agent_since[cmd.agent_id] = (cmd.new, now)
        self.agent_changes.labels(cmd.new).inc()

    def observe(self, cmd: Command) -> None:
        match cmd:
            case CallOffered():
                self.offered.labels(cmd.queue).inc()
            case CallAnswered():
                self.answered.labels(cmd.queue).inc()
                if cmd.wait <= self.service_level:
                    self.answered_sl.labels(cmd.queue, f"{self.service_level:g}").inc()
            case CallRecord():
                self.ended.labels(cmd.queue, cmd.outcome.value).inc()
                self.wait.labels(cmd.queue, cmd.outcome.value).observe(cmd.wait_seconds)
                if cmd.outcome is Outcome.ANSWERED:
                    self.talk.labels(cmd.queue).observe(cmd.talk_seconds)
                elif cmd.outcome in (Outcome.ABANDONED, Outcome.SHORT_ABANDON):
                    self.abandoned.labels(cmd.queue).inc()
                    if cmd.outcome is Outcome.SHORT_ABANDON:
                        self.short_abandoned.labels(cmd.queue).inc()
                elif cmd.outcome is Outcome.TIMED_OUT:
                    self.timed_out.labels(cmd.queue).inc()
                elif cmd.outcome is Outcome.OVERFLOW:
                    self.overflowed.labels(cmd.queue).inc()
            case _:
                pass


class LiveCollector(Collector):
    """Gauges read from the dispatcher's state at scrape time (same thread, no locks)."""

    def __init__(
        self,
        state: Callable[[], State],
        ami_connected: Callable[[], bool],
        store_pending: Callable[[], int],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.state = state
        self.ami_connected = ami_connected
        self.store_pending = store_pending
        self.clock = clock

    def collect(self) -> Iterable[Metric]:
        st = self.state()
        now = self.clock()
        waiting = GaugeMetricFamily("hotline_queue_waiting_callers", "Callers waiting for an agent", labels=["queue"])
        longest = GaugeMetricFamily("hotline_queue_longest_wait_seconds", "Longest current wait", labels=["queue"])
        per_queue: dict[str, list[float]] = {name: [] for name in st.queues}
        for call in st.calls.values():
            if call.phase is not CallPhase.CONNECTED:
                per_queue.setdefault(call.queue, []).append(now - call.arrived)
        for name, waits in sorted(per_queue.items()):
            waiting.add_metric([name], len(waits))
            longest.add_metric([name], max(waits, default=0.0))
        agents = GaugeMetricFamily("hotline_agents", "Configured agents by state", labels=["state"])
        counts = dict.fromkeys(AGENT_STATES, 0)
        for agent in st.agents.values():
            if agent.configured:
                counts[agent_state(agent)] = counts.get(agent_state(agent), 0) + 1
        for name, n in counts.items():
            agents.add_metric([name], n)
        ami = GaugeMetricFamily("hotline_ami_connected", "1 while the AMI link is up and logged in")
        ami.add_metric([], 1 if self.ami_connected() else 0)
        pending = GaugeMetricFamily("hotline_store_pending_records", "Call records spooled, not yet stored")
        pending.add_metric([], self.store_pending())
        yield from (waiting, longest, agents, ami, pending)
