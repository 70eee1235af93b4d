"""Signing in to the pages: each role lands on its page; a forged or missing session is sent
to sign in; another site cannot post; the language can be switched."""

from __future__ import annotations

import urllib.error
import urllib.request

from playwright.sync_api import Browser

from tests.web.harness import Site


def test_each_role_lands_on_its_own_page(site: Site, browser: Browser) -> None:
    for user, path in (("agent1001", "/desk"), ("boss", "/wall"), ("zhujian", "/dept")):
        page = site.page(browser, user)
        assert page.url == f"{site.url}{path}", user


def test_a_wrong_password_is_refused_on_the_form(site: Site, browser: Browser) -> None:
    page = site.page(browser)
    page.goto(f"{site.url}/login")
    page.fill("input[name=username]", "agent1001")
    page.fill("input[name=password]", "not-the-password")
    with page.expect_navigation():
        page.click("button[type=submit]")
    assert "用户名或密码" in page.locator("[role=alert]").inner_text()
    assert page.url.startswith(f"{site.url}/login")


def test_a_forged_session_cookie_is_sent_to_sign_in(site: Site, browser: Browser) -> None:
    page = site.page(browser)
    page.context.add_cookies([{"name": "hotline_session", "value": "x" * 43, "url": site.url}])
    page.goto(f"{site.url}/desk")
    assert page.url == f"{site.url}/login?next=/desk"


def test_a_post_without_the_csrf_token_is_refused(site: Site, browser: Browser) -> None:
    page = site.page(browser, "agent1001")
    resp = page.request.post(f"{site.url}/logout", form={"csrf": "wrong"})
    assert resp.status == 403
    page.goto(f"{site.url}/desk")
    assert page.url == f"{site.url}/desk"  # still signed in


def test_a_post_from_another_site_is_refused(site: Site) -> None:
    req = urllib.request.Request(f"{site.url}/login", data=b"username=agent1001&password=x", method="POST",
                                 headers={"Origin": "http://evil.example", "Content-Type":
                                          "application/x-www-form-urlencoded"})
    try:
        urllib.request.urlopen(req, timeout=5)
    except urllib.error.HTTPError as exc:
        assert exc.code == 403
    else:
        raise AssertionError("a cross-site post was accepted")


def test_the_pages_speak_chinese_first_and_english_on_request(site: Site, browser: Browser) -> None:
    page = site.page(browser, "agent1001")
    assert page.locator("html").get_attribute("lang") == "zh-CN"
    assert "退出" in page.content()
    page.goto(f"{site.url}/lang/en?next=/desk")
    assert page.locator("html").get_attribute("lang") == "en"
    assert "Sign out" in page.content()
