"""The pages' session rules without a browser: where a sign-in may send you (no open
redirect), a CSRF token that is not ASCII, a form that is not UTF-8, the static files' two
layers against path traversal, and the short session cache that keeps signed-in desks working
while the ticket store is down."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
from aiohttp import streams, web
from aiohttp.base_protocol import BaseProtocol
from aiohttp.test_utils import make_mocked_request
from sqlalchemy.exc import OperationalError, ProgrammingError
from structlog.testing import capture_logs

from tickets.auth import Principal
from web import app as web_app
from web import session as sess
from web.app import STATIC_NAME, StoreDown, Web, environment
from web.forms import FORM_ENCODING, FormEncodingError, read_form
from web.live import Hub

KEY = b"k" * 32
TOKEN = "t" * 43
NOW = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
AGENT = Principal(user_id=1, username="agent1001", role="agent", department_id=None, agent_id="1001",
                  display_name="")


# ---- where a sign-in may send you -----------------------------------------------------------------


@pytest.mark.parametrize("target", [
    "//evil.example", "//evil.example/desk", "https://evil.example", "http:evil.example", "/\\evil.example",
    "\\\\evil.example", "/\t/evil.example", "/\n/evil.example", "javascript:alert(1)", "evil.example",
    "/desk\r\nSet-Cookie: x=1", ""])
def test_a_next_target_off_this_site_falls_back_to_the_default(target: str) -> None:
    assert sess.local_path(target, "/desk") == "/desk"


@pytest.mark.parametrize("target", ["/desk", "/dept/tickets/12345-20250301-0001", "/wall?x=1", "/"])
def test_a_next_target_on_this_site_is_kept(target: str) -> None:
    assert sess.local_path(target, "/desk") == target


# ---- CSRF ---------------------------------------------------------------------------------------


def test_a_csrf_token_that_is_not_ascii_is_refused_not_an_error() -> None:
    assert not sess.csrf_ok(KEY, TOKEN, "令牌")
    assert not sess.csrf_ok(KEY, TOKEN, sess.csrf_token(KEY, TOKEN)[:-1] + "é")
    assert sess.csrf_ok(KEY, TOKEN, sess.csrf_token(KEY, TOKEN))


def test_a_csrf_token_is_bound_to_its_session() -> None:
    assert not sess.csrf_ok(KEY, "s" * 43, sess.csrf_token(KEY, TOKEN))


# ---- forms ----------------------------------------------------------------------------------------


async def test_a_form_that_is_not_utf8_is_the_senders_400() -> None:
    for body, content_type in ((b"q=\xff\xfe", "application/x-www-form-urlencoded"),
                               (b"q=1", "application/x-www-form-urlencoded; charset=no-such-charset")):
        request = make_mocked_request("POST", "/login", headers={"Content-Type": content_type}, payload=_payload(body))
        with pytest.raises(FormEncodingError) as raised:
            await read_form(request)
        assert raised.value.status == 400 and raised.value.text == FORM_ENCODING


async def test_a_utf8_form_is_read() -> None:
    request = make_mocked_request("POST", "/login", headers={"Content-Type": "application/x-www-form-urlencoded"},
                                  payload=_payload("q=%FF&name=王".encode()))
    form = await read_form(request)
    assert form["name"] == "王" and form["q"] == "\ufffd"


def _payload(body: bytes) -> streams.StreamReader:
    loop = asyncio.get_running_loop()
    reader = streams.StreamReader(BaseProtocol(loop), 2**16, loop=loop)
    reader.feed_data(body)
    reader.feed_eof()
    return reader


# ---- static files: two layers ------------------------------------------------------------------


@pytest.mark.parametrize("name", ["..", "../app.py", "./app.py", ".hidden", "vendor/..", "vendor/../app.py",
                                  "vendor/.hidden", "vendor/../../app.py", "a/b/c"])
def test_the_static_route_does_not_match_a_segment_starting_with_a_dot(name: str) -> None:
    assert re.fullmatch(STATIC_NAME, name) is None


@pytest.mark.parametrize("name", ["hotline.css", "vendor/htmx-2.0.11.min.js", "desk.js"])
def test_the_static_route_matches_the_pages_files(name: str) -> None:
    assert re.fullmatch(STATIC_NAME, name) is not None


@pytest.mark.parametrize("name", ["../app.py", "../../pyproject.toml", "vendor/../../app.py"])
async def test_the_static_handler_refuses_a_path_out_of_its_folder_even_if_the_route_let_it_through(
        name: str) -> None:
    w = pages(FakeApi([]))
    request = make_mocked_request("GET", f"/static/{name}", match_info={"name": name})
    with pytest.raises(web.HTTPNotFound):
        await w.static(request)


# ---- the session cache --------------------------------------------------------------------------


Answer = tuple[Principal, datetime] | None | Exception


class FakeApi:
    """The ticket API as the pages use it for sessions: `run(lookup, ...)`, answered from a script."""

    def __init__(self, answers: list[Answer]) -> None:
        self.answers = answers
        self.engine = None
        self.lookups = 0
        self.revoked: list[str] = []
        self.hold: asyncio.Event | None = None  # a lookup waits for it: one still under way
        self.logout_down = False  # the store cannot revoke (an outage)

    def _logout(self, token: str) -> None:
        if self.logout_down:
            raise down()
        self.revoked.append(token)

    async def run(self, fn: Any, *args: Any) -> Any:
        if fn == self._logout:
            return fn(*args)
        assert fn is web_app.lookup
        self.lookups += 1
        if self.hold is not None:
            await self.hold.wait()
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def pages(api: FakeApi, clock: list[datetime] | None = None, ticks: list[float] | None = None) -> Web:
    now, tick = clock or [NOW], ticks or [1000.0]
    return Web(engine=cast(Any, None), api=cast(Any, api), hub=Hub(), csrf_key=KEY, env=environment(),
               clock=lambda: now[0], ticks=lambda: tick[0])


def down() -> OperationalError:
    return OperationalError("SELECT auth_tokens", {}, ConnectionRefusedError("connection refused"))


@pytest.fixture
def monotonic() -> list[float]:
    """The session cache's clock, moved by the test."""
    return [1000.0]


