"""Secrets and withheld numbers stay out of the engine's JSON log: exceptions are logged
without their frames' local variables (structlog's dict_tracebacks would show them), and
store errors without the statement's parameters."""
# ruff: noqa: F811  (the `out` and fake-AMI fixtures are imported from test_logs and test_dispatcher)

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import create_engine

import acd.lifecycle
from config.loader import load
from cti import http
from cti.engine import Engine
from tests.unit.test_dispatcher import Rig, join, queue, rig, routing, until  # noqa: F401  (fixtures)
from tests.unit.test_logs import Writes, out  # noqa: F401  (a fixture)

TOKEN = "Tk" * 22  # a well-formed 44-character control token


async def test_a_failing_control_request_does_not_write_the_control_token_into_the_log(out: Writes) -> None:
    # GET /callbacks while the database is unreachable (a PostgreSQL restart): aiohttp logs
    # "Error handling request" with the traceback; the guard middleware's frame holds `token`.
    unreachable = create_engine("sqlite:////nonexistent-folder/x.db")
    settings = load(None)
    outbox = SimpleNamespace(engine=unreachable, spool=Path("/nonexistent"))
    engine = Engine(settings, None, None, outbox, None, TOKEN)  # type: ignore[arg-type]
    async with TestClient(TestServer(http.control_app(engine))) as client:
        resp = await client.get("/callbacks", headers={"Authorization": f"Bearer {TOKEN}"})
        assert resp.status == 500
    text = out.getvalue()
    assert "Error handling request" in text
    assert TOKEN not in text, "the control token is in the engine's log"
    assert settings.engine.ami.secret not in text, "the AMI secret is in the engine's log"
    assert settings.agents[0].password not in text, "an agent's SIP password is in the engine's log"


async def test_a_decide_failure_does_not_log_a_withheld_number_in_clear(
    out: Writes, rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    await routing(rig)

    def broken(*_: object) -> None:
        raise RuntimeError("injected fault")

    monkeypatch.setattr(acd.lifecycle.rules, "line_key", broken)
    withheld = {**join("c1", num="13912345678"), "Pres": "prohib"}
    rig.fake.push(withheld)
    await until(lambda: "decide_failed" in out.getvalue(), what="decide_failed in the log")
    await asyncio.sleep(0.05)
    assert "13912345678" not in out.getvalue(), "a withheld number is in the log in clear"


# -- the store's error text carries the INSERT's parameters ---------------------------------


async def test_a_store_failure_on_sqlite_does_not_log_a_withheld_number(tmp_path: Path) -> None:
    # SQLAlchemy's message is "(...) reason\n[SQL: INSERT ...]\n[parameters: (call_id, queue,
    # caller_num, caller_name, ...)]"; on SQLite the statement is short enough that the 500
    # characters the outbox keeps reach the parameters. A read-only (or full, or locked)
    # database is a transient failure, logged as store_write_failed at every retry.
    from sqlalchemy import create_engine as sa_engine
    from structlog.testing import capture_logs

    from tests.unit.store_helpers import record, writing
    from tickets.db import migrate, open_engine
    from tickets.store import Outbox

    path = tmp_path / "hotline.db"
    migrate(open_engine(f"sqlite:///{path}"))
    read_only = sa_engine(f"sqlite:///file:{path}?mode=ro&uri=true")
    outbox = Outbox(read_only, tmp_path / "spool", retry_min=0.02, probe_every=0.02)
    with capture_logs() as lines:
        async with writing(outbox):
            outbox.put(record("c1", caller_num="13912345678", restricted=True, caller_name="张三丰"))
            await asyncio.sleep(0.2)
    failed = [line for line in lines if line["event"] == "store_write_failed"]
    assert failed
    assert not any("13912345678" in str(line) or "张三丰" in str(line) for line in failed), failed[0]["error"]


async def test_quarantine_shows_no_caller_data_when_sqlite_refuses_a_record(tmp_path: Path) -> None:
    # README: "/quarantine shows no caller data at all". A record SQLite refuses for good
    # (here a 15-digit number against a constraint an admin added, as a trigger) is quarantined with str(exc)[:500].
    from sqlalchemy import text as sql

    from tests.unit.store_helpers import record, writing
    from tickets.db import migrate, open_engine
    from tickets.spool import list_quarantine
    from tickets.store import Outbox

    db = open_engine(f"sqlite:///{tmp_path / 'hotline.db'}")
    migrate(db)
    with db.begin() as conn:
        conn.execute(sql("CREATE TRIGGER number_fits BEFORE INSERT ON call_records "
                         "WHEN length(NEW.caller_num) > 12 BEGIN SELECT RAISE(ABORT, 'caller_num too long'); END"))
    outbox = Outbox(db, tmp_path / "spool", retry_min=0.02, probe_every=0.02)
    async with writing(outbox):
        outbox.put(record("c1", caller_num="139123456789012", restricted=True, caller_name="张三丰"))
        assert await outbox.drain(5.0)
    [q] = list_quarantine(tmp_path / "spool")
    assert "139123456789012" not in q.error and "张三丰" not in q.error, q.error


async def test_an_oversized_authorization_header_does_not_write_the_control_token_into_the_log(
        out: Writes) -> None:
    """Review 3: aiohttp refuses a header line over 8190 bytes with LineTooLong, whose message
    quotes the line's first 100 bytes ("Bearer <the token>..."), and logged it at error level."""
    from types import SimpleNamespace

    from aiohttp import ClientSession
    from aiohttp.test_utils import TestServer

    from config.loader import load
    from cti import http
    from cti.engine import Engine

    engine = Engine(load(None), None, None, SimpleNamespace(), None, TOKEN)  # type: ignore[arg-type]
    async with TestServer(http.control_app(engine)) as server, ClientSession() as session, \
            session.get(server.make_url("/agents"), headers={"Authorization": f"Bearer {TOKEN}{'x' * 9000}"}) as resp:
        assert resp.status == 400
    assert TOKEN not in out.getvalue(), "the control token is in the engine's log"
    assert "bad_http_request: LineTooLong" in out.getvalue()

