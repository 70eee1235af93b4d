"""How long one `acd.decide` takes in a big, congested center (issue 3 goal: p99 < 1 ms).

1,000 agents, 50 queues (each with its own skill and level), every agent serving 3
queues with random levels, and 10,000 callers waiting with random priorities. The
run drives a steady mix on one core, generated live because decisions feed back:
agents finishing calls (the hang-up; its 0 s wrap-up ends within that same decision,
which rings the next caller, and the agent answers; a Tick is fed only when a deadline
is due, as the shell does), callers joining, callers hanging up. It prints the figure
and its
ratio to the 1 ms goal (there is no peer with a comparable pure decision function).

Run: python3 bench/decide_speed.py [--agents 1000 --queues 50 --callers 10000 --events 20000]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from acd import State, decide, next_deadline
from acd.agents import Activity
from acd.calls import CallState
from acd.commands import Command, RingAgent
from acd.events import (
    AgentProfile,
    AgentsConfigured,
    CallerHungUp,
    CallerJoined,
    DeviceChanged,
    DialEnded,
    Event,
    Tick,
)
from acd.model import QueueSettings


def build(agents: int, queues: int, callers: int, rng: random.Random) -> tuple[State, float]:
    qs = tuple(QueueSettings(name=f"q{i}", skills=((f"s{i}", rng.randint(1, 40)),), wrapup=0) for i in range(queues))
    state = State(queues={q.name: q for q in qs}, routing=True)
    profiles = []
    for i in range(agents):
        served = rng.sample(range(queues), 3)
        profiles.append(AgentProfile(str(10000 + i), frozenset(f"q{j}" for j in served),
                                     tuple((f"s{j}", rng.randint(30, 100)) for j in served)))
    now = 1_000_000.0
    decide(state, AgentsConfigured(frozenset(p.agent_id for p in profiles), tuple(profiles)), now)
    # Every agent busy talking: callers pile up.
    for p in profiles:
        decide(state, DeviceChanged(p.agent_id, True, False), now)
    for i in range(agents):
        call = f"seed{i}"
        decide(state, CallerJoined(call, f"chan-{call}", f"q{i % queues}"), now)
    for agent in list(state.agents.values()):
        if agent.call_id:
            call = state.calls[agent.call_id]
            decide(state, DialEnded(call.call_id, agent.agent_id, "ANSWER", call.attempt), now)
    for i in range(callers):
        now += 0.001
        call = f"w{i}"
        queue = f"q{rng.randrange(queues)}"
        decide(state, CallerJoined(call, f"chan-{call}", queue, priority=rng.choice((0, 0, 0, 1, 2))), now)
    return state, now


def run(state: State, now: float, events: int, queues: int, rng: random.Random) -> list[float]:
    times: list[float] = []
    joined = 0

    def timed(event: Event) -> list[Command]:
        t0 = time.perf_counter()
        _, out = decide(state, event, now)
        times.append(time.perf_counter() - t0)
        return out

    while len(times) < events:
        now += 0.01
        r = rng.random()
        if r < 0.45:
            # An agent on a call: the caller hangs up, the 0 s wrap-up ends, the routing
            # rings the next caller, who is answered.
            busy = [a for a in rng.sample(list(state.agents.values()), 20) if a.activity is Activity.ON_CALL]
            if not busy:
                continue
            call = busy[0].call_id
            assert call is not None
            out = timed(CallerHungUp(call, f"chan-{call}"))
            due = next_deadline(state)
            if due is not None and due <= now:
                out += timed(Tick())
            for cmd in out:
                if isinstance(cmd, RingAgent):
                    timed(DialEnded(cmd.call_id, cmd.agent_id, "ANSWER", cmd.attempt))
        elif r < 0.9:
            joined += 1
            call = f"n{joined}"
            timed(CallerJoined(call, f"chan-{call}", f"q{rng.randrange(queues)}", priority=rng.choice((0, 0, 1))))
        else:
            waiting = [c for c in rng.sample(list(state.calls.values()), 20) if c.state is CallState.IN_LINE]
            if waiting:
                timed(CallerHungUp(waiting[0].call_id, waiting[0].channel))
    return times


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--agents", type=int, default=1000)
    ap.add_argument("--queues", type=int, default=50)
    ap.add_argument("--callers", type=int, default=10000)
    ap.add_argument("--events", type=int, default=20000)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    t0 = time.perf_counter()
    state, now = build(args.agents, args.queues, args.callers, rng)
    waiting = sum(len(line) for line in state.lines.values())
    print(f"decide: {args.agents} agents, {args.queues} queues, {waiting} callers waiting "
          f"(built in {time.perf_counter() - t0:.1f} s)", flush=True)
    times = sorted(run(state, now, args.events, args.queues, rng))
    p50 = times[len(times) // 2] * 1e3
    p99 = times[int(len(times) * 0.99)] * 1e3
    print(f"  {len(times)} decisions: p50 {p50:.3f} ms, p99 {p99:.3f} ms, max {times[-1] * 1e3:.3f} ms, "
          f"mean {statistics.fmean(times) * 1e3:.3f} ms", flush=True)
    print(f"  still waiting: {sum(len(line) for line in state.lines.values())}", flush=True)
    print(f"  p99 / goal (1 ms) = {p99 / 1.0:.2f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
