"""schemathesis over the served OpenAPI document, against the running API on SQLite and on
PostgreSQL, signed in as a supervisor and as a department: no request it generates, valid or
not, gets a 500, and every answer matches the document (status code, content type, schema)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from tests.pg import pg_database
from tests.tickets.helpers import FORM, PASSWORD, T0, seed, service
from tickets import kb
from tickets.api import ApiSettings, TicketApi
from tickets.lifecycle import Action
from tickets.openapi import document

schema = schemathesis.openapi.from_dict(document())
CHECKS = (not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance)


class Live:
    """The API served from a thread of its own (schemathesis calls it synchronously)."""

    def __init__(self, db: Engine) -> None:
        self.db, self.ready = db, threading.Event()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> str:
        svc = service(self.db)
        api = TicketApi(self.db, svc, ApiSettings())
        self.thread.start()
        self.runner = web.AppRunner(api.app())
        asyncio.run_coroutine_threadsafe(self.runner.setup(), self.loop).result()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        asyncio.run_coroutine_threadsafe(site.start(), self.loop).result()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return f"http://127.0.0.1:{port}"

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def live(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    from tickets.db import migrate, open_engine

    stack = contextlib.ExitStack()
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('schemathesis') / 'hotline.db'}"
    else:
        url = stack.enter_context(pg_database())
    db = open_engine(url)
    migrate(db)
    who = seed(db)
    svc = service(db)
    t = svc.create(who["agent1"], FORM, T0)  # something to find, act on and read the history of
    svc.act(who["agent1"], t["id"], Action.DISPATCH, {"department": "housing"}, T0)
    with Session(db) as s, s.begin():
        kb.add_article(s, title="社保卡补办", body="携带身份证到社保大厅办理", category="咨询", tags=["社保"],
                       valid_from=None, valid_to=None, author="admin", now=T0)
    with Live(db) as base:
        tokens = {}
        for user in ("boss", "zhujian"):
            answer = requests.post(f"{base}/api/v1/login", json={"username": user, "password": PASSWORD}, timeout=10)
            tokens[user] = answer.json()["token"]
        yield {"base": base, "tokens": tokens}
    db.dispose()
    stack.close()


@pytest.mark.parametrize("user", ["boss", "zhujian"])
@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_500_and_every_answer_matches_the_document(case: schemathesis.Case, live: dict[str, Any],
                                                      user: str) -> None:
    if case.path.endswith("/logout"):
        return  # it would end the session the other cases use; tests/tickets/test_api.py covers it
    case.call_and_validate(base_url=live["base"], headers={"Authorization": f"Bearer {live['tokens'][user]}"},
                           checks=CHECKS)