async def test_within_the_ttl_a_session_is_not_read_from_the_store_again(monotonic: list[float]) -> None:
    api = FakeApi([(AGENT, NOW + timedelta(hours=8)), (AGENT, NOW + timedelta(hours=8))])
    w = pages(api, ticks=monotonic)
    assert await w.session(TOKEN) == AGENT
    monotonic[0] += web_app.SESSION_TTL - 1
    assert await w.session(TOKEN) == AGENT
    assert api.lookups == 1
    monotonic[0] += 2
    assert await w.session(TOKEN) == AGENT
    assert api.lookups == 2


async def test_while_the_store_is_down_the_last_validated_session_stands_in_and_is_logged_once(
        monotonic: list[float]) -> None:
    api = FakeApi([(AGENT, NOW + timedelta(hours=8)), down(), down()])
    w = pages(api, ticks=monotonic)
    assert await w.session(TOKEN) == AGENT
    with capture_logs() as logs:
        for _ in range(2):
            monotonic[0] += web_app.SESSION_TTL + 1
            assert await w.session(TOKEN) == AGENT
    assert [e["event"] for e in logs if e["event"] == "web_session_from_cache"] == ["web_session_from_cache"]
    assert api.lookups == 3


async def test_while_the_store_is_down_an_unknown_session_is_store_down_not_signed_out(
        monotonic: list[float]) -> None:
    w = pages(FakeApi([down()]), ticks=monotonic)
    with pytest.raises(StoreDown):
        await w.session(TOKEN)


