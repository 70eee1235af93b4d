"""The department portal (/dept) in Chromium against a real engine: a department sees and
works only its own tickets, through the ticket service's rules; what citizens and staff typed
is shown as text; the inbox follows new dispatches without a reload."""

from __future__ import annotations

import time
from io import BytesIO
from pathlib import Path
from typing import Any

from PIL import Image
from playwright.sync_api import Browser, Dialog, expect

from tests.web.harness import Site
from tests.web.test_sessions import pages, signed_in, stream
from tests.web.ticket_rig import dispatched, live, mark, not_reloaded, principal
from tickets.auth import Principal
from web.dept import DeptPage


def test_a_department_sees_only_its_own_tickets(site: Site, browser: Browser) -> None:
    ours = dispatched(site, "housing", content="楼道灯坏了")
    theirs = dispatched(site, "water", content="水管爆裂")
    page = site.page(browser, "zhujian")
    assert page.url == f"{site.url}/dept"
    inbox = page.locator("#dept-inbox")
    expect(inbox.locator(f"tr[data-ticket='{ours['number']}']")).to_be_visible()
    expect(inbox.locator(f"tr[data-ticket='{theirs['number']}']")).to_have_count(0)
    assert theirs["number"] not in page.content()


def test_the_inbox_page_as_the_server_first_sends_it_holds_no_other_departments_ticket(
        site: Site, browser: Browser) -> None:
    # Not the DOM after the stream has replaced the inbox: the page's own first response.
    ours = dispatched(site, "housing")
    theirs = dispatched(site, "water", content="水管爆裂", caller_name="李先生")
    page = site.page(browser, "zhujian")
    resp = page.goto(f"{site.url}/dept")
    assert resp is not None and resp.status == 200
    body = resp.text()
    assert f"data-ticket=\"{ours['number']}\"" in body
    assert theirs["number"] not in body and "水管爆裂" not in body and "李先生" not in body


def test_another_departments_ticket_by_url_is_refused_and_shows_nothing(site: Site, browser: Browser) -> None:
    theirs = dispatched(site, "water", content="水务局的秘密诉求", caller_name="李先生")
    page = site.page(browser, "zhujian")
    resp = page.goto(f"{site.url}/dept/tickets/{theirs['number']}")
    assert resp is not None and resp.status == 404
    text = page.content()
    assert "水务局的秘密诉求" not in text and "李先生" not in text
    expect(page.locator("[role=alert]")).to_contain_text("不属于本单位")
    csrf = page.locator("meta[name=csrf-token]").get_attribute("content") or ""
    for action in ("accept", "return", "reply"):
        resp2 = page.request.post(f"{site.url}/dept/tickets/{theirs['number']}/{action}",
                                  form={"csrf": csrf, "note": "x", "reply": "x"})
        assert resp2.status == 404, action
        assert "水务局的秘密诉求" not in resp2.text()
    assert site.page(browser, "shuiwu").goto(f"{site.url}/dept/tickets/{theirs['number']}").status == 200  # type: ignore[union-attr]


def test_other_roles_may_not_open_the_portal(site: Site, browser: Browser) -> None:
    for user in ("agent1001", "boss"):
        resp = site.page(browser, user).goto(f"{site.url}/dept")
        assert resp is not None and resp.status == 403, user


def test_the_department_accepts_then_replies(site: Site, browser: Browser) -> None:
    ticket = dispatched(site, "housing")
    page = site.page(browser, "zhujian")
    page.locator(f"tr[data-ticket='{ticket['number']}'] a").click()
    expect(page.locator("h1")).to_contain_text("已转办待签收")
    expect(page.locator(".ticket")).to_contain_text("剩余")  # the 签收 countdown
    page.get_by_role("button", name="签收").click()
    expect(page.locator("h1")).to_contain_text("办理中")
    page.fill("textarea[name=reply]", "已派人维修，供暖恢复正常")
    page.get_by_role("button", name="办结反馈").click()
    expect(page.locator("h1")).to_contain_text("办结反馈待审核")
    expect(page.locator("[data-field=reply]")).to_have_text("已派人维修，供暖恢复正常")
    expect(page.locator(".history")).to_contain_text("签收")
    page.goto(f"{site.url}/dept")
    expect(page.locator(f"tr[data-ticket='{ticket['number']}']")).to_contain_text("办结反馈待审核")


def test_the_services_refusals_are_shown_in_the_page(site: Site, browser: Browser) -> None:
    ticket = dispatched(site, "housing")
    url = f"{site.url}/dept/tickets/{ticket['number']}"
    first, stale = site.page(browser, "zhujian"), site.page(browser, "zhujian")
    first.goto(url)
    stale.goto(url)
    # 退单 without a reason: the service's 422, on the ticket's page.
    with first.expect_response(lambda r: r.url.endswith("/return")) as answer:
        first.get_by_role("button", name="退单").click()
    assert answer.value.status == 422
    expect(first.locator("[role=alert]")).to_contain_text("退单需说明理由")
    # Accepted in one tab; the other, still showing 签收, is told the state moved on (409).
    first.get_by_role("button", name="签收").click()
    expect(first.locator("h1")).to_contain_text("办理中")
    with stale.expect_response(lambda r: r.url.endswith("/accept")) as answer:
        stale.get_by_role("button", name="签收").click()
    assert answer.value.status == 409
    expect(stale.locator("[role=alert]")).to_contain_text("不能 签收")


