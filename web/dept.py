"""The department portal (/dept): a 承办单位's inbox of the tickets dispatched to it, and each
ticket's page with 签收, 退单, 申请延期 and 办结反馈.

Every read and change goes through the ticket service with the signed-in principal: the
service scopes a department's queries to its own tickets and the lifecycle table decides what
may happen, so this page re-implements neither (another department's ticket is "not found",
a wrong step is the service's 409, a missing reason its 422, shown in the page). Actions are
plain form posts (the CSRF token in a hidden field): they work without script, and an error
page keeps its status.

Live inbox (topic f"dept:{id}"): the ticket service's `committed` hook is the push relay's and
fires only when pushing is on, and a dispatch may come from another process (an agent's desk
on another engine, the API), so the portal does not wait to be told: while a department's
inbox is open, the web clock re-reads it every REREAD seconds (one indexed query on
department_id per watched department) and sends it only when it changed. Changes made here
or by the wallboard's 督办 (`changed`) are sent at once.
"""

from __future__ import annotations

import asyncio
import math
from typing import TYPE_CHECKING, Any

import structlog
from aiohttp import web

from acd.commands import Command
from tickets.auth import Principal
from tickets.lifecycle import Action
from tickets.service import URGENCIES, Filters, NotFound, ServiceError
from web import figures, i18n
from web.forms import read_form
from web.live import Fragment

if TYPE_CHECKING:
    from web.app import Web

log = structlog.get_logger("hotline.web.dept")

ROLE = frozenset({"department"})
REREAD = 3.0  # seconds between re-reads of a watched inbox
INBOX_SIZE = 100
# What a department may do from its page, with the field each needs (the service checks it).
ACTIONS: dict[str, tuple[Action, str | None]] = {
    "accept": (Action.ACCEPT, None), "return": (Action.RETURN, "note"),
    "request_extension": (Action.REQUEST_EXTENSION, "note"), "reply": (Action.REPLY, "reply")}

i18n.add({
    "dept_title": ("承办单位工单", "Department tickets"),
    "dept_inbox": ("待办工单", "Inbox"),
    "dept_empty": ("暂无转办给本单位的工单", "No tickets dispatched to your department"),
    "dept_number": ("工单号", "Ticket"),
    "dept_category": ("类别", "Type"),
    "dept_urgency": ("紧急程度", "Urgency"),
    "dept_district": ("区县", "District"),
    "dept_state": ("状态", "State"),
    "dept_deadline": ("办理期限", "Deadline"),
    "dept_urged": ("督办", "Urged"),
    "dept_urged_times": ("次督办", "× urged"),
    "dept_created": ("登记时间", "Registered"),
    "dept_content": ("诉求内容", "Request"),
    "dept_address": ("地址", "Address"),
    "dept_caller": ("来电人", "Caller"),
    "dept_accept_due": ("签收期限", "Accept by"),
    "dept_handle_due": ("办结期限", "Answer by"),
    "dept_reply": ("办理结果", "Reply"),
    "dept_history": ("办理记录", "History"),
    "dept_back": ("返回待办", "Back to the inbox"),
    "dept_accept": ("签收", "Accept"),
    "dept_return": ("退单", "Return"),
    "dept_return_reason": ("退单理由", "Why it is not ours"),
    "dept_extend": ("申请延期", "Ask for more time"),
    "dept_extend_reason": ("延期理由", "Why more time is needed"),
    "dept_answer": ("办结反馈", "Send the answer"),
    "dept_answer_text": ("办理结果", "What was done"),
    "dept_not_found": ("工单不存在，或不属于本单位", "No such ticket, or not your department's"),
    "dept_no_actions": ("当前状态下本单位无需操作", "Nothing for your department to do in this state"),
    "dept_done": ("已提交", "Done"),
    "dept_overdue_count": ("超期", "Overdue"),
    "dept_open_count": ("办理中/待签收", "Open"),
})


def signed_in(request: web.Request) -> tuple[Principal, str]:
    """Who is on this request (the guard put them there) and the page's language."""
    from web.app import WHO, language  # noqa: PLC0415 - web.app imports the page modules

    return request[WHO], language(request)


def reader(department_id: int) -> Principal:
    """A principal of `department_id` for the inbox's re-reads: the service scopes by it."""
    return Principal(user_id=0, username=f"dept-{department_id}-inbox", role="department",
                     department_id=department_id, agent_id=None, display_name="")


