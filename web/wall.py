"""The supervisor wallboard (/wall): queues, agents and the tickets that need a push.

What it shows and where each figure comes from:
- per queue, live from the dispatcher's picture: callers waiting, the longest wait, agents by
  state (the same label `acd.agent_state` gives metrics and /agents);
- per queue, from the store: today's (Asia/Shanghai day) and the month's offered, answered,
  abandoned, answer rate and service-level rate as `kpi.Totals`, read by cti/month_to_date.py
  with the month report's own SQL, so the wallboard, Prometheus and the report agree. They
  count a call once its record is stored (it ended), every `month_to_date_interval` seconds:
  the page says how old they are, and shows no live estimate on top (a live count since the
  refresh could not be split by arrival day the way the report splits it);
- each agent's state and time in it (from the exporter's own state clock, so the page and
  hotline_agent_state_seconds_total agree), with 强制小休 / 强制签出 for supervisors;
- unfinished drafts, overdue and soon-due tickets, each overdue one with 督办.

Drawing: one render per language watched, the same HTML to every wallboard (no per-page
timers). The dispatcher's commands only mark the picture dirty; it is drawn at most every
MIN_GAP seconds, and once a second by the web clock (the times advance). The ticket lists are
read from the store every TICKETS_EVERY seconds while someone watches, and at once after 督办.
Admins may watch; the buttons are hidden for them and refused by the server (403) anyway.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import structlog
from aiohttp import web
from sqlalchemy.orm import Session

from acd import agent_state
from acd.agents import Control, backoff_left, reason
from acd.commands import Command
from acd.events import AgentControl
from acd.state import State
from metrics import kpi
from metrics.exporter import AGENT_STATES, WAITING
from tickets import auth
from tickets.auth import Principal
from tickets.lifecycle import Action
from tickets.service import ServiceError
from web import figures, i18n
from web.dept import DeptPage, signed_in
from web.live import Fragment

if TYPE_CHECKING:
    from cti.month_to_date import Figures
    from web.app import Web

log = structlog.get_logger("hotline.web.wall")

VIEW = frozenset({"supervisor", "admin"})
ACT = frozenset({"supervisor"})
MIN_GAP = 0.5  # seconds between two drawings of the live part: a burst of commands is drawn once
TICKETS_EVERY = 5.0  # seconds between reads of the ticket lists while someone watches
PAGE = 30  # tickets shown per list (a wall is read from across the room, not scrolled)
FORCE_REASON = "supervisor"  # the pause reason a forced pause carries (REASON: letters, digits, _ -)
URGE_NOTE = "班长督办：请加快办理"  # the history note of a 督办 from the wallboard
# The lists are the same for every supervisor (they read every department's tickets): one
# reader principal draws them once for all.
BOARD = Principal(user_id=0, username="wallboard", role="supervisor", department_id=None, agent_id=None,
                  display_name="大屏")
CONTROLS = {"pause": Control.PAUSE, "logout": Control.LOGOUT}

i18n.add({
    "wall_title": ("班长监控大屏", "Supervisor wallboard"),
    "wall_queues": ("队列", "Queues"),
    "wall_queue": ("队列", "Queue"),
    "wall_waiting": ("排队", "Waiting"),
    "wall_longest": ("最长等待", "Longest wait"),
    "wall_agents": ("坐席", "Agents"),
    "wall_offered": ("呼入", "Offered"),
    "wall_answered": ("接通", "Answered"),
    "wall_abandoned": ("放弃", "Abandoned"),
    "wall_rate": ("接通率", "Answer rate"),
    "wall_sl": ("15秒接通率", "Answered in 15 s"),
    "wall_today": ("今日", "Today"),
    "wall_month": ("本月", "Month"),
    "wall_target": ("目标 ≥ 95%", "Target ≥ 95%"),
    "wall_store_note": ("今日与本月数据来自话单库（通话结束后计入）", "Today's and the month's figures come from the "
                        "stored call records (a call counts once it has ended)"),
    "wall_refreshed": ("更新于", "Updated"),
    "wall_no_figures": ("话单库尚未返回数据", "The store has not answered yet"),
    "wall_agent": ("坐席", "Agent"),
    "wall_state": ("状态", "State"),
    "wall_in_state": ("持续", "For"),
    "wall_calls": ("接听", "Calls"),
    "wall_force_pause": ("强制小休", "Force pause"),
    "wall_force_logout": ("强制签出", "Log out"),
    "wall_logout_confirm": ("确定将该坐席签出？", "Log this agent out?"),
    "wall_drafts": ("未完成草稿", "Unfinished drafts"),
    "wall_overdue": ("超期工单", "Overdue tickets"),
    "wall_soon": ("即将到期", "Due soon"),
    "wall_none": ("无", "None"),
    "wall_number": ("工单号", "Ticket"),
    "wall_dept": ("承办单位", "Department"),
    "wall_due": ("期限", "Deadline"),
    "wall_urge": ("督办", "Urge"),
    "wall_urged": ("已督办", "Urged"),
    "wall_urge_done": ("已督办工单", "Urged ticket"),
    "wall_done": ("已执行", "Done"),
    "wall_refused": ("未执行", "Refused"),
    "wall_tickets_failed": ("工单库暂不可用，显示的是上次读取的数据", "The ticket store is unavailable: "
                            "these are the last lists read"),
    "state_logged_out": ("未签入", "Logged out"),
    "state_available": ("空闲", "Available"),
    "state_paused": ("小休", "Paused"),
    "state_busy_other": ("忙(其他)", "Busy (other)"),
    "state_backed_off": ("拒接回避", "Backed off"),
    "state_unreachable": ("话机失联", "Phone unreachable"),
    "state_ringing": ("振铃", "Ringing"),
    "state_on_call": ("通话中", "On call"),
    "state_wrap_up": ("话后处理", "Wrap-up"),
})


# ---- the picture (pure: state and figures in, rows out) -----------------------------------------


@dataclass(frozen=True)
class Period:
    """One period's store figures for a queue, as the page writes them."""

    totals: kpi.Totals
    rate: figures.Rate
    sl: figures.Rate


