"""Sessions on the real engine, over plain HTTP (the bytes a browser or an attacker could
send): signing out or being disabled ends the open streams; a CSRF token works only with its
own session; no `next` leads off the site; malformed input is a 4xx, never a 500; static files
stay in their folder; and while the ticket store is down, a signed-in agent can still pause
while a new sign-in is told, on a page, that the store is unavailable."""

from __future__ import annotations

import http.client
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser
from sqlalchemy import Engine, event, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from acd.agents import Presence
from acd.events import DeviceChanged
from tests.web.harness import PASSWORD, Site
from tests.web.ticket_rig import dispatched, service
from tickets import auth
from tickets.models import UserRow
from web import app as web_app
from web import live
from web import session as sess
from web.app import Web
from web.forms import FORM_ENCODING

FORM = "application/x-www-form-urlencoded"


@dataclass
class Answer:
    status: int
    headers: http.client.HTTPMessage
    body: str


@dataclass
class Client:
    """One browser's cookie, sent by hand: every byte of each request is the test's."""

    site: Site
    token: str = ""

    def connect(self, timeout: float = 10) -> http.client.HTTPConnection:
        port = urlsplit(self.site.url).port
        assert port is not None
        return http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)

    def send(self, method: str, path: str, body: bytes = b"", headers: dict[str, Any] | None = None,
             token: str | None = None) -> Answer:
        conn = self.connect()
        try:
            conn.putrequest(method, path, skip_accept_encoding=True)
            token = self.token if token is None else token
            if token:
                conn.putheader("Cookie", f"{sess.COOKIE}={token}")
            for name, value in (headers or {}).items():
                conn.putheader(name, value)
            if method == "POST":
                conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body or None)
            resp = conn.getresponse()
            return Answer(resp.status, resp.headers, resp.read().decode("utf-8", "replace"))
        finally:
            conn.close()

    def csrf(self) -> str:
        return sess.csrf_token(pages(self.site).csrf_key, self.token)


def pages(site: Site) -> Web:
    w = site.running.e.web
    assert w is not None
    return w


def signed_in(site: Site, user: str) -> Client:
    c = Client(site)
    answer = c.send("POST", "/login", f"username={user}&password={PASSWORD}".encode(), {"Content-Type": FORM})
    assert answer.status == 303, answer.body
    cookie = answer.headers["Set-Cookie"]
    c.token = cookie.split(f"{sess.COOKIE}=", 1)[1].split(";", 1)[0]
    assert c.send("GET", "/").status == 303
    return c


class Stream:
    """An open /live/... stream, read as a browser's EventSource would."""

    def __init__(self, client: Client, path: str) -> None:
        self.conn = client.connect(timeout=10)
        self.conn.request("GET", path, headers={"Cookie": f"{sess.COOKIE}={client.token}",
                                                "Accept": "text/event-stream"})
        self.resp = self.conn.getresponse()
        assert self.resp.status == 200, self.resp.read()
        first = self.resp.read1(65536)
        assert b"event: " in first  # the page's whole picture, first

    def ends(self, timeout: float) -> None:
        """Reads to the end of the stream; a socket timeout (the stream went on) fails the test."""
        assert self.conn.sock is not None
        self.conn.sock.settimeout(timeout)
        while self.resp.read1(65536):
            pass

    def close(self) -> None:
        self.conn.close()


@contextmanager
def stream(client: Client, path: str) -> Iterator[Stream]:
    s = Stream(client, path)
    try:
        yield s
    finally:
        s.close()


def watching(site: Site, topic: str) -> int:
    return site.running.call(lambda: pages(site).hub.watching(topic))


def with_user(site: Site, username: str, change: Any) -> None:
    with Session(service(site).engine) as s, s.begin():
        change(s, username)


# ---- streams follow their session -----------------------------------------------------------------


