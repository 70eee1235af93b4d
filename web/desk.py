"""The agent desk (/desk): the agent's own state and buttons, the caller the phone rings for,
the caller's history, the draft 工单 of the answered call with the knowledge base beside it,
and a corner with the callers waiting in the agent's queues and the answer rate.

Where each part comes from:
- state and buttons: the dispatcher's picture (acd/agents.py); the buttons ask the dispatcher
  exactly as the control API and the phone's feature codes do (`dispatcher.control`), so a
  refused request shows the engine's own reason;
- the pop: published from `on_command` the moment the dispatcher has sent the ring to
  Asterisk (RingAgent), from the live Call only; no database on the dispatcher's task;
- the caller's open tickets and last calls, then the draft at the answer: tasks that read the
  store in the ticket API's thread pool and publish a second fragment when they have it;
- every ticket change goes through the ticket service's own actions (register, dispatch,
  answer_directly, attach), so rules, permissions and ServiceError reasons stay in one place.

Who sees what: an agent's desk and stream are keyed by the agent id of the signed-in user
(agents, and supervisors who also sit at a phone), never by anything in the URL; a ticket
posted from the desk must be that agent's own call's ticket. Caller numbers go to the page
masked when the caller withheld them, and never into a URL or a log line. Everything typed
by anyone (a caller's name, a ticket's content, an article) is rendered as text (Jinja's
autoescape; the CSP forbids inline scripts on top).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import OrderedDict
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import structlog
from aiohttp import web
from prometheus_client import Counter
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from acd.agents import Activity, Agent, Control, label, reason
from acd.calls import Call
from acd.commands import AgentStateChanged, CallAnswered, CallRecord, Command, RingAgent
from acd.events import AgentControl
from cti.decode import REASON
from cti.logs import mask_number
from metrics import kpi
from tickets import auth, kb
from tickets.api import _control_character
from tickets.auth import Principal
from tickets.bodies import ActionBody, KbSearchBody
from tickets.lifecycle import Action, State
from tickets.models import TicketRow
from tickets.service import Forbidden, Invalid, ServiceError, TicketService
from web import i18n
from web.forms import read_form
from web.i18n import LANGS
from web.live import Fragment

if TYPE_CHECKING:
    from cti.conference import PartyChange
    from web.app import Web

log = structlog.get_logger("hotline.web.desk")

ROLES = frozenset({"agent", "supervisor"})  # a supervisor opens the desk only with an agent id of their own
# The pause reasons offered (the engine takes any short word: cti.decode.REASON).
PAUSE_REASONS = ("break", "meal", "meeting", "training", "callback")
CATEGORIES = ("咨询", "求助", "投诉", "举报", "建议", "表扬")
URGENCIES = ("normal", "urgent", "critical")
CONFERENCE = ("conference", "leave", "drop_department", "transfer_blind", "transfer_attended")
# A transfer's target as typed: an agent id (cti.dialplan.AGENT_ENDPOINT_ID) or a queue's name
# (config.settings); the conference checks it is a real one.
TRANSFER_TARGET = re.compile(r"[0-9]{2,12}|[a-z][a-z0-9_]{0,31}")
PARTY_LOG = 40  # the joins and leaves a desk lists per call (a call's conference has a handful)
PARTY_CALLS = 500  # calls whose parties are kept until their record is written (a bound, not a cache)
CONF_STATUS = {"bad_target": 422, "ami_down": 503, "timeout": 503}  # a ConferenceError's code; others 409
DRAFT_WAIT = 1.0  # seconds the desk lets DraftMaker open the draft before opening it itself
DEPARTMENTS_EVERY = 60.0  # seconds: the departments' list is re-read at most this often on a call's way
KB_HITS = 8
LONGEST_STEP = 5  # seconds: the corner's longest wait moves in these steps
# The desk's keys (static/hotline.js clicks or focuses the element with that data-key).
SHORTCUTS = (("F2", "content"), ("F4", "kb_search"), ("F7", "department"), ("F8", "dispatch"),
             ("F9", "answer_directly"), ("Alt+P", "act_pause"), ("Alt+R", "act_unpause"), ("Alt+L", "act_login"),
             ("Alt+W", "act_end_wrapup"))

i18n.add({
    "desk": ("坐席工作台", "Agent desk"),
    "desk_agent": ("坐席", "Agent"),
    "desk_state": ("状态", "State"),
    "desk_phone": ("话机", "Phone"),
    "desk_phone_on": ("已注册", "registered"),
    "desk_phone_off": ("未注册", "not registered"),
    "st_logged_out": ("未签入", "logged out"), "st_available": ("空闲", "ready"), "st_paused": ("示忙", "paused"),
    "st_busy_other": ("话机占用", "phone busy"), "st_ringing": ("振铃", "ringing"),
    "st_backed_off": ("拒接回避", "backed off"), "st_unreachable": ("话机失联", "phone unreachable"),
    "st_on_call": ("通话中", "on a call"),
    "st_wrap_up": ("整理", "wrap-up"),
    "act_login": ("签入", "Log in"), "act_logout": ("签出", "Log out"), "act_pause": ("示忙", "Pause"),
    "act_unpause": ("示闲", "Ready"), "act_end_wrapup": ("结束整理", "End wrap-up"),
    "act_done": ("已执行", "Done"),
    "reason": ("原因", "Reason"),
    "r_break": ("小休", "break"), "r_meal": ("用餐", "meal"), "r_meeting": ("会议", "meeting"),
    "r_training": ("培训", "training"), "r_callback": ("回访", "call-backs"),
    "refused": ("未执行", "Refused"),
    "no_call": ("暂无来电", "No call"),
    "incoming": ("来电振铃", "Ringing"),
    "answered": ("通话中", "On the call"),
    "ended": ("通话已结束", "Call ended"),
    "caller_num": ("来电号码", "Number"),
    "caller_name": ("来电姓名", "Name"),
    "withheld": ("隐藏号码", "withheld"),
    "queue": ("队列", "Queue"),
    "waited": ("已等待", "Waited"),
    "seconds": ("秒", "s"),
    "sticky": ("上次由您接听", "You took their last call"),
    "history": ("来电历史", "Caller history"),
    "history_loading": ("正在查询…", "Looking up…"),
    "open_tickets": ("未办结工单", "Open tickets"),
    "last_calls": ("最近来电", "Last calls"),
    "none": ("无", "none"),
    "ticket": ("工单", "Ticket"),
    "ticket_wait": ("接听后打开草稿工单", "The draft ticket opens when you answer"),
    "category": ("类别", "Category"),
    "urgency": ("紧急程度", "Urgency"),
    "u_normal": ("一般", "normal"), "u_urgent": ("紧急", "urgent"), "u_critical": ("特急", "critical"),
    "district": ("区县", "District"),
    "street": ("街道/镇", "Street"),
    "address": ("详细地址", "Address"),
    "content": ("诉求内容", "Request"),
    "choose": ("请选择", "Choose"),
    "department": ("承办单位", "Department"),
    "dispatch": ("转办", "Dispatch"),
    "reply": ("答复内容", "Answer"),
    "answer_directly": ("直接答复", "Answer directly"),
    "attach_to": ("并入已有工单", "Attach to an open ticket"),
    "attach": ("并入", "Attach"),
    "article": ("引用知识", "Article"),
    "kb": ("知识库", "Knowledge base"),
    "kb_search": ("搜索知识库", "Search the knowledge base"),
    "kb_use": ("用于答复", "Use in answer"),
    "kb_none": ("未找到", "Nothing found"),
    "done_dispatched": ("已转办", "Dispatched to"),
    "done_answered": ("已直接答复", "Answered directly"),
    "done_attached": ("已并入工单", "Attached to ticket"),
    "corner_waiting": ("排队", "Waiting"),
    "corner_longest": ("最长等待", "Longest wait"),
    "corner_rate": ("今日接通率", "Answer rate today"),
    "corner_rate_live": ("本次运行接通率", "Answer rate since the engine started"),
    "conf": ("三方通话", "Three-way call"),
    "conf_conference": ("三方通话", "Conference the department"),
    "conf_leave": ("退出三方", "Leave"),
    "conf_drop_department": ("挂断部门", "Drop department"),
    "conf_transfer_blind": ("盲转", "Blind transfer"),
    "conf_transfer_attended": ("咨询转", "Attended transfer"),
    "conf_to": ("转接到坐席或队列", "Transfer to agent or queue"),
    "conf_department": ("部门", "Department"),
    "conf_choose_department": ("请选择三方通话的部门", "Choose the department to conference"),
    "conf_bad_target": ("请填写坐席工号或队列名", "Type an agent id or a queue name"),
    "conf_no_department": ("没有在通话中的部门", "No department is on the call"),
    "conf_not_answering": ("只有接听该通话的坐席可以邀请三方或转接",
                           "Only the agent who answered can conference or transfer"),
    "conf_one_agent": ("已有坐席正在被咨询或转接", "Another agent is already being consulted or transferred to"),
    "conf_nobody_joined": ("第三方尚未接通", "Nobody else has joined yet"),
    "parties": ("通话方", "On the call"),
    "party_caller": ("市民", "Citizen"),
    "party_me": ("本人", "you"),
    "pk_dialing": ("呼叫中", "ringing"), "pk_joined": ("加入", "joined"), "pk_failed": ("未接通", "not reached"),
    "pk_left": ("离开", "left"),
    "pd_leave": ("退出", "left"), "pd_drop": ("被挂断", "dropped"), "pd_transfer": ("已转接", "handed over"),
    "pd_hangup": ("挂机", "hung up"), "pd_BUSY": ("忙", "busy"), "pd_NOANSWER": ("无人接听", "no answer"),
    "pd_CONGESTION": ("线路拥塞", "congestion"), "pd_CHANUNAVAIL": ("无法接通", "unavailable"),
    "pd_CANCEL": ("已取消", "cancelled"),
    "conf_unavailable": ("暂不可用 (not available)", "Not available (暂不可用)"),
    "shortcuts": ("快捷键", "Shortcuts"),
})


def topic(agent_id: str, lang: str) -> str:
    """The agent's stream: "agent:1001" in Chinese, "agent:1001:en" in English (a fragment is
    rendered once per language someone watches in)."""
    return f"agent:{agent_id}" if lang == "zh" else f"agent:{agent_id}:{lang}"


def desk_principal(agent_id: str) -> Principal:
    """The desk's own reads for an agent (the caller look-up, the draft) act as that agent."""
    return Principal(user_id=0, username=f"desk-{agent_id}", role="agent", department_id=None, agent_id=agent_id,
                     display_name="")


