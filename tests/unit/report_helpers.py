"""Shared by the period-report tests: a store on SQLite or PostgreSQL, call rows placed at
Beijing times, and a small ticket world built through the real TicketService whose November
2026 figures are worked out by hand in test_report_tickets.py."""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import Engine, insert
from sqlalchemy.orm import Session

from config.loader import load
from reports.periods import SHANGHAI
from tests.pg import PG_ADMIN, pg_database
from tickets import auth
from tickets.auth import Principal
from tickets.db import migrate, open_engine
from tickets.lifecycle import Action
from tickets.models import CallRecordRow
from tickets.platform import policy
from tickets.service import TicketService

_ids = itertools.count()


@contextlib.contextmanager
def store(kind: str, tmp_path: Path) -> Iterator[Engine]:
    """A migrated, empty store: a SQLite file in tmp_path, or a fresh PostgreSQL database."""
    with contextlib.ExitStack() as stack:
        if kind == "sqlite":
            url = f"sqlite:///{tmp_path / 'hotline.db'}"
        else:
            try:
                psycopg.connect(PG_ADMIN, connect_timeout=3).close()
            except psycopg.OperationalError:
                pytest.skip("PostgreSQL is not running at 127.0.0.1:5432")
            url = stack.enter_context(pg_database())
        engine = open_engine(url)
        migrate(engine)
        try:
            yield engine
        finally:
            engine.dispose()


def bj(y: int, m: int, d: int, h: int = 0, mi: int = 0, sec: int = 0) -> datetime:
    """A Beijing wall time."""
    return datetime(y, m, d, h, mi, sec, tzinfo=SHANGHAI)


def call(arrived: datetime, outcome: str = "answered", wait: float = 10.0, *, talk: float | None = None,
         queue: str = "main", offered_queue: str | None = None, service_level: float = 15.0,
         short_abandon: float = 5.0, surveyed: bool = False, rating: int | None = None) -> dict[str, Any]:
    """A call_records row: arrived at `arrived` (aware), stored in UTC as the engine stores it."""
    at = arrived.astimezone(UTC)
    return {"call_id": f"r{next(_ids)}", "queue": queue, "offered_queue": queue if offered_queue is None else
            offered_queue, "caller_num": "13900000001", "arrived": at, "ended": at + timedelta(minutes=5),
            "answered": at + timedelta(seconds=wait) if outcome == "answered" else None,
            "outcome": outcome, "wait_seconds": wait, "talk_seconds": (60.0 if outcome == "answered" else 0.0)
            if talk is None else talk, "service_level": service_level, "short_abandon": short_abandon,
            "surveyed": surveyed, "rating": rating}


def store_calls(db: Engine, rows: list[dict[str, Any]]) -> None:
    with db.begin() as conn:
        conn.execute(insert(CallRecordRow), rows)


# ---- the ticket world ----------------------------------------------------------------------------

FORM = {"category": "投诉", "urgency": "urgent", "district": "秦都区", "content": "小区供暖不热",
        "caller_name": "张女士", "caller_num": "13800000001"}