def inbox_order(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Running deadlines first, the nearest on top (the service's ISO times are all UTC: they
    sort as text); then the rest as the search gave them, newest first."""
    running = sorted((i for i in items if i["due_at"]), key=lambda i: str(i["due_at"]))
    return running + [i for i in items if not i["due_at"]]


class DeptPage:
    def __init__(self, w: Web) -> None:
        self.w = w
        self._read_at: dict[int, float] = {}
        self._reading: dict[int, asyncio.Task[None]] = {}
        self._sent: dict[tuple[int, str], str] = {}  # the inbox last sent per (department, language)

    def routes(self, router: web.UrlDispatcher) -> None:
        g = self.w.guard
        router.add_get("/dept", g(ROLE, self.inbox))
        router.add_get("/live/dept", g(ROLE, self.live))
        router.add_get("/dept/tickets/{number}", g(ROLE, self.ticket))
        router.add_post("/dept/tickets/{number}/{action}", g(ROLE, self.act))

    def on_command(self, cmd: Command, now: float) -> None:
        pass  # calls are not the portal's business

    def tick(self, now: float) -> None:
        for dept in self._watched():
            if now - self._read_at.get(dept, -math.inf) >= REREAD:
                self._read_at[dept] = now
                self.changed(dept)

    def _watched(self) -> set[int]:
        out = set()
        for topic in self.w.hub.topics():
            kind, _, rest = topic.partition(":")
            if kind == "dept" and rest.isdigit():
                out.add(int(rest))
        for dept in set(self._read_at) - out:  # nobody watches any more: forget what was sent
            self._read_at.pop(dept, None)
            for lang in i18n.LANGS:
                self._sent.pop((dept, lang), None)
        return out

    def changed(self, department_id: int) -> None:
        """A ticket of this department may have changed: re-read its inbox and send it if it differs."""
        running = self._reading.get(department_id)
        if running is not None and not running.done():
            return
        if self.w.hub.watching(f"dept:{department_id}") == 0:
            return
        self._reading[department_id] = asyncio.create_task(self._resend(department_id), name="dept-inbox")

    async def _resend(self, department_id: int) -> None:
        try:
            items = await self.w.api.run(self._items, reader(department_id))
        except Exception as exc:  # the store is down: the page keeps what it shows
            log.warning("dept_inbox_read_failed", department_id=department_id, error=f"{type(exc).__name__}: {exc}")
            return
        for lang in i18n.LANGS:
            topic = f"dept:{department_id}:{lang}"
            if self.w.hub.watching(topic):
                html = self.inbox_html(items, lang)
                if self._sent.get((department_id, lang)) != html:
                    self._sent[(department_id, lang)] = html
                    self.w.hub.publish(topic, Fragment("inbox", html))

    def _items(self, who: Principal) -> list[dict[str, Any]]:
        found = self.w.api.service.search(who, Filters(per_page=INBOX_SIZE), self.w.clock())
        return inbox_order(found["items"])

    def inbox_html(self, items: list[dict[str, Any]], lang: str) -> str:
        now = self.w.clock()

        def due(item: dict[str, Any]) -> figures.Countdown:
            return figures.countdown(figures.parse_time(item["due_at"]), now, lang)

        return self.w.fragment("dept_inbox.html", lang, items=items, due=due, urgencies=URGENCIES,
                               overdue=sum(1 for i in items if i["overdue"]),
                               running=sum(1 for i in items if i["due_at"]))

    # ---- routes ----------------------------------------------------------------------------------

    async def inbox(self, request: web.Request) -> web.StreamResponse:
        who, lang = signed_in(request)
        items = await self.w.api.run(self._items, who)
        return self.w.render(request, "dept.html", inbox=self.inbox_html(items, lang))

    async def live(self, request: web.Request) -> web.StreamResponse:
        """The inbox's event stream; its first message is the whole inbox (a reconnect catches up)."""
        who, lang = signed_in(request)
        dept = who.department_id
        if dept is None:  # a department user always has one (tickets/auth.py); refuse rather than guess
            raise web.HTTPForbidden()
        items = await self.w.api.run(self._items, who)
        # The read ran before the stream subscribes (Web.stream subscribes, then sends `first`): a
        # change published meanwhile went only to the streams already open, and the inbox last sent
        # there would make the next re-reads, which find the same, send nothing. Forgotten, the
        # next re-read is sent to every stream of this department and language. No await between
        # here and the subscription, so no re-read can set it again before this stream watches.
        self._sent.pop((dept, lang), None)
        return await self.w.stream(request, [f"dept:{dept}", f"dept:{dept}:{lang}"],
                                   [Fragment("inbox", self.inbox_html(items, lang))])

    async def ticket(self, request: web.Request) -> web.StreamResponse:
        return await self._ticket_page(request, request.match_info["number"])

    async def _ticket_page(self, request: web.Request, number: str, status: int = 200, error: str = "",
                           form: dict[str, str] | None = None) -> web.StreamResponse:
        who, lang = signed_in(request)
        now = self.w.clock()
        try:
            view = await self.w.api.run(self.w.api.service.get, who, number, now)
            history = await self.w.api.run(self.w.api.service.history, who, number)
        except NotFound:
            # Another department's ticket looks exactly like no ticket: nothing of it is shown.
            return self.w.render(request, "dept_missing.html", status=404)
        deadlines = {name: figures.countdown(figures.parse_time(view[name]), now, lang)
                     for name in ("accept_due", "handle_due", "due_at")}
        actions = [a for a in ACTIONS if a in view["allowed_actions"]]
        return self.w.render(request, "dept_ticket.html", status=status, ticket=view, history=history,
                             deadlines=deadlines, actions=actions, error=error, form=form or {}, urgencies=URGENCIES,
                             local_time=figures.local_time)

    async def act(self, request: web.Request) -> web.StreamResponse:
        who, _ = signed_in(request)
        number, name = request.match_info["number"], request.match_info["action"]
        if name not in ACTIONS:
            raise web.HTTPNotFound()
        action, field_name = ACTIONS[name]
        posted = await read_form(request)
        body = {field_name: str(posted.get(field_name, ""))[:4000]} if field_name else {}
        try:
            view = await self.w.api.run(self.w.api.service.act, who, number, action, body, self.w.clock())
        except NotFound:
            return self.w.render(request, "dept_missing.html", status=404)
        except ServiceError as exc:
            # The service's own words (wrong state 409, a missing reason 422), on the ticket's page,
            # with what was typed kept in its box.
            return await self._ticket_page(request, number, exc.status, exc.message, form=body)
        log.info("dept_ticket_action", ticket=view["number"], action=action.value, by=who.username)
        if who.department_id is not None:
            self.changed(who.department_id)
        # A returned ticket is no longer the department's: back to the inbox, not to a 404.
        raise web.HTTPSeeOther("/dept" if action is Action.RETURN else f"/dept/tickets/{view['number']}")