@dataclass
class Pop:
    """The call on an agent's desk, from the live Call (the number already masked as shown)."""

    call_id: str
    number: str  # as shown: masked when withheld
    name: str
    restricted: bool
    queue: str
    waited: int
    sticky: bool
    answered: bool = False
    ended: bool = False
    history: dict[str, Any] | None = None  # service.caller's answer, once read


@dataclass
class Ticket:
    """The draft of the answered call, or what became of it."""

    call_id: str
    view: dict[str, Any]
    done: str = ""  # the i18n key of the outcome, once the agent finished it
    done_detail: str = ""


@dataclass
class Party:
    """One party on a call now: "dialing" (its phone rings) or "joined", since when (epoch s)."""

    party: str  # "caller", "agent:<id>" or "number:<digits>" (cti.conference.PartyChange)
    status: str
    since: float | None = None


@dataclass
class Parties:
    """Who is on one call now, and the joins and leaves so far (from the conference's changes).
    Shared by the desks of the agents on that call."""

    call_id: str
    agent_id: str  # who answered
    now: dict[str, Party]
    log: list[PartyChange] = field(default_factory=list)
    ended: bool = False

    def apply(self, change: PartyChange) -> bool:
        """Take one change; False when it says nothing new (a join or a leave reported twice:
        a dropped party's own hang-up and the drop itself, say)."""
        old = self.now.get(change.party)
        if change.kind == "dialing":
            self.now[change.party] = Party(change.party, "dialing", change.at)
        elif change.kind == "joined":
            if old is not None and old.status == "joined" and old.since is not None:
                return False
            self.now[change.party] = Party(change.party, "joined", change.at)
        else:  # failed, left
            if old is None:
                return False
            del self.now[change.party]
            if change.party == "caller":
                self.ended = True
        self.log.append(change)
        del self.log[:-PARTY_LOG]
        return True