def test_signing_out_ends_the_sessions_open_stream_at_once_and_the_cookie_opens_nothing_after(site: Site) -> None:
    agent = signed_in(site, "agent1001")
    with stream(agent, "/live/desk") as desk:
        assert watching(site, "agent:1001") == 1
        answer = agent.send("POST", "/logout", headers={sess.CSRF_HEADER: agent.csrf()})
        assert answer.status == 303 and answer.headers["Location"] == "/login"
        desk.ends(timeout=3)  # at once: not at the next re-check (a minute)
    assert watching(site, "agent:1001") == 0
    # The old cookie value, sent again: no page, no stream.
    again = agent.send("GET", "/desk")
    assert again.status == 303 and again.headers["Location"] == "/login?next=/desk"
    assert agent.send("GET", "/live/desk", headers={"Accept": "text/event-stream"}).status == 401
    assert watching(site, "agent:1001") == 0


def test_a_disabled_user_loses_the_open_stream_within_the_recheck(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(live, "RECHECK", 0.2)
    agent = signed_in(site, "agent1002")
    with stream(agent, "/live/desk") as desk:
        with_user(site, "agent1002", auth.disable_user)
        desk.ends(timeout=5)
    assert watching(site, "agent:1002") == 0
    assert agent.send("GET", "/desk").status == 303  # the re-check dropped the session: no page either


def test_a_changed_agent_id_ends_the_stream_of_the_old_one(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(live, "RECHECK", 0.2)
    agent = signed_in(site, "agent1002")

    def renumber(s: Session, username: str) -> None:
        s.execute(update(UserRow).where(UserRow.username == username).values(agent_id="1009"))

    with stream(agent, "/live/desk") as desk:
        with_user(site, "agent1002", renumber)
        desk.ends(timeout=5)  # the page showed agent 1002's calls: it must not go on


def test_a_disabled_users_cookie_opens_no_page(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    boss = signed_in(site, "boss")
    assert boss.send("GET", "/wall").status == 200
    with_user(site, "boss", auth.disable_user)
    # Signed in a moment ago, the session is in the pages' cache for SESSION_TTL (30 s): a
    # disabled user keeps their pages at most that long. Past it:
    monkeypatch.setattr(web_app, "SESSION_TTL", 0.0)
    for path in ("/wall", "/", "/desk", "/dept"):
        answer = boss.send("GET", path)
        assert answer.status == 303 and answer.headers["Location"].startswith("/login?next="), path
    assert boss.send("GET", "/live/wall", headers={"Accept": "text/event-stream"}).status == 401


# ---- CSRF and redirects ----------------------------------------------------------------------------


def test_a_csrf_token_of_one_session_is_refused_with_another_sessions_cookie(site: Site) -> None:
    a, b = signed_in(site, "agent1001"), signed_in(site, "agent1001")
    for headers, body in (({sess.CSRF_HEADER: a.csrf()}, b""),
                          ({"Content-Type": FORM}, f"csrf={a.csrf()}".encode())):
        answer = b.send("POST", "/logout", body, headers)
        assert answer.status == 403, answer.body
    assert b.send("GET", "/desk").status == 200  # b is still signed in
    assert b.send("POST", "/logout", headers={sess.CSRF_HEADER: b.csrf()}).status == 303  # its own works


@pytest.mark.parametrize("query", ["next=//evil.example", "next=https://evil.example", "next=/%5Cevil.example",
                                   "next=/%09/evil.example", "next=/desk%0D%0ASet-Cookie:%20x=1"])
def test_no_next_sends_a_signed_in_user_off_the_site(site: Site, query: str) -> None:
    agent = signed_in(site, "agent1001")
    for path in (f"/login?{query}", f"/lang/en?{query}"):
        answer = agent.send("GET", path)
        assert answer.status == 303, (path, answer.status, answer.body)
        location = answer.headers["Location"]
        assert location.startswith("/") and not location.startswith("//") and "\\" not in location \
            and not urlsplit(location).netloc and "\t" not in location, (path, location)
        assert "Set-Cookie" not in answer.headers or "x=1" not in answer.headers["Set-Cookie"]
    # The sign-in form's own next field.
    answer = Client(site).send("POST", "/login", f"username=agent1001&password={PASSWORD}&{query}".encode(),
                               {"Content-Type": FORM})
    assert answer.status == 303 and answer.headers["Location"] == "/desk"


# ---- malformed input is refused, not a 500 ----------------------------------------------------------


def test_a_csrf_token_that_is_not_ascii_is_refused_as_wrong(site: Site) -> None:
    agent = signed_in(site, "agent1001")
    answer = agent.send("POST", "/desk/agent/pause", headers={sess.CSRF_HEADER: "令牌".encode()})
    assert answer.status == 403, answer.body
    answer = agent.send("POST", "/logout", b"csrf=%E4%BB%A4%E7%89%8C", {"Content-Type": FORM})
    assert answer.status == 403, answer.body
    assert agent.send("GET", "/desk").status == 200  # still serving, still signed in


def test_a_form_that_is_not_utf8_is_a_400_and_the_engine_keeps_serving(site: Site) -> None:
    ticket = dispatched(site, "housing")
    raw = b"q=\xff\xfe"
    answer = Client(site).send("POST", "/login", raw, {"Content-Type": FORM})
    assert answer.status == 400 and answer.body == FORM_ENCODING
    agent = signed_in(site, "agent1001")
    answer = agent.send("POST", "/logout", raw, {"Content-Type": FORM})  # the guard reads the csrf field
    assert answer.status == 400 and answer.body == FORM_ENCODING
    dept = signed_in(site, "zhujian")
    answer = dept.send("POST", f"/dept/tickets/{ticket['number']}/return", raw,
                       {"Content-Type": FORM, sess.CSRF_HEADER: dept.csrf()})
    assert answer.status == 400 and answer.body == FORM_ENCODING
    assert Client(site).send("GET", "/login").status == 200
    assert dept.send("GET", "/dept").status == 200


def test_a_form_whose_content_encoding_does_not_match_its_body_is_a_400_and_the_engine_keeps_serving(
        site: Site) -> None:
    # aiohttp raises RequestPayloadError (not ValueError) when it cannot inflate the body
    plain = b"username=a&password=b"
    gzip_said = {"Content-Type": FORM, "Content-Encoding": "gzip"}
    answer = Client(site).send("POST", "/login", plain, gzip_said)
    assert answer.status == 400 and answer.body == FORM_ENCODING, answer.body[:300]
    agent = signed_in(site, "agent1001")
    answer = agent.send("POST", "/desk/kb/search", b"q=%E5%81%9C%E6%B0%B4",
                        {**gzip_said, sess.CSRF_HEADER: agent.csrf()})
    assert answer.status == 400 and answer.body == FORM_ENCODING, answer.body[:300]
    answer = agent.send("POST", "/logout", plain, {"Content-Type": FORM, "Content-Encoding": "deflate"})
    assert answer.status == 400 and answer.body == FORM_ENCODING, answer.body[:300]  # the guard reads the csrf field
    assert Client(site).send("GET", "/login").status == 200
    assert agent.send("GET", "/desk").status == 200  # still serving, still signed in


@pytest.mark.parametrize("path", ["/static/../app.py", "/static/%2e%2e/app.py", "/static/vendor/../../app.py",
                                  "/static/%2E%2E/%2E%2E/pyproject.toml", "/static/.%2e/app.py"])
def test_a_static_path_out_of_the_static_folder_is_not_found(site: Site, path: str) -> None:
    answer = Client(site).send("GET", path)
    assert answer.status == 404, (path, answer.body[:200])
    assert "import" not in answer.body
    assert Client(site).send("GET", "/static/hotline.css").status == 200


# ---- the ticket store is down --------------------------------------------------------------------


@contextmanager
def store_down(site: Site) -> Iterator[list[str]]:
    """Every statement sent to the ticket store fails as it does when the database server is
    unreachable (an OperationalError from the driver), until the block ends. Yields the
    statements that were tried."""
    engine: Engine = service(site).engine
    tried: list[str] = []

    def refuse(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        tried.append(statement)
        raise OperationalError(statement, {}, ConnectionRefusedError("connection refused"))

    event.listen(engine, "before_cursor_execute", refuse)
    try:
        yield tried
    finally:
        event.remove(engine, "before_cursor_execute", refuse)


def presence(site: Site) -> Presence:
    return site.running.call(lambda: site.running.e.dispatcher.state.agents["1001"].presence)


def test_within_the_session_ttl_a_desk_action_reads_nothing_from_the_store(site: Site) -> None:
    site.running.call(lambda: site.running.e.dispatcher.submit(DeviceChanged("1001", registered=True, busy=False)))
    agent = signed_in(site, "agent1001")
    with store_down(site) as tried:
        answer = agent.send("POST", "/desk/agent/pause", headers={sess.CSRF_HEADER: agent.csrf()})
        assert answer.status == 200, answer.body
    assert tried == []
    assert presence(site) is Presence.PAUSED


def test_while_the_store_is_down_a_signed_in_agent_pauses_and_a_new_sign_in_gets_the_503_page(
        site: Site, browser: Browser, monkeypatch: pytest.MonkeyPatch) -> None:
    site.running.call(lambda: site.running.e.dispatcher.submit(DeviceChanged("1001", registered=True, busy=False)))
    page = site.page(browser, "agent1001")
    assert page.url == f"{site.url}/desk"
    monkeypatch.setattr(web_app, "SESSION_TTL", 0.0)  # past the cache: the store is asked, and is down
    monkeypatch.setattr(web_app, "OUTAGE_BACKOFF", 1.0)
    with store_down(site) as tried:
        page.get_by_role("button", name="示忙").click()
        page.locator("#agent-msg").filter(has_text="示忙").wait_for()
        assert presence(site) is Presence.PAUSED
        page.get_by_role("button", name="示闲").click()
        page.locator("#agent-msg").filter(has_text="示闲").wait_for()
        assert presence(site) is Presence.READY
        assert tried, "the store was never asked: the fallback was not exercised"

        other = site.page(browser)
        other.goto(f"{site.url}/login")
        other.fill("input[name=username]", "agent1002")
        other.fill("input[name=password]", PASSWORD)
        with other.expect_response(lambda r: r.url.endswith("/login") and r.request.method == "POST") as signing:
            other.click("button[type=submit]")
        assert signing.value.status == 503
        assert signing.value.headers["content-type"].startswith("text/html")
        assert "工单库暂时不可用，请稍后刷新" in other.locator("[role=alert]").inner_text()

        # A cookie the pages have never validated cannot be vouched for: the page says why.
        forged = Client(site, token="y" * 43).send("GET", "/desk")
        assert forged.status == 503 and "工单库暂时不可用，请稍后刷新" in forged.body
    # Back (once the back-off after the last failure has passed): an unknown cookie signs in.
    deadline = time.monotonic() + 10
    while (status := Client(site, token="y" * 43).send("GET", "/desk").status) == 503 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert status == 303


def test_after_a_failed_lookup_the_store_is_not_asked_again_until_the_back_off_has_passed(
        site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    # A PostgreSQL that does not answer costs its connect timeout per lookup, on the ticket API's
    # few threads: during an outage, requests are served from the cache without asking again.
    site.running.call(lambda: site.running.e.dispatcher.submit(DeviceChanged("1001", registered=True, busy=False)))
    agent = signed_in(site, "agent1001")
    csrf = agent.csrf()
    monkeypatch.setattr(web_app, "SESSION_TTL", 0.0)
    with store_down(site) as tried:
        for action in ("pause", "unpause") * 3:
            answer = agent.send("POST", f"/desk/agent/{action}", headers={sess.CSRF_HEADER: csrf})
            assert answer.status == 200, answer.body
    assert len(tried) == 1


def test_during_an_outage_a_session_validated_long_before_the_store_last_answered_does_not_stand_in(
        site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    agent = signed_in(site, "agent1001")
    web = site.running.e.web
    assert web is not None
    # agent1001 was validated longer before the outage than the window allows.
    def validated_long_ago() -> None:
        for cached in web.sessions.values():
            cached.checked -= web_app.FALLBACK_WINDOW + 1
    site.running.call(validated_long_ago)
    monkeypatch.setattr(web_app, "SESSION_TTL", 0.0)
    csrf = agent.csrf()
    with store_down(site):
        answer = agent.send("POST", "/desk/agent/pause", headers={sess.CSRF_HEADER: csrf})
        assert answer.status == 503, answer.body

