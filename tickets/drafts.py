"""From call to ticket: every answered call opens a draft 工单 for the agent who answered it.

Two paths, both keyed by the call id (a draft is opened once per call whichever comes first):
- live: the dispatcher hands over the answer the moment it happens (`offer`, never blocking:
  a full hand-off queue drops the offer and the sweep catches up), so the agent's desk has
  the draft while the citizen is still talking;
- from the store: `sweep` finds answered calls with a stored record and no ticket (the
  engine was killed before the draft was written, the ticket service was down, the call
  was answered by the dialplan's fallback) and opens their drafts, and fills in a
  recording the live path did not know yet. Call records survive a kill -9 (spool and
  database), so the drafts do too.

The routing engine never waits on this: the dispatcher's only call is `offer`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from acd.model import Outcome
from tickets.models import CallRecordRow, TicketCallRow, TicketMarkRow, TicketRow
from tickets.service import TicketService

log = structlog.get_logger("hotline.tickets.drafts")
QUEUE_SIZE = 1000
SWEEP_EVERY = 30.0  # seconds
SWEEP_HORIZON = timedelta(days=2)  # older answered calls without a ticket are left alone (a report's matter)


@dataclass(frozen=True)
class Answered:
    call_id: str
    caller_num: str
    caller_name: str
    restricted: bool
    agent_id: str | None
    recording: str | None


class DraftMaker:
    def __init__(self, service: TicketService, clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 sweep_every: float = SWEEP_EVERY) -> None:
        self.service, self.clock, self.sweep_every = service, clock, sweep_every
        self.inbox: asyncio.Queue[Answered] = asyncio.Queue(QUEUE_SIZE)
        self.opened = 0
        self.dropped = 0
        self.failed = 0
        self._down = False
        self._since: datetime | None = None  # the stored `drafts_since` mark, once read
        # Told (on the event loop) of each draft the live path opened: (call id, ticket id). The
        # agent's desk waits for this instead of asking the store until the draft is there.
        self.on_opened: Callable[[str, int], None] | None = None

    def offer(self, answered: Answered) -> None:
        """From the dispatcher's task: never waits."""
        try:
            self.inbox.put_nowait(answered)
        except asyncio.QueueFull:
            self.dropped += 1  # the sweep opens it from the stored record

    async def run(self) -> None:
        next_sweep = 0.0
        loop = asyncio.get_running_loop()
        while True:
            timeout = max(0.0, next_sweep - loop.time())
            try:
                item = await asyncio.wait_for(self.inbox.get(), timeout)
            except TimeoutError:
                await self._guarded(self.sweep)
                next_sweep = loop.time() + self.sweep_every
                continue
            ticket_id = await self._guarded(self._open, item)
            if ticket_id is not None and self.on_opened is not None:
                try:
                    self.on_opened(item.call_id, ticket_id)
                except Exception:  # a page's trouble: the draft is opened all the same
                    log.exception("draft_opened_hook_failed", call_id=item.call_id)

    async def _guarded(self, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            result = await asyncio.to_thread(fn, *args)
        except Exception as exc:
            self.failed += 1
            if not self._down:  # once per outage, not once per call
                log.warning("drafts_store_unavailable", error=type(exc).__name__,
                            hint="drafts are opened from the stored call records when the database answers")
            self._down = True
            return None
        if self._down:
            log.info("drafts_store_back")
        self._down = False
        return result

    def _open(self, a: Answered) -> int:
        view = self.service.open_draft(call_id=a.call_id, caller_num=a.caller_num, caller_name=a.caller_name,
                                       restricted=a.restricted, agent_id=a.agent_id, recording=a.recording,
                                       now=self.clock())
        self.opened += 1
        log.info("draft_opened", call_id=a.call_id, ticket=view["number"], agent_id=a.agent_id)
        return int(view["id"])

    def sweep(self) -> int:
        """Open the drafts of answered calls the live path missed; link recordings and survey
        ratings learnt since."""
        now = self.clock()
        r, link = CallRecordRow, TicketCallRow
        with Session(self.service.engine) as s:
            if self._since is None:
                self._since = _drafts_since(s, now)
            since = max(now - SWEEP_HORIZON, self._since)
            missing = s.execute(
                select(r.call_id, r.caller_num, r.caller_name, r.caller_restricted, r.agent_id, r.recording)
                .outerjoin(link, link.call_id == r.call_id)
                .where(r.outcome == Outcome.ANSWERED.value, r.arrived >= since, link.call_id.is_(None))
                .limit(500)).all()
            unlinked = s.execute(
                select(link.ticket_id, link.call_id, r.recording).join(r, r.call_id == link.call_id)
                .join(TicketRow, TicketRow.id == link.ticket_id)
                .where(link.recording.is_(None), r.recording.is_not(None), r.arrived >= now - SWEEP_HORIZON)
                .limit(500)).all()
            rated = s.execute(
                select(link.ticket_id, link.call_id, r.rating).join(r, r.call_id == link.call_id)
                .where(r.surveyed.is_(True), link.surveyed.is_(False), r.arrived >= now - SWEEP_HORIZON)
                .limit(500)).all()
        for call_id, num, name, restricted, agent, recording in missing:
            self._open(Answered(call_id, num, name, restricted, agent, recording))
        if unlinked:
            with Session(self.service.engine) as s, s.begin():
                for ticket_id, call_id, recording in unlinked:
                    s.execute(update(link).where(link.ticket_id == ticket_id, link.call_id == call_id)
                              .values(recording=recording))
        if rated:
            # The survey's answer reaches the ticket from the stored record (durable, and the same
            # figure the reports count); a record stored late is picked up by a later sweep.
            with Session(self.service.engine) as s, s.begin():
                for ticket_id, call_id, rating in rated:
                    s.execute(update(link).where(link.ticket_id == ticket_id, link.call_id == call_id)
                              .values(surveyed=True, rating=rating))
            log.info("survey_ratings_linked", calls=len(rated))
        return len(missing)


def _drafts_since(s: Session, now: datetime) -> datetime:
    """The platform's `drafts_since` mark, set to `now` by the first sweep ever (every later
    start, and every other worker, reads the same): calls from before the platform existed (the
    first start after an upgrade) are history, not work, and get no draft."""
    dialect = s.get_bind().dialect.name
    ins = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(TicketMarkRow)
    s.execute(ins.values(name="drafts_since", at=now).on_conflict_do_nothing(index_elements=["name"]))
    s.commit()
    return _utc(s.get_one(TicketMarkRow, "drafts_since").at)


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)  # SQLite gives back naive UTC
