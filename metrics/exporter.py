"""Live counters for Prometheus. They observe commands and state; no rule lives here:
what counts as offered, answered, a short abandon or within the service level is
metrics/kpi.py's decision, and every counter is attributed to the queue the call was
offered in, with that queue's thresholds as recorded on the call.

- offered ticks when a caller enters an open queue, answered when an agent answers,
  the rest when the call ends; after every call of a period has ended the counters
  equal `kpi.by_queue` over the records of the same calls. Each step is counted once, by
  the process that saw it: a restarted engine does not count again the offers and answers
  of the calls it adopts that the engine before it counted (`CallAnswered.counted`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from acd import State, agent_state
from acd.calls import CallState
from acd.commands import AgentStateChanged, CallAnswered, CallOffered, CallRecord, Unexpected
from acd.model import Outcome
from metrics import kpi

WAIT_BUCKETS = (1, 2, 5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 300, 600)
TALK_BUCKETS = (5, 15, 30, 60, 120, 180, 300, 600, 900, 1800, 3600)
AGENT_STATES = ("logged_out", "unreachable", "available", "backed_off", "paused", "busy_other", "ringing", "on_call",
                "wrap_up")
WAITING = frozenset({CallState.IN_LINE, CallState.REDIRECTING, CallState.CONFIRMING, CallState.DIALING,
                     CallState.WALKING_BACK, CallState.FALLBACK})


class Metrics:
    def __init__(self, registry: CollectorRegistry, clock: Callable[[], float] = time.monotonic) -> None:
        self.registry = registry
        q = ["queue"]
        self.offered = Counter("hotline_calls_offered", "Calls offered: entered an open queue (counted there)", q,
                               registry=registry)
        self.answered = Counter("hotline_calls_answered", "Calls answered by an agent (in the offered queue)", q,
                                registry=registry)
        self.answered_sl = Counter("hotline_calls_answered_within_service_level",
                                   "Answered within the offered queue's service level", q, registry=registry)
        self.abandoned = Counter("hotline_calls_abandoned",
                                 "Hung up before an answer (short abandons included)", q, registry=registry)
        self.short_abandoned = Counter("hotline_calls_short_abandoned",
                                       "Hung up before an answer within the short-abandon threshold", q,
                                       registry=registry)
        self.timed_out = Counter("hotline_calls_timed_out", "Reached max_wait: heard the time-out message", q,
                                 registry=registry)
        self.overflowed = Counter("hotline_calls_overflowed", "Sent to the overflow message", q, registry=registry)
        self.ended = Counter("hotline_calls_ended", "Finished calls by outcome (closed: not offered)",
                             ["queue", "outcome"], registry=registry)
        self.wait = Histogram("hotline_wait_seconds", "Queue wait of finished calls", ["queue", "outcome"],
                              buckets=WAIT_BUCKETS, registry=registry)
        self.talk = Histogram("hotline_talk_seconds", "Talk time of answered calls", q, buckets=TALK_BUCKETS,
                              registry=registry)
        self.ring_dispatch = Histogram(
            "hotline_ring_dispatch_seconds",
            "From reading the AMI event that freed an agent or brought a caller to writing the Redirect",
            buckets=(0.0001, 0.0002, 0.0005, 0.00075, 0.001, 0.0015, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.02, 0.05,
                     0.1, 0.5),
            registry=registry,
        )
        self.surveyed = Counter("hotline_survey_offered", "Answered calls whose caller reached the satisfaction survey",
                                q, registry=registry)
        self.rated = Counter("hotline_survey_rated", "Survey answers by rating (1 = best; none: no key, hung up)",
                             ["queue", "rating"], registry=registry)
        self.agent_changes = Counter("hotline_agent_state_changes", "Agent state changes by the state entered",
                                     ["state"], registry=registry)
        self.event_errors = Counter("hotline_event_errors", "Events whose handling raised; the engine went on",
                                    registry=registry)
        self.decode_errors = Counter("hotline_ami_decode_errors", "AMI events of ours with a missing or bad field",
                                     registry=registry)
        self.unexpected = Counter("hotline_unexpected_events",
                                  "Events the call or agent state machine has no move for (ignored)",
                                  ["machine", "state", "trigger"], registry=registry)
        self.snapshots_dropped = Counter("hotline_resync_snapshots_dropped",
                                         "Snapshots that arrived for a link that is gone (not applied)",
                                         registry=registry)
        # Callbacks (回拨): requests booked, requests finished for good by outcome (connected,
        # or the last attempt's outcome after the retries; cancelled), and open now.
        self.callbacks_booked = Counter("hotline_callbacks_booked", "Callback requests booked (by the queue asked for)",
                                        q, registry=registry)
        self.callbacks_finished = Counter("hotline_callbacks_finished",
                                          "Callback requests finished for good, by outcome", ["queue", "outcome"],
                                          registry=registry)
        self.callbacks_pending = Gauge("hotline_callbacks_pending",
                                       "Callback requests not finished yet (waiting, in line, or calling)",
                                       registry=registry)
        self.times = AgentTimes(clock)
        registry.register(self.times)

    def init_queue(self, queue: str) -> None:
        """Create the per-queue series at 0 so that dashboards show a queue before its first call."""
        for counter in (self.offered, self.answered, self.answered_sl, self.abandoned, self.short_abandoned,
                        self.timed_out, self.overflowed, self.surveyed, self.callbacks_booked):
            counter.labels(queue)
        for rating in ("1", "2", "3", "4", "5", "none"):
            self.rated.labels(queue, rating)
        # Every outcome too: increase() misses the first call of a series that appears mid-range.
        for outcome in Outcome:
            self.ended.labels(queue, outcome.value)

    def offered_call(self, cmd: CallOffered) -> None:
        self.offered.labels(cmd.queue).inc()

    def answered_call(self, cmd: CallAnswered) -> None:
        self.answered.labels(cmd.queue).inc()
        if kpi.within_service_level(cmd.wait, cmd.service_level):
            self.answered_sl.labels(cmd.queue).inc()

    def ended_call(self, rec: CallRecord) -> None:
        c = kpi.classify(rec)
        self.ended.labels(c.queue, rec.outcome.value).inc()
        self.wait.labels(c.queue, rec.outcome.value).observe(rec.wait_seconds)
        if c.abandoned:
            self.abandoned.labels(c.queue).inc()
        if c.short_abandoned:
            self.short_abandoned.labels(c.queue).inc()
        if rec.outcome is Outcome.ANSWERED:
            self.talk.labels(c.queue).observe(rec.talk_seconds)
            if rec.surveyed:
                self.surveyed.labels(c.queue).inc()
                self.rated.labels(c.queue, str(rec.rating) if rec.rating is not None else "none").inc()
        elif rec.outcome is Outcome.TIMED_OUT:
            self.timed_out.labels(c.queue).inc()
        elif rec.outcome is Outcome.OVERFLOW:
            self.overflowed.labels(c.queue).inc()

    def reconstructed_call(self, rec: CallRecord, counted_until: float = 0.0) -> None:
        """A call this engine never saw live (rebuilt from Asterisk's account): every count at once,
        but what an engine before it counted already (its join, its answer before `counted_until`:
        a call talking at a restart that ended before the next engine came up)."""
        c = kpi.classify(rec)
        if c.offered and rec.arrived >= counted_until:
            self.offered.labels(c.queue).inc()
        if c.answered and (rec.answered is None or rec.answered >= counted_until):
            self.answered.labels(c.queue).inc()
            if c.answered_within_sl:
                self.answered_sl.labels(c.queue).inc()
        self.ended_call(rec)

    def agent_changed(self, cmd: AgentStateChanged, now: float) -> None:
        self.times.changed(cmd.agent_id, cmd.old, cmd.new, now)
        self.agent_changes.labels(cmd.new).inc()

    def unexpected_event(self, cmd: Unexpected) -> None:
        trigger = cmd.trigger.split(":", 1)[0]  # "unknown_queue:<name>": keep the label set small
        self.unexpected.labels(cmd.machine, cmd.state, trigger).inc()


class AgentTimes(Collector):
    """hotline_agent_state_seconds_total{agent,state}: time in each state, including the
    state an agent is in right now (a two-hour call shows while it lasts)."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.done: dict[tuple[str, str], float] = {}
        self.current: dict[str, tuple[str, float]] = {}

    def changed(self, agent: str, old: str, new: str, now: float) -> None:
        state, since = self.current.get(agent, (old, now))
        self.done[(agent, state)] = self.done.get((agent, state), 0.0) + max(0.0, now - since)
        self.current[agent] = (new, now)

    def collect(self) -> Iterable[Metric]:
        now = self.clock()
        family = CounterMetricFamily("hotline_agent_state_seconds", "Time each agent spent in each state",
                                     labels=["agent", "state"])
        totals = dict(self.done)
        for agent, (state, since) in self.current.items():
            totals[(agent, state)] = totals.get((agent, state), 0.0) + max(0.0, now - since)
        for (agent, state), seconds in sorted(totals.items()):
            family.add_metric([agent, state], seconds)
        yield family


class LiveCollector(Collector):
    """Gauges read from the dispatcher's state at scrape time (same thread, no locks)."""

    def __init__(
        self,
        state: Callable[[], State],
        ami_connected: Callable[[], bool],
        store: Callable[[], dict[str, int]],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.state = state
        self.ami_connected = ami_connected
        self.store = store
        self.clock = clock

    def collect(self) -> Iterable[Metric]:
        st = self.state()
        now = self.clock()
        waiting = GaugeMetricFamily("hotline_queue_waiting_callers", "Callers waiting for an agent", labels=["queue"])
        longest = GaugeMetricFamily("hotline_queue_longest_wait_seconds", "Longest current wait", labels=["queue"])
        level = GaugeMetricFamily("hotline_queue_service_level_seconds", "The queue's service level",
                                  labels=["queue"])
        per_queue: dict[str, list[float]] = {name: [] for name in st.queues}
        for call in st.calls.values():
            if call.state in WAITING and call.callback is None:  # a callback's citizen is not on hold
                per_queue.setdefault(call.queue, []).append(now - call.arrived)
        for name, waits in sorted(per_queue.items()):
            waiting.add_metric([name], len(waits))
            longest.add_metric([name], max(waits, default=0.0))
        for name, q in sorted(st.queues.items()):
            level.add_metric([name], q.service_level)
        agents = GaugeMetricFamily("hotline_agents", "Configured agents by state", labels=["state"])
        counts = dict.fromkeys(AGENT_STATES, 0)
        for agent in st.agents.values():
            if agent.configured:
                label = agent_state(agent, now)
                counts[label] = counts.get(label, 0) + 1
        for name, n in counts.items():
            agents.add_metric([name], n)
        ami = GaugeMetricFamily("hotline_ami_connected", "1 while the AMI link is up and logged in")
        ami.add_metric([], 1 if self.ami_connected() else 0)
        routing = GaugeMetricFamily("hotline_routing", "1 while the engine routes (link up and picture rebuilt)")
        routing.add_metric([], 1 if st.routing else 0)
        yield from (waiting, longest, level, agents, ami, routing)
        store = self.store()
        for key, help_text in (
            ("pending", "Call records accepted, not yet stored"),
            ("quarantined", "Call records the store refused for good, waiting for an operator"),
        ):
            gauge = GaugeMetricFamily(f"hotline_store_{key}_records", help_text)
            gauge.add_metric([], store.get(key, 0))
            yield gauge
        for key, help_text in (
            ("written_records", "Call records stored (inserted, or found already there)"),
            ("write_errors", "Failed store writes (retried, or quarantined when refused for good)"),
            ("spool_errors", "Records that could not be spooled to disk at once (kept in memory, retried)"),
            ("account_read_errors", "Failed reads of Asterisk's account (CEL): calls the engine did not see "
                                    "end wait for their record"),
            ("account_bad_rows", "Rows of Asterisk's account that gave no record (skipped)"),
        ):
            name = f"hotline_{key}" if key.startswith("account_") else f"hotline_store_{key}"
            counter = CounterMetricFamily(name, help_text)
            counter.add_metric([], store.get(key, 0))
            yield counter