def period(t: kpi.Totals | None) -> Period | None:
    return None if t is None else Period(t, figures.rate(t.answer_rate), figures.rate(t.sl_rate))


@dataclass(frozen=True)
class QueueRow:
    name: str
    waiting: int
    longest: str
    agents: dict[str, int]  # label -> count, every label present
    today: Period | None
    month: Period | None


@dataclass(frozen=True)
class AgentRow:
    agent_id: str
    name: str
    state: str
    reason: str
    in_state: str  # "—" when the engine has not seen this agent change since it started
    calls: int


def queue_rows(st: State, today: dict[str, kpi.Totals] | None, month: dict[str, kpi.Totals] | None,
               now: float) -> list[QueueRow]:
    """Each configured queue: waiting callers and the longest wait (as hotline_queue_* count
    them: a callback's citizen is not on hold), agents by state, and the store's figures."""
    waits: dict[str, list[float]] = {name: [] for name in st.queues}
    for call in st.calls.values():
        if call.state in WAITING and call.callback is None and call.queue in waits:
            waits[call.queue].append(now - call.arrived)
    rows = []
    for name in st.queues:
        agents = dict.fromkeys(AGENT_STATES, 0)
        for a in st.agents.values():
            if a.configured and name in a.queues:
                shown = agent_state(a, now)
                agents[shown] = agents.get(shown, 0) + 1
        rows.append(QueueRow(name, len(waits[name]), figures.duration(max(waits[name], default=0.0)), agents,
                             period(today.get(name, kpi.Totals()) if today is not None else None),
                             period(month.get(name, kpi.Totals()) if month is not None else None)))
    return rows


def agent_rows(st: State, since: dict[str, tuple[str, float]], names: dict[str, str], now: float) -> list[AgentRow]:
    rows = []
    for a in sorted(st.agents.values(), key=lambda a: a.agent_id):
        if not a.configured:
            continue
        label = agent_state(a, now)
        seen = since.get(a.agent_id)
        why = reason(a, now)
        if label == "backed_off":  # the time left, so that nobody wonders why a free agent is not rung
            why = f"{why} {math.ceil(backoff_left(a, now))} s"
        rows.append(AgentRow(a.agent_id, names.get(a.agent_id, ""), label, why,
                             figures.duration(now - seen[1]) if seen is not None and seen[0] == label else "—",
                             a.calls_taken))
    return rows


