"""Shared by the ticket platform's tests: a policy from the shipped defaults, departments,
users, and a clock that the test moves."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from config.loader import load
from tickets import auth
from tickets.auth import Principal
from tickets.platform import policy
from tickets.service import Policy, TicketService

# A Thursday, a working day, 10:00 in Beijing.
T0 = datetime(2026, 11, 26, 2, 0, tzinfo=UTC)
PASSWORD = "correct-horse-9"


def shipped_policy(**changes: Any) -> Policy:
    return dataclasses.replace(policy(load(None)), **changes)


def seed(db: Engine) -> dict[str, Principal]:
    """Two departments and one user of each role; returns their principals by user name."""
    with Session(db) as s, s.begin():
        auth.add_department(s, "housing", "市住建局", "02933000001", T0)
        auth.add_department(s, "water", "市水务局", "02933000002", T0)
        auth.add_user(s, "agent1", PASSWORD, "agent", T0, agent_id="1001", display_name="话务员一")
        auth.add_user(s, "agent2", PASSWORD, "agent", T0, agent_id="1002")
        auth.add_user(s, "boss", PASSWORD, "supervisor", T0)
        auth.add_user(s, "admin", PASSWORD, "admin", T0)
        auth.add_user(s, "zhujian", PASSWORD, "department", T0, department_code="housing")
        auth.add_user(s, "shuiwu", PASSWORD, "department", T0, department_code="water")
    with Session(db) as s:
        return {name: auth._principal(auth.get_user(s, name))
                for name in ("agent1", "agent2", "boss", "admin", "zhujian", "shuiwu")}


def service(db: Engine, **changes: Any) -> TicketService:
    return TicketService(db, shipped_policy(**changes))


FORM = {"category": "投诉", "urgency": "normal", "district": "秦都区", "address": "人民路12号",
        "content": "小区供暖不热，室温只有12度", "caller_name": "张女士", "caller_num": "13800000001"}
