"""Composition of the ticket platform from the settings: policy, service, HTTP API, relay."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Engine

from acd.calls import Call
from acd.commands import CallAnswered
from config.settings import Settings
from tickets.api import ApiSettings, TicketApi
from tickets.drafts import Answered, DraftMaker
from tickets.push import Relay
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


@dataclass
class TicketPlatform:
    service: TicketService
    api: TicketApi
    drafts: DraftMaker
    relay: Relay | None

    def answered(self, cmd: CallAnswered, call: Call | None) -> None:
        """The dispatcher's hook: hand the answer over without waiting."""
        self.drafts.offer(Answered(
            call_id=cmd.call_id, caller_num=call.caller_num if call else "",
            caller_name=call.caller_name if call else "", restricted=call.restricted if call else False,
            agent_id=cmd.agent_id or None, recording=call.recording if call else None))

    def tasks(self, stop: asyncio.Event) -> set[asyncio.Task[None]]:
        out = {asyncio.create_task(self.drafts.run(), name="ticket-drafts")}
        if self.relay is not None:
            out.add(asyncio.create_task(self.relay.run(stop), name="ticket-push"))
        return out


def platform(settings: Settings, engine: Engine) -> TicketPlatform:
    """The ticket platform on `engine` (migrated by the caller)."""
    service = TicketService(engine, policy(settings))
    push = settings.tickets.push
    relay = Relay(engine, push.url, timeout=push.timeout_seconds, max_backoff=push.max_backoff_seconds) \
        if push.url else None
    api = TicketApi(engine, service, api_settings(settings))
    if relay is not None:
        service.committed = relay.poke  # thread-safe: the service runs in the API's worker threads
    return TicketPlatform(service, api, DraftMaker(service), relay)
