"""Drafts from the store: the sweep opens the draft of every answered call that has none
(the engine died before the hand-off, the fallback answered), once, links a recording learnt
later, and leaves calls from before the ticket platform existed alone."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import Engine, text

from acd.model import Outcome
from tests.tickets.helpers import T0, seed, service
from tests.unit.store_helpers import record
from tickets.db import insert_record
from tickets.drafts import Answered, DraftMaker
from tickets.service import Filters


def stored(db: Engine, call_id: str, at: float, **kw: object) -> None:
    insert_record(db, record(call_id, **{"arrived": at, "answered": at + 5, "ended": at + 60, **kw}))


def test_the_sweep_opens_the_missing_drafts_once_and_links_late_recordings(db: Engine) -> None:
    who = seed(db)
    svc = service(db)
    DraftMaker(svc, clock=lambda: T0 - timedelta(days=1)).sweep()  # the platform started a day ago
    maker = DraftMaker(svc, clock=lambda: T0)  # ... and this process now (a restart)
    stored(db, "answered-1", T0.timestamp() - 600, recording="/rec/a.wav")
    stored(db, "abandoned", T0.timestamp() - 500, outcome=Outcome.ABANDONED, answered=None, agent_id=None)
    stored(db, "answered-2", T0.timestamp() - 400, recording="/rec/b.wav")
    maker._open(Answered("answered-2", "13900000001", "", False, "1001", None))  # live, recording unknown yet
    assert maker.sweep() == 1
    assert maker.sweep() == 0  # once
    drafts = svc.search(who["boss"], Filters(state="draft"), T0)["items"]
    assert len(drafts) == 2
    links = {c["call_id"]: c["recording"] for d in drafts for c in svc.get(who["boss"], d["id"], T0)["calls"]}
    assert links == {"answered-1": "/rec/a.wav", "answered-2": "/rec/b.wav"}


def test_calls_from_before_the_platform_existed_get_no_draft(db: Engine) -> None:
    seed(db)
    stored(db, "yesterday", T0.timestamp() - 86400)
    assert DraftMaker(service(db), clock=lambda: T0).sweep() == 0  # the platform's first start
    stored(db, "missed-before-a-crash", T0.timestamp() + 60)
    later = DraftMaker(service(db), clock=lambda: T0 + timedelta(hours=1))  # restarted after a crash
    assert later.sweep() == 1


def test_the_sweep_puts_each_calls_survey_rating_on_its_ticket_once(db: Engine) -> None:
    who = seed(db)
    svc = service(db)
    DraftMaker(svc, clock=lambda: T0 - timedelta(days=1)).sweep()
    maker = DraftMaker(svc, clock=lambda: T0)
    stored(db, "rated", T0.timestamp() - 600, surveyed=True, rating=2)
    stored(db, "no-key", T0.timestamp() - 500, surveyed=True, rating=None)
    stored(db, "not-surveyed", T0.timestamp() - 400)
    maker.sweep()  # opens the drafts, links the calls
    maker.sweep()  # copies the ratings of calls already linked
    drafts = svc.search(who["boss"], Filters(state="draft"), T0)["items"]
    calls = {c["call_id"]: (c["surveyed"], c["rating"], c["rating_label"])
             for d in drafts for c in svc.get(who["boss"], d["id"], T0)["calls"]}
    assert calls == {"rated": (True, 2, "满意"), "no-key": (True, None, "未评价"), "not-surveyed": (False, None, "")}


def test_the_ticket_shows_who_joined_its_call_and_when(db: Engine) -> None:
    who = seed(db)
    svc = service(db)
    DraftMaker(svc, clock=lambda: T0 - timedelta(days=1)).sweep()
    at = T0.timestamp() - 600
    stored(db, "conf-1", at, parties=((at + 20, "joined", "number:02933000001", "by:1001"),
                                      (at + 40, "left", "agent:1001", "leave")))
    DraftMaker(svc, clock=lambda: T0).sweep()
    (draft,) = svc.search(who["boss"], Filters(state="draft"), T0)["items"]
    (call,) = svc.get(who["boss"], draft["id"], T0)["calls"]
    assert [(p["kind"], p["party"], p["detail"]) for p in call["parties"]] == [
        ("joined", "number:02933000001", "by:1001"), ("left", "agent:1001", "leave")]
    assert call["parties"][0]["at"].startswith((T0 - timedelta(seconds=580)).isoformat()[:19])


@pytest.mark.parametrize("altered", ["[[1]]", '{"a":1}', '[["x","joined","p","d"]]', "not json",
                                     "[" * 100_000 + "]" * 100_000])  # nested past the parser's recursion
def test_a_call_whose_parties_were_altered_in_the_database_shows_no_history_not_an_error(
        db: Engine, altered: str) -> None:
    who = seed(db)
    svc = service(db)
    DraftMaker(svc, clock=lambda: T0 - timedelta(days=1)).sweep()
    at = T0.timestamp() - 600
    stored(db, "altered", at, parties=((at + 20, "joined", "number:02933000001", "by:1001"),))
    DraftMaker(svc, clock=lambda: T0).sweep()
    with db.begin() as conn:  # only the engine writes the column: this is someone's hand in the database
        conn.execute(text("UPDATE call_records SET parties = :p WHERE call_id = 'altered'"), {"p": altered})
    (draft,) = svc.search(who["boss"], Filters(state="draft"), T0)["items"]
    (call,) = svc.get(who["boss"], draft["id"], T0)["calls"]
    assert call["call_id"] == "altered" and call["parties"] == []


async def test_the_desk_is_told_of_each_draft_the_live_path_opens_with_its_ticket(db: Engine) -> None:
    who = seed(db)
    svc = service(db)
    maker = DraftMaker(svc, clock=lambda: T0, sweep_every=3600)
    told: list[tuple[str, int]] = []
    maker.on_opened = lambda call_id, ticket_id: told.append((call_id, ticket_id))
    maker.offer(Answered("live-1", "13900000001", "", False, "1001", None))
    task = asyncio.create_task(maker.run())
    try:
        async with asyncio.timeout(10):
            while not told:
                await asyncio.sleep(0.01)
    finally:
        task.cancel()
    (draft,) = svc.search(who["boss"], Filters(state="draft"), T0)["items"]
    assert told == [("live-1", draft["id"])]