@dataclass
class Desk:
    pop: Pop | None = None
    ticket: Ticket | None = None
    parties: Parties | None = None  # the call the 三方通话 card shows
    corner: dict[str, str] = field(default_factory=dict)  # topic -> the corner last sent there


class DeskPage:
    def __init__(self, w: Web) -> None:
        self.w = w
        self.desks: dict[str, Desk] = {}
        self.departments: list[dict[str, str]] = []
        self.calls: OrderedDict[str, Parties] = OrderedDict()  # call id -> its parties, until its record
        self._tasks: set[asyncio.Task[None]] = set()
        # Answered calls whose draft the desk waits for: DraftMaker says when it opened it
        # (draft_opened), so the desk reads the ticket once instead of asking until it is there.
        self._drafts: dict[str, asyncio.Future[int]] = {}
        self._departments_read = -DEPARTMENTS_EVERY

    # ---- routes ---------------------------------------------------------------------------

    def routes(self, router: web.UrlDispatcher) -> None:
        g = self.w.guard
        router.add_get("/desk", g(ROLES, self.page))
        router.add_get("/live/desk", g(ROLES, self.live))
        router.add_post("/desk/agent/{action}", g(ROLES, self.control))
        router.add_post("/desk/ticket/{do}", g(ROLES, self.finish))
        router.add_post("/desk/kb/search", g(ROLES, self.kb_search))
        router.add_post("/desk/kb/use", g(ROLES, self.kb_use))
        router.add_post("/desk/call/{action}", g(ROLES, self.call_control))

    def _who(self, request: web.Request) -> Principal:
        who: Principal = self.w.context(request)["who"]  # set by the guard
        return who

    def _agent(self, request: web.Request) -> str | None:
        return self._who(request).agent_id

    def _lang(self, request: web.Request) -> str:
        lang: str = self.w.context(request)["lang"]
        return lang

    async def page(self, request: web.Request) -> web.StreamResponse:
        agent_id = self._agent(request)
        if agent_id is None:  # a supervisor without a phone of their own
            return self.w.render(request, "denied.html", status=403)
        await self.w.api.run(self._departments)
        desk = self.desks.get(agent_id) or Desk()
        return self.w.render(request, "desk.html", agent=self._agent_view(agent_id), reasons=PAUSE_REASONS,
                             pop=desk.pop, corner=self._corner(agent_id), shortcuts=SHORTCUTS,
                             **self._parties_context(agent_id), **self._ticket_context(desk.ticket))

    async def live(self, request: web.Request) -> web.StreamResponse:
        agent_id = self._agent(request)
        if agent_id is None:
            return web.Response(status=403, text="无坐席工号 (no agent id)")
        lang = self._lang(request)
        self._adopt(agent_id)
        return await self.w.stream(request, [topic(agent_id, lang)], self.picture(agent_id, lang))

    # ---- the picture ----------------------------------------------------------------------

    def picture(self, agent_id: str, lang: str) -> list[Fragment]:
        """The whole desk, sent first on every (re)connect: a dropped stream catches up. Every
        card the stream updates is here, the 三方通话 card too: a party change published while
        the stream was down reached nobody, and would otherwise stay stale until a reload."""
        desk = self.desks.get(agent_id) or Desk()
        return [self._state_fragment(agent_id, lang), self._pop_fragment(desk.pop, lang),
                self._history_fragment(desk.pop, lang), self._ticket_fragment(desk.ticket, lang),
                self._parties_fragment(agent_id, lang),
                Fragment("corner", self.w.fragment("desk_corner.html", lang, corner=self._corner(agent_id)))]

    def _adopt(self, agent_id: str) -> None:
        """A desk opened (or reloaded) mid-call: take the call from the live picture."""
        desk = self.desks.setdefault(agent_id, Desk())
        agent = self.w.engine.dispatcher.state.agents.get(agent_id)
        if desk.parties is None:  # a party (a consulted second agent) on someone else's call
            desk.parties = next((p for p in self.calls.values()
                                 if not p.ended and f"agent:{agent_id}" in p.now), None)
        if agent is None or agent.call_id is None or (desk.pop is not None and desk.pop.call_id == agent.call_id):
            return
        call = self.w.engine.dispatcher.state.calls.get(agent.call_id)
        if call is None:
            return
        if agent.activity is not Activity.RINGING:
            desk.parties = self._call_parties(call.call_id)
        now = self.w.engine.dispatcher.clock()
        desk.pop = self._pop_of(call, agent_id, now)
        desk.pop.answered = agent.activity is not Activity.RINGING
        self._spawn(self._load_history(agent_id, call.call_id, call.caller_num))
        if desk.pop.answered and (desk.ticket is None or desk.ticket.call_id != call.call_id):
            self._spawn(self._load_draft(agent_id, call.call_id, call.caller_num, call.caller_name, call.restricted))

    def _agent_view(self, agent_id: str) -> dict[str, Any]:
        agent: Agent | None = self.w.engine.dispatcher.state.agents.get(agent_id)
        if agent is None or not agent.configured:
            return {"id": agent_id, "label": "logged_out", "reason": "", "registered": False}
        now = self.w.engine.dispatcher.clock()
        return {"id": agent_id, "label": label(agent, now), "reason": reason(agent, now),
                "registered": agent.registered}

    def _corner(self, agent_id: str, rate: tuple[str, bool] | None = None) -> dict[str, Any]:
        st = self.w.engine.dispatcher.state
        agent = st.agents.get(agent_id)
        queues = sorted(agent.queues) if agent is not None else []
        now = self.w.engine.dispatcher.clock()
        waiting, longest = 0, 0.0
        for q in queues:
            line = st.lines.get(q)
            if not line:
                continue
            waiting += len(line)
            head = st.calls.get(next(iter(line))[2])
            if head is not None:
                longest = max(longest, head.waited(now))
        shown, live = rate or self._rate()
        # The longest wait in steps of LONGEST_STEP s: the corner is a glance, and a figure that
        # changed every second would be sent to every desk every second. The step goes along so
        # the template can say "<5 秒" for callers in their first step: "0 秒" reads as nobody.
        return {"queues": tuple(queues), "waiting": waiting, "longest": int(longest) // LONGEST_STEP * LONGEST_STEP,
                "step": LONGEST_STEP, "rate": shown, "rate_live": live}

    def _rate(self) -> tuple[str, bool]:
        """Today's answer rate (the whole hotline, Asia/Shanghai day) from the store's figures that
        the month-to-date refresh reads for the wallboard (cti/month_to_date.py, Figures.today_of);
        until its first refresh, the live counters of this engine's run (offered, answered and
        short abandons since it started), named as such on the page. (bool: the live fallback)"""
        month = self.w.engine.month
        today = month.figures.today_of(time.time()) if month is not None and month.figures is not None else None
        if today is not None:
            return kpi.percent(sum(today.values(), kpi.Totals()).answer_rate), False
        m = self.w.engine.dispatcher.metrics
        totals = kpi.Totals(offered=_total(m.offered), answered=_total(m.answered),
                            short_abandoned=_total(m.short_abandoned))
        return kpi.percent(totals.answer_rate), True

    # ---- fragments ------------------------------------------------------------------------

    def _state_fragment(self, agent_id: str, lang: str) -> Fragment:
        return Fragment("state", self.w.fragment("desk_state.html", lang, agent=self._agent_view(agent_id),
                                                 reasons=PAUSE_REASONS))

    def _pop_fragment(self, pop: Pop | None, lang: str) -> Fragment:
        return Fragment("pop", self.w.fragment("desk_pop.html", lang, pop=pop))

    def _history_fragment(self, pop: Pop | None, lang: str) -> Fragment:
        return Fragment("history", self.w.fragment("desk_history.html", lang, pop=pop))

    def _ticket_fragment(self, ticket: Ticket | None, lang: str) -> Fragment:
        return Fragment("ticket", self.w.fragment("desk_ticket.html", lang, **self._ticket_context(ticket)))

    def _parties_fragment(self, agent_id: str, lang: str) -> Fragment:
        return Fragment("parties", self.w.fragment("desk_parties.html", lang, **self._parties_context(agent_id)))

    def _parties_context(self, agent_id: str) -> dict[str, Any]:
        """The 三方通话 card: who is on the agent's call now and since when, who joined and left
        when (Asia/Shanghai, as the hotline's clock shows it), and which buttons can act now."""
        desk = self.desks.get(agent_id)
        p = desk.parties if desk is not None else None
        if p is None:
            return {"parties": None, "enabled": (), "conference": CONFERENCE}
        now = [{**self._party_view(x.party, agent_id), "status": x.status, "since": self._clock(x.since)}
               for x in p.now.values()]
        log = [{**self._party_view(c.party, agent_id), "at": self._clock(c.at), "change": c.kind,
                "detail": c.detail if f"pd_{c.detail}" in i18n.WORDS else ""} for c in p.log]  # not "by:<id>"
        enabled = {action for action, why in self._buttons(agent_id, p).items() if not why}
        return {"parties": {"call_id": p.call_id, "now": now, "log": log, "ended": p.ended},
                "enabled": enabled, "conference": CONFERENCE}

    @staticmethod
    def _buttons(agent_id: str, p: Parties | None) -> dict[str, str]:
        """Each 三方通话 button for this agent on this call now: "" when it can act, else the i18n
        key of why not. The card disables what call_control refuses, from the same answer."""
        me = f"agent:{agent_id}"
        if p is None or p.ended or me not in p.now:
            return dict.fromkeys(CONFERENCE, "no_call")
        others = [x for x in p.now.values() if x.party not in ("caller", me)]
        answering = agent_id == p.agent_id  # a consulted agent only leaves (or drops the department)
        transfer = "conf_not_answering" if not answering else (
            "conf_one_agent" if any(x.party.startswith("agent:") for x in others) else "")
        return {
            "conference": "" if answering else "conf_not_answering",
            "leave": "" if not answering or any(x.status == "joined" for x in others) else "conf_nobody_joined",
            "drop_department": "" if any(x.party.startswith("number:") for x in others) else "conf_no_department",
            "transfer_blind": transfer,
            "transfer_attended": transfer,
        }

    def _party_view(self, party: str, agent_id: str) -> dict[str, Any]:
        """A party as the card names it: 市民 (never the caller's number), 坐席 1001, or a
        department by the phone it was rung on (a department's number is not caller data)."""
        kind, _, value = party.partition(":")
        name = ""
        if kind == "number":
            name = next((d["name"] for d in self.departments if d["phone"] == value), "")
        return {"key": party, "kind": kind, "value": value, "name": name, "me": party == f"agent:{agent_id}"}

    def _clock(self, at: float | None) -> str:
        return "" if at is None else self.w.api.service.policy.calendar.local(at).strftime("%H:%M:%S")

    def _ticket_context(self, ticket: Ticket | None) -> dict[str, Any]:
        locations = self.w.api.service.policy.locations
        return {"ticket": ticket, "categories": CATEGORIES, "urgencies": URGENCIES,
                "districts": list(locations), "streets": sorted({s for v in locations.values() for s in v}),
                "departments": self.departments}

    def _departments(self) -> None:
        """The departments a ticket goes to, read with each desk's page load (and each draft), kept
        for the fragments drawn on the loop."""
        with Session(self.w.api.engine) as s:
            self.departments = auth.active_departments(s)

    # ---- publishing -----------------------------------------------------------------------

    def _langs(self, agent_id: str) -> list[str]:
        hub = self.w.hub
        return [lang for lang in LANGS if hub.watching(topic(agent_id, lang))]

    def _publish(self, agent_id: str, *which: str) -> None:
        desk = self.desks.get(agent_id) or Desk()
        for lang in self._langs(agent_id):
            for part in which:
                match part:
                    case "state":
                        f = self._state_fragment(agent_id, lang)
                    case "pop":
                        f = self._pop_fragment(desk.pop, lang)
                    case "history":
                        f = self._history_fragment(desk.pop, lang)
                    case "parties":
                        f = self._parties_fragment(agent_id, lang)
                    case _:
                        f = self._ticket_fragment(desk.ticket, lang)
                self.w.hub.publish(topic(agent_id, lang), f)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ---- the engine's side ----------------------------------------------------------------

    def on_command(self, cmd: Command, now: float) -> None:
        """On the dispatcher's task, after the command went out: cheap when no desk watches,
        never a database read here (those are tasks), never raises (Web.on_command guards)."""
        match cmd:
            case RingAgent():
                for agent_id in cmd.agent_ids:
                    if self._langs(agent_id):
                        self._ringing(agent_id, cmd.call_id, now)
            case CallAnswered():
                if cmd.agent_id and self._langs(cmd.agent_id):
                    self._answered(cmd.agent_id, cmd.call_id)
            case AgentStateChanged():
                if self._langs(cmd.agent_id):
                    self._state_changed(cmd)
            case CallRecord():
                parties = self.calls.pop(cmd.call_id, None)
                if parties is not None:
                    parties.ended = True
                    for agent_id in self._party_agents(parties):
                        if agent_id != cmd.agent_id and self._langs(agent_id):
                            self._publish(agent_id, "parties")
                if cmd.agent_id and self._langs(cmd.agent_id):
                    desk = self.desks.get(cmd.agent_id)
                    if desk is not None and desk.pop is not None and desk.pop.call_id == cmd.call_id:
                        desk.pop.ended = True
                        self._publish(cmd.agent_id, "pop", "parties")
            case _:
                pass

    def party_changed(self, change: PartyChange) -> None:
        """The conference's report (cti/conference.py: on_change, on the engine's loop): the
        desks of the agents on that call (who answered, an agent brought in) show it at once.
        Kept for the call whether or not anyone watches (a desk opened later shows it); drawn
        and published only for desks that are open. Never raises (Web.party_changed guards)."""
        parties = self._call_parties(change.call_id)
        if parties is None or not parties.apply(change):
            return
        for agent_id in self._party_agents(parties):
            if not self._langs(agent_id):
                continue
            desk = self.desks.setdefault(agent_id, Desk())
            if desk.parties is not parties and (agent_id == parties.agent_id or f"agent:{agent_id}" in parties.now):
                desk.parties = parties  # a consulted agent's desk takes the call's card
            if desk.parties is parties:
                self._publish(agent_id, "parties")

    def _call_parties(self, call_id: str) -> Parties | None:
        """The call's parties, begun from the live call (the caller and the agent who answered)."""
        found = self.calls.get(call_id)
        if found is not None:
            return found
        call = self.w.engine.dispatcher.state.calls.get(call_id)
        if call is None or call.agent_id is None:
            return None
        parties = Parties(call_id, call.agent_id, {"caller": Party("caller", "joined"),
                                                   f"agent:{call.agent_id}": Party(f"agent:{call.agent_id}",
                                                                                   "joined")})
        self.calls[call_id] = parties
        while len(self.calls) > PARTY_CALLS:  # a record that never came: the oldest goes
            self.calls.popitem(last=False)
        return parties

    @staticmethod
    def _party_agents(parties: Parties) -> list[str]:
        """The agents whose desks show this call: who answered, and every agent party so far."""
        agents = [parties.agent_id]
        for party in [*parties.now, *(c.party for c in parties.log)]:
            kind, _, value = party.partition(":")
            if kind == "agent" and value not in agents:
                agents.append(value)
        return agents

    def _pop_of(self, call: Call, agent_id: str, now: float) -> Pop:
        return Pop(call_id=call.call_id, number=mask_number(call.caller_num, call.restricted), name=call.caller_name,
                   restricted=call.restricted, queue=call.queue, waited=int(call.waited(now)),
                   sticky=call.sticky_agent == agent_id)

    def _ringing(self, agent_id: str, call_id: str, now: float) -> None:
        call = self.w.engine.dispatcher.state.calls.get(call_id)
        if call is None:
            return
        desk = self.desks.setdefault(agent_id, Desk())
        desk.pop = self._pop_of(call, agent_id, now)
        desk.parties = None
        self._publish(agent_id, "pop", "history", "parties")  # the pop first; the history follows from the store
        self._spawn(self._load_history(agent_id, call_id, call.caller_num))

    def _answered(self, agent_id: str, call_id: str) -> None:
        desk = self.desks.setdefault(agent_id, Desk())
        call = self.w.engine.dispatcher.state.calls.get(call_id)
        if desk.pop is None or desk.pop.call_id != call_id:
            if call is None:
                return
            desk.pop = self._pop_of(call, agent_id, self.w.engine.dispatcher.clock())
            self._spawn(self._load_history(agent_id, call_id, call.caller_num))
        desk.pop.answered = True
        desk.parties = self._call_parties(call_id)
        self._publish(agent_id, "pop", "parties")
        if call_id not in self._drafts:
            self._drafts[call_id] = asyncio.get_running_loop().create_future()
        self._spawn(self._load_draft(agent_id, call_id, call.caller_num if call else "",
                                     call.caller_name if call else "", call.restricted if call else False))

    def _state_changed(self, cmd: AgentStateChanged) -> None:
        desk = self.desks.get(cmd.agent_id)
        parts = ["state"]
        if cmd.old == "ringing" and cmd.new != "on_call" and desk is not None and desk.pop is not None \
                and not desk.pop.answered:
            desk.pop = None  # the ring ended unanswered (or another agent took a ring-all call)
            parts += ["pop", "history", "parties"]
        self._publish(cmd.agent_id, *parts)

    async def _load_history(self, agent_id: str, call_id: str, number: str) -> None:
        if not number:
            history: dict[str, Any] = {"open_tickets": [], "calls": []}
        else:
            try:
                history = await self.w.api.run(self.w.api.service.caller, desk_principal(agent_id), number,
                                               self.w.clock(), 5)
            except Exception as exc:  # the store is down: the pop stands without the history
                log.warning("desk_history_failed", agent_id=agent_id, call_id=call_id, error=type(exc).__name__)
                return
        desk = self.desks.get(agent_id)
        if desk is None or desk.pop is None or desk.pop.call_id != call_id:
            return  # another call rings by now
        local = self._local_time
        history["calls"] = [{**c, "arrived": local(c["arrived"])} for c in history["calls"] if c["call_id"] != call_id]
        history["open_tickets"] = [{**tk, "created": local(tk["created"])} for tk in history["open_tickets"]]
        desk.pop.history = history
        self._publish(agent_id, "history")

    def _local_time(self, iso: str | None) -> str:
        """A stored UTC time as the hotline's clock shows it (minutes)."""
        if not iso:
            return ""
        at = datetime.fromisoformat(iso).timestamp()
        return self.w.api.service.policy.calendar.local(at).strftime("%Y-%m-%d %H:%M")

    def draft_opened(self, call_id: str, ticket_id: int) -> None:
        """DraftMaker's report (on the loop): the draft of an answered call is in the store."""
        waiter = self._drafts.get(call_id)
        if waiter is not None and not waiter.done():
            waiter.set_result(ticket_id)

    async def _load_draft(self, agent_id: str, call_id: str, number: str, name: str, restricted: bool) -> None:
        service = self.w.api.service
        who = desk_principal(agent_id)
        waiter = self._drafts.get(call_id)
        ticket_id: int | None = None
        try:
            if waiter is not None:  # DraftMaker opens it from the same answer: wait for its word
                ticket_id = await asyncio.wait_for(asyncio.shield(waiter), DRAFT_WAIT)
        except TimeoutError:
            pass  # the store is slow or DraftMaker's hand-off was full: look, then open it here
        finally:
            if self._drafts.get(call_id) is waiter:
                self._drafts.pop(call_id, None)
        try:
            if ticket_id is not None:
                view: dict[str, Any] | None = await self.w.api.run(service.get, who, ticket_id, self.w.clock())
            else:
                view = await self.w.api.run(_find_draft, service, who, call_id, self.w.clock())
            if time.monotonic() - self._departments_read >= DEPARTMENTS_EVERY:
                await self.w.api.run(self._departments)
                self._departments_read = time.monotonic()
            if view is None:  # open_draft is idempotent per call: a draft DraftMaker opened meanwhile is returned
                opened = await self.w.api.run(lambda: service.open_draft(
                    call_id=call_id, caller_num=number, caller_name=name, restricted=restricted, agent_id=agent_id,
                    recording=None, now=self.w.clock()))
                view = await self.w.api.run(service.get, who, int(opened["id"]), self.w.clock())
        except Exception as exc:
            log.warning("desk_draft_failed", agent_id=agent_id, call_id=call_id, error=type(exc).__name__)
            return
        if view.get("agent_id") not in (None, agent_id):
            return
        desk = self.desks.setdefault(agent_id, Desk())
        desk.ticket = Ticket(call_id=call_id, view=view)
        self._publish(agent_id, "ticket")

    def tick(self, now: float) -> None:
        """The corner (callers waiting, the answer rate): sent only when it changed. Drawn once
        per distinct corner (desks of the same queues share one), not once per desk: this runs
        on the loop the dispatcher shares."""
        rate: tuple[str, bool] | None = None
        drawn: dict[tuple[Any, ...], str] = {}
        for t in self.w.hub.topics():
            if not t.startswith("agent:"):
                continue
            rate = rate or self._rate()  # once a tick, for every desk
            agent_id, _, lang = t[len("agent:"):].partition(":")
            desk = self.desks.setdefault(agent_id, Desk())
            corner = self._corner(agent_id, rate)
            key = (lang, *corner.values())
            html = drawn.get(key)
            if html is None:
                html = drawn[key] = self.w.fragment("desk_corner.html", lang or "zh", corner=corner)
            if desk.corner.get(t) != html:
                desk.corner[t] = html
                self.w.hub.publish(t, Fragment("corner", html))

    # ---- the agent's requests -------------------------------------------------------------

    async def control(self, request: web.Request) -> web.StreamResponse:
        agent_id = self._agent(request)
        lang = self._lang(request)
        t = i18n.translator(lang)
        if agent_id is None:
            return web.Response(status=403, text="无坐席工号 (no agent id)")
        try:
            action = Control(request.match_info["action"])
        except ValueError:
            raise web.HTTPNotFound() from None
        form = await read_form(request)
        reason = str(form.get("reason", "")) if action is Control.PAUSE else ""
        if reason and not REASON.fullmatch(reason):
            return self._control_answer(lang, f"{t('refused')}: reason", True, 422)
        try:
            done = await self.w.engine.dispatcher.control(AgentControl(agent_id, action, reason))
        except TimeoutError:
            return self._control_answer(lang, "引擎未及时响应，请重试 (the engine did not answer in time)",
                                        True, 503)
        if not done.ok:
            return self._control_answer(lang, f"{t('refused')}: {done.reason}", True, 409)
        return self._control_answer(lang, f"{t('act_' + action.value)} · {t('act_done')}", False, 200)

    def _control_answer(self, lang: str, message: str, error: bool, status: int) -> web.Response:
        """The outcome under the buttons; the state itself comes by the stream (AgentStateChanged)."""
        html = self.w.fragment("desk_message.html", lang, message=message, error=error)
        return web.Response(text=html, status=status, content_type="text/html", charset="utf-8")

    async def finish(self, request: web.Request) -> web.StreamResponse:
        """转办 (register, then dispatch), 直接答复 (register, then answer directly) or 并入 (attach)."""
        who = self._who(request)
        agent_id = who.agent_id
        lang = self._lang(request)
        do = request.match_info["do"]
        if agent_id is None or do not in ("dispatch", "answer", "attach"):
            raise web.HTTPNotFound()
        form = await read_form(request)
        try:
            ticket_id = int(str(form.get("ticket", "")))
        except ValueError:
            raise web.HTTPBadRequest(text="ticket?") from None
        desk = self.desks.setdefault(agent_id, Desk())
        try:
            body = _body(form, do)
            view = await self.w.api.run(_finish, self.w.api.service, who, ticket_id, do, body, self.w.clock())
        except ServiceError as exc:
            return await self._refused(agent_id, ticket_id, exc.message, exc.status, lang)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "body"
            return await self._refused(agent_id, ticket_id, f"{where}: {first['msg']}", 422, lang)
        except DBAPIError:  # the store is down or failing over: say so; the form stays as typed
            return await self._refused(agent_id, ticket_id, "工单库暂时不可用，本次操作未执行，请稍后重试 (the ticket "
                                       "store is unavailable: nothing was changed, try again shortly)", 503, lang)
        if do == "dispatch":
            dept = view.get("department") or {}
            done, detail = "done_dispatched", f"{dept.get('name', '')}"
        elif do == "answer":
            done, detail = "done_answered", ""
        else:
            done, detail = "done_attached", str(body.get("target", ""))
        call_id = desk.ticket.call_id if desk.ticket is not None and desk.ticket.view["id"] == ticket_id else ""
        desk.ticket = Ticket(call_id=call_id, view=view, done=done, done_detail=detail)
        log.info("desk_ticket_finished", agent_id=agent_id, ticket=view["number"], action=do)
        return self._ticket_answer(desk.ticket, lang, 200)

    async def _refused(self, agent_id: str, ticket_id: int, message: str, status: int, lang: str) -> web.Response:
        """The reason, shown above the form the agent typed (which stays as typed); the ticket's
        version and state move along when a first step (登记) went through before the refusal."""
        try:
            view = await self.w.api.run(self.w.api.service.get, desk_principal(agent_id), ticket_id, self.w.clock())
        except (ServiceError, DBAPIError):
            view = None
        if view is not None and view.get("agent_id") != agent_id:
            view = None
        desk = self.desks.get(agent_id)
        if view is not None and desk is not None and desk.ticket is not None and desk.ticket.view["id"] == ticket_id:
            desk.ticket.view = view
        html = self.w.fragment("desk_refused.html", lang, message=f"{status} · {message}", view=view)
        return web.Response(text=html, status=status, content_type="text/html", charset="utf-8",
                            headers={"HX-Retarget": "#ticket-error", "HX-Reswap": "innerHTML"})

    def _ticket_answer(self, ticket: Ticket, lang: str, status: int) -> web.Response:
        html = self._ticket_fragment(ticket, lang).html
        return web.Response(text=html, status=status, content_type="text/html", charset="utf-8")

    async def kb_search(self, request: web.Request) -> web.StreamResponse:
        form = await read_form(request)
        text = " ".join(str(form.get("q", "")).split())[:200]
        hits: list[dict[str, Any]] = []
        if text and _control_character(text) is None:
            today = self.w.api.service.policy.calendar.local(self.w.clock().timestamp()).date()
            body = KbSearchBody(text=text, per_page=KB_HITS)
            hits, _ = await self.w.api.run(self.w.api._kb_search, body, today)
        html = self.w.fragment("desk_kb.html", self._lang(request), hits=hits, searched=bool(text))
        return web.Response(text=html, content_type="text/html", charset="utf-8")

    async def kb_use(self, request: web.Request) -> web.StreamResponse:
        """An article's answer into the 直接答复 box, cited by its id."""
        form = await read_form(request)
        try:
            article_id = int(str(form.get("article_id", "")))
        except ValueError:
            raise web.HTTPBadRequest(text="article_id?") from None
        article = await self.w.api.run(_article, self.w.api, article_id)
        if article is None:
            raise web.HTTPNotFound(text="知识库文章不存在 (no such article)")
        html = self.w.fragment("desk_reply.html", self._lang(request), reply=article["body"], article=article)
        return web.Response(text=html, content_type="text/html", charset="utf-8")

    async def call_control(self, request: web.Request) -> web.StreamResponse:
        """三方通话 and transfers on the agent's current call, through the engine's conference
        (cti/conference.py: add_party, leave, drop_party, transfer_blind, transfer_attended).

        The department is posted by its code and rung on the phone of its record in the store
        (never a number typed in the browser); a transfer's target is an agent id or a queue's
        name. An agent brought into someone else's call (a consultation) can leave it. Until the
        engine has a conference (`engine.conference`), every button answers 暂不可用."""
        action = request.match_info["action"]
        if action not in CONFERENCE:
            raise web.HTTPNotFound()
        agent_id = self._agent(request)
        t = i18n.translator(self._lang(request))

        def answer(text: str, status: int = 200) -> web.Response:
            return web.Response(text=text, status=status, content_type="text/plain", charset="utf-8")

        conference: Any = getattr(self.w.engine, "conference", None)
        if conference is None or agent_id is None:
            return answer(t("conf_unavailable"), 503)
        call_id = self._conference_call(agent_id)
        # The buttons the card enables are the ones that act: a consulted agent's forced post to
        # transfer or conference someone else's call is refused here (the conference checks it too).
        why = self._buttons(agent_id, self.calls.get(call_id) if call_id is not None else None)[action]
        if call_id is None or why:
            return answer(f"{t('refused')}: {t(why or 'no_call')}", 409)
        form = await read_form(request)
        to = str(form.get("to", "")).strip()
        try:
            match action:
                case "conference":
                    code = str(form.get("department", ""))
                    await self.w.api.run(self._departments)  # the record as it is now
                    phone = next((d["phone"] for d in self.departments if d["code"] == code and d["phone"]), None)
                    if phone is None:
                        return answer(f"{t('refused')}: {t('conf_choose_department')}", 422)
                    await conference.add_party(call_id, phone, who=agent_id)
                case "leave":
                    await conference.leave(call_id, agent_id)
                case "drop_department":
                    parties = self.calls.get(call_id)
                    numbers = [p for p in (parties.now if parties is not None else {}) if p.startswith("number:")]
                    if not numbers:
                        return answer(f"{t('refused')}: {t('conf_no_department')}", 409)
                    for party in numbers:
                        await conference.drop_party(call_id, party)
                case _:
                    if not TRANSFER_TARGET.fullmatch(to):
                        return answer(f"{t('refused')}: {t('conf_bad_target')}", 422)
                    if action == "transfer_blind":
                        await conference.transfer_blind(call_id, to, who=agent_id)
                    else:
                        await conference.transfer_attended(call_id, to, who=agent_id)
        except Exception as exc:  # ConferenceError: the engine's reason, Chinese first
            return answer(f"{t('refused')}: {exc}", CONF_STATUS.get(getattr(exc, "code", ""), 409))
        return answer(f"{t('conf_' + action)} · {t('act_done')}")

    def _conference_call(self, agent_id: str) -> str | None:
        """The call the agent's buttons act on: their own (answered) call, or the call they were
        brought into (an agent party's phone is not the core's call of theirs). Its parties are
        kept in `calls` from here on, whether or not the agent's desk is open."""
        agent = self.w.engine.dispatcher.state.agents.get(agent_id)
        if agent is not None and agent.call_id is not None and agent.activity is not Activity.RINGING:
            return agent.call_id if self._call_parties(agent.call_id) is not None else None
        me = f"agent:{agent_id}"
        for parties in reversed(self.calls.values()):
            if not parties.ended and me in parties.now:
                return parties.call_id
        return None


