"""Erlang B, C and A: what a load of calls does to N agents, and the smallest N that meets the
targets. Pure standard library: no I/O, no clock, no numpy.

Definitions (../shared/reference/hotline-domain-and-kpis.md §4; the KPI forms as metrics/kpi.py
counts them):

- λ calls per second, h = AHT seconds (μ = 1/h), A = λh erlangs, N agents, mean patience 1/θ.
- Erlang C (M/M/N, nobody hangs up): needs N > A; at N <= A the queue grows without bound and
  no figure exists (`ErlangC.stable` is False, the figures None).
- Erlang A (M/M/N+M, exponential patience): the birth-death chain of the number of callers in
  the system, birth λ, death min(n,N)μ + max(n-N,0)θ. Stable at any load.
- Targets are judged on offered calls: answer rate = answered / offered, service level =
  answered within T / offered; every hang-up counts against them. The monthly KPI (metrics/kpi.py:
  接通率 and 15秒接通率 drop short abandons, 速挂, from the denominator) comes out at or above
  these and is reported beside them (`*_excl_short`). Judging the targets on the KPI form would
  reward impatience: with a patience of a second almost every unanswered caller hangs up
  "short", is dropped, and 5 agents would "pass" 600 calls an hour.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

# States whose probability is below e^-50 (2e-22) of the most likely one are left out of the
# chain: the chain is log-concave, so everything beyond them is smaller still and sums to less
# than 1e-18 in all but absurd cases.
_CUT = -50.0
# A chain this long means a patience of months with fewer agents than erlangs (a crowd that
# queues for ever: Erlang C's world): refuse rather than spend minutes on it.
MAX_STATES = 2_000_000


# Bounds of what the planner computes: far beyond any city hotline, and small enough that every
# figure is computed in seconds (erlang_b takes one step per agent, the Erlang A chain one per state).
MAX_CALLS_PER_HOUR = 1_000_000
MAX_AGENTS = 100_000
MAX_ERLANGS = 100_000.0  # offered load A = calls per hour x AHT / 3600
# A mean patience below a millisecond means nothing for a caller (and underflows the formulas).
MIN_PATIENCE = 0.001
_BEYOND_ZH = "远超任何热线的规模，计算将耗时过长"
_BEYOND_EN = "far beyond any hotline; the computation would take minutes"

_TOO_LONG = ("排队过长无法计算 / the queue is too long to compute: a patience this long is Erlang C (leave "
             "--patience out), or give a realistic --patience")


class PlanError(ValueError):
    """An input the planner cannot work with; the message says which and what to give."""


@dataclass(frozen=True, slots=True)
class Load:
    """What the agents face in one interval."""

    calls_per_hour: float  # offered calls
    aht: float  # seconds of talk (+ hold + after-call work) per answered call
    patience: float | None = None  # mean seconds a caller waits before hanging up; None: never (Erlang C)

    def __post_init__(self) -> None:
        if not (math.isfinite(self.calls_per_hour) and self.calls_per_hour >= 0):
            raise PlanError(f"来电量必须是 >= 0 的数 / calls per hour must be a number >= 0, got {self.calls_per_hour}")
        if self.calls_per_hour > MAX_CALLS_PER_HOUR:
            raise PlanError(f"来电量不能超过 {MAX_CALLS_PER_HOUR:,} 通/小时：{_BEYOND_ZH} / calls per hour must be "
                            f"at most {MAX_CALLS_PER_HOUR:,} ({_BEYOND_EN}), got {self.calls_per_hour:g}")
        if not (math.isfinite(self.aht) and self.aht > 0):
            raise PlanError(f"平均处理时长必须 > 0 秒 / AHT must be > 0 seconds, got {self.aht}")
        if self.patience is not None and not (math.isfinite(self.patience) and self.patience > 0):
            raise PlanError(f"平均耐心时长必须 > 0 秒 / patience must be > 0 seconds, got {self.patience}")
        if self.patience is not None and self.patience < MIN_PATIENCE:
            raise PlanError(f"平均耐心时长不能短于 {MIN_PATIENCE:g} 秒（1 毫秒）：更短的耐心没有实际意义 / "
                            f"patience must be at least {MIN_PATIENCE:g} s (a millisecond; a shorter one means "
                            f"nothing for a caller), got {self.patience:g}")
        if self.erlangs > MAX_ERLANGS:
            raise PlanError(f"话务量（来电量 × 平均处理时长 / 3600）不能超过 {MAX_ERLANGS:,.0f} Erl：{_BEYOND_ZH} / "
                            f"the offered load (calls per hour x AHT / 3600) must be at most {MAX_ERLANGS:,.0f} "
                            f"erlangs ({_BEYOND_EN}), got {self.erlangs:g}; is the AHT in seconds?")

    @property
    def erlangs(self) -> float:
        """Offered load A = λh."""
        return self.calls_per_hour * self.aht / 3600.0


@dataclass(frozen=True, slots=True)
class ErlangC:
    """Erlang C figures for N agents. All None when N <= A: the queue is unstable."""

    agents: int
    erlangs: float
    sl_seconds: float
    p_wait: float | None  # share of callers who find every agent busy
    service_level: float | None  # answered within sl_seconds / offered (everyone is answered in Erlang C)
    asa: float | None  # seconds, mean wait of all callers (all are answered; those answered at once count 0)
    occupancy: float | None  # A/N

    @property
    def stable(self) -> bool:
        return self.p_wait is not None


@dataclass(frozen=True, slots=True)
class ErlangA:
    """Erlang A figures for N agents; every rate is a share of offered calls unless named otherwise."""

    agents: int
    erlangs: float
    sl_seconds: float
    short_abandon: float
    p_wait: float  # found every agent busy (waited at all)
    p_abandon: float  # hung up before an answer = θ·E[Q]/λ
    answer_rate: float  # answered / offered = 1 - p_abandon
    service_level: float  # answered within sl_seconds / offered
    p_short_abandon: float  # hung up within short_abandon seconds (速挂) / offered
    answer_rate_excl_short: float  # answered / (offered - short abandons): the KPI's 接通率
    service_level_excl_short: float  # answered within sl_seconds / (offered - short abandons): 15秒接通率
    occupancy: float  # λ(1 - p_abandon)/(Nμ)
    mean_queue: float  # E[Q], callers waiting
    asa_all: float  # seconds, mean wait of every offered caller (abandons: until they hung up)
    asa_answered: float  # seconds, mean wait of answered callers (ASA as the reports define it)


def erlang_b(agents: int, erlangs: float) -> float:
    """Blocking probability of M/M/N/N by the stable recursion B_n = A·B_{n-1}/(n + A·B_{n-1})."""
    if agents < 0 or not (erlangs >= 0):  # not >=: NaN too
        raise PlanError(f"agents and erlangs must be >= 0, got {agents}, {erlangs}")
    if agents > MAX_AGENTS:
        raise PlanError(_too_many_agents(agents))
    if erlangs > MAX_ERLANGS:
        raise PlanError(f"话务量不能超过 {MAX_ERLANGS:,.0f} Erl / the offered load must be at most "
                        f"{MAX_ERLANGS:,.0f} erlangs (far beyond any hotline), got {erlangs:g}")
    b = 1.0
    for n in range(1, agents + 1):
        b = erlangs * b / (n + erlangs * b)
    return b


def _too_many_agents(agents: int) -> str:
    return (f"坐席数不能超过 {MAX_AGENTS:,}：{_BEYOND_ZH} / agents must be at most {MAX_AGENTS:,} ({_BEYOND_EN}), "
            f"got {agents:,}")


def _check_agents(agents: int) -> None:
    if isinstance(agents, bool) or not isinstance(agents, int) or agents < 1:
        raise PlanError(f"坐席数必须是 >= 1 的整数 / agents must be an integer >= 1, got {agents!r}")
    if agents > MAX_AGENTS:
        raise PlanError(_too_many_agents(agents))


def _check_seconds(name: str, value: float) -> None:
    if not (math.isfinite(value) and value >= 0):
        raise PlanError(f"{name} must be a number of seconds >= 0, got {value}")


def erlang_c(load: Load, agents: int, sl_seconds: float = 15.0) -> ErlangC:
    """Erlang C for `agents`; patience is ignored (callers wait for ever)."""
    _check_agents(agents)
    _check_seconds("sl_seconds", sl_seconds)
    a = load.erlangs
    if agents <= a:
        return ErlangC(agents, a, sl_seconds, None, None, None, None)
    b = erlang_b(agents, a)
    p_wait = agents * b / (agents - a * (1.0 - b))
    return ErlangC(
        agents=agents,
        erlangs=a,
        sl_seconds=sl_seconds,
        p_wait=p_wait,
        service_level=1.0 - p_wait * math.exp(-(agents - a) * sl_seconds / load.aht),
        asa=p_wait * load.aht / (agents - a),
        occupancy=a / agents,
    )


def _chain(lam: float, mu: float, theta: float, agents: int) -> tuple[int, list[float]]:
    """(n0, p): P(n0 + i callers in the system) = p[i], the stationary law of the Erlang A chain
    with the negligible states at both ends left out.

    Log weights, walked outwards from the mode (the chain's ratios p(n+1)/p(n) = λ/d(n+1)
    decrease, so the law is unimodal): nothing overflows at N = 1000 or 100 000."""

    def death(n: int) -> float:
        return min(n, agents) * mu + max(n - agents, 0) * theta

    # The mode: the last n whose death rate does not exceed λ.
    mode = math.floor(lam / mu) if lam <= agents * mu else agents + math.floor((lam - agents * mu) / theta)
    if mode - agents > MAX_STATES:
        raise PlanError(
            f"排队过长无法计算：平均耐心过长而坐席少于话务量 / the queue would hold ~{mode - agents} callers "
            f"with {agents} agents (a patience of {1 / theta:g} s): a patience this long is Erlang C (leave "
            "--patience out), or give a realistic --patience")
    up = [0.0]
    n, lw = mode, 0.0
    while lw > _CUT:
        n += 1
        lw += math.log(lam / death(n))
        up.append(lw)
        if len(up) > MAX_STATES:
            raise PlanError(_TOO_LONG)
    down: list[float] = []
    n, lw = mode, 0.0
    while n > 0 and lw > _CUT:
        lw += math.log(death(n) / lam)
        n -= 1
        down.append(lw)
        if len(down) > MAX_STATES:
            raise PlanError(_TOO_LONG)
    weights = [math.exp(w) for w in (*reversed(down), *up)]
    total = math.fsum(weights)
    return mode - len(down), [w / total for w in weights]


class _NegBinCdf:
    """P(K <= k), k = 0, 1, ..., for K ~ NegBin(r, x): P(K = k) = Γ(r+k)/(Γ(r) k!) x^r (1-x)^k.

    Built in order, each term from the last in log space: x^r underflows for a long threshold."""

    def __init__(self, r: float, log_x_r: float, one_minus_x: float) -> None:
        self.r = r
        self.log_1mx = math.log(one_minus_x) if one_minus_x > 0 else -math.inf
        self.log_pmf = log_x_r
        self.k = 0
        self.cdf = [math.exp(log_x_r)]

    def upto(self, k: int) -> float:
        while self.k < k:
            self.k += 1
            # r + (k - 1), not (r + k) - 1: for a tiny r (patience far shorter than the AHT) the
            # latter rounds to 0 at k = 1.
            self.log_pmf += math.log((self.r + (self.k - 1)) / self.k) + self.log_1mx
            self.cdf.append(self.cdf[-1] + math.exp(self.log_pmf))
        return min(1.0, self.cdf[k])


def erlang_a(load: Load, agents: int, sl_seconds: float = 15.0, short_abandon: float = 5.0) -> ErlangA:
    """Erlang A for `agents`; the load must carry a patience.

    Waiting times, exactly, by a tagged caller (FCFS): one who arrives to find j = n - N callers
    waiting ahead moves up a place at rate Nμ + iθ while i are ahead (an answer or an abandon
    ahead), reaches an agent at rate Nμ from the head, and hangs up at rate θ on the way. The
    time S_j to reach an agent if it never hung up is a sum of exponentials of rates Nμ + iθ,
    i = 0..j; its Laplace transform Π (a+i)/(a+i+s/θ), a = Nμ/θ, is that of -ln(U)/θ with
    U ~ Beta(a, j+1). With the caller's own patience τ ~ Exp(θ) independent of S_j:

    - answered:            P(S_j < τ)              = E[U]                     = a/(a+j+1)
    - answered within T:   P(S_j <= T, S_j < τ)    = E[U; U >= x], x = e^{-θT}
                                                   = a/(a+j+1) · P(K >= j+1), K ~ NegBin(a+1, x)
    - hung up within S:    P(τ <= S, τ < S_j)      = E[1-U; U >= x] + (1-x)·P(U < x), x = e^{-θS}
                                                   = (j+1)/(a+j+1)·P(K' >= j+2) + (1-x)·P(K' <= j),
                                                     K' ~ NegBin(a, x)
    - wait if answered:    E[S_j; S_j < τ]         = a/(a+j+1) · Σ_{i=1}^{j+1} 1/(Nμ + iθ)

    (the incomplete beta of integer second parameter is a negative-binomial tail: sums of
    positive terms, no cancellation). Averaged over j with the chain's law (arrivals see time
    averages), this is the tagged-customer result pyworkforce gets by uniformisation, in
    O(N + queue length) instead of a matrix power per starting place.
    """
    _check_agents(agents)
    _check_seconds("sl_seconds", sl_seconds)
    _check_seconds("short_abandon", short_abandon)
    if load.patience is None:
        raise PlanError("Erlang A needs a mean patience (--patience); without one use Erlang C")
    a_erl = load.erlangs
    if load.calls_per_hour == 0:
        return ErlangA(agents, 0.0, sl_seconds, short_abandon, p_wait=0.0, p_abandon=0.0, answer_rate=1.0,
                       service_level=1.0, p_short_abandon=0.0, answer_rate_excl_short=1.0,
                       service_level_excl_short=1.0, occupancy=0.0,
                       mean_queue=0.0, asa_all=0.0, asa_answered=0.0)
    lam, mu, theta = load.calls_per_hour / 3600.0, 1.0 / load.aht, 1.0 / load.patience
    n0, p = _chain(lam, mu, theta, agents)
    top = n0 + len(p) - 1

    def prob(n: int) -> float:
        return p[n - n0] if n0 <= n <= top else 0.0

    served_rate = agents * mu
    a = served_rate / theta
    p_wait = math.fsum(prob(n) for n in range(max(agents, n0), top + 1))
    mean_queue = math.fsum((n - agents) * prob(n) for n in range(max(agents + 1, n0), top + 1))
    p_abandon = min(1.0, theta * mean_queue / lam)
    immediate = 1.0 - p_wait

    within_t = _NegBinCdf(a + 1, -(served_rate + theta) * sl_seconds, -math.expm1(-theta * sl_seconds))
    before_s = _NegBinCdf(a, -served_rate * short_abandon, -math.expm1(-theta * short_abandon))
    one_minus_xs = -math.expm1(-theta * short_abandon)
    answered_waiting, within, short, wait_answered = [], [], [], []
    harmonic = 0.0  # Σ_{i=1}^{j+1} 1/(Nμ + iθ)
    for j in range(top - agents + 1):
        harmonic += 1.0 / (served_rate + (j + 1) * theta)
        pj = prob(agents + j)
        if pj == 0.0:
            continue
        served = a / (a + j + 1)
        answered_waiting.append(pj * served)
        within.append(pj * served * (1.0 - within_t.upto(j)))
        wait_answered.append(pj * served * harmonic)
        if short_abandon > 0:
            short.append(pj * ((j + 1) / (a + j + 1) * (1.0 - before_s.upto(j + 1))
                               + one_minus_xs * before_s.upto(j)))
    answered = immediate + math.fsum(answered_waiting)
    service_level = immediate + math.fsum(within)
    p_short = math.fsum(short)
    eligible = 1.0 - p_short
    return ErlangA(
        agents=agents,
        erlangs=a_erl,
        sl_seconds=sl_seconds,
        short_abandon=short_abandon,
        p_wait=p_wait,
        p_abandon=p_abandon,
        answer_rate=1.0 - p_abandon,
        service_level=service_level,
        p_short_abandon=p_short,
        answer_rate_excl_short=min(1.0, (1.0 - p_abandon) / eligible),
        service_level_excl_short=min(1.0, service_level / eligible),
        occupancy=lam * (1.0 - p_abandon) / served_rate,
        mean_queue=mean_queue,
        asa_all=mean_queue / lam,
        asa_answered=math.fsum(wait_answered) / answered if answered > 0 else 0.0,
    )


# ---- How many agents ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Targets:
    """What a plan must reach. A rate of None is no target; at least one must be set."""

    answer_rate: float | None = 0.95  # answered / offered
    service_level: float | None = 0.80  # answered within sl_seconds / offered
    sl_seconds: float = 15.0
    short_abandon: float = 5.0  # seconds: for the KPI figures reported beside (速挂 dropped)
    shrinkage: float = 0.30  # share of paid time not on the phones (breaks, training, meetings)

    def __post_init__(self) -> None:
        for name, rate in (("answer_rate", self.answer_rate), ("service_level", self.service_level)):
            if rate is not None and not (0 < rate < 1):
                raise PlanError(f"目标比例须在 0 与 1 之间（不含）/ the {name} target must be between 0 and 1 "
                                f"(exclusive), got {rate}")
        if self.answer_rate is None and self.service_level is None:
            raise PlanError("至少设定一个目标 / set an answer-rate or a service-level target")
        _check_seconds("sl_seconds", self.sl_seconds)
        _check_seconds("short_abandon", self.short_abandon)
        if not (0 <= self.shrinkage < 1):
            raise PlanError(f"损耗率须在 [0, 1) 内 / shrinkage must be in [0, 1), got {self.shrinkage}")


def scheduled_agents(agents: int, shrinkage: float) -> int:
    """Agents to roster so that `agents` are on the phones: N/(1 - shrinkage), rounded up. A
    hair of tolerance keeps 42/0.7 = 60.000000000000007 at 60."""
    return math.ceil(agents / (1.0 - shrinkage) - 1e-9)


def _smallest(meets: Callable[[int], bool], start: int) -> int:
    """The smallest N >= 1 with meets(N), for a meets that is false then true as N grows (the
    rates of both models rise with N): double from `start` until it holds, then bisect. No N
    above MAX_AGENTS is tried: a load that needs more is refused."""
    lo, hi = 0, min(max(1, start), MAX_AGENTS)  # meets(lo) is taken as false
    while not meets(hi):
        if hi >= MAX_AGENTS:
            raise PlanError(f"达到目标需要超过 {MAX_AGENTS:,} 名坐席，超出本工具的计算范围 / the targets need more "
                            f"than {MAX_AGENTS:,} agents, beyond what the planner computes")
        lo, hi = hi, min(hi * 2, MAX_AGENTS)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if meets(mid):
            hi = mid
        else:
            lo = mid
    return hi


def required_erlang_c(load: Load, targets: Targets) -> int:
    """Erlang C's smallest N for the service-level target (the smallest stable N without one);
    0 when no call is offered. Erlang C answers every caller, so the answer-rate target is met by
    any stable N."""
    if load.calls_per_hour == 0:
        return 0

    def meets(agents: int) -> bool:
        sl = erlang_c(load, agents, targets.sl_seconds).service_level
        return sl is not None and (targets.service_level is None or sl >= targets.service_level)

    return _smallest(meets, math.floor(load.erlangs) + 1)


def required_erlang_a(load: Load, targets: Targets) -> int:
    """Erlang A's smallest N meeting every target set; 0 when no call is offered."""
    if load.calls_per_hour == 0:
        return 0

    # Agents answer at most Nμ calls a second, so both rates are at most N/A: below that bound the
    # chain (which can be very long for a patient crowd and too few agents) need not be built.
    floor_rate = max(rate for rate in (targets.answer_rate, targets.service_level) if rate is not None)

    def meets(agents: int) -> bool:
        if agents < load.erlangs * floor_rate:
            return False
        r = erlang_a(load, agents, targets.sl_seconds, targets.short_abandon)
        return ((targets.answer_rate is None or r.answer_rate >= targets.answer_rate)
                and (targets.service_level is None or r.service_level >= targets.service_level))

    return _smallest(meets, math.ceil(load.erlangs))


