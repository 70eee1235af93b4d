"""The supervisor wallboard (/wall) in Chromium against a real engine (no Asterisk: events
are submitted to the dispatcher as the AMI decoder would). Every change is asserted WITHOUT
reloading the page: the figures arrive over the live stream."""

from __future__ import annotations

from io import BytesIO
from pathlib import Path

from PIL import Image
from playwright.sync_api import Browser, expect

from acd.agents import Presence
from acd.events import CallerJoined, DeviceChanged
from tests.web.harness import Site, add_users
from tests.web.ticket_rig import dispatched, live, mark, not_reloaded, refresh_month, stored_call
from web.wall import WallPage


def wall_page(site: Site) -> WallPage:
    web = site.running.e.web
    assert web is not None
    return next(p for p in web.pages if isinstance(p, WallPage))


def submit(site: Site, *events: object) -> None:
    e = site.running.e
    site.running.call(lambda: [e.dispatcher.submit(ev) for ev in events])  # type: ignore[arg-type]


def test_a_caller_joining_shows_as_waiting_live(site: Site, browser: Browser) -> None:
    page = site.page(browser, "boss")
    live(page)
    mark(page)
    waiting = page.locator("tr[data-queue=main] [data-figure=waiting]")
    expect(waiting).to_have_text("0")
    submit(site, CallerJoined("c-1", "PJSIP/trunk-00000001", "main", caller_num="13800000001"))
    expect(waiting).to_have_text("1")
    # The longest wait is drawn by the server once a second: it advances by itself.
    expect(page.locator("tr[data-queue=main] [data-figure=longest]")).not_to_have_text("0:00")
    assert not_reloaded(page)


def test_todays_and_the_months_figures_follow_the_store(site: Site, browser: Browser) -> None:
    """The figures are the store's (the report's SQL via cti/month_to_date.py): a call counts
    once its record is stored and the figures are refreshed; 1 of 2 answered is under the line."""
    page = site.page(browser, "boss")
    live(page)
    mark(page)
    refresh_month(site)
    row = page.locator("tr[data-queue=main]")
    expect(row.locator("[data-figure=today-offered]")).to_have_text("0")
    stored_call(site, "s-1", answered_after=4.0)
    refresh_month(site)
    expect(row.locator("[data-figure=today-offered]")).to_have_text("1")
    expect(row.locator("[data-figure=today-rate]")).to_have_text("100.00%")
    expect(row.locator("[data-figure=month-sl]")).to_have_text("100.00%")
    stored_call(site, "s-2", answered_after=None)
    refresh_month(site)
    expect(row.locator("[data-figure=today-abandoned]")).to_have_text("1")
    expect(row.locator("[data-figure=today-rate]")).to_have_text("50.00%")
    expect(row.locator("[data-figure=today-rate]")).to_have_class("num bad")
    expect(row.locator("[data-figure=month-offered]")).to_have_text("2")
    assert "秒前" in page.locator("[data-figure=refreshed]").inner_text()  # the figures say how old they are
    assert not_reloaded(page)


def test_force_pause_from_the_wall_pauses_the_agent_in_the_dispatcher(site: Site, browser: Browser) -> None:
    e = site.running.e
    submit(site, DeviceChanged("1001", registered=True, busy=False))
    page = site.page(browser, "boss")
    live(page)
    mark(page)
    agent = page.locator("tr[data-agent='1001']")
    expect(agent.locator("[data-figure=state]")).to_have_text("空闲")
    agent.get_by_role("button", name="强制小休").click()
    expect(page.locator("#wall-msg")).to_contain_text("1001")
    assert site.running.call(lambda: e.dispatcher.state.agents["1001"].presence) is Presence.PAUSED
    assert site.running.call(lambda: e.dispatcher.state.agents["1001"].pause_reason) == "supervisor"
    expect(agent.locator("[data-figure=state]")).to_contain_text("小休")
    expect(agent.locator("[data-figure=in-state]")).not_to_have_text("—")  # the time in it runs
    assert not_reloaded(page)


def test_a_pause_the_engine_refuses_is_said_with_the_engines_reason(site: Site, browser: Browser) -> None:
    """An agent logged out cannot be paused: the button is not offered, and a post gets the
    dispatcher's refusal (409, its reason) rather than a silent nothing."""
    page = site.page(browser, "boss")
    live(page)
    csrf = page.locator("meta[name=csrf-token]").get_attribute("content") or ""
    resp = page.request.post(f"{site.url}/wall/agents/1002/logout", headers={"X-CSRF-Token": csrf})
    assert resp.status == 200
    assert page.locator("tr[data-agent='1002'] button").count() == 0
    resp = page.request.post(f"{site.url}/wall/agents/1002/pause", headers={"X-CSRF-Token": csrf})
    assert resp.status == 409 and "log in first" in resp.text()
    resp = page.request.post(f"{site.url}/wall/agents/1002/pause", headers={"X-CSRF-Token": "forged"})
    assert resp.status == 403