def _total(counter: Counter) -> int:
    """A per-queue counter summed over its queues (that counter's own samples: not a scrape of
    the whole registry)."""
    return int(sum(s.value for family in counter.collect() for s in family.samples if s.name.endswith("_total")))


# ---- store work (in the ticket API's threads) ---------------------------------------------------


def _find_draft(service: TicketService, who: Principal, call_id: str, now: datetime) -> dict[str, Any] | None:
    """The ticket the call opened (origin_call_id), as the agent sees it; None while not opened yet."""
    with Session(service.engine) as s:
        ticket_id = s.scalar(select(TicketRow.id).where(TicketRow.origin_call_id == call_id))
    return None if ticket_id is None else service.get(who, ticket_id, now)


def _body(form: Mapping[str, Any], do: str) -> dict[str, Any]:
    """The action's body from the desk's form, checked by the API's own model (same limits, same 422)."""
    names = {"dispatch": ("category", "urgency", "district", "street", "address", "content", "department", "version"),
             "answer": ("category", "urgency", "district", "street", "address", "content", "reply", "article_id",
                        "version"),
             "attach": ("target", "version")}[do]
    raw = {n: str(form[n]).strip() for n in names if n in form and str(form[n]).strip()}
    bad = _control_character(raw)
    if bad is not None:
        raise Invalid(f"{bad}: 含有控制字符 (a control character)", field=bad)
    return ActionBody.model_validate(raw).model_dump(exclude_none=True, exclude_defaults=True)


