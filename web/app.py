"""The pages: the agent desk (/desk), the supervisor wallboard (/wall) and the department
portal (/dept), served by the ticket listener beside its API, with the same users and tokens.

Why server-rendered HTML with htmx and SSE: the pages are forms and tables whose truth lives
in the engine and the store; rendering them here keeps one copy of every rule (who may see
what, how a number is masked, what a state is called), and htmx turns a stream of HTML
fragments and plain form posts into a live page with ~50 kB of vendored script and no
build step. Every asset is served from web/static: the hotline's network may have no
internet.

Security: the session cookie is HttpOnly and SameSite=Strict; every POST needs the CSRF
token (web/session.py) and a same-origin Origin (the API's middleware); the Content
Security Policy allows scripts and styles only from this site, so a script tag someone typed
into a ticket could not run even if it were not escaped (it is: Jinja's autoescape).

Sessions are looked up in the store at most every SESSION_TTL seconds per token (a short
cache in memory): a page request needs no database read, and while the store is down an
agent already signed in keeps a working desk (pause, unpause: the dispatcher needs no store)
on the principal last validated, as long as the token has not expired. Open streams re-check
their session every live.RECHECK seconds, and signing out ends that session's streams at once.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import jinja2
import structlog
from aiohttp import web
from sqlalchemy import Engine as Store
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session

from acd.commands import Command
from tickets import auth
from tickets.auth import Principal
from tickets.models import TokenRow
from tickets.permissions import ROLE_LABELS
from web import live
from web import session as sess
from web.dept import DeptPage
from web.desk import DeskPage
from web.forms import FORM_ENCODING, FormEncodingError, read_form
from web.i18n import LANGS, translator
from web.live import Fragment, Hub
from web.wall import WallPage

if TYPE_CHECKING:
    from cti.conference import PartyChange
    from cti.engine import Engine
    from tickets.api import TicketApi

log = structlog.get_logger("hotline.web")
HERE = Path(__file__).parent
STATIC = HERE / "static"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
WHO = web.RequestKey("who", Principal)
TOKEN = web.RequestKey("token", str)
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "font-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'")
HOME = {"agent": "/desk", "supervisor": "/wall", "admin": "/wall", "department": "/dept"}
TICK = 1.0  # the live pages' clocks (time in state, longest wait) advance once a second
SESSION_TTL = 30.0  # seconds a validated session is trusted without reading the store again
SESSION_CACHE_MAX = 10_000  # sessions kept in memory; beyond, the expired ones are dropped
SIGNED_OUT_KEPT = 300.0
# While the store is down: a session stands in only if it was validated no more than this long
# before the store last answered (an entry from hours ago may be of a user disabled since), and
# the store is not asked again for OUTAGE_BACKOFF seconds after it failed (a PostgreSQL that
# does not answer takes its connect timeout per lookup, on the ticket API's few threads).
FALLBACK_WINDOW = 120.0
OUTAGE_BACKOFF = 5.0
# A static file's name: one or two segments, none starting with "." (no "..", no hidden file).
# The handler also checks that the resolved path stays in STATIC: two layers, either enough.
STATIC_NAME = r"[A-Za-z0-9_-][A-Za-z0-9._-]*(/[A-Za-z0-9_-][A-Za-z0-9._-]*)?"
STORE_DOWN = "工单库暂时不可用，请稍后刷新 (the ticket store is unavailable: reload shortly)"


class StoreDown(Exception):
    """The store did not answer a session lookup and no validated session could stand in."""


def outage(exc: DBAPIError) -> bool:
    """The database is down or failing over (as the ticket API's middleware tells it), not a bug."""
    return exc.connection_invalidated or isinstance(exc, OperationalError)


@dataclass
class CachedSession:
    principal: Principal
    expires: datetime  # the token's own expiry: never trusted past it, outage or not
    checked: float  # Web.ticks() at the last validation against the store
    warned: bool = False  # the outage fallback was logged for this token


class Page(Protocol):
    """A page module: its routes, what it makes of the dispatcher's commands, its clock tick."""

    def routes(self, router: web.UrlDispatcher) -> None: ...

    def on_command(self, cmd: Command, now: float) -> None: ...

    def tick(self, now: float) -> None: ...


@dataclass
class Web:
    """What every page shares: the engine, the hub, the ticket API's pool and service, templates."""

    engine: Engine
    api: TicketApi
    hub: Hub
    csrf_key: bytes
    env: jinja2.Environment
    pages: list[Page] = field(default_factory=list)
    # The dispatcher's commands and the conference's changes, for the pages once the loop is free.
    _later: list[tuple[Command, float] | PartyChange] = field(default_factory=list)
    _flush_due: bool = False
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    sessions: dict[str, CachedSession] = field(default_factory=dict)  # by web.session.token_key
    ticks: Callable[[], float] = time.monotonic  # the session cache's clock (a test's own)
    # Sessions signed out here, and when: a lookup that was under way as one signed out must
    # not put it back in the cache. Kept SIGNED_OUT_KEPT seconds (no lookup takes that long).
    signed_out: dict[str, float] = field(default_factory=dict)
    store_ok_at: float = 0.0  # ticks() of the store's last answer to a session lookup
    store_failed_since: float | None = None  # ticks() of the first failed lookup since the store last answered
    # Sessions signed out while the store could not revoke them (token key -> token): refused
    # here until revoked, which is tried again as soon as the store answers.
    unrevoked: dict[str, str] = field(default_factory=dict)
    _revoking: asyncio.Task[None] | None = None
    store_down_until: float = 0.0  # ticks(): no session lookup before this (the store just failed)

    # ---- rendering ------------------------------------------------------------------------

    def render(self, request: web.Request, template: str, status: int = 200, **context: Any) -> web.Response:
        html = self.env.get_template(template).render(**self.context(request), **context)
        return web.Response(text=html, status=status, content_type="text/html", charset="utf-8",
                            headers=page_headers())

    def fragment(self, template: str, lang: str = "zh", **context: Any) -> str:
        return self.env.get_template(template).render(t=translator(lang), lang=lang, **context)

    def context(self, request: web.Request) -> dict[str, Any]:
        lang = language(request)
        who = request.get(WHO)
        token = request.get(TOKEN)
        return {"t": translator(lang), "lang": lang, "who": who,
                "role_label": ROLE_LABELS[who.role] if who else "",
                "csrf": sess.csrf_token(self.csrf_key, token) if token else "", "path": request.path}

    # ---- signing in -----------------------------------------------------------------------

    async def principal(self, request: web.Request) -> tuple[Principal, str] | None:
        """Who the session cookie stands for, or None. Raises StoreDown when the store cannot
        say and no session validated before can stand in."""
        token = sess.session_token(request)
        if token is None:
            return None
        who = await self.session(token)
        return None if who is None else (who, token)

    async def session(self, token: str) -> Principal | None:
        """The principal of `token`: from the cache within SESSION_TTL of its last validation,
        else from the store; while the store is down, the last validated one until the token
        expires."""
        key = sess.token_key(token)
        if key in self.unrevoked:
            return None  # signed out during an outage: the store has not been told yet
        cached = self.sessions.get(key)
        if cached is not None and cached.expires <= self.clock():
            del self.sessions[key]
            cached = None
        if cached is not None and self.ticks() - cached.checked < SESSION_TTL:
            return cached.principal
        if self.ticks() < self.store_down_until:  # the store failed just now: do not wait on it again
            return self.stand_in(cached, None)
        try:
            return await self.validate(token)
        except DBAPIError as exc:
            if not outage(exc):
                raise
            self.store_failed()
            return self.stand_in(cached, exc)

    def store_failed(self) -> None:
        self.store_down_until = self.ticks() + OUTAGE_BACKOFF
        if self.store_failed_since is None:
            self.store_failed_since = self.ticks()

    def stand_in(self, cached: CachedSession | None, exc: DBAPIError | None) -> Principal:
        """While the store is down: the session validated before, if validated no more than
        FALLBACK_WINDOW before the outage began (an older one may be of a user disabled since);
        else StoreDown."""
        began = self.store_failed_since if self.store_failed_since is not None else self.ticks()
        if cached is None or began - cached.checked > FALLBACK_WINDOW or cached.expires <= self.clock():
            raise StoreDown() from exc
        if not cached.warned:  # once per token and outage: not once per request
            cached.warned = True
            log.warning("web_session_from_cache", user=cached.principal.username,
                        error=(type(exc.orig).__name__ if exc.orig else type(exc).__name__) if exc else "backoff")
        return cached.principal

    async def validate(self, token: str) -> Principal | None:
        """Look `token` up in the store now (the cache updated). Raises DBAPIError."""
        key = sess.token_key(token)
        found = await self.api.run(lookup, self.api.engine, token, self.clock())
        if found is None or key in self.signed_out:
            self.sessions.pop(key, None)
            return None
        who, expires = found
        self.store_ok_at = self.ticks()
        self.store_failed_since = None
        if self.unrevoked and (self._revoking is None or self._revoking.done()):
            self._revoking = asyncio.get_running_loop().create_task(self._revoke_unrevoked())
        self.sessions.pop(key, None)  # re-inserted last: the dict's order is the order of validation
        self.sessions[key] = CachedSession(who, expires, self.ticks())
        while len(self.sessions) > SESSION_CACHE_MAX:  # the longest unchecked go first
            del self.sessions[next(iter(self.sessions))]
        return who

    async def _revoke_unrevoked(self) -> None:
        """The store answers again: revoke the sessions signed out while it could not."""
        for key, token in list(self.unrevoked.items()):
            try:
                await self.api.run(self.api._logout, token)
            except DBAPIError as exc:
                if not outage(exc):
                    raise
                return  # down again: tried at its next answer
            self.unrevoked.pop(key, None)
            log.info("web_sign_out_stored")

    def guard(self, roles: frozenset[str], handler: Handler) -> Handler:
        """A page route for `roles`: signed in (or sent to /login), the CSRF token on writes."""

        async def guarded(request: web.Request) -> web.StreamResponse:
            try:
                return await checked(request)
            except FormEncodingError:
                return web.Response(status=400, text=FORM_ENCODING)
            except StoreDown:
                return self.store_down(request)
            except DBAPIError as exc:
                if not outage(exc):
                    raise
                log.warning("web_store_unavailable", path=request.path,
                            error=type(exc.orig).__name__ if exc.orig else "")
                return self.store_down(request)

        async def checked(request: web.Request) -> web.StreamResponse:
            found = await self.principal(request)
            if found is None:
                if request.method == "GET" and "HX-Request" not in request.headers \
                        and request.headers.get("Accept", "") != "text/event-stream":
                    raise web.HTTPSeeOther(sess.login_url(request.path))
                resp = web.Response(status=401, text="请重新登录 (sign in again)", headers={"HX-Redirect": "/login"})
                sess.clear_session(resp)
                return resp
            who, token = found
            if who.role not in roles:
                return self.render(request, "denied.html", status=403) if request.method == "GET" else \
                    web.Response(status=403, text="无权访问 (not for your role)")
            if request.method not in ("GET", "HEAD"):
                offered = request.headers.get(sess.CSRF_HEADER)
                if offered is None and request.content_type in ("application/x-www-form-urlencoded",
                                                                "multipart/form-data"):
                    offered = str((await read_form(request)).get(sess.CSRF_FIELD, ""))
                if not sess.csrf_ok(self.csrf_key, token, offered):
                    log.warning("web_csrf_refused", path=request.path, user=who.username)
                    return web.Response(status=403,
                                        text="页面已过期，请刷新 (CSRF token missing or wrong: reload the page)")
            request[WHO] = who
            request[TOKEN] = token
            return await handler(request)

        return guarded

    def store_down(self, request: web.Request) -> web.Response:
        """503 while the store is down: a page for a browser's GET, the words alone for htmx."""
        if request.method == "GET" and "HX-Request" not in request.headers \
                and request.headers.get("Accept", "") != "text/event-stream":
            return self.render(request, "unavailable.html", status=503)
        return web.Response(status=503, text=STORE_DOWN, headers={"Retry-After": "5"})

    async def login_page(self, request: web.Request) -> web.StreamResponse:
        try:
            found = await self.principal(request)
        except StoreDown:
            found = None  # the form needs no store; signing in will say if it is still down
        if found is not None:
            raise web.HTTPSeeOther(sess.local_path(request.query.get("next"), HOME[found[0].role]))
        return self.render(request, "login.html", next=sess.local_path(request.query.get("next"), ""), error="")

    async def login(self, request: web.Request) -> web.StreamResponse:
        try:
            form = await read_form(request)
        except FormEncodingError:
            return web.Response(status=400, text=FORM_ENCODING)
        username, password = str(form.get("username", ""))[:64], str(form.get("password", ""))[:256]
        next_path = sess.local_path(str(form.get("next", "")), "")
        s = self.api.settings
        try:
            issued = await self.api.run(self.api._login, username, password, self.clock(), request.remote or "", s)
        except auth.LoginRefused as refused:
            resp = self.render(request, "login.html", next=next_path, error=refused.reason)
            resp.set_status(429 if refused.retry_after else 401)
            return resp
        except DBAPIError as exc:
            if not outage(exc):
                raise
            log.warning("web_sign_in_store_unavailable", error=type(exc.orig).__name__ if exc.orig else "")
            return self.render(request, "unavailable.html", status=503)
        resp = see_other(next_path or HOME[issued.principal.role])
        sess.set_session(resp, request, issued.token, int(s.token_ttl.total_seconds()))
        log.info("web_signed_in", user=issued.principal.username, role=issued.principal.role)
        return resp

    async def logout(self, request: web.Request) -> web.StreamResponse:
        token = request[TOKEN]
        key = sess.token_key(token)
        try:
            await self.api.run(self.api._logout, token)
        except DBAPIError as exc:
            if not outage(exc):
                raise
            # The store cannot revoke it now: the pages refuse it all the same (a shared seat must
            # not keep the last agent's session) and revoke it as soon as the store answers.
            self.unrevoked[key] = token
            log.warning("web_sign_out_not_stored", user=request[WHO].username,
                        hint="revoked in the store as soon as it answers again")
        now = self.ticks()
        for k in [k for k, at in self.signed_out.items() if now - at > SIGNED_OUT_KEPT]:
            del self.signed_out[k]
        self.signed_out[key] = now
        self.sessions.pop(key, None)
        self.hub.close_token(key)  # its open pages stop receiving now; their reconnect is refused
        resp = see_other("/login")
        sess.clear_session(resp)
        return resp

    async def home(self, request: web.Request) -> web.StreamResponse:
        raise web.HTTPSeeOther(HOME[request[WHO].role])

    async def set_language(self, request: web.Request) -> web.StreamResponse:
        lang = request.match_info["lang"]
        resp = see_other(sess.local_path(request.query.get("next"), "/"))
        if lang in LANGS:
            resp.set_cookie(sess.LANG_COOKIE, lang, max_age=365 * 86400, path="/", samesite="Strict",
                            httponly=True, secure=request.secure)
        return resp

    async def static(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        path = (STATIC / name).resolve()
        if not path.is_relative_to(STATIC.resolve()) or not path.is_file():
            raise web.HTTPNotFound()
        return web.FileResponse(path, headers={"Cache-Control": "public, max-age=3600",
                                               "X-Content-Type-Options": "nosniff"})

    # ---- the engine's side ----------------------------------------------------------------

    def on_command(self, cmd: Command, now: float) -> None:
        """The dispatcher's observer, called after each command is carried out. The pages' work
        is only queued here and done once the dispatcher has handled every event it had read:
        drawn here, it would delay the routing of the next event of the same read (its ring's
        Redirect), which the benchmark showed as the pages' cost. Order is kept."""
        self._later.append((cmd, now))
        self._soon()

    def party_changed(self, change: PartyChange) -> None:
        """The conference's observer (`Conference.on_change`, on the engine's loop): who joined
        or left a call goes to the desks of the agents on it, in order with the commands."""
        self._later.append(change)
        self._soon()

    def _soon(self) -> None:
        if not self._flush_due:
            self._flush_due = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        """Carry out what the dispatcher and the conference reported: never raises."""
        self._flush_due = False
        later, self._later = self._later, []
        for item in later:
            for page in self.pages:
                try:
                    if isinstance(item, tuple):
                        page.on_command(*item)
                    elif isinstance(page, DeskPage):
                        page.party_changed(item)
                except Exception:
                    log.exception("web_page_update_failed", page=type(page).__name__)

    async def run(self) -> None:
        """The one clock of all live pages (not one timer per page): once a second, while anyone watches."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(TICK)
            if not self.hub.topics():
                continue
            now = loop.time()
            for page in self.pages:
                try:
                    page.tick(now)
                except Exception:
                    log.exception("web_page_tick_failed", page=type(page).__name__)

    def install(self, app: web.Application) -> None:
        r = app.router
        r.add_get("/login", self.login_page)
        r.add_post("/login", self.login)
        r.add_post("/logout", self.guard(frozenset(HOME), self.logout))
        r.add_get("/", self.guard(frozenset(HOME), self.home))
        r.add_get("/lang/{lang}", self.set_language)
        r.add_get("/static/{name:" + STATIC_NAME + "}", self.static)
        for page in self.pages:
            page.routes(r)
        app.on_shutdown.append(self._shutdown)

    async def _shutdown(self, _app: web.Application) -> None:
        self.hub.close_all()

    def stream(self, request: web.Request, topics: list[str], first: list[Fragment]) -> Awaitable[web.StreamResponse]:
        """The page's event stream, tied to its session: closed when it signs out, and ended
        when a re-check finds the session gone or the user's role, agent or department changed."""
        token, who = request[TOKEN], request[WHO]

        async def still_valid() -> bool:
            # Asked of the store itself (not the 30-s cache): a re-check is seldom, and it is how
            # a disabled user's open page ends. During an outage the cached session stands in.
            key = sess.token_key(token)
            try:
                if self.ticks() < self.store_down_until:
                    now: Principal | None = self.stand_in(self.sessions.get(key), None)
                else:
                    try:
                        now = None if key in self.unrevoked else await self.validate(token)
                    except DBAPIError as exc:
                        if not outage(exc):
                            raise
                        self.store_failed()
                        now = self.stand_in(self.sessions.get(key), exc)
            except StoreDown:
                return False  # down, and this session cannot stand in (expired, or validated too long ago)
            return now is not None and same_seat(now, who)

        return live.stream(request, self.hub, topics, first, token_key=sess.token_key(token),
                           still_valid=still_valid)


def lookup(store: Store, token: str, now: datetime) -> tuple[Principal, datetime] | None:
    """The principal of a session token and when the token expires (in a worker thread)."""
    with Session(store) as s:
        who = auth.authenticate(s, token, now)
        if who is None:
            return None
        row = s.get(TokenRow, sess.token_key(token))  # loaded by authenticate: no second read
        assert row is not None
        expires = row.expires
        return who, expires if expires.tzinfo else expires.replace(tzinfo=UTC)  # SQLite gives it naive


def same_seat(now: Principal, then: Principal) -> bool:
    """Still the page that was opened: the same user, role, agent id and department."""
    return (now.user_id, now.role, now.agent_id, now.department_id) == \
        (then.user_id, then.role, then.agent_id, then.department_id)


def see_other(location: str) -> web.Response:
    """303 to `location` as a response that can carry cookies (a raised HTTPSeeOther is for
    redirects without them)."""
    return web.Response(status=303, headers={"Location": location})


def page_headers() -> dict[str, str]:
    return {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin",
            "Cache-Control": "no-store", "X-Frame-Options": "DENY"}


def language(request: web.Request) -> str:
    lang = request.cookies.get(sess.LANG_COOKIE, "zh")
    return lang if lang in LANGS else "zh"


def environment() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"),
                              autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True,
                              lstrip_blocks=True)


def csrf_key(secret: str) -> bytes:
    return hashlib.sha256(b"hotline-web:" + secret.encode()).digest()


def build(engine: Engine, api: TicketApi) -> Web:
    """The pages for `engine` (its control token keys the CSRF tokens: they outlive a restart)."""
    w = Web(engine=engine, api=api, hub=Hub(), csrf_key=csrf_key(engine.token), env=environment(), clock=api.clock)
    desk = DeskPage(w)
    w.pages = [desk, WallPage(w), DeptPage(w)]
    if engine.tickets is not None:
        engine.tickets.drafts.on_opened = desk.draft_opened
    return w