def test_an_admin_watches_the_wall_but_may_not_act(site: Site, browser: Browser) -> None:
    add_users(f"sqlite:///{site.config / 'hotline.db'}", {"root": ("admin", None, None)})
    submit(site, DeviceChanged("1001", registered=True, busy=False))
    page = site.page(browser, "root")
    assert page.url == f"{site.url}/wall"
    live(page)
    expect(page.locator("tr[data-agent='1001'] [data-figure=state]")).to_have_text("空闲")
    expect(page.locator("tr[data-agent='1001'] button").first).to_be_hidden()
    csrf = page.locator("meta[name=csrf-token]").get_attribute("content") or ""
    resp = page.request.post(f"{site.url}/wall/agents/1001/pause", headers={"X-CSRF-Token": csrf})
    assert resp.status == 403
    assert site.running.call(lambda: site.running.e.dispatcher.state.agents["1001"].presence) is Presence.READY


def test_other_roles_may_not_open_the_wall(site: Site, browser: Browser) -> None:
    for user in ("agent1001", "zhujian"):
        page = site.page(browser, user)
        resp = page.goto(f"{site.url}/wall")
        assert resp is not None and resp.status == 403, user


def test_urging_an_overdue_ticket_flags_it_on_the_departments_inbox_live(site: Site, browser: Browser) -> None:
    ticket = dispatched(site, "housing", days_ago=5)
    dept = site.page(browser, "zhujian")
    live(dept)
    mark(dept)
    row = dept.locator(f"tr[data-ticket='{ticket['number']}']")
    expect(row.locator("[data-figure=deadline]")).to_contain_text("超期")
    expect(row.locator("[data-figure=urged]")).to_have_count(0)

    boss = site.page(browser, "boss")
    live(boss)
    overdue = boss.locator(f"[data-list=wall_overdue] tr[data-ticket='{ticket['number']}']")
    overdue.get_by_role("button", name="督办").click()
    expect(boss.locator("#wall-msg")).to_contain_text(ticket["number"])
    expect(overdue).to_contain_text("已督办 ×1")

    expect(row.locator("[data-figure=urged]")).to_have_text("督办 ×1")
    assert not_reloaded(dept)


def test_a_dropped_stream_reconnects_and_catches_up(site: Site, browser: Browser) -> None:
    page = site.page(browser, "boss")
    live(page)
    mark(page)
    waiting = page.locator("tr[data-queue=main] [data-figure=waiting]")
    expect(waiting).to_have_text("0")
    # The network goes away (reconnects fail) and the open stream is cut (as by a proxy or a
    # restart: an open EventSource does not notice the browser going offline by itself).
    page.context.set_offline(True)
    web = site.running.e.web
    assert web is not None
    site.running.call(web.hub.close_all)
    expect(page.locator("#live-lost")).to_be_visible()
    submit(site, CallerJoined("c-2", "PJSIP/trunk-00000002", "main"))
    site.running.wait_for(lambda e: "c-2" in e.dispatcher.state.calls, 5, "the caller in line")
    page.context.set_offline(False)
    expect(page.locator("#live-lost")).to_be_hidden()
    expect(waiting).to_have_text("1")  # the whole picture again on reconnect
    assert not_reloaded(page)


def test_a_burst_of_commands_is_drawn_a_few_times_not_once_each(site: Site, browser: Browser) -> None:
    page = site.page(browser, "boss")
    live(page)
    wall = wall_page(site)
    before = site.running.call(lambda: wall.renders)
    burst = [DeviceChanged("1001", registered=i % 2 == 0, busy=False) for i in range(200)]
    submit(site, *burst, CallerJoined("c-3", "PJSIP/trunk-00000003", "main"))
    expect(page.locator("tr[data-queue=main] [data-figure=waiting]")).to_have_text("1")
    drawn = site.running.call(lambda: wall.renders) - before
    assert 1 <= drawn <= 6, drawn  # about 400 commands; a few coalesced drawings and the 1-s clock's


def test_nobody_watching_costs_the_dispatcher_nothing(site: Site) -> None:
    wall = wall_page(site)
    submit(site, *[DeviceChanged("1001", registered=i % 2 == 0, busy=False) for i in range(50)])
    site.running.wait_for(lambda e: e.dispatcher.inbox.empty(), 5, "the events handled")
    assert site.running.call(lambda: (wall.renders, wall.dirty, wall._flush)) == (0, False, None)


def test_a_screenshot_of_the_wall_shows_it_drawn(site: Site, browser: Browser, tmp_path: Path) -> None:
    dispatched(site, "water", days_ago=5)
    page = site.page(browser, "boss", viewport={"width": 1280, "height": 900})
    live(page)
    expect(page.locator("[data-list=wall_overdue] tr[data-ticket]")).to_have_count(1)
    shot = tmp_path / "wall.png"
    page.screenshot(path=str(shot), full_page=True)
    image = Image.open(BytesIO(shot.read_bytes())).convert("RGB")
    assert len(image.getcolors(maxcolors=1 << 20) or []) > 10  # drawn, not a blank page
    assert page.locator("h1").inner_text() == "班长监控大屏"
    assert "市水务局" in page.locator("#wall-tickets").inner_text()