def utc(y: int, m: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    return datetime(y, m, d, h, mi, tzinfo=UTC)


@dataclasses.dataclass
class World:
    svc: TicketService
    boss: Principal
    housing: Principal
    water: Principal
    numbers: dict[str, str]


def ticket_world(db: Engine) -> World:
    """Tickets A-I (urgent 投诉: accept within 30 min, handle within 72 h, one 24 h extension).

    A  registered 11-10, answered directly, closed 11-10 (no follow-up needed)
    B  housing: accepted in time, replied in time, 满意, closed 11-12
    C  housing: accepted late, replied late, 不满意 -> 重办 11-15 (new 72 h), replied 11-16, 基本满意, closed 11-17
    D  registered 11-10, marked 无效
    E  water: dispatched, returned, dispatched again 11-20, never accepted (overdue)
    F  water: accepted, extension approved (due 11-14 02:05 UTC), never replied (overdue)
    G  answered directly, 不满意, submitted, dispatched to housing 11-11, accepted and replied in time (待回访)
    H  housing, all in October, closed 11-02 with 非常满意
    I  housing, dispatched 11-29 20:00 UTC (11-30 04:00 Beijing), accepted: handling due in December
    """
    svc = TicketService(db, dataclasses.replace(policy(load(None))))
    t0 = utc(2026, 10, 1)
    with Session(db) as s, s.begin():
        housing_id = auth.add_department(s, "housing", "市住建局", "02933000001", t0).id
        water_id = auth.add_department(s, "water", "市水务局", "02933000002", t0).id
    boss = Principal(1, "boss", "supervisor", None, None, "班长")
    housing = Principal(2, "zhujian", "department", housing_id, None, "住建")
    water = Principal(3, "shuiwu", "department", water_id, None, "水务")
    numbers: dict[str, str] = {}

    def new(name: str, at: datetime, **form: Any) -> str:
        numbers[name] = svc.create(boss, {**FORM, **form}, at)["number"]
        return numbers[name]

    def act(who: Principal, name: str, action: Action, at: datetime, **body: Any) -> None:
        svc.act(who, numbers[name], action, body, at)

    d10 = utc(2026, 11, 10, 2)
    new("A", d10, category="咨询")
    act(boss, "A", Action.ANSWER_DIRECTLY, d10 + timedelta(minutes=5), reply="按政策答复")
    act(boss, "A", Action.CLOSE, d10 + timedelta(minutes=10))

    new("B", d10)
    act(boss, "B", Action.DISPATCH, d10, department="housing")
    act(housing, "B", Action.ACCEPT, d10 + timedelta(minutes=10))
    act(housing, "B", Action.REPLY, d10 + timedelta(days=1), reply="已修复")
    act(boss, "B", Action.APPROVE_REPLY, d10 + timedelta(days=1, hours=1))
    act(boss, "B", Action.FOLLOW_UP, d10 + timedelta(days=2), rating="满意")
    act(boss, "B", Action.CLOSE, d10 + timedelta(days=2, hours=1))

    new("C", d10, district="渭城区")
    act(boss, "C", Action.DISPATCH, d10, department="housing")
    act(housing, "C", Action.ACCEPT, d10 + timedelta(hours=1))  # 30 min allowed: late
    act(housing, "C", Action.REPLY, d10 + timedelta(days=4), reply="已处理")  # 72 h allowed: late
    act(boss, "C", Action.APPROVE_REPLY, d10 + timedelta(days=4, hours=1))
    act(boss, "C", Action.FOLLOW_UP, d10 + timedelta(days=4, hours=2), rating="不满意")
    act(boss, "C", Action.REOPEN, d10 + timedelta(days=5), note="仍不热")  # handling due 11-18 02:00
    act(housing, "C", Action.REPLY, d10 + timedelta(days=6), reply="已更换阀门")
    act(boss, "C", Action.APPROVE_REPLY, d10 + timedelta(days=6, hours=1))
    act(boss, "C", Action.FOLLOW_UP, d10 + timedelta(days=6, hours=2), rating="基本满意")
    act(boss, "C", Action.CLOSE, d10 + timedelta(days=7))

    new("D", d10)
    act(boss, "D", Action.MARK_INVALID, d10 + timedelta(minutes=1), note="骚扰电话")

    new("E", d10, category="求助")
    act(boss, "E", Action.DISPATCH, d10, department="water")
    act(water, "E", Action.RETURN, d10 + timedelta(minutes=10), note="不属本单位职责")
    act(boss, "E", Action.DISPATCH, utc(2026, 11, 20, 2), department="water")

    new("F", d10, category="求助", district="渭城区")
    act(boss, "F", Action.DISPATCH, d10, department="water")
    act(water, "F", Action.ACCEPT, d10 + timedelta(minutes=5))
    act(water, "F", Action.REQUEST_EXTENSION, d10 + timedelta(days=2), note="需协调")
    act(boss, "F", Action.APPROVE_EXTENSION, d10 + timedelta(days=2, hours=1))

    new("G", d10, category="咨询")
    act(boss, "G", Action.ANSWER_DIRECTLY, d10 + timedelta(minutes=5), reply="按政策答复")
    act(boss, "G", Action.FOLLOW_UP, d10 + timedelta(hours=1), rating="不满意")
    act(boss, "G", Action.SUBMIT, d10 + timedelta(hours=2))
    d11 = utc(2026, 11, 11, 2)
    act(boss, "G", Action.DISPATCH, d11, department="housing")
    act(housing, "G", Action.ACCEPT, d11 + timedelta(minutes=20))
    act(housing, "G", Action.REPLY, d11 + timedelta(days=1), reply="已答复")
    act(boss, "G", Action.APPROVE_REPLY, d11 + timedelta(days=1, hours=1))

    o20 = utc(2026, 10, 20, 2)
    new("H", o20)
    act(boss, "H", Action.DISPATCH, o20, department="housing")
    act(housing, "H", Action.ACCEPT, o20 + timedelta(minutes=10))
    act(housing, "H", Action.REPLY, o20 + timedelta(days=1), reply="已处理")
    act(boss, "H", Action.APPROVE_REPLY, o20 + timedelta(days=1, hours=1))
    act(boss, "H", Action.FOLLOW_UP, o20 + timedelta(days=2), rating="非常满意")
    act(boss, "H", Action.CLOSE, utc(2026, 11, 2, 2))

    n29 = utc(2026, 11, 29, 20)
    new("I", n29)
    act(boss, "I", Action.DISPATCH, n29, department="housing")
    act(housing, "I", Action.ACCEPT, n29 + timedelta(minutes=10))
    return World(svc, boss, housing, water, numbers)
