"""Tickets and figures for the wallboard's and the portal's page tests, made through the
engine's own ticket service and store (as an agent's desk or a finished call would)."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from playwright.sync_api import Page
from sqlalchemy.orm import Session

from acd.model import Outcome
from tests.tickets.helpers import FORM
from tests.unit.store_helpers import record
from tests.web.harness import Site
from tickets import auth
from tickets.auth import Principal
from tickets.db import insert_record
from tickets.lifecycle import Action
from tickets.service import TicketService


def service(site: Site) -> TicketService:
    platform = site.running.e.tickets
    assert platform is not None
    return platform.api.service


def principal(site: Site, username: str) -> Principal:
    with Session(service(site).engine) as s:
        user = auth.find_user(s, username)
        assert user is not None
        return auth._principal(user)


def dispatched(site: Site, department: str, *, days_ago: float = 0.0, **form: Any) -> dict[str, Any]:
    """A ticket registered and dispatched to `department` `days_ago` days ago (a few days: its
    签收 deadline has passed, it is overdue now)."""
    svc, agent = service(site), principal(site, "agent1001")
    at = datetime.now(UTC) - timedelta(days=days_ago)
    ticket = svc.create(agent, {**FORM, **form}, at)
    return svc.act(agent, ticket["id"], Action.DISPATCH, {"department": department}, at)


def stored_call(site: Site, call_id: str, *, answered_after: float | None) -> None:
    """A finished call of queue main that arrived a minute ago, in the store (answered after
    `answered_after` seconds, or abandoned after 30 s when None)."""
    arrived = time.time() - 60
    if answered_after is None:
        rec = record(call_id, arrived=arrived, answered=None, ended=arrived + 30, agent_id=None,
                     outcome=Outcome.ABANDONED, queue="main", offered_queue="main", path=("main",),
                     wait_seconds=30.0, talk_seconds=0.0, recording=None, service_level=15.0, short_abandon=3.0)
    else:
        rec = record(call_id, arrived=arrived, answered=arrived + answered_after, ended=arrived + 50,
                     queue="main", offered_queue="main", path=("main",), wait_seconds=answered_after,
                     talk_seconds=50 - answered_after, service_level=15.0, short_abandon=3.0)
    insert_record(site.running.e.outbox.engine, rec)


def refresh_month(site: Site) -> None:
    """Ask the store for the figures now (the engine does it every month_to_date_interval s)."""
    month = site.running.e.month
    assert month is not None
    assert asyncio.run_coroutine_threadsafe(month.refresh(), site.running.loop).result(10)


def live(page: Page) -> None:
    """Wait until the page's event stream is open (hotline.js marks the body)."""
    page.wait_for_selector("body[data-live=open]")


def mark(page: Page) -> None:
    """Leave a mark in the page's window: a reload would lose it (`not_reloaded`)."""
    page.evaluate("window.__notReloaded = true")


def not_reloaded(page: Page) -> bool:
    return bool(page.evaluate("window.__notReloaded === true"))