@dataclass(frozen=True, slots=True)
class Plan:
    """How many agents a load needs: on the phones (`agents`) and on the roster (`scheduled`)."""

    load: Load
    targets: Targets
    model: str  # "erlang_a" (a patience was given) or "erlang_c"
    agents: int  # on the phones, by `model`
    scheduled: int  # agents / (1 - shrinkage), rounded up
    erlang_c_agents: int  # Erlang C's N for the service-level target: callers never hang up
    erlang_a: ErlangA | None  # figures at `agents` (None without patience or calls)
    erlang_c: ErlangC | None  # figures at erlang_c_agents (None without calls)
    notes: tuple[str, ...]  # zh-CN first, then English


def plan(load: Load, targets: Targets) -> Plan:
    """The smallest N meeting the targets (Erlang A when the load has a patience, else Erlang C),
    Erlang C's N for the same service-level target, and the roster after shrinkage."""
    notes: list[str] = []
    n_c = required_erlang_c(load, targets)
    fig_c = erlang_c(load, n_c, targets.sl_seconds) if n_c else None
    if load.calls_per_hour == 0:
        notes.append("无来电：不需要坐席 / no calls offered: no agent needed")
    if targets.service_level is None:
        notes.append("未设服务水平目标：Erlang C 人数为队列稳定的最少人数 / no service-level target: "
                     "the Erlang C figure is the smallest N that keeps the queue stable (N > A)")
    if load.patience is None:
        if targets.answer_rate is not None and load.calls_per_hour > 0:
            notes.append("未给平均耐心时长，仅按 Erlang C 计算：来电者从不挂机，接通率目标无从判断 / no patience "
                         "given: Erlang C only, where nobody hangs up, so the answer-rate target is not judged; "
                         "give --patience for Erlang A")
        return Plan(load, targets, "erlang_c", n_c, scheduled_agents(n_c, targets.shrinkage), n_c, None, fig_c,
                    tuple(notes))
    n_a = required_erlang_a(load, targets)
    fig_a = erlang_a(load, n_a, targets.sl_seconds, targets.short_abandon) if n_a else None
    if n_a > n_c:
        notes.append("此处 Erlang A 人数高于 Erlang C：Erlang C 假定无人挂机、只按服务水平目标计算，而等待中挂机的来电"
                     "计入未接通 / Erlang A needs more than Erlang C here: Erlang C assumes nobody hangs up and "
                     "judges the service-level target only, while callers who hang up while waiting count as "
                     "not answered")
    return Plan(load, targets, "erlang_a", n_a, scheduled_agents(n_a, targets.shrinkage), n_c, fig_a, fig_c,
                tuple(notes))