def test_script_typed_into_a_ticket_or_a_reply_is_shown_as_text(site: Site, browser: Browser) -> None:
    script = "<script>alert('content')</script><img src=x onerror=\"alert('img')\">"
    ticket = dispatched(site, "housing", content=script, address="<b onmouseover=alert(1)>人民路</b>")
    page = site.page(browser, "zhujian")
    dialogs: list[str] = []

    def seen(d: Dialog) -> None:
        dialogs.append(d.message)
        d.dismiss()

    page.on("dialog", seen)
    page.goto(f"{site.url}/dept/tickets/{ticket['number']}")
    expect(page.locator("[data-field=content]")).to_have_text(script)
    page.get_by_role("button", name="签收").click()
    page.fill("textarea[name=reply]", "<script>alert('reply')</script>")
    page.get_by_role("button", name="办结反馈").click()
    expect(page.locator("[data-field=reply]")).to_have_text("<script>alert('reply')</script>")
    assert page.locator("main script, main img").count() == 0
    assert dialogs == []


def test_a_new_dispatch_reaches_the_open_inbox_without_reload(site: Site, browser: Browser) -> None:
    page = site.page(browser, "zhujian")
    live(page)
    mark(page)
    expect(page.locator("#dept-inbox")).to_contain_text("暂无转办")
    ticket = dispatched(site, "housing")  # by an agent elsewhere: the portal re-reads while open
    expect(page.locator(f"tr[data-ticket='{ticket['number']}']")).to_be_visible()
    other = dispatched(site, "water")
    overdue = dispatched(site, "housing", days_ago=5)
    row = page.locator(f"tr[data-ticket='{overdue['number']}']")
    expect(row).to_have_class("overdue")
    expect(row.locator("[data-figure=deadline]")).to_contain_text("超期")
    expect(page.locator(f"tr[data-ticket='{other['number']}']")).to_have_count(0)
    assert not_reloaded(page)


def test_a_dropped_inbox_stream_reconnects_and_catches_up(site: Site, browser: Browser) -> None:
    page = site.page(browser, "zhujian")
    live(page)
    mark(page)
    page.context.set_offline(True)
    web = site.running.e.web
    assert web is not None
    site.running.call(web.hub.close_all)
    expect(page.locator("#live-lost")).to_be_visible()
    ticket = dispatched(site, "housing")
    page.context.set_offline(False)
    expect(page.locator(f"tr[data-ticket='{ticket['number']}']")).to_be_visible()
    expect(page.locator("#live-lost")).to_be_hidden()
    assert not_reloaded(page)


def test_a_screenshot_of_the_portal_shows_it_drawn(site: Site, browser: Browser, tmp_path: Path) -> None:
    dispatched(site, "housing", days_ago=5)
    dispatched(site, "housing")
    page = site.page(browser, "zhujian", viewport={"width": 1280, "height": 800})
    live(page)
    shot = tmp_path / "dept.png"
    page.screenshot(path=str(shot), full_page=True)
    image = Image.open(BytesIO(shot.read_bytes())).convert("RGB")
    assert len(image.getcolors(maxcolors=1 << 20) or []) > 10
    assert page.locator("h1").inner_text() == "承办单位工单"
    expect(page.locator("tr.overdue")).to_have_count(1)


def test_a_change_between_a_new_streams_first_read_and_its_subscription_still_reaches_it(site: Site) -> None:
    # The stream's first inbox is read in a worker thread before the stream subscribes: a change
    # published meanwhile reaches only the streams already open, and the inbox last sent (the one
    # with the change) must not then hide the change from the new stream at the next re-reads.
    dept = principal(site, "zhujian").department_id
    assert dept is not None
    portal = next(p for p in pages(site).pages if isinstance(p, DeptPage))
    first_read = portal._items
    new: dict[str, Any] = {}

    def stale_read(who: Principal) -> list[dict[str, Any]]:
        items = first_read(who)
        if who.username != "zhujian" or new:  # the portal's own re-reads, and later reads, as they are
            return items
        new.update(dispatched(site, "housing"))
        deadline = time.monotonic() + 10
        while not any(new["number"] in html for html in list(portal._sent.values())):  # sent to the open one
            assert time.monotonic() < deadline, "the open inbox was never sent the new ticket"
            time.sleep(0.05)
        return items  # as read before the change

    with stream(signed_in(site, "zhujian"), "/live/dept"):  # already watching
        portal._items = stale_read  # type: ignore[method-assign]
        with stream(signed_in(site, "zhujian"), "/live/dept") as late:
            assert new, "the late stream's first read did not go through the patch"
            sock = late.conn.sock
            assert sock is not None
            seen, deadline = b"", time.monotonic() + 10  # the portal re-reads every REREAD s
            while new["number"].encode() not in seen:
                sock.settimeout(max(0.01, deadline - time.monotonic()))  # a timeout fails the test
                seen += late.resp.read1(65536)
