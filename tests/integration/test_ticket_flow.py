"""End to end on the real Asterisk: a SIPp caller is answered by an agent, the engine opens
the draft 工单 with the call and its recording, and the ticket goes the whole way through the
HTTP API (dispatched, returned once, re-dispatched, accepted, extended, replied, reviewed,
followed up with a rating, closed, archived). The history shows every step with its user,
and the provincial push delivered every event exactly once to a receiver that failed every
third delivery and was restarted once."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session

from testbed import push_receiver, sipp
from testbed.sandbox import Sandbox
from tests.integration.harness import RunningEngine, password, write_config
from tests.unit.test_cli import free_port
from tickets import auth
from tickets.db import migrate, open_engine
from tickets.models import PushEventRow

USERS = {"agent1001": ("agent", None, "1001"), "boss": ("supervisor", None, None),
         "zhujian": ("department", "housing", None), "shuiwu": ("department", "water", None)}
PASSWORD = "e2e-password-7"


class Receiver:
    """The provincial platform's stand-in, as a process that can be killed and started again."""

    def __init__(self, db: Path, port: int) -> None:
        self.db, self.port, self.proc = db, port, None  # type: ignore[var-annotated]

    def start(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "testbed.push_receiver", "--port", str(self.port),
                                      "--db", str(self.db), "--fail-every", "3"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/stats", timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        raise AssertionError("the push receiver did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(5)
            self.proc = None


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[Receiver]:
    r = Receiver(tmp_path / "province.db", free_port())
    r.start()
    yield r
    r.stop()


def api(port: int, method: str, path: str, body: dict[str, Any] | None = None,
        token: str | None = None) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1{path}", data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.load(resp)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


def test_a_call_becomes_a_ticket_that_goes_the_whole_way_and_reaches_the_province_once(
        clean: Sandbox, tmp_path: Path, receiver: Receiver) -> None:
    config = write_config(tmp_path / "config", agents=["1001"],
                          tickets={"push": {"url": f"http://127.0.0.1:{receiver.port}/events",
                                            "max_backoff_seconds": 2}})
    db_url = f"sqlite:///{config / 'hotline.db'}"
    store = open_engine(db_url)
    migrate(store)
    with Session(store) as s, s.begin():
        now = __import__("datetime").datetime.now(__import__("datetime").UTC)
        auth.add_department(s, "housing", "市住建局", "02933000001", now)
        auth.add_department(s, "water", "市水务局", "02933000002", now)
        for name, (role, dept, agent_id) in USERS.items():
            auth.add_user(s, name, PASSWORD, role, now, department_code=dept, agent_id=agent_id)
    running = RunningEngine.from_dir(config)
    try:
        running.wait_ready()
        port = running.e.tickets_port
        tokens = {u: api(port, "POST", "/login", {"username": u, "password": PASSWORD})[1]["token"] for u in USERS}

        uas = sipp.agent_uas(6100, answer_ms=300)
        sipp.register([("agent1001", password("1001"))], contact_port=6100)
        running.wait_for(lambda e: any(a.available() for a in e.dispatcher.state.agents.values()), 10, "agent")
        stats = sipp.callers(1, rate=1, names=[("王先生", "13912345678")], talk_ms=3000).check(60)
        assert stats.successful == 1
        (record,) = running.records(wait_for=1)
        assert record.outcome == "answered" and record.recording

        # The draft was opened at the answer (live, before any sweep); the sweep links the
        # recording from the stored record when the answer did not know it yet.
        status, page = api(port, "POST", "/tickets/search", {"state": "draft"}, tokens["boss"])
        (draft,) = page["items"]
        assert running.e.tickets is not None and running.e.tickets.drafts.opened == 1
        running.call(running.e.tickets.drafts.sweep)
        status, found = api(port, "POST", "/callers/lookup", {"number": "13912345678"}, tokens["agent1001"])
        assert status == 200 and [c["call_id"] for c in found["calls"]] == [record.call_id]
        status, ticket = api(port, "GET", f"/tickets/{draft['number']}", token=tokens["agent1001"])
        assert ticket["agent_id"] == "1001"
        assert [(c["call_id"], c["recording"]) for c in ticket["calls"]] == [(record.call_id, record.recording)]

        n = ticket["number"]
        steps = [
            ("agent1001", "register", {"category": "投诉", "urgency": "normal", "district": "秦都区",
                                       "content": "楼道漏水三天无人处理"}),
            ("agent1001", "dispatch", {"department": "water"}),
            ("shuiwu", "return", {"note": "属住建部门职责"}),
            ("boss", "dispatch", {"department": "housing"}),
            ("zhujian", "accept", {}),
            ("zhujian", "request_extension", {"note": "需协调物业"}),
            ("boss", "approve_extension", {}),
            ("zhujian", "reply", {"reply": "已维修"}),
            ("boss", "approve_reply", {}),
            ("agent1001", "follow_up", {"rating": "满意", "result": "市民确认已修好"}),
            ("boss", "close", {}),
            ("boss", "archive", {}),
        ]
        for i, (user, action, body) in enumerate(steps):
            if i == 6:  # the province's receiver dies and comes back mid-way
                receiver.stop()
                time.sleep(1.5)
                receiver.start()
            status, ticket = api(port, "POST", f"/tickets/{n}/actions/{action}", body, tokens[user])
            assert status == 200, (action, ticket)
        assert ticket["state"] == "archived" and ticket["rating"] == "满意"

        status, history = api(port, "GET", f"/tickets/{n}/history", token=tokens["boss"])
        assert [(e["actor"], e["action"]) for e in history] == [("engine", "open_draft")] + [
            (u, a) for u, a, _ in steps]

        def delivered() -> bool:
            with Session(store) as s:
                return all(r.delivered is not None for r in s.query(PushEventRow))

        deadline = time.monotonic() + 60
        while not delivered() and time.monotonic() < deadline:
            time.sleep(0.5)
        assert delivered()
        with Session(store) as s:
            keys = [r.key for r in s.query(PushEventRow).order_by(PushEventRow.id)]
        got = push_receiver.stats(receiver.db)
        assert len(keys) == len(history)  # one event per change
        assert got.applied == dict.fromkeys(keys, 1)  # every event applied, exactly once
        assert [k for _, k in got.order] == keys  # and in the order the changes were made
        assert got.statuses.get(503, 0) >= 1  # the receiver did fail some deliveries
        del uas
    finally:
        running.close()
        store.dispose()