FORM = ("category", "urgency", "district", "street", "address", "content")


def _finish(service: TicketService, who: Principal, ticket_id: int, do: str, body: dict[str, Any],
            now: datetime) -> dict[str, Any]:
    """The agent's last step on their call's ticket, through the service's own actions."""
    view = service.get(who, ticket_id, now)
    if view["agent_id"] != who.agent_id:
        raise Forbidden("只能处理本人来电的工单 (only your own call's ticket)", field="ticket")
    version = body.get("version")
    if do == "attach":
        return service.act(who, ticket_id, Action.ATTACH, {"target": body.get("target"), "version": version}, now)
    form = {k: body[k] for k in FORM if k in body}
    if view["state"] == State.DRAFT.value:
        view = service.act(who, ticket_id, Action.REGISTER, {**form, "version": version}, now)
    elif view["state"] == State.REGISTERED.value and form:
        view = service.act(who, ticket_id, Action.EDIT, {**form, "version": version}, now)
    if do == "dispatch":
        return service.act(who, ticket_id, Action.DISPATCH, {"department": body.get("department")}, now)
    return service.act(who, ticket_id, Action.ANSWER_DIRECTLY,
                       {"reply": body.get("reply"), "article_id": body.get("article_id")}, now)


def _article(api: Any, article_id: int) -> dict[str, Any] | None:
    with Session(api.engine) as s:
        row = kb.get_article(s, article_id)
        return None if row is None else {"id": row.id, "title": row.title, "body": row.body}