@dataclass
class TicketLists:
    drafts: list[dict[str, Any]] = field(default_factory=list)
    overdue: list[dict[str, Any]] = field(default_factory=list)
    soon: list[dict[str, Any]] = field(default_factory=list)
    overdue_total: int = 0  # the lists show the first PAGE (nearest deadline first); the counts are all
    soon_total: int = 0
    departments: dict[int, str] = field(default_factory=dict)
    failed: bool = False


# ---- the page -----------------------------------------------------------------------------------


class WallPage:
    def __init__(self, w: Web) -> None:
        self.w = w
        self.dirty = False
        self._flush: asyncio.TimerHandle | None = None
        self._drawn = -math.inf  # loop time of the last drawing of the live part
        self.tickets: TicketLists | None = None
        self._tickets_read = -math.inf
        self._reading: asyncio.Task[None] | None = None
        self.renders = 0  # drawings of the live part (tests check the coalescing)

    def routes(self, router: web.UrlDispatcher) -> None:
        g = self.w.guard
        router.add_get("/wall", g(VIEW, self.page))
        router.add_get("/live/wall", g(VIEW, self.live))
        router.add_post("/wall/agents/{agent}/{action}", g(ACT, self.control))
        router.add_post("/wall/tickets/{number}/urge", g(ACT, self.urge))

    # ---- the engine's side: mark dirty, draw at most every MIN_GAP ------------------------------

    def on_command(self, cmd: Command, now: float) -> None:
        if self.w.hub.watching("wall") == 0:
            return
        self.dirty = True
        if self._flush is None:
            delay = max(0.0, self._drawn + MIN_GAP - now)
            self._flush = asyncio.get_running_loop().call_later(delay, self._flush_due)

    def _flush_due(self) -> None:
        self._flush = None
        if self.dirty:
            self.draw(asyncio.get_running_loop().time())

    def tick(self, now: float) -> None:
        if self.w.hub.watching("wall") == 0:
            return
        self.draw(now)  # the times in state and in line advance every second
        if now - self._tickets_read >= TICKETS_EVERY and (self._reading is None or self._reading.done()):
            self._tickets_read = now
            self._reading = asyncio.create_task(self.read_tickets(), name="wall-tickets")

    def draw(self, now: float) -> None:
        self.dirty = False
        self._drawn = now
        for lang in i18n.LANGS:
            if self.w.hub.watching(f"wall:{lang}"):
                self.renders += 1
                self.w.hub.publish(f"wall:{lang}", Fragment("live", self.live_html(lang, now)))

    def live_html(self, lang: str, now: float) -> str:
        e = self.w.engine
        st = e.dispatcher.state
        wall_now = time.time()
        fig: Figures | None = e.month.figures if e.month is not None else None
        today = fig.today_of(wall_now) if fig is not None else None
        month = fig.month_of(wall_now) if fig is not None else None
        names = {a.id: a.name for a in e.settings.agents}
        return self.w.fragment(
            "wall_live.html", lang, queues=queue_rows(st, today, month, now),
            agents=agent_rows(st, e.dispatcher.metrics.times.current, names, now),
            states=AGENT_STATES, refreshed=figures.age(wall_now - fig.refreshed, lang) if fig is not None else "")

    # ---- the ticket lists ------------------------------------------------------------------------

    async def read_tickets(self) -> None:
        """Read the lists in a worker thread and send them to every wallboard."""
        try:
            self.tickets = await self.w.api.run(self._lists)
        except Exception as exc:  # the store is down: keep the last lists, say so
            log.warning("wall_tickets_read_failed", error=f"{type(exc).__name__}: {exc}")
            self.tickets = dataclasses.replace(self.tickets or TicketLists(), failed=True)
        for lang in i18n.LANGS:
            if self.w.hub.watching(f"wall:{lang}"):
                self.w.hub.publish(f"wall:{lang}", Fragment("tickets", self.tickets_html(lang)))

    def _lists(self) -> TicketLists:
        svc, now = self.w.api.service, self.w.clock()
        overdue, soon = svc.due_list(BOARD, now, "overdue", 1, PAGE), svc.due_list(BOARD, now, "soon", 1, PAGE)
        return TicketLists(drafts=svc.unfinished_drafts(BOARD, now), overdue=overdue["items"], soon=soon["items"],
                           overdue_total=overdue["total"], soon_total=soon["total"],
                           departments={d["id"]: d["name"] for d in self._departments()})

    def _departments(self) -> list[dict[str, Any]]:
        with Session(self.w.api.engine) as s:
            return auth.active_departments(s)

    def tickets_html(self, lang: str) -> str:
        lists = self.tickets or TicketLists()
        now = self.w.clock()

        def due(item: dict[str, Any]) -> figures.Countdown:
            return figures.countdown(figures.parse_time(item["due_at"]), now, lang)

        return self.w.fragment("wall_tickets.html", lang, lists=lists, due=due)

    # ---- routes ----------------------------------------------------------------------------------

    async def page(self, request: web.Request) -> web.StreamResponse:
        who, lang = signed_in(request)
        if self.tickets is None:
            await self.read_tickets()
        return self.w.render(request, "wall.html", may_act=who.role in ACT,
                             live=self.live_html(lang, asyncio.get_running_loop().time()),
                             tickets=self.tickets_html(lang))

    async def live(self, request: web.Request) -> web.StreamResponse:
        """The event stream; its first message is the whole picture (a reconnect catches up)."""
        _, lang = signed_in(request)
        if self.tickets is None:
            await self.read_tickets()
        first = [Fragment("live", self.live_html(lang, asyncio.get_running_loop().time())),
                 Fragment("tickets", self.tickets_html(lang))]
        return await self.w.stream(request, ["wall", f"wall:{lang}"], first)

    async def control(self, request: web.Request) -> web.StreamResponse:
        """强制小休 / 强制签出: the dispatcher applies it as it would the agent's own request."""
        who, lang = signed_in(request)
        agent_id = request.match_info["agent"]
        action = CONTROLS.get(request.match_info["action"])
        agent = self.w.engine.dispatcher.state.agents.get(agent_id)
        if action is None or agent is None or not agent.configured:
            return self.message(lang, 404, f"{agent_id[:16]}: no such agent or action")
        try:
            done = await self.w.engine.dispatcher.control(AgentControl(agent_id, action, FORCE_REASON))
        except TimeoutError:
            return self.message(lang, 503, "引擎未及时响应，请重试 (the engine did not answer in time)")
        log.info("wall_agent_control", agent_id=agent_id, action=action.value, ok=done.ok, by=who.username,
                 reason=done.reason or None)
        self.draw(asyncio.get_running_loop().time())  # a pause of an offline phone changes no label
        if not done.ok:
            return self.message(lang, 409, done.reason)
        done_word = i18n.translator(lang)("wall_force_pause" if action is Control.PAUSE else "wall_force_logout")
        return self.message(lang, 200, f"{agent_id}: {done_word}")

    async def urge(self, request: web.Request) -> web.StreamResponse:
        who, lang = signed_in(request)
        number = request.match_info["number"]
        try:
            view = await self.w.api.run(self.w.api.service.act, who, number, Action.URGE, {"note": URGE_NOTE},
                                        self.w.clock())
        except ServiceError as exc:
            return self.message(lang, exc.status, exc.message)
        log.info("wall_ticket_urged", ticket=view["number"], by=who.username, urged=view["urged"])
        for page in self.w.pages:  # the department's portal shows the 督办 flag now, not at its next read
            if isinstance(page, DeptPage) and view["department_id"] is not None:
                page.changed(int(view["department_id"]))
        await self.read_tickets()
        t = i18n.translator(lang)
        return self.message(lang, 200, f"{t('wall_urge_done')} {view['number']}")

    def message(self, lang: str, status: int, text: str) -> web.Response:
        html = self.w.fragment("wall_message.html", lang, ok=status < 300, text=text)
        return web.Response(text=html, status=status, content_type="text/html", charset="utf-8")

