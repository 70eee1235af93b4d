"""End to end on the real Asterisk: an agent signs in to the desk in Chromium and logs in
there; a SIPp citizen calls 12345; the desk shows the caller while the agent's phone (a SIPp
UAS that answers after 3 s) is still ringing; after the answer the agent fills the draft
工单 with the keyboard only, finds a knowledge base article, and dispatches the ticket to a
department. The store has it, with the call."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from playwright.sync_api import expect
from sqlalchemy.orm import Session

from acd.agents import Activity, Presence
from acd.calls import PENDING_RING
from testbed import sipp
from testbed.sandbox import Sandbox
from tests.integration.harness import RunningEngine, password, write_config
from tests.web.harness import Site, add_users, chromium
from tickets import kb
from tickets.db import open_engine
from tickets.service import Filters
from web.desk import desk_principal

UAS_PORT = 6121
NUMBER = "13912345678"


def test_the_desk_pops_a_real_call_while_the_phone_rings_and_the_keyboard_files_and_dispatches_its_ticket(
        clean: Sandbox, tmp_path: Path) -> None:
    config = write_config(tmp_path / "config", agents=["1001"], queue={"ring_timeout": 15})
    db_url = f"sqlite:///{config / 'hotline.db'}"
    add_users(db_url)
    store = open_engine(db_url)
    with Session(store) as s, s.begin():
        kb.add_article(s, title="供水管道抢修报修渠道", body="供水管道爆裂请拨打水务抢修热线，或转市水务局处理。",
                       category="求助", tags=["供水", "停水"], valid_from=None, valid_to=None, author="boss",
                       now=datetime.now(UTC))
    store.dispose()
    uas = None
    with chromium() as browser:
        running = RunningEngine.from_dir(config)
        site = Site(running, config)
        try:
            running.wait_ready()
            page = site.page(browser, "agent1001")
            assert page.url == f"{site.url}/desk"
            expect(page.locator("body[data-live=open]")).to_have_count(1)
            page.get_by_role("button", name="签出").click()
            running.wait_for(lambda e: e.dispatcher.state.agents["1001"].presence is Presence.LOGGED_OUT, 5,
                             "logged out")
            page.keyboard.press("Alt+L")  # 签入
            expect(page.locator("#agent-msg [role=status]")).to_contain_text("签入")
            running.wait_for(lambda e: e.dispatcher.state.agents["1001"].presence is Presence.READY, 5, "logged in")

            uas = sipp.agent_uas(UAS_PORT, answer_ms=3000)
            sipp.register([("agent1001", password("1001"))], contact_port=UAS_PORT)
            running.wait_for(lambda e: e.dispatcher.state.agents["1001"].available(), 10, "the agent ready")
            expect(page.locator("#agent-state [data-state]")).to_have_attribute("data-state", "available")

            caller = sipp.callers(1, rate=1, names=[("王先生", NUMBER)], talk_ms=12000)
            pop = page.locator("#pop .pop-call.ringing")
            expect(pop.locator(".caller-num")).to_have_text(NUMBER, timeout=10_000)
            call_id = pop.get_attribute("data-call-id")
            assert call_id

            def still_ringing() -> tuple[bool, Activity]:
                st = running.e.dispatcher.state
                return st.calls[call_id].state in PENDING_RING, st.agents["1001"].activity

            # The pop is there while the phone still rings: the UAS answers 3 s after the INVITE.
            assert running.call(still_ringing) == (True, Activity.RINGING)
            expect(pop.locator(".caller-name")).to_have_text("王先生")

            form = page.locator("#ticket-form")
            expect(form).to_be_visible(timeout=15_000)  # answered: the draft opened
            kbd = page.keyboard
            kbd.press("F2")
            kbd.type("小区供水管道爆裂，整栋楼停水")
            kbd.press("Shift+Tab")  # 详细地址
            kbd.type("人民路 12 号")
            kbd.press("Shift+Tab")  # 街道
            kbd.press("Shift+Tab")  # 区县
            kbd.press("ArrowDown")
            kbd.press("Shift+Tab")  # 紧急程度
            kbd.press("ArrowDown")  # 紧急
            kbd.press("Shift+Tab")  # 类别
            for _ in range(2):
                kbd.press("ArrowDown")  # 求助
            kbd.press("F4")
            kbd.type("供水")
            expect(page.locator("#kb-results .kb-title")).to_have_text("供水管道抢修报修渠道")
            kbd.press("F7")
            for _ in range(2):
                kbd.press("ArrowDown")  # 市水务局
            kbd.press("F8")
            expect(page.locator("#ticket-panel .done")).to_contain_text("市水务局")

            svc = running.e.tickets.service  # type: ignore[union-attr]
            who = desk_principal("1001")
            (found,) = svc.search(who, Filters(agent_id="1001"), datetime.now(UTC))["items"]
            ticket = svc.get(who, found["id"], datetime.now(UTC))
            assert (ticket["state"], ticket["department"]["code"]) == ("dispatched", "water")
            assert (ticket["category"], ticket["urgency"], ticket["district"]) == ("求助", "urgent", "秦都区")
            assert ticket["content"] == "小区供水管道爆裂，整栋楼停水" and ticket["address"] == "人民路 12 号"
            assert [c["call_id"] for c in ticket["calls"]] == [call_id]
            assert caller.check(60).successful == 1
        finally:
            if uas is not None:
                uas.stop()
            site.close()
