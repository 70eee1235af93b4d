"""The pages under test: a real engine (no Asterisk needed for pages that only read the store
and the dispatcher's picture) with users in its store, and Debian's Chromium driven by
Playwright (which downloads no browser: it is given /usr/bin/chromium)."""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright
from sqlalchemy.orm import Session

from testbed.configs import write_config
from testbed.engine_thread import RunningEngine
from tickets import auth
from tickets.db import migrate, open_engine

PASSWORD = "web-test-password-7"
# username -> (role, department code, agent id)
USERS: dict[str, tuple[str, str | None, str | None]] = {
    "agent1001": ("agent", None, "1001"), "agent1002": ("agent", None, "1002"),
    "boss": ("supervisor", None, None), "zhujian": ("department", "housing", None),
    "shuiwu": ("department", "water", None)}
DEPARTMENTS = {"housing": ("市住建局", "02933000001"), "water": ("市水务局", "02933000002")}


def chromium_path() -> str:
    path = os.environ.get("HOTLINE_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).exists():
        raise RuntimeError("Debian's chromium is not installed: run `bash .ci/packages.sh --tests` "
                           "(installs chromium, chromium-driver and fonts-noto-cjk)")
    return path


@contextmanager
def chromium() -> Iterator[Browser]:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), headless=True,
                                    args=["--no-sandbox"] if os.geteuid() == 0 else [])
        try:
            yield browser
        finally:
            browser.close()


def unused_port() -> int:
    """A port nothing listens on: the engine's AMI link just keeps retrying."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def add_users(db_url: str, users: dict[str, tuple[str, str | None, str | None]] | None = None) -> None:
    store = open_engine(db_url)
    migrate(store)
    now = datetime.now(UTC)
    with Session(store) as s, s.begin():
        for code, (name, phone) in DEPARTMENTS.items():
            if not any(d.code == code for d in auth.list_departments(s)):
                auth.add_department(s, code, name, phone, now)
        for name, (role, dept, agent_id) in (users or USERS).items():
            if auth.find_user(s, name) is None:
                auth.add_user(s, name, PASSWORD, role, now, department_code=dept, agent_id=agent_id)
    store.dispose()


@dataclass
class Site:
    running: RunningEngine
    config: Path
    contexts: list[BrowserContext] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.running.e.tickets_port}"

    def page(self, browser: Browser, user: str | None = None, **options: Any) -> Page:
        """A fresh browser context (its own cookies), signed in as `user` when given."""
        ctx = browser.new_context(locale="zh-CN", **options)
        self.contexts.append(ctx)
        page = ctx.new_page()
        if user is not None:
            sign_in(page, self.url, user)
        return page

    def close(self) -> None:
        for ctx in self.contexts:
            ctx.close()
        self.running.close()


def sign_in(page: Page, url: str, user: str, password: str = PASSWORD) -> None:
    page.goto(f"{url}/login")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", password)
    with page.expect_navigation():
        page.click("button[type=submit]")


def start_site(directory: Path, *, ami_port: int | None = None, agents: list[str] | None = None,
               **config: Any) -> Site:
    cfg = write_config(directory, ami_port=ami_port or unused_port(), agents=agents or ["1001", "1002"], **config)
    add_users(f"sqlite:///{cfg / 'hotline.db'}")
    running = RunningEngine.from_dir(cfg)
    # The pages' listener starts after the engine's others: a test that asked for its port at
    # once read 0 (seen in CI: "Connection refused" on 127.0.0.1:0).
    running.wait_for(lambda e: e.tickets_port != 0, 20, "the pages' listener")
    return Site(running, cfg)