async def test_no_session_outlives_its_token_even_while_the_store_is_down(monotonic: list[float]) -> None:
    clock = [NOW]
    w = pages(FakeApi([(AGENT, NOW + timedelta(minutes=5)), down()]), clock, monotonic)
    assert await w.session(TOKEN) == AGENT
    clock[0] = NOW + timedelta(minutes=5)
    with pytest.raises(StoreDown):
        await w.session(TOKEN)


async def test_a_store_error_that_is_not_an_outage_is_not_hidden(monotonic: list[float]) -> None:
    w = pages(FakeApi([(AGENT, NOW + timedelta(hours=8)),
                       ProgrammingError("SELECT", {}, Exception("no such column"))]), ticks=monotonic)
    await w.session(TOKEN)
    monotonic[0] += web_app.SESSION_TTL + 1
    with pytest.raises(ProgrammingError):
        await w.session(TOKEN)


async def test_a_session_the_store_no_longer_knows_is_dropped_from_the_cache(monotonic: list[float]) -> None:
    w = pages(FakeApi([(AGENT, NOW + timedelta(hours=8)), None, down()]), ticks=monotonic)
    await w.session(TOKEN)
    monotonic[0] += web_app.SESSION_TTL + 1
    assert await w.session(TOKEN) is None
    assert sess.token_key(TOKEN) not in w.sessions
    with pytest.raises(StoreDown):  # signed out, then the store went down: nothing stands in
        await w.session(TOKEN)


async def test_signing_out_drops_the_session_even_from_a_lookup_under_way(monotonic: list[float]) -> None:
    api = FakeApi([(AGENT, NOW + timedelta(hours=8)), (AGENT, NOW + timedelta(hours=8)), None])
    w = pages(api, ticks=monotonic)
    await w.session(TOKEN)
    monotonic[0] += web_app.SESSION_TTL + 1
    api.hold = asyncio.Event()
    under_way = asyncio.create_task(w.session(TOKEN))  # read from the store before the sign-out
    await asyncio.sleep(0)
    request = make_mocked_request("POST", "/logout")
    request[web_app.TOKEN] = TOKEN
    assert (await w.logout(request)).status == 303
    assert api.revoked == [TOKEN] and sess.token_key(TOKEN) not in w.sessions
    api.hold.set()
    await under_way
    assert sess.token_key(TOKEN) not in w.sessions  # not put back: the next request asks the store
    api.hold = None
    assert await w.session(TOKEN) is None


async def test_a_session_validated_long_before_the_outage_began_does_not_stand_in(monotonic: list[float]) -> None:
    # Validated at 10:00; nobody used the pages since; the user was disabled by `hotline user
    # disable` (another process) meanwhile; the store goes down at 14:00: the old entry may not vouch.
    w = pages(FakeApi([(AGENT, NOW + timedelta(hours=8)), down()]), ticks=monotonic)
    assert await w.session(TOKEN) == AGENT
    monotonic[0] += 4 * 3600
    with pytest.raises(StoreDown):
        await w.session(TOKEN)


async def test_a_sign_out_during_an_outage_is_refused_here_and_revoked_when_the_store_answers(
        monotonic: list[float]) -> None:
    other = "o" * 43
    api = FakeApi([(AGENT, NOW + timedelta(hours=8)), (AGENT, NOW + timedelta(hours=8))])
    w = pages(api, ticks=monotonic)
    assert await w.session(TOKEN) == AGENT
    api.logout_down = True
    request = make_mocked_request("POST", "/logout")
    request[web_app.TOKEN] = TOKEN
    request[web_app.WHO] = AGENT
    assert (await w.logout(request)).status == 303
    monotonic[0] += 3600  # long after: the store is back, the token still valid in it
    assert await w.session(TOKEN) is None and api.lookups == 1  # refused without asking the store
    api.logout_down = False
    assert await w.session(other) == AGENT  # the store answers someone: the revocation is retried
    await asyncio.sleep(0.01)
    assert api.revoked == [TOKEN] and not w.unrevoked
