"""Composition of the ticket platform from the settings: policy, service, HTTP API, relay."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Engine

from config.settings import Settings
from tickets.api import ApiSettings, TicketApi
from tickets.service import Policy, TicketService


def policy(settings: Settings) -> Policy:
    t = settings.tickets
    wrapup = max((q.wrapup for q in settings.queues), default=0.0)
    return Policy(rules=t.rule_table(), calendar=settings.calendar.to_core(), max_returns=t.max_returns,
                  soon_due=timedelta(seconds=t.soon_due.seconds()),
                  locations={k: tuple(v) for k, v in t.locations.items()},
                  wrapup=timedelta(seconds=wrapup + 30),  # the wrap-up, and half a minute to press 保存
                  push=bool(t.push.url))


def api_settings(settings: Settings) -> ApiSettings:
    a = settings.tickets.auth
    return ApiSettings(token_ttl=timedelta(seconds=a.token_ttl.seconds()), max_failures=a.max_failures,
                       failure_window=timedelta(seconds=a.failure_window.seconds()),
                       lockout=timedelta(seconds=a.lockout.seconds()),
                       max_body_bytes=settings.tickets.max_body_bytes)


def build(settings: Settings, engine: Engine) -> tuple[TicketService, TicketApi]:
    service = TicketService(engine, policy(settings))
    return service, TicketApi(engine, service, api_settings(settings))
