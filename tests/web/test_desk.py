"""The agent desk in Chromium, on the real engine whose AMI peer is tests/fake_ami.py: a test
plays Asterisk's side (a phone registers, a caller joins, the Dial begins, the agent picks up),
so every pop and state change reaches the page through the dispatcher's own path."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from playwright.sync_api import Browser, Page, expect
from sqlalchemy.orm import Session

from acd.agents import Control, Presence
from acd.calls import CallState
from acd.events import AgentControl
from cti.conference import PartyChange
from cti.month_to_date import Figures, day_window
from metrics import kpi
from tests.fake_ami import Fields, success
from tests.web.desk_rig import FakeSwitch, until
from tests.web.harness import Site, start_site
from tickets import kb
from tickets.service import Filters
from web.desk import desk_principal

NUMBER = "13912345678"


@pytest.fixture
def switch() -> Iterator[FakeSwitch]:
    s = FakeSwitch()
    yield s
    s.close()


@pytest.fixture
def desk(tmp_path: Path, switch: FakeSwitch) -> Iterator[Site]:
    s = start_site(tmp_path / "config", ami_port=switch.port)
    s.running.wait_ready()
    yield s
    s.close()


def open_desk(site: Site, browser: Browser, user: str = "agent1001", **options: Any) -> Page:
    page = site.page(browser, user, **options)
    assert page.url == f"{site.url}/desk"
    expect(page.locator("body[data-live=open]")).to_have_count(1)  # the stream is connected
    return page


def ready(site: Site, switch: FakeSwitch, agent: str = "1001") -> None:
    switch.register(agent)
    site.running.wait_for(lambda e: e.dispatcher.state.agents[agent].available(), 10, f"agent {agent} ready")


def call_state(site: Site, call: str) -> CallState | None:
    found = site.running.call(lambda: site.running.e.dispatcher.state.calls.get(call))
    return None if found is None else found.state


def store_ticket(site: Site, call_id: str) -> dict[str, Any]:
    svc = site.running.e.tickets.service  # type: ignore[union-attr]
    found = svc.search(desk_principal("1001"), Filters(per_page=50), datetime.now(UTC))
    for item in found["items"]:
        view = svc.get(desk_principal("1001"), item["id"], datetime.now(UTC))
        if any(c["call_id"] == call_id for c in view["calls"]):
            return view
    raise AssertionError(f"no ticket has call {call_id}")


def answered_with_draft(site: Site, switch: FakeSwitch, page: Page, call: str, **caller: Any) -> None:
    switch.join(call, **{"number": NUMBER, "name": "王先生", **caller})
    switch.answer(call)
    expect(page.locator("#ticket-form")).to_be_visible()


def test_the_desk_shows_the_agents_state_and_its_buttons_act_on_the_engine(
        desk: Site, switch: FakeSwitch, browser: Browser) -> None:
    ready(desk, switch)
    page = open_desk(desk, browser)
    state = page.locator("#agent-state [data-state]")
    expect(state).to_have_attribute("data-state", "available")
    expect(page.locator("#agent-state")).to_contain_text("空闲")

    def presence() -> tuple[Presence, str | None]:
        a = desk.running.e.dispatcher.state.agents["1001"]
        return a.presence, a.pause_reason

    page.get_by_role("button", name="签出").click()
    expect(state).to_have_attribute("data-state", "logged_out")
    assert desk.running.call(presence) == (Presence.LOGGED_OUT, None)

    page.get_by_role("button", name="示忙").click()  # refused by the engine, with its reason
    expect(page.locator("#agent-msg [role=alert]")).to_contain_text("not logged in")
    assert desk.running.call(presence) == (Presence.LOGGED_OUT, None)

    page.get_by_role("button", name="签入").click()
    expect(state).to_have_attribute("data-state", "available")
    assert desk.running.call(presence) == (Presence.READY, None)

    page.select_option("select[name=reason]", "meal")
    page.get_by_role("button", name="示忙").click()
    expect(state).to_have_attribute("data-state", "paused")
    expect(page.locator("#agent-state .reason")).to_have_text("(用餐)")
    assert desk.running.call(presence) == (Presence.PAUSED, "meal")

    page.keyboard.press("Alt+R")  # 示闲 from the keyboard
    expect(state).to_have_attribute("data-state", "available")
    assert desk.running.call(presence) == (Presence.READY, None)

    # A change made elsewhere (the phone's feature code, the control API) reaches the desk live.
    asyncio.run_coroutine_threadsafe(desk.running.e.dispatcher.control(
        AgentControl("1001", Control.PAUSE, "training")), desk.running.loop).result(5)
    expect(state).to_have_attribute("data-state", "paused")


def test_a_ring_pops_the_caller_before_the_answer_then_their_history_and_at_the_answer_the_draft(
        desk: Site, switch: FakeSwitch, browser: Browser) -> None:
    svc = desk.running.e.tickets.service  # type: ignore[union-attr]
    earlier = svc.create(desk_principal("1002"), {"category": "投诉", "district": "秦都区", "content": "路灯不亮",
                                                 "caller_num": NUMBER, "caller_name": "王先生"}, datetime.now(UTC))
    ready(desk, switch)
    page = open_desk(desk, browser)
    switch.join("c-ring", number=NUMBER, name="王先生")
    switch.dial("c-ring")
    pop = page.locator("#pop .pop-call")
    expect(pop).to_have_attribute("data-call-id", "c-ring")
    expect(pop.locator(".caller-num")).to_have_text(NUMBER)
    expect(pop.locator(".caller-name")).to_have_text("王先生")
    expect(pop.locator(".queue")).to_have_text("main")
    assert call_state(desk, "c-ring") is CallState.DIALING  # still ringing: the pop came first
    expect(page.locator("#history .open-tickets")).to_contain_text(earlier["number"])
    expect(page.locator("#ticket-panel")).to_contain_text("接听后打开草稿工单")

    switch.answer("c-ring")
    form = page.locator("#ticket-form")
    expect(form).to_be_visible()
    expect(pop).to_have_class("pop-call talking")
    draft = store_ticket(desk, "c-ring")
    assert draft["state"] == "draft" and draft["agent_id"] == "1001"
    expect(form.locator(".number")).to_have_text(draft["number"])

    # 并入: the caller rang about the open ticket; the draft joins it.
    form.locator("input[name=target]").fill(earlier["number"])
    form.get_by_role("button", name="并入").click()
    expect(page.locator("#ticket-panel .done")).to_contain_text("已并入工单")
    now = datetime.now(UTC)
    assert "c-ring" in [c["call_id"] for c in svc.get(desk_principal("1001"), earlier["id"], now)["calls"]]
    assert svc.get(desk_principal("1001"), draft["id"], now)["state"] == "merged"


def test_a_withheld_number_is_masked_and_a_callers_name_is_shown_as_text(
        desk: Site, switch: FakeSwitch, browser: Browser) -> None:
    ready(desk, switch)
    page = open_desk(desk, browser)
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    name = "<script>alert(1)</script><img src=x onerror=alert(2)>"
    switch.join("c-secret", number=NUMBER, name=name, restricted=True)
    switch.dial("c-secret")
    pop = page.locator("#pop .pop-call")
    expect(pop.locator(".caller-num")).to_contain_text("*******5678")
    expect(pop.locator(".caller-num")).to_contain_text("隐藏号码")
    expect(pop.locator(".caller-name")).to_have_text(name)  # the markup, as text
    expect(page.locator("#history h4").first).to_be_visible()  # the look-up came back too
    assert NUMBER not in page.content()
    assert page.locator("#pop script, #pop img").count() == 0
    assert dialogs == []


def test_a_ticket_filled_with_the_keyboard_only_is_dispatched_to_the_chosen_department(
        desk: Site, switch: FakeSwitch, browser: Browser) -> None:
    ready(desk, switch)
    page = open_desk(desk, browser)
    answered_with_draft(desk, switch, page, "c-keys")
    kbd = page.keyboard
    kbd.press("F2")
    expect(page.locator("#t-content")).to_be_focused()
    kbd.type("小区供水管道爆裂，三天没有自来水")
    kbd.press("Shift+Tab")  # 详细地址
    kbd.type("人民路 12 号")
    kbd.press("Shift+Tab")  # 街道
    kbd.press("Shift+Tab")  # 区县
    kbd.press("ArrowDown")  # the first district
    kbd.press("Shift+Tab")  # 紧急程度: 一般 stays
    kbd.press("Shift+Tab")  # 类别
    kbd.press("ArrowDown")
    kbd.press("ArrowDown")  # 求助
    kbd.press("F7")  # 承办单位
    kbd.press("ArrowDown")
    kbd.press("ArrowDown")  # the second: 市水务局 (water)
    kbd.press("F8")  # 转办
    expect(page.locator("#ticket-panel .done")).to_contain_text("市水务局")
    ticket = store_ticket(desk, "c-keys")
    assert ticket["state"] == "dispatched"
    assert ticket["department"]["code"] == "water"
    assert (ticket["category"], ticket["district"], ticket["address"]) == ("求助", "秦都区", "人民路 12 号")
    assert ticket["content"] == "小区供水管道爆裂，三天没有自来水"


def test_a_refused_dispatch_shows_the_services_reason_and_keeps_what_was_typed(
        desk: Site, switch: FakeSwitch, browser: Browser) -> None:
    ready(desk, switch)
    page = open_desk(desk, browser)
    answered_with_draft(desk, switch, page, "c-refused")
    page.locator("#t-content").fill("噪音扰民")
    page.keyboard.press("F8")  # no category, no district, no department
    expect(page.locator("#ticket-error [role=alert]")).to_contain_text("422")
    expect(page.locator("#t-content")).to_have_value("噪音扰民")
    page.select_option("#t-category", "投诉")
    page.select_option("#t-district", "渭城区")
    page.keyboard.press("F8")  # registered now, but no department: refused by the dispatch step
    expect(page.locator("#ticket-error [role=alert]")).to_contain_text("承办单位")
    expect(page.locator("#ticket-state")).to_have_text("已登记")
    page.select_option("#t-department", "housing")
    page.keyboard.press("F8")
    expect(page.locator("#ticket-panel .done")).to_contain_text("市住建局")
    assert store_ticket(desk, "c-refused")["state"] == "dispatched"


def test_the_knowledge_base_finds_an_article_and_its_answer_answers_the_ticket_directly(
        desk: Site, switch: FakeSwitch, browser: Browser) -> None:
    store = desk.running.e.tickets.api.engine  # type: ignore[union-attr]
    with Session(store) as s, s.begin():
        article = kb.add_article(s, title="医保卡异地就医备案", body="登录国家医保服务平台办理异地就医备案，即时生效。",
                                 category="咨询", tags=["医保", "异地"], valid_from=None, valid_to=None,
                                 author="boss", now=datetime.now(UTC))
        article_id = article.id
    ready(desk, switch)
    page = open_desk(desk, browser)
    answered_with_draft(desk, switch, page, "c-kb")
    page.keyboard.press("F4")
    expect(page.locator("#kb-q")).to_be_focused()
    page.keyboard.type("异地就医")
    hit = page.locator("#kb-results .kb-hits li")
    expect(hit.locator(".kb-title")).to_have_text("医保卡异地就医备案")
    page.keyboard.press("Tab")  # to 用于答复
    page.keyboard.press("Enter")
    expect(page.locator("#t-reply")).to_have_value("登录国家医保服务平台办理异地就医备案，即时生效。")
    page.select_option("#t-category", "咨询")
    page.select_option("#t-district", "秦都区")
    page.locator("#t-content").fill("异地就医怎么备案")
    page.keyboard.press("F9")
    expect(page.locator("#ticket-panel .done")).to_contain_text("已直接答复")
    ticket = store_ticket(desk, "c-kb")
    assert (ticket["state"], ticket["article_id"]) == ("direct_answered", article_id)
    assert ticket["reply"].startswith("登录国家医保服务平台")


def test_a_dropped_stream_reconnects_and_shows_what_changed_meanwhile_without_a_reload(
        desk: Site, switch: FakeSwitch, browser: Browser) -> None:
    ready(desk, switch)
    page = open_desk(desk, browser)
    page.evaluate("window.__same_document = true")
    expect(page.locator("#agent-state [data-state]")).to_have_attribute("data-state", "available")
    page.context.set_offline(True)
    desk.running.call(desk.running.e.web.hub.close_all)  # type: ignore[union-attr]  # the server ends the stream
    expect(page.locator("#live-lost")).to_be_visible()
    asyncio.run_coroutine_threadsafe(desk.running.e.dispatcher.control(
        AgentControl("1001", Control.PAUSE, "meeting")), desk.running.loop).result(5)
    switch.join("c-offline", number=NUMBER, name="李女士")  # nobody is ready: the caller waits in line
    until(lambda: desk.running.call(lambda: len(desk.running.e.dispatcher.state.lines.get("main") or ())) == 1,
          what="the caller in line")
    expect(page.locator("#agent-state [data-state]")).to_have_attribute("data-state", "available")  # still old
    page.context.set_offline(False)
    expect(page.locator("#live-lost")).to_be_hidden()
    expect(page.locator("#agent-state [data-state]")).to_have_attribute("data-state", "paused")
    expect(page.locator("#corner .waiting")).to_have_text("1")
    assert page.evaluate("window.__same_document") is True  # caught up without a reload


def test_a_screenshot_of_the_desk_shows_drawn_content(
        desk: Site, switch: FakeSwitch, browser: Browser, tmp_path: Path) -> None:
    ready(desk, switch)
    page = open_desk(desk, browser, viewport={"width": 1280, "height": 900})
    answered_with_draft(desk, switch, page, "c-shot")
    expect(page.locator("h1")).to_have_text("坐席工作台")
    shot = tmp_path / "desk.png"
    page.screenshot(path=str(shot), full_page=True)
    with Image.open(shot) as img:
        colours = img.convert("RGB").getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 50  # text, panels, buttons: not one flat colour
    dominant = max(colours)[0] / sum(n for n, _ in colours)
    assert dominant < 0.9


def test_the_three_way_call_buttons_are_disabled_without_a_call_and_a_forced_post_is_refused(
        desk: Site, browser: Browser) -> None:
    page = open_desk(desk, browser)
    buttons = page.locator("#parties .conf-buttons button")
    expect(buttons).to_have_count(5)
    for i in range(5):
        expect(buttons.nth(i)).to_be_disabled()
    resp = page.request.post(f"{desk.url}/desk/call/drop_department", form={},
                             headers={"X-CSRF-Token": csrf(page)})
    assert resp.status == 409 and "暂无来电" in resp.text()


def csrf(page: Page) -> str:
    return page.locator("meta[name=csrf-token]").get_attribute("content") or ""


def changed(site: Site, call: str, kind: str, party: str, at: float, detail: str = "") -> None:
    """The conference's report, as cti/conference.py hands it to the pages (on the engine's loop)."""
    change = PartyChange(call, kind, party, at, detail)  # type: ignore[arg-type]
    site.running.call(lambda: site.running.e.web.party_changed(change))  # type: ignore[union-attr]


AT = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC: 06:13:20 in Asia/Shanghai


def test_the_desk_shows_live_who_joined_and_left_the_call_and_when_and_enables_the_buttons_that_fit(
        desk: Site, switch: FakeSwitch, browser: Browser) -> None:
    ready(desk, switch)
    page = open_desk(desk, browser)
    second = open_desk(desk, browser, "agent1002")
    answered_with_draft(desk, switch, page, "c-three")
    card = page.locator("#parties")
    now = card.locator(".party-now")
    expect(now.locator("li")).to_have_count(2)
    expect(now.locator("[data-party=caller] .who")).to_have_text("市民")
    expect(now.locator("[data-party='agent:1001']")).to_contain_text("坐席 1001")

    def enabled(p: Page) -> list[str]:
        return [str(b.get_attribute("data-action")) for b in p.locator("#parties .conf-buttons button").all()
                if b.is_enabled()]

    expect(card.get_by_role("button", name="三方通话")).to_be_enabled()
    assert enabled(page) == ["conference", "transfer_blind", "transfer_attended"]  # nobody to leave to yet

    changed(desk, "c-three", "dialing", "number:02933000001", AT, "by:1001")
    dept = now.locator("[data-party='number:02933000001']")
    expect(dept).to_have_attribute("data-status", "dialing")
    expect(dept).to_contain_text("市住建局 02933000001")  # a department's number is shown
    expect(card.get_by_role("button", name="挂断部门")).to_be_enabled()
    expect(card.get_by_role("button", name="退出三方")).to_be_disabled()  # it has not answered

    changed(desk, "c-three", "joined", "caller", AT + 1)
    changed(desk, "c-three", "joined", "agent:1001", AT + 1)
    changed(desk, "c-three", "joined", "number:02933000001", AT + 7)
    expect(dept).to_have_attribute("data-status", "joined")
    expect(dept.locator("time")).to_have_text("06:13:27")
    expect(card.get_by_role("button", name="退出三方")).to_be_enabled()
    log = card.locator(".party-log li")
    expect(log).to_have_count(4)
    expect(log.nth(0)).to_have_text("06:13:20 市住建局 02933000001 呼叫中")
    expect(log.nth(3)).to_have_text("06:13:27 市住建局 02933000001 加入")
    assert NUMBER not in card.inner_text()  # the citizen is 市民, never their number
    expect(second.locator("#parties .parties")).to_have_count(0)  # not 1002's call

    changed(desk, "c-three", "left", "number:02933000001", AT + 30, "drop")
    expect(dept).to_have_count(0)
    expect(log.nth(4)).to_have_text("06:13:50 市住建局 02933000001 离开 (被挂断)")
    expect(card.get_by_role("button", name="退出三方")).to_be_disabled()
    expect(card.get_by_role("button", name="挂断部门")).to_be_disabled()

    # 咨询转: the second agent's desk takes the call's card as their phone rings, and can leave.
    changed(desk, "c-three", "dialing", "agent:1002", AT + 40, "by:1001")
    other = second.locator("#parties")
    expect(other.locator(".party-now [data-party='agent:1002']")).to_contain_text("坐席 1002 (本人)")
    expect(other.locator(".party-now [data-party=caller] .who")).to_have_text("市民")
    expect(card.get_by_role("button", name="咨询转")).to_be_disabled()  # one consultation at a time
    changed(desk, "c-three", "joined", "agent:1002", AT + 45)
    expect(other.locator(".party-now [data-party='agent:1002']")).to_have_attribute("data-status", "joined")
    assert enabled(second) == ["leave"]
    changed(desk, "c-three", "left", "agent:1001", AT + 60, "leave")
    expect(now.locator("[data-party='agent:1001']")).to_have_count(0)
    expect(page.locator("#parties .conf-buttons button:enabled")).to_have_count(0)  # 1001 is off the call
    expect(other.locator(".party-log li").last).to_have_text("06:14:20 坐席 1001 离开 (退出)")
    assert enabled(second) == ["leave"]

    page.reload()  # a reloaded desk draws the same card
    expect(page.locator("#parties .party-log li")).to_have_count(8)


def test_a_party_that_joined_while_the_stream_was_down_shows_on_the_card_after_the_reconnect_without_a_reload(
        desk: Site, switch: FakeSwitch, browser: Browser) -> None:
    ready(desk, switch)
    page = open_desk(desk, browser)
    page.evaluate("window.__same_document = true")
    answered_with_draft(desk, switch, page, "c-gap")
    card = page.locator("#parties")
    dept = card.locator(".party-now [data-party='number:02933000001']")
    expect(card.locator(".party-now li")).to_have_count(2)
    page.context.set_offline(True)
    desk.running.call(desk.running.e.web.hub.close_all)  # type: ignore[union-attr]  # the server ends the stream
    expect(page.locator("#live-lost")).to_be_visible()
    changed(desk, "c-gap", "dialing", "number:02933000001", AT, "by:1001")  # published to nobody
    changed(desk, "c-gap", "joined", "number:02933000001", AT + 7)
    expect(dept).to_have_count(0)  # the card is stale while the stream is down
    page.context.set_offline(False)
    expect(page.locator("#live-lost")).to_be_hidden()
    expect(dept).to_have_attribute("data-status", "joined")  # the first picture carries the card
    expect(card.get_by_role("button", name="退出三方")).to_be_enabled()
    assert page.evaluate("window.__same_document") is True  # caught up without a reload


def test_the_conference_button_rings_the_phone_of_the_departments_record_and_refuses_typed_targets(
        desk: Site, switch: FakeSwitch, browser: Browser) -> None:
    legs: dict[str, str] = {}

    def getvar(action: Fields) -> list[Fields]:
        if "Channel" not in action:
            variable = action.get("Variable", "")
            return success(Variable=variable, Value=switch.ami.globals.get(variable, ""))
        return success(Variable="BRIDGEPEER", Value=legs.get(action["Channel"], ""))

    switch.ami.scripts["Getvar"] = getvar
    ready(desk, switch)
    page = open_desk(desk, browser)
    answered_with_draft(desk, switch, page, "c-dept")
    agent, exten = switch.ring("c-dept")
    legs["PJSIP/carrier-c-dept"] = f"PJSIP/agent{agent}-0{exten.split('*')[-1]}"

    posts: list[str] = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" and "/desk/call/" in r.url else None)
    page.select_option("#conf-department", "water")
    page.locator("#parties").get_by_role("button", name="三方通话").dblclick()  # a double click: one request
    expect(page.locator("#conf-msg")).to_have_text("三方通话 · 已执行")
    assert posts == [f"{desk.url}/desk/call/conference"]
    until(lambda: bool(switch.ami.actions("Originate")), what="the Originate")
    (originate,) = switch.ami.actions("Originate")
    assert originate["Channel"] == "PJSIP/02933000002@carrier"  # 市水务局's phone, from the store
    dept = page.locator("#parties .party-now [data-party='number:02933000002']")
    expect(dept).to_have_attribute("data-status", "dialing")  # the engine's report reached the desk
    expect(dept).to_contain_text("市水务局")

    def post(action: str, **form: str | float | bool) -> tuple[int, str]:
        resp = page.request.post(f"{desk.url}/desk/call/{action}", form=form, headers={"X-CSRF-Token": csrf(page)})
        return resp.status, resp.text()

    status, text = post("conference", department="nowhere", to="02912345678")
    assert status == 422 and "请选择" in text  # a number typed in the browser is never dialled
    status, _ = post("transfer_attended", to="1002;Dial(PJSIP/9)")
    assert status == 422
    status, text = post("transfer_attended", to="1009")
    assert status == 422 and "没有这个坐席" in text  # the conference's own check
    assert len(switch.ami.actions("Originate")) == 1


def test_a_consulted_agent_is_refused_a_transfer_or_conference_of_the_call_they_were_brought_into(
        desk: Site, switch: FakeSwitch, browser: Browser) -> None:
    ready(desk, switch)
    page = open_desk(desk, browser)
    second = open_desk(desk, browser, "agent1002")
    answered_with_draft(desk, switch, page, "c-consult")
    changed(desk, "c-consult", "dialing", "agent:1002", AT, "by:1001")
    changed(desk, "c-consult", "joined", "agent:1002", AT + 5)
    theirs = second.locator("#parties .party-now [data-party='agent:1002']")
    expect(theirs).to_have_attribute("data-status", "joined")

    def post(p: Page, action: str, **form: str) -> tuple[int, str]:
        resp = p.request.post(f"{desk.url}/desk/call/{action}", form=form, headers={"X-CSRF-Token": csrf(p)})
        return resp.status, resp.text()

    # 1002's buttons are disabled but for 退出三方; a forged post is refused with the reason, as
    # 1001 would be taken out of their own call by a transfer 1002 asked for.
    for action, form in (("transfer_blind", {"to": "1003"}), ("transfer_attended", {"to": "1003"}),
                         ("conference", {"department": "water"})):
        status, text = post(second, action, **form)
        assert (status, text) == (409, "未执行: 只有接听该通话的坐席可以邀请三方或转接"), action
    # The answering agent: one consultation at a time, as the card shows it.
    status, text = post(page, "transfer_blind", to="1003")
    assert (status, text) == (409, "未执行: 已有坐席正在被咨询或转接")
    conference = [a for a in switch.ami.received if a.get("Action") == "Originate"
                  or a.get("Context") == "hotline-conf" or a.get("Variable") == "BRIDGEPEER"]
    assert conference == []  # nothing reached Asterisk


def test_an_agent_sees_only_their_own_calls_and_a_supervisor_without_an_agent_id_no_desk(
        desk: Site, switch: FakeSwitch, browser: Browser) -> None:
    ready(desk, switch, "1001")
    mine = open_desk(desk, browser, "agent1001")
    other = open_desk(desk, browser, "agent1002")
    switch.join("c-mine", number=NUMBER, name="王先生")
    switch.answer("c-mine")
    expect(mine.locator("#ticket-form")).to_be_visible()
    expect(other.locator("#pop")).to_contain_text("暂无来电")
    assert "王先生" not in other.content()
    draft = store_ticket(desk, "c-mine")
    # agent1002 cannot finish agent1001's draft by posting its id.
    resp = other.request.post(f"{desk.url}/desk/ticket/attach", form={"ticket": str(draft["id"]), "target": "x"},
                              headers={"X-CSRF-Token": other.locator("meta[name=csrf-token]").get_attribute(
                                  "content") or ""})
    assert resp.status == 403 and "本人" in resp.text()
    boss = desk.page(browser, "boss")
    response = boss.goto(f"{desk.url}/desk")
    assert response is not None and response.status == 403


def test_a_ring_costs_the_pages_nothing_when_no_desk_watches(desk: Site, switch: FakeSwitch) -> None:
    ready(desk, switch)
    hub = desk.running.e.web.hub  # type: ignore[union-attr]
    before = hub.published
    switch.join("c-quiet", number=NUMBER, name="王先生")
    switch.answer("c-quiet")
    until(lambda: call_state(desk, "c-quiet") is CallState.CONNECTED, what="the answer")
    changed(desk, "c-quiet", "dialing", "number:02933000001", AT, "by:1001")
    changed(desk, "c-quiet", "joined", "number:02933000001", AT + 5)
    assert hub.published == before
    assert desk.running.call(lambda: desk.running.e.web.pages[0].desks) == {}  # type: ignore[union-attr]


def test_the_corner_shows_the_callers_waiting_and_todays_answer_rate_from_the_store(
        desk: Site, switch: FakeSwitch, browser: Browser) -> None:
    page = open_desk(desk, browser)  # nobody ready: callers wait in line
    switch.join("c-wait-1", number=NUMBER, name="王先生")
    switch.join("c-wait-2", number="13900000002", name="李女士")
    expect(page.locator("#corner .waiting")).to_have_text("2")
    month = desk.running.e.month
    assert month is not None

    def store_says() -> None:  # what the month-to-date refresh reads from the store for today
        now = datetime.now(UTC)
        month.figures = Figures(month="", totals={}, refreshed=now.timestamp(), day=day_window(now)[0],
                                today={"main": kpi.Totals(offered=10, answered=8, short_abandoned=0)})

    desk.running.call(store_says)
    expect(page.locator("#corner .rate")).to_have_text("80.00%")
    expect(page.locator("#corner")).to_contain_text("今日接通率")


def test_the_desk_speaks_english_on_request_and_its_stream_too(
        desk: Site, switch: FakeSwitch, browser: Browser) -> None:
    ready(desk, switch)
    page = open_desk(desk, browser)
    page.goto(f"{desk.url}/lang/en?next=/desk")
    expect(page.locator("body[data-live=open]")).to_have_count(1)
    expect(page.locator("h1")).to_have_text("Agent desk")
    switch.join("c-en", number=NUMBER, name="王先生")
    switch.answer("c-en")
    expect(page.locator("#pop h2")).to_have_text("On the call")
    expect(page.locator("#ticket-form")).to_contain_text("Dispatch")
    assert "⟦" not in page.content()  # every word has its English


def test_the_draft_opens_on_the_desk_when_the_drafts_say_so_not_after_a_wait(
        desk: Site, switch: FakeSwitch, browser: Browser, monkeypatch: pytest.MonkeyPatch) -> None:
    # Were the desk still waiting out DRAFT_WAIT (or asking the store until the draft is there),
    # the form would not come within the expectation's time.
    monkeypatch.setattr("web.desk.DRAFT_WAIT", 60.0)
    ready(desk, switch)
    page = open_desk(desk, browser)
    switch.join("c-hook", number=NUMBER, name="王先生")
    switch.dial("c-hook")
    expect(page.locator("#pop .pop-call")).to_have_attribute("data-call-id", "c-hook")
    switch.answer("c-hook")
    expect(page.locator("#ticket-form")).to_be_visible(timeout=10_000)
    assert store_ticket(desk, "c-hook")["state"] == "draft"
