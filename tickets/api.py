"""The ticket platform's HTTP API (JSON, OpenAPI 3 at /api/v1/openapi.json).

Every route but login and the document needs `Authorization: Bearer <token>` from
POST /api/v1/login. Bodies are checked by pydantic models (422 names the field), an
illegal transition is 409 with the allowed actions, a role or department that may not is
403 with the reason, a body over `max_body_bytes` is 413. Caller numbers travel in bodies,
never in URLs (access logs and browser history keep URLs): lookups and searches are POSTs.
Cross-origin browser requests are refused like the control API's.

Database work runs in a thread pool of its own, so the event loop (and the routing engine
sharing it inside `hotline run`) never waits on the database.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal, TypeVar

import aiohttp
import structlog
from aiohttp import web
from aiohttp.web_protocol import RequestPayloadError
from pydantic import BaseModel, ValidationError
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session

from cti.http import _same_origin
from tickets import auth, kb
from tickets.auth import Principal
from tickets.bodies import (
    ActionBody,
    ArticleBody,
    ArticlePatch,
    CallerBody,
    CreateBody,
    KbSearchBody,
    LinkCallBody,
    LoginBody,
    SearchBody,
)
from tickets.lifecycle import Action
from tickets.openapi import PREFIX, document
from tickets.permissions import MAY_MANAGE_KB
from tickets.service import Filters, Forbidden, Invalid, NotFound, ServiceError, TicketService

log = structlog.get_logger("hotline.tickets.api")
T = TypeVar("T")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
PRINCIPAL = web.RequestKey("principal", Principal)


@dataclass
class ApiSettings:
    token_ttl: timedelta = timedelta(hours=8)
    max_failures: int = 5
    failure_window: timedelta = timedelta(minutes=15)
    lockout: timedelta = timedelta(minutes=15)
    max_body_bytes: int = 64 * 1024


def error(status: int, code: str, message: str, **extra: Any) -> web.Response:
    headers = {}
    if "retry_after" in extra and extra["retry_after"] is not None:
        headers["Retry-After"] = str(max(1, int(extra["retry_after"] + 0.999)))
    return web.json_response({"error": code, "message": message, **extra}, status=status, headers=headers or None)


CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 409: "conflict",
         413: "too_large", 422: "invalid", 429: "too_many_attempts", 503: "unavailable"}


class TicketApi:
    def __init__(self, engine: Engine, service: TicketService, settings: ApiSettings,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC), workers: int = 8) -> None:
        self.engine, self.service, self.settings, self.clock = engine, service, settings, clock
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tickets-db")

    async def run(self, fn: Callable[..., T], *args: Any, **kw: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.pool, functools.partial(fn, *args, **kw))

    def app(self) -> web.Application:
        app = web.Application(client_max_size=self.settings.max_body_bytes,
                              middlewares=[self._errors, self._authenticate])
        r = app.router
        r.add_get(f"{PREFIX}/openapi.json", self.openapi)
        r.add_post(f"{PREFIX}/login", self.login)
        r.add_post(f"{PREFIX}/logout", self.logout)
        r.add_get(f"{PREFIX}/me", self.me)
        r.add_post(f"{PREFIX}/tickets", self.create)
        r.add_post(f"{PREFIX}/tickets/search", self.search)
        r.add_get(f"{PREFIX}/tickets/overdue", functools.partial(self.due, which="overdue"))
        r.add_get(f"{PREFIX}/tickets/soon-due", functools.partial(self.due, which="soon"))
        r.add_get(f"{PREFIX}/tickets/unfinished-drafts", self.drafts)
        r.add_get(PREFIX + "/tickets/{ref}", self.get)
        r.add_get(PREFIX + "/tickets/{ref}/history", self.history)
        r.add_post(PREFIX + "/tickets/{ref}/calls", self.link_call)
        r.add_post(PREFIX + "/tickets/{ref}/actions/{action}", self.act)
        r.add_post(f"{PREFIX}/callers/lookup", self.caller)
        r.add_get(f"{PREFIX}/departments", self.departments)
        r.add_post(f"{PREFIX}/kb/search", self.kb_search)
        r.add_post(f"{PREFIX}/kb/articles", self.kb_add)
        r.add_get(PREFIX + "/kb/articles/{id}", self.kb_get)
        r.add_patch(PREFIX + "/kb/articles/{id}", self.kb_update)
        app.on_cleanup.append(self._close)
        return app

    async def _close(self, _app: web.Application) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)

    # ---- middlewares --------------------------------------------------------------------

    @web.middleware
    async def _errors(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method not in ("GET", "HEAD", "OPTIONS") and not _same_origin(request):
            return error(403, "cross_origin", "跨站请求被拒绝 (cross-origin requests are refused)")
        try:
            return await handler(request)
        except ServiceError as exc:
            extra: dict[str, Any] = {}
            if exc.field:
                extra["field"] = exc.field
            if exc.allowed or exc.status == 409:
                extra["allowed"] = list(exc.allowed)
            return error(exc.status, CODES[exc.status], exc.message, **extra)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "body"
            return error(422, "invalid", f"{where}: {first['msg']}", field=where,
                         problems=[{"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"]}
                                   for e in exc.errors()[:20]])
        except kb.KbError as exc:
            return error(422, "invalid", str(exc), field=exc.field)
        except DBAPIError as exc:
            if not exc.connection_invalidated and not isinstance(exc, OperationalError):
                raise
            # The database is down or failing over: say so (and that nothing was changed), not 500.
            log.warning("tickets_store_unavailable", error=type(exc.orig).__name__ if exc.orig else "",
                        path=request.path)
            return error(503, "unavailable", "工单库暂时不可用，本次操作未执行，请稍后重试 (the ticket store is "
                                             "unavailable: nothing was changed, try again shortly)",
                         retry_after=5)
        except web.HTTPRequestEntityTooLarge:
            return error(413, "too_large", f"请求体超过 {self.settings.max_body_bytes} 字节 (body too large)")
        except web.HTTPException as exc:
            if exc.status >= 400:
                return error(exc.status, CODES.get(exc.status, "error"), exc.reason)
            raise

    @web.middleware
    async def _authenticate(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in (f"{PREFIX}/login", f"{PREFIX}/openapi.json") or request.match_info.route.resource is None \
                or not request.path.startswith(PREFIX + "/"):
            return await handler(request)  # the pages (web/) sign in with their cookie, checked per route
        token = _bearer(request)
        if token is None:
            return error(401, "unauthorized", "需要登录: Authorization: Bearer <token> (POST /api/v1/login)")
        principal = await self.run(self._who, token, self.clock())
        if principal is None:
            return error(401, "unauthorized", "令牌无效或已过期，请重新登录 (token invalid or expired)")
        request[PRINCIPAL] = principal
        return await handler(request)

    def _who(self, token: str, now: datetime) -> Principal | None:
        with Session(self.engine) as s:
            return auth.authenticate(s, token, now)

    # ---- helpers ------------------------------------------------------------------------

    async def _body(self, request: web.Request, model: type[BaseModel]) -> Any:
        try:
            raw = await request.read()
        except (RequestPayloadError, aiohttp.http_exceptions.HttpProcessingError, ValueError):
            raise ServiceError("请求体无法读取 (a body that does not match its Content-Encoding)",
                               field="body") from None
        if len(raw) > self.settings.max_body_bytes:  # chunked bodies are read whole, then measured
            raise web.HTTPRequestEntityTooLarge(max_size=self.settings.max_body_bytes, actual_size=len(raw))
        try:
            data = json.loads(raw or b"{}")
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise ServiceError("请求体不是 JSON (the body must be a JSON object)", field="body") from None
        if not isinstance(data, dict):
            raise ServiceError("请求体必须是 JSON 对象 (the body must be a JSON object)", field="body")
        bad = _control_character(data)
        if bad is not None:  # PostgreSQL refuses NUL in text; none of these fields has a use for any
            raise Invalid(f"{bad}: 含有控制字符 (a control character such as NUL)", field=bad)
        return model.model_validate(data)

    @staticmethod
    def _ref(request: web.Request) -> int | str:
        ref = request.match_info["ref"]
        if ref.isascii() and ref.isdigit() and len(ref) >= 13:  # a ticket number: date + 5-digit sequence
            return ref
        if ref.isascii() and ref.isdigit() and len(ref) <= 9:
            return int(ref)
        raise ServiceError(f"{ref!r} 不是工单编号或 id", field="ref")

    # ---- routes -------------------------------------------------------------------------

    async def openapi(self, _request: web.Request) -> web.Response:
        return web.json_response(document())

    async def login(self, request: web.Request) -> web.Response:
        body: LoginBody = await self._body(request, LoginBody)
        s = self.settings
        try:
            issued = await self.run(self._login, body.username, body.password, self.clock(),
                                    request.remote or "", s)
        except auth.LoginRefused as refused:
            status = 429 if refused.retry_after else 401
            return error(status, CODES[status], refused.reason, retry_after=refused.retry_after)
        return web.json_response({"token": issued.token, "expires": issued.expires.isoformat(),
                                  "user": _principal(issued.principal)})

    def _login(self, username: str, password: str, now: datetime, source: str, s: ApiSettings) -> auth.Issued:
        with Session(self.engine) as session:
            try:
                issued = auth.login(session, username, password, now, source=source, ttl=s.token_ttl,
                                    max_failures=s.max_failures, window=s.failure_window, lockout=s.lockout)
            except auth.LoginRefused:
                session.commit()  # the failure it recorded counts towards the limit
                raise
            session.commit()
            return issued

    async def logout(self, request: web.Request) -> web.Response:
        token = _bearer(request) or ""
        await self.run(self._logout, token)
        return web.json_response({"ok": True})

    def _logout(self, token: str) -> None:
        with Session(self.engine) as s, s.begin():
            auth.logout(s, token)

    async def me(self, request: web.Request) -> web.Response:
        return web.json_response(_principal(request[PRINCIPAL]))

    async def create(self, request: web.Request) -> web.Response:
        body: CreateBody = await self._body(request, CreateBody)
        view = await self.run(self.service.create, request[PRINCIPAL], body.model_dump(exclude_none=True),
                              self.clock())
        return web.json_response(view, status=201)

    async def get(self, request: web.Request) -> web.Response:
        return web.json_response(await self.run(self.service.get, request[PRINCIPAL], self._ref(request),
                                                self.clock()))

    async def history(self, request: web.Request) -> web.Response:
        return web.json_response(await self.run(self.service.history, request[PRINCIPAL], self._ref(request)))

    async def act(self, request: web.Request) -> web.Response:
        name = request.match_info["action"]
        if name not in Action._value2member_map_ or name == Action.OPEN_DRAFT.value:
            raise ServiceError(f"未知操作 {name!r}", field="action",
                               allowed=[a.value for a in Action if a is not Action.OPEN_DRAFT])
        body: ActionBody = await self._body(request, ActionBody)
        view = await self.run(self.service.act, request[PRINCIPAL], self._ref(request), Action(name),
                              body.model_dump(exclude_none=True), self.clock())
        return web.json_response(view)

    async def link_call(self, request: web.Request) -> web.Response:
        body: LinkCallBody = await self._body(request, LinkCallBody)
        return web.json_response(await self.run(self.service.link_call, request[PRINCIPAL], self._ref(request),
                                                body.call_id, body.recording, self.clock()))

    async def search(self, request: web.Request) -> web.Response:
        body: SearchBody = await self._body(request, SearchBody)
        return web.json_response(await self.run(self.service.search, request[PRINCIPAL],
                                                Filters(**body.model_dump()), self.clock()))

    async def due(self, request: web.Request, which: Literal["overdue", "soon"]) -> web.Response:
        page = _int(request.query.get("page", "1"), "page", 1, 100_000)
        return web.json_response(await self.run(self.service.due_list, request[PRINCIPAL], self.clock(), which,
                                                page))

    async def drafts(self, request: web.Request) -> web.Response:
        return web.json_response({"items": await self.run(self.service.unfinished_drafts, request[PRINCIPAL],
                                                          self.clock())})

    async def caller(self, request: web.Request) -> web.Response:
        body: CallerBody = await self._body(request, CallerBody)
        return web.json_response(await self.run(self.service.caller, request[PRINCIPAL], body.number, self.clock()))

    async def departments(self, request: web.Request) -> web.Response:
        return web.json_response({"items": await self.run(self._departments)})

    def _departments(self) -> list[dict[str, Any]]:
        with Session(self.engine) as s:
            return [{"code": d.code, "name": d.name, "phone": d.phone, "active": d.active}
                    for d in auth.list_departments(s)]

    async def kb_search(self, request: web.Request) -> web.Response:
        body: KbSearchBody = await self._body(request, KbSearchBody)
        today = self.service.policy.calendar.local(self.clock().timestamp()).date()
        hits, total = await self.run(self._kb_search, body, today)
        return web.json_response({"total": total, "page": body.page, "per_page": body.per_page, "items": hits})

    def _kb_search(self, body: KbSearchBody, today: date) -> tuple[list[dict[str, Any]], int]:
        with Session(self.engine) as s:
            hits, total = kb.search(s, body.text, today=today, category=body.category,
                                    include_expired=body.include_expired, limit=body.per_page,
                                    offset=(body.page - 1) * body.per_page)
            return [_plain(h) for h in hits], total

    def _kb_writer(self, request: web.Request) -> Principal:
        who = request[PRINCIPAL]
        if who.role not in MAY_MANAGE_KB:
            raise Forbidden(f"{who.role} 无权编辑知识库 (supervisors and admins edit the knowledge base)")
        return who

    async def kb_add(self, request: web.Request) -> web.Response:
        who = self._kb_writer(request)
        body: ArticleBody = await self._body(request, ArticleBody)
        return web.json_response(await self.run(self._kb_add, who, body, self.clock()), status=201)

    def _kb_add(self, who: Principal, body: ArticleBody, now: datetime) -> dict[str, Any]:
        with Session(self.engine) as s, s.begin():
            row = kb.add_article(s, title=body.title, body=body.body, category=body.category, tags=body.tags,
                                 valid_from=body.valid_from, valid_to=body.valid_to, author=who.username, now=now)
            s.flush()
            return _article(row)

    async def kb_get(self, request: web.Request) -> web.Response:
        article_id = _int(request.match_info["id"], "id", 1, 2**31 - 1)
        return web.json_response(await self.run(self._kb_get, article_id))

    def _kb_get(self, article_id: int) -> dict[str, Any]:
        with Session(self.engine) as s:
            row = kb.get_article(s, article_id)
            if row is None:
                raise NotFound(f"知识库文章 {article_id} 不存在")
            return _article(row)

    async def kb_update(self, request: web.Request) -> web.Response:
        self._kb_writer(request)
        article_id = _int(request.match_info["id"], "id", 1, 2**31 - 1)
        body: ArticlePatch = await self._body(request, ArticlePatch)
        return web.json_response(await self.run(self._kb_update, article_id, body, self.clock()))

    def _kb_update(self, article_id: int, body: ArticlePatch, now: datetime) -> dict[str, Any]:
        with Session(self.engine) as s, s.begin():
            row = kb.update_article(s, article_id, now, **body.model_dump(exclude_unset=True))
            return _article(row)


def _bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def _int(text: str, name: str, low: int, high: int) -> int:
    if not (text.isascii() and text.isdigit()) or not low <= int(text) <= high:
        raise ServiceError(f"{name} 必须是 {low}..{high} 的整数", field=name)
    return int(text)


def _control_character(data: Any, where: str = "") -> str | None:
    """The field (dotted path) of the first string holding a control character other than
    tab, newline and carriage return, or None."""
    if isinstance(data, str):
        return where or "body" if any((ord(c) < 32 and c not in "\t\n\r") or c == "\x7f" for c in data) else None
    items = data.items() if isinstance(data, dict) else enumerate(data) if isinstance(data, list) else ()
    for key, value in items:
        found = _control_character(value, f"{where}.{key}" if where else str(key))
        if found is not None:
            return found
    return None


def _principal(p: Principal) -> dict[str, Any]:
    return {"username": p.username, "role": p.role, "department_id": p.department_id, "agent_id": p.agent_id,
            "display_name": p.display_name}


def _plain(obj: Any) -> dict[str, Any]:
    out = dataclasses.asdict(obj) if dataclasses.is_dataclass(obj) and not isinstance(obj, type) else dict(obj)
    return {k: (v.isoformat() if isinstance(v, date | datetime) else v) for k, v in out.items()}


def _article(row: Any) -> dict[str, Any]:
    return {"id": row.id, "title": row.title, "body": row.body, "category": row.category,
            "tags": row.tags.split() if row.tags else [], "uses": row.uses,
            "valid_from": row.valid_from.isoformat() if row.valid_from else None,
            "valid_to": row.valid_to.isoformat() if row.valid_to else None, "author": row.author}
