"""The ticket service on both stores: a call's draft to the archive with every step in the
history, deadlines from the rule table, 超期 without a batch job, department scoping in the
queries, and the refusals (409 with the allowed actions, 403 with the reason, 422 naming the field)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from tests.tickets.helpers import FORM, T0, seed, service
from tickets.lifecycle import Action
from tickets.service import Conflict, Forbidden, Invalid, NotFound, TicketService


@pytest.fixture
def world(db: Engine) -> tuple[TicketService, dict]:
    return service(db), seed(db)


def draft(svc: TicketService, call_id: str = "1764122400.1", agent: str = "1001") -> dict:
    return svc.open_draft(call_id=call_id, caller_num="13800000001", caller_name="", restricted=False,
                          agent_id=agent, recording=f"/var/spool/hotline/rec/{call_id}.wav", now=T0)


def test_a_call_to_the_archive_leaves_every_step_in_the_history(world: tuple[TicketService, dict]) -> None:
    svc, who = world
    t = draft(svc)
    assert t["state"] == "draft" and t["number"].startswith("2026112600") and len(t["number"]) == 13
    assert t["calls"][0]["recording"].endswith(".wav")
    n = t["number"]
    steps = [
        ("agent1", Action.REGISTER, FORM), ("agent1", Action.DISPATCH, {"department": "housing"}),
        ("zhujian", Action.RETURN, {"note": "不属于本单位职责"}), ("boss", Action.DISPATCH, {"department": "water"}),
        ("shuiwu", Action.ACCEPT, {}), ("shuiwu", Action.REQUEST_EXTENSION, {"note": "需现场勘查"}),
        ("boss", Action.APPROVE_EXTENSION, {}), ("shuiwu", Action.REPLY, {"reply": "已维修管道"}),
        ("boss", Action.APPROVE_REPLY, {}), ("agent2", Action.FOLLOW_UP, {"rating": "满意", "result": "已恢复供暖"}),
        ("agent2", Action.CLOSE, {}), ("boss", Action.ARCHIVE, {}),
    ]
    now = T0
    for user, action, body in steps:
        now += timedelta(minutes=10)
        t = svc.act(who[user], n, action, body, now)
    assert t["state"] == "archived" and t["returns"] == 1 and t["extensions"] == 1 and t["rating"] == "满意"
    history = svc.history(who["boss"], n)
    assert [e["seq"] for e in history] == list(range(1, len(steps) + 2))
    assert [(e["actor"], e["action"]) for e in history] == [("engine", "open_draft")] + [
        (u, a.value) for u, a, _ in steps]
    assert all(history[i]["to"] == history[i + 1]["from"] for i in range(len(history) - 1))
    assert history[3]["note"] == "不属于本单位职责"


def test_numbers_are_date_and_a_daily_sequence_never_reused(world: tuple[TicketService, dict]) -> None:
    svc, who = world
    a = svc.create(who["agent1"], FORM, T0)
    b = svc.create(who["agent1"], FORM, T0)
    next_day = svc.create(who["agent1"], FORM, T0 + timedelta(days=1))
    assert (a["number"], b["number"], next_day["number"]) == ("2026112600001", "2026112600002", "2026112700001")


def test_the_same_call_opens_one_draft(world: tuple[TicketService, dict]) -> None:
    svc, _ = world
    assert draft(svc, "c-1")["id"] == draft(svc, "c-1")["id"] != draft(svc, "c-2")["id"]


def test_an_illegal_step_is_refused_with_the_allowed_ones_named(world: tuple[TicketService, dict]) -> None:
    svc, who = world
    t = svc.create(who["agent1"], FORM, T0)
    with pytest.raises(Conflict) as refused:
        svc.act(who["boss"], t["id"], Action.APPROVE_REPLY, {}, T0)
    assert set(refused.value.allowed) >= {"dispatch", "answer_directly", "submit"}
    assert svc.history(who["boss"], t["id"])[-1]["action"] == "register"  # nothing written


def test_a_department_never_sees_another_departments_ticket(world: tuple[TicketService, dict]) -> None:
    svc, who = world
    t = svc.create(who["agent1"], FORM, T0)
    svc.act(who["agent1"], t["id"], Action.DISPATCH, {"department": "housing"}, T0)
    assert svc.get(who["zhujian"], t["id"], T0)["number"] == t["number"]
    for ref in (t["id"], t["number"]):
        with pytest.raises(NotFound):
            svc.get(who["shuiwu"], ref, T0)
        with pytest.raises(NotFound):
            svc.history(who["shuiwu"], ref)
        with pytest.raises(NotFound):
            svc.act(who["shuiwu"], ref, Action.ACCEPT, {}, T0)
    from tickets.service import Filters

    assert svc.search(who["shuiwu"], Filters(), T0)["total"] == 0
    assert svc.search(who["shuiwu"], Filters(number=t["number"]), T0)["items"] == []
    assert svc.search(who["zhujian"], Filters(), T0)["total"] == 1
    assert svc.due_list(who["shuiwu"], T0 + timedelta(days=30), "overdue")["total"] == 0
    with pytest.raises(Forbidden):
        svc.caller(who["shuiwu"], "13800000001", T0)


def test_roles_may_only_do_their_part(world: tuple[TicketService, dict]) -> None:
    svc, who = world
    t = svc.create(who["agent1"], FORM, T0)
    with pytest.raises(Forbidden, match="承办单位"):
        svc.act(who["agent1"], t["id"], Action.ACCEPT, {}, T0)
    with pytest.raises(Forbidden):
        svc.act(who["admin"], t["id"], Action.DISPATCH, {"department": "housing"}, T0)
    with pytest.raises(Forbidden):
        svc.act(who["zhujian"], t["id"], Action.URGE, {"note": "快"}, T0)
    with pytest.raises(Forbidden):
        svc.create(who["zhujian"], FORM, T0)


def test_an_agent_cannot_finish_another_agents_draft(world: tuple[TicketService, dict]) -> None:
    svc, who = world
    t = draft(svc, agent="1001")
    with pytest.raises(Forbidden):
        svc.act(who["agent2"], t["id"], Action.REGISTER, FORM, T0)
    assert svc.act(who["boss"], t["id"], Action.REGISTER, FORM, T0)["state"] == "registered"


def test_deadlines_come_from_the_rule_table_and_overdue_needs_no_job(world: tuple[TicketService, dict]) -> None:
    svc, who = world
    urgent = svc.create(who["agent1"], {**FORM, "urgency": "critical"}, T0)
    normal = svc.create(who["agent1"], FORM, T0)
    for t in (urgent, normal):
        svc.act(who["agent1"], t["id"], Action.DISPATCH, {"department": "housing"}, T0)
    u = svc.get(who["boss"], urgent["id"], T0)
    assert u["accept_due"] == (T0 + timedelta(minutes=15)).isoformat()  # 特急: 15 minutes to 签收
    n = svc.get(who["boss"], normal["id"], T0)
    assert n["accept_due"] == (T0 + timedelta(days=1)).isoformat()  # Thursday -> Friday, same time
    later = T0 + timedelta(minutes=16)
    assert svc.get(who["boss"], urgent["id"], later)["overdue"] is True
    assert [i["id"] for i in svc.due_list(who["boss"], later, "overdue")["items"]] == [urgent["id"]]
    assert [i["id"] for i in svc.due_list(who["boss"], T0 + timedelta(hours=21), "soon")["items"]] == [normal["id"]]
    accepted = svc.act(who["zhujian"], urgent["id"], Action.ACCEPT, {}, later)
    assert accepted["late"] is True and accepted["handle_due"] == (later + timedelta(hours=24)).isoformat()


def test_returns_are_limited_then_the_hotline_designates(world: tuple[TicketService, dict]) -> None:
    svc, who = world
    t = svc.create(who["agent1"], FORM, T0)
    for _ in range(3):
        svc.act(who["boss"], t["id"], Action.DISPATCH, {"department": "housing"}, T0)
        svc.act(who["zhujian"], t["id"], Action.RETURN, {"note": "非本单位"}, T0)
    with pytest.raises(Conflict, match="designat") as refused:
        svc.act(who["boss"], t["id"], Action.DISPATCH, {"department": "housing"}, T0)
    assert "designate" in refused.value.allowed
    svc.act(who["boss"], t["id"], Action.DESIGNATE, {"department": "housing"}, T0)
    with pytest.raises(Conflict):
        svc.act(who["zhujian"], t["id"], Action.RETURN, {"note": "还是不归我们"}, T0)


@pytest.mark.parametrize(("action", "body", "field"), [
    (Action.RETURN, {}, "note"), (Action.DISPATCH, {}, "department"), (Action.DISPATCH, {"department": "nope"},
                                                                        "department"),
    (Action.MARK_DUPLICATE, {}, "original"), (Action.MARK_DUPLICATE, {"original": "2099010100001"}, "original"),
    (Action.EDIT, {"category": "无效"}, "category"), (Action.EDIT, {"district": "朝阳区"}, "district"),
    (Action.ANSWER_DIRECTLY, {}, "reply"),
])
def test_a_missing_or_bad_field_is_named(world: tuple[TicketService, dict], action: Action, body: dict,
                                         field: str) -> None:
    svc, who = world
    t = svc.create(who["agent1"], FORM, T0)
    if action is Action.RETURN:
        svc.act(who["agent1"], t["id"], Action.DISPATCH, {"department": "housing"}, T0)
        who_acts = who["zhujian"]
    else:
        who_acts = who["boss"]
    with pytest.raises(Invalid) as bad:
        svc.act(who_acts, t["id"], action, body, T0)
    assert bad.value.field == field


def test_duplicates_close_at_registration_linked_to_the_original(world: tuple[TicketService, dict]) -> None:
    svc, who = world
    original = svc.create(who["agent1"], FORM, T0)
    d = draft(svc)
    dup = svc.act(who["agent1"], d["id"], Action.MARK_DUPLICATE, {"original": original["number"]}, T0)
    assert (dup["state"], dup["original"], dup["category"]) == ("duplicate", original["number"], "重复")


def test_a_call_back_about_the_same_ticket_is_attached_to_it(world: tuple[TicketService, dict]) -> None:
    svc, who = world
    original = svc.create(who["agent1"], FORM, T0)
    d = draft(svc, "call-2")
    merged = svc.act(who["agent1"], d["id"], Action.ATTACH, {"target": original["number"]}, T0)
    assert merged["state"] == "merged"
    calls = svc.get(who["boss"], original["id"], T0)["calls"]
    assert [c["call_id"] for c in calls] == ["call-2"]
    assert svc.history(who["boss"], original["id"])[-1]["action"] == "link_call"
    looked_up = svc.caller(who["agent2"], "13800000001", T0)
    assert [x["number"] for x in looked_up["open_tickets"]] == [original["number"]]


def test_a_stale_version_is_refused(world: tuple[TicketService, dict]) -> None:
    svc, who = world
    t = svc.create(who["agent1"], FORM, T0)
    svc.act(who["agent1"], t["id"], Action.EDIT, {"address": "人民路14号", "version": t["version"]}, T0)
    with pytest.raises(Conflict, match="version"):
        svc.act(who["agent1"], t["id"], Action.EDIT, {"address": "人民路16号", "version": t["version"]}, T0)


def test_the_history_cannot_be_edited_even_in_sql(db: Engine, world: tuple[TicketService, dict]) -> None:
    svc, who = world
    svc.create(who["agent1"], FORM, T0)
    for statement in ("UPDATE ticket_events SET note = 'x'", "DELETE FROM ticket_events"):
        with pytest.raises(DBAPIError, match="append-only"), db.begin() as conn:
            conn.execute(text(statement))


def test_a_restricted_callers_number_is_masked_for_departments(world: tuple[TicketService, dict]) -> None:
    svc, who = world
    t = svc.create(who["agent1"], {**FORM, "caller_restricted": True}, T0)
    svc.act(who["agent1"], t["id"], Action.DISPATCH, {"department": "housing"}, T0)
    seen = svc.get(who["zhujian"], t["id"], T0)
    assert seen["caller_num"] == "*******0001" and seen["caller_name"] == ""
    assert svc.get(who["agent1"], t["id"], T0)["caller_num"] == "13800000001"


def test_two_people_stepping_one_ticket_from_the_same_state_cannot_both_succeed(
        world: tuple[TicketService, dict], monkeypatch: pytest.MonkeyPatch) -> None:
    svc, who = world
    if svc.engine.dialect.name == "postgresql":
        pytest.skip("on PostgreSQL the row lock makes the second writer wait, never read stale")
    t = svc.create(who["agent1"], FORM, T0)
    svc.act(who["agent1"], t["id"], Action.DISPATCH, {"department": "housing"}, T0)
    # The second writer read the ticket before the first one's change committed (on SQLite,
    # SELECT ... FOR UPDATE locks nothing): its UPDATE finds the version moved and is refused.
    original = TicketService._load

    def stale_load(self: TicketService, s, who_, ticket, *, lock: bool = False):  # type: ignore[no-untyped-def]
        row = original(self, s, who_, ticket, lock=lock)
        if lock and not getattr(stale_load, "done", False):
            stale_load.done = True  # type: ignore[attr-defined]
            svc.act(who["zhujian"], t["id"], Action.ACCEPT, {}, T0)  # another request, committed meanwhile
        return row

    monkeypatch.setattr(TicketService, "_load", stale_load)
    with pytest.raises(Conflict, match=r"version|修改"):
        svc.act(who["zhujian"], t["id"], Action.RETURN, {"note": "不归我们"}, T0)
    assert [e["action"] for e in svc.history(who["boss"], t["id"])] == ["register", "dispatch", "accept"]


def test_a_rejected_reply_puts_the_handle_deadline_back_in_force(world: tuple[TicketService, dict]) -> None:
    svc, who = world
    t = svc.create(who["agent1"], FORM, T0)
    svc.act(who["agent1"], t["id"], Action.DISPATCH, {"department": "housing"}, T0)
    accepted = svc.act(who["zhujian"], t["id"], Action.ACCEPT, {}, T0)
    replied = svc.act(who["zhujian"], t["id"], Action.REPLY, {"reply": "已办"}, T0)
    assert replied["due_at"] is None  # the hotline's review is not the department's time
    back = svc.act(who["boss"], t["id"], Action.REJECT_REPLY, {"note": "答复未回应诉求"}, T0)
    assert back["due_at"] == accepted["handle_due"] == back["handle_due"]


def test_an_archived_ticket_takes_no_more_calls(world: tuple[TicketService, dict]) -> None:
    svc, who = world
    t = svc.create(who["agent1"], FORM, T0)
    svc.act(who["agent1"], t["id"], Action.MARK_INVALID, {"note": "误拨"}, T0)
    svc.act(who["boss"], t["id"], Action.ARCHIVE, {}, T0)
    with pytest.raises(Conflict, match="归档"):
        svc.link_call(who["agent1"], t["id"], "late-call", None, T0)
    d = draft(svc, "late-call")
    with pytest.raises(Conflict):
        svc.act(who["agent1"], d["id"], Action.ATTACH, {"target": t["number"]}, T0)


def test_the_history_masks_a_restricted_caller_for_departments(world: tuple[TicketService, dict]) -> None:
    svc, who = world
    t = svc.create(who["agent1"], {**FORM, "caller_restricted": True}, T0)
    svc.act(who["agent1"], t["id"], Action.DISPATCH, {"department": "housing"}, T0)
    seen = svc.history(who["zhujian"], t["id"])[0]["data"]
    assert (seen["caller_num"], seen["caller_name"]) == ("*******0001", "")
    assert svc.history(who["boss"], t["id"])[0]["data"]["caller_num"] == "13800000001"


def test_departments_cannot_search_by_the_callers_number(world: tuple[TicketService, dict]) -> None:
    from tickets.service import Filters

    svc, who = world
    with pytest.raises(Forbidden):
        svc.search(who["zhujian"], Filters(phone="13800000001"), T0)


def test_a_date_range_with_an_offset_means_that_moment_on_both_stores(world: tuple[TicketService, dict]) -> None:
    from datetime import timezone

    from tickets.service import Filters

    svc, who = world
    svc.create(who["agent1"], FORM, T0)  # 10:00 in Beijing
    beijing = timezone(timedelta(hours=8))
    at_959 = (T0 - timedelta(minutes=1)).astimezone(beijing)
    at_1001 = (T0 + timedelta(minutes=1)).astimezone(beijing)
    assert svc.search(who["boss"], Filters(created_from=at_959, created_to=at_1001), T0)["total"] == 1
    assert svc.search(who["boss"], Filters(created_from=at_1001), T0)["total"] == 0


def test_returning_after_the_accept_limit_is_late_and_overdue_means_a_running_deadline_passed(
        world: tuple[TicketService, dict]) -> None:
    svc, who = world
    t = svc.create(who["agent1"], FORM, T0)
    svc.act(who["agent1"], t["id"], Action.DISPATCH, {"department": "housing"}, T0)
    returned = svc.act(who["zhujian"], t["id"], Action.RETURN, {"note": "非本单位"}, T0 + timedelta(days=3))
    assert returned["late"] is True and returned["overdue"] is False  # no deadline runs while returned
    again = svc.act(who["boss"], t["id"], Action.DISPATCH, {"department": "water"}, T0 + timedelta(days=3))
    assert again["late"] is True and again["overdue"] is False


def test_the_provincial_push_gets_a_restricted_caller_masked(db: Engine) -> None:
    import json as json_

    from sqlalchemy.orm import Session

    from tickets.models import PushEventRow

    who = seed(db)
    svc = service(db, push=True)
    svc.create(who["agent1"], {**FORM, "caller_restricted": True}, T0)
    with Session(db) as s:
        (event,) = s.query(PushEventRow).all()
    payload = json_.loads(event.payload)
    assert (payload["caller_num"], payload["caller_name"], payload["action"]) == ("*******0001", "", "register")


def test_unfinished_drafts_are_listed_for_supervisors_after_the_wrap_up(world: tuple[TicketService, dict],
                                                                       db: Engine) -> None:
    from tests.unit.store_helpers import record
    from tickets.db import insert_record

    svc, who = world
    for call_id, ended in (("old", T0 - timedelta(minutes=5)), ("fresh", T0 - timedelta(seconds=5))):
        insert_record(db, record(call_id, arrived=ended.timestamp() - 60, answered=ended.timestamp() - 50,
                                 ended=ended.timestamp()))
        draft(svc, call_id)
    listed = svc.unfinished_drafts(who["boss"], T0)
    assert [d["state"] for d in listed] == ["draft"] and len(listed) == 1
    with pytest.raises(Forbidden):
        svc.unfinished_drafts(who["agent1"], T0)


def test_progress_by_phone_says_state_and_due_date_only_and_finds_no_draft(db: Engine) -> None:
    who = seed(db)
    svc = service(db)
    ticket = svc.create(who["agent1"], FORM, T0)
    svc.act(who["agent1"], ticket["number"], Action.DISPATCH, {"department": "housing"}, T0)
    state, due = svc.progress(ticket["number"])  # type: ignore[misc]
    assert state == "dispatched" and due is not None and due >= T0.date()
    draft = svc.open_draft(call_id="c-draft", caller_num="13800000001", caller_name="", restricted=False,
                           agent_id="1001", recording=None, now=T0)
    assert draft["number"] and svc.progress(draft["number"]) is None
    assert svc.progress("20000101000000") is None and svc.progress("abc") is None
