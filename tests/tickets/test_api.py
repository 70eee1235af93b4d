"""The ticket API over real HTTP (aiohttp's server on a local port), on SQLite and on the
running PostgreSQL: sign-in, each role's rights, department scoping by id, number, search and
history, and the status codes the issue names (401, 403, 404, 409, 413, 422)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from sqlalchemy import Engine

from tests.tickets.helpers import FORM, PASSWORD, seed, shipped_policy
from tickets.api import ApiSettings, TicketApi
from tickets.service import TicketService

Call = Callable[..., Awaitable[tuple[int, Any]]]


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
async def server(db: Engine) -> AsyncIterator[tuple[str, Clock]]:
    seed(db)
    clock = Clock()
    api = TicketApi(db, TicketService(db, shipped_policy()), ApiSettings(max_body_bytes=4096), clock=clock)
    srv = TestServer(api.app(), host="127.0.0.1")
    await srv.start_server()
    yield str(srv.make_url("/api/v1")), clock
    await srv.close()


@pytest.fixture
async def http(server: tuple[str, Clock]) -> AsyncIterator[Callable[[str | None], Call]]:
    base, _ = server
    async with aiohttp.ClientSession() as session:
        tokens: dict[str, str] = {}

        async def login(user: str) -> str:
            if user not in tokens:
                async with session.post(f"{base}/login", json={"username": user, "password": PASSWORD}) as r:
                    assert r.status == 200, await r.text()
                    tokens[user] = (await r.json())["token"]
            return tokens[user]

        def as_user(user: str | None) -> Call:
            async def call(method: str, path: str, body: Any = None, headers: dict[str, str] | None = None,
                           data: bytes | None = None) -> tuple[int, Any]:
                h = dict(headers or {})
                if user is not None:
                    h["Authorization"] = f"Bearer {await login(user)}"
                async with session.request(method, base + path, json=body if data is None else None, data=data,
                                           headers=h) as r:
                    return r.status, await r.json(content_type=None)
            return call

        yield as_user


async def dispatched(http: Callable[[str | None], Call], dept: str = "housing") -> dict[str, Any]:
    status, t = await http("agent1")("POST", "/tickets", FORM)
    assert status == 201, t
    status, t = await http("agent1")("POST", f"/tickets/{t['number']}/actions/dispatch", {"department": dept})
    assert status == 200, t
    return t


async def test_no_token_or_a_bad_one_is_401(http: Callable[[str | None], Call]) -> None:
    assert (await http(None)("GET", "/tickets/overdue"))[0] == 401
    status, body = await http(None)("GET", "/me", headers={"Authorization": "Bearer nope"})
    assert (status, body["error"]) == (401, "unauthorized")
    status, me = await http("boss")("GET", "/me")
    assert (status, me["role"]) == (200, "supervisor")


async def test_logout_ends_the_token(http: Callable[[str | None], Call]) -> None:
    boss = http("boss")
    assert (await boss("POST", "/logout"))[0] == 200
    assert (await boss("GET", "/me"))[0] == 401


async def test_a_department_sees_only_its_own_tickets_by_any_route(http: Callable[[str | None], Call]) -> None:
    t = await dispatched(http, "housing")
    water, housing = http("shuiwu"), http("zhujian")
    for ref in (t["id"], t["number"]):
        assert (await water("GET", f"/tickets/{ref}"))[0] == 404
        assert (await water("GET", f"/tickets/{ref}/history"))[0] == 404
        assert (await water("POST", f"/tickets/{ref}/actions/accept", {}))[0] == 404
        assert (await housing("GET", f"/tickets/{ref}"))[0] == 200
    status, page = await water("POST", "/tickets/search", {"number": t["number"]})
    assert (status, page["total"], page["items"]) == (200, 0, [])
    assert (await water("POST", "/tickets/search", {"phone": "13800000001"}))[0] == 403  # would confirm a number
    assert (await housing("POST", "/tickets/search", {}))[1]["total"] == 1
    assert (await water("POST", "/callers/lookup", {"number": "13800000001"}))[0] == 403


async def test_each_role_does_its_part_and_is_told_why_not(http: Callable[[str | None], Call]) -> None:
    t = await dispatched(http)
    n = t["number"]
    status, body = await http("agent1")("POST", f"/tickets/{n}/actions/accept", {})
    assert status == 403 and "承办单位" in body["message"]
    assert (await http("admin")("POST", f"/tickets/{n}/actions/urge", {"note": "快办"}))[0] == 403
    assert (await http("zhujian")("POST", "/tickets", FORM))[0] == 403
    assert (await http("zhujian")("POST", f"/tickets/{n}/actions/urge", {"note": "x"}))[0] == 403
    status, body = await http("boss")("POST", f"/tickets/{n}/actions/urge", {"note": "请尽快签收"})
    assert (status, body["urged"]) == (200, 1)
    assert (await http("zhujian")("POST", f"/tickets/{n}/actions/accept", {}))[0] == 200
    assert (await http("agent1")("POST", "/kb/articles", {"title": "x", "body": "y"}))[0] == 403


async def test_an_illegal_transition_is_409_with_the_allowed_actions(http: Callable[[str | None], Call]) -> None:
    t = await dispatched(http)
    status, body = await http("boss")("POST", f"/tickets/{t['id']}/actions/approve_reply", {})
    assert status == 409 and set(body["allowed"]) == {"accept", "return", "urge"}


@pytest.mark.parametrize(("path", "body", "field"), [
    ("/tickets", {**FORM, "category": "闲聊"}, "category"),
    ("/tickets", {**FORM, "urgency": 3}, "urgency"),
    ("/tickets", {**FORM, "surprise": 1}, "surprise"),
    ("/tickets", {**FORM, "district": "朝阳区"}, "district"),
    ("/tickets", {"content": "x"}, "category"),
    ("/tickets/search", {"page": 0}, "page"),
    ("/tickets/search", {"created_from": "2026-11-01T00:00:00"}, "created_from"),  # no UTC offset: ambiguous
    ("/login", {"username": ""}, "username"),
])
async def test_a_bad_body_is_422_naming_the_field(http: Callable[[str | None], Call], path: str,
                                                  body: dict[str, Any], field: str) -> None:
    status, answer = await http("agent1")("POST", path, body)
    assert (status, answer.get("field")) == (422, field), answer


async def test_bodies_that_are_not_json_objects_are_refused(http: Callable[[str | None], Call]) -> None:
    agent = http("agent1")
    assert (await agent("POST", "/tickets", data=b"{not json"))[0] == 400
    assert (await agent("POST", "/tickets", data=b"[1, 2]"))[0] == 400
    assert (await agent("POST", "/tickets", data="\udcff".encode("utf-8", "surrogatepass")))[0] == 400


async def test_a_body_over_the_limit_is_413(http: Callable[[str | None], Call]) -> None:
    status, body = await http("agent1")("POST", "/tickets", {**FORM, "content": "很长" * 3000})
    assert (status, body["error"]) == (413, "too_large")


async def test_cross_origin_writes_are_refused(http: Callable[[str | None], Call]) -> None:
    status, _ = await http("agent1")("POST", "/tickets", FORM, headers={"Origin": "http://evil.example"})
    assert status == 403


async def test_sign_in_is_limited_after_five_failures(server: tuple[str, Clock]) -> None:
    base, clock = server
    async with aiohttp.ClientSession() as s:
        for _ in range(5):
            async with s.post(f"{base}/login", json={"username": "boss", "password": "wrong-password-1"}) as r:
                assert r.status == 401
        async with s.post(f"{base}/login", json={"username": "boss", "password": PASSWORD}) as r:
            assert r.status == 429 and int(r.headers["Retry-After"]) > 0
        clock.now += timedelta(minutes=16)
        async with s.post(f"{base}/login", json={"username": "boss", "password": PASSWORD}) as r:
            assert r.status == 200


async def test_the_token_expires(server: tuple[str, Clock]) -> None:
    base, clock = server
    async with aiohttp.ClientSession() as s:
        async with s.post(f"{base}/login", json={"username": "boss", "password": PASSWORD}) as r:
            token = (await r.json())["token"]
        clock.now += timedelta(hours=8, seconds=1)
        async with s.get(f"{base}/me", headers={"Authorization": f"Bearer {token}"}) as r:
            assert r.status == 401


async def test_the_openapi_document_is_served_and_names_every_route(http: Callable[[str | None], Call]) -> None:
    status, doc = await http(None)("GET", "/openapi.json")
    assert status == 200 and doc["openapi"].startswith("3.")
    assert {"/api/v1/tickets", "/api/v1/tickets/{ref}/actions/{action}", "/api/v1/kb/search",
            "/api/v1/tickets/overdue"} <= set(doc["paths"])


async def test_history_over_http_is_the_full_ordered_account(http: Callable[[str | None], Call]) -> None:
    t = await dispatched(http)
    n = t["number"]
    await http("zhujian")("POST", f"/tickets/{n}/actions/accept", {})
    await http("zhujian")("POST", f"/tickets/{n}/actions/reply", {"reply": "已处理"})
    status, history = await http("boss")("GET", f"/tickets/{n}/history")
    assert status == 200
    assert [(e["seq"], e["actor"], e["action"]) for e in history] == [
        (1, "agent1", "register"), (2, "agent1", "dispatch"), (3, "zhujian", "accept"), (4, "zhujian", "reply")]


async def test_a_store_that_is_down_is_503_and_says_nothing_changed() -> None:
    from tests.unit.test_cli import free_port
    from tickets.db import open_engine

    dead = open_engine(f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/nowhere")
    api = TicketApi(dead, TicketService(dead, shipped_policy()), ApiSettings())
    srv = TestServer(api.app(), host="127.0.0.1")
    await srv.start_server()
    try:
        async with aiohttp.ClientSession() as s, s.get(srv.make_url("/api/v1/me"),
                                                       headers={"Authorization": "Bearer x"}) as r:
            body = await r.json()
            assert (r.status, body["error"], r.headers["Retry-After"]) == (503, "unavailable", "5")
            assert "nothing was changed" in body["message"]
    finally:
        await srv.close()
        dead.dispose()


@pytest.mark.parametrize(("method", "path", "body", "status"), [
    ("POST", "/tickets", {**FORM, "content": "漏水\u0000"}, 422),  # PostgreSQL refuses NUL in text
    ("POST", "/callers/lookup", {"number": "1380\u0000"}, 422),
    ("POST", "/tickets/search", {"text": "\u0007"}, 422),
    ("GET", "/tickets/\u00b2", None, 400),  # a superscript two is a digit to str.isdigit, not an id
    ("GET", "/tickets/\u0661", None, 400),  # an Arabic-Indic one
    ("GET", "/kb/articles/\uff11", None, 400),  # a full-width one
    ("GET", "/tickets/overdue?page=\u00b2", None, 400),
])
async def test_odd_input_is_refused_not_a_500(http: Callable[[str | None], Call], method: str, path: str,
                                             body: Any, status: int) -> None:
    got, answer = await http("boss")(method, path, body)
    assert got == status, answer


async def test_a_deeply_nested_or_misencoded_body_is_400(http: Callable[[str | None], Call]) -> None:
    boss = http("boss")
    assert (await boss("POST", "/tickets/search", data=b"[" * 1800 + b"]" * 1800))[0] == 400
    got, _ = await boss("POST", "/tickets/search", data=b"not gzip", headers={"Content-Encoding": "gzip"})
    assert got == 400


async def test_an_article_id_beyond_any_id_is_422(http: Callable[[str | None], Call]) -> None:
    t = await dispatched(http)
    got, answer = await http("boss")("POST", f"/tickets/{t['number']}/actions/answer_directly",
                                     {"reply": "x", "article_id": 2**40})
    assert (got, answer["field"]) == (422, "article_id")
