"""三方通话 from the agent desk, end to end on the real Asterisk 22: the agent signs in to the
desk in Chromium; a SIPp citizen is answered by the agent's SIPp phone; the agent picks
市住建局 on the desk and clicks 三方通话, and the department's phone (a SIPp UAS behind the
carrier trunk, rung on the number of the department's record) joins the call's ConfBridge
while the one recording goes on; the desk lists who is on the call and when they joined.
Then the agent drops the department, consults a second agent (1002, their own SIPp phone)
with 咨询转, and leaves with 退出三方: the citizen and the second agent talk on, and the call
has one record."""

from __future__ import annotations

import itertools
import json
import re
import time
import wave
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image
from playwright.sync_api import Locator, Page, expect

from acd.calls import CallState
from config.loader import load
from testbed import sipp
from testbed.audio import AudioCheck, check_audio
from testbed.sandbox import Sandbox
from tests.integration.harness import RunningEngine, password, with_trunk_port, write_config
from tests.integration.test_conference import TRUNK_PORT, all_hung_up, members, recording, wait_members
from tests.web.harness import DEPARTMENTS, Site, add_users, chromium

FIRST_PORT, SECOND_PORT = 6311, 6312  # the agents' SIPp phones
NAME, PHONE = DEPARTMENTS["housing"]  # 市住建局: its record's phone is dialled through the carrier
BYTES_PER_SECOND = 8000 * 2  # MixMonitor's 16-bit 8 kHz WAV
CLOCK = re.compile(r"^\d{2}:\d{2}:\d{2}$")  # HH:MM:SS, the hotline's clock


@pytest.fixture(scope="module")
def trunk(sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The carrier trunk sends outside numbers to the department's UAS (127.0.0.2:TRUNK_PORT)."""
    sandbox.reinstall(load(with_trunk_port(write_config(tmp_path_factory.mktemp("desk-conf-dialplan")), TRUNK_PORT)))
    yield
    sandbox.reinstall(load(write_config(tmp_path_factory.mktemp("session-dialplan"))))


def wait_bytes(path: Path, at_least: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    size = path.stat().st_size
    while size < at_least and time.monotonic() < deadline:
        time.sleep(0.1)
        size = path.stat().st_size
    return size


def button(page: Page, name: str) -> Locator:
    return page.locator("#parties .conf-buttons").get_by_role("button", name=name)


def test_the_desk_conferences_a_department_then_hands_the_caller_to_a_second_agent_and_leaves(
        clean: Sandbox, trunk: None, tmp_path: Path) -> None:
    config = with_trunk_port(write_config(tmp_path / "config", agents=["1001", "1002"]), TRUNK_PORT)
    add_users(f"sqlite:///{config / 'hotline.db'}")
    phones: list[sipp.SippRun] = []
    with chromium() as browser:
        running = RunningEngine.from_dir(config)
        site = Site(running, config)
        try:
            running.wait_ready()
            desk = site.page(browser, "agent1001", viewport={"width": 1280, "height": 1000})
            assert desk.url == f"{site.url}/desk"
            expect(desk.locator("body[data-live=open]")).to_have_count(1)
            phones.append(sipp.agent_uas(FIRST_PORT))
            sipp.register([("agent1001", password("1001"))], contact_port=FIRST_PORT)
            running.wait_for(lambda e: e.dispatcher.state.agents["1001"].available(), 10, "1001 ready")
            expect(desk.locator("#agent-state [data-state]")).to_have_attribute("data-state", "available")

            department = sipp.agent_uas(TRUNK_PORT, host=sipp.CARRIER_IP)
            phones.append(department)
            caller = sipp.callers(1, rate=1, names=[("王小明", "13800000001")], talk_ms=30_000)
            phones.append(caller)
            talking = desk.locator("#pop .pop-call.talking")
            expect(talking).to_have_count(1, timeout=15_000)
            call_id = talking.get_attribute("data-call-id")
            assert call_id
            card = desk.locator("#parties")
            now = card.locator(".party-now")
            expect(now.locator("[data-party=caller] .who")).to_have_text("市民")
            expect(now.locator("[data-party='agent:1001']")).to_contain_text("坐席 1001")
            path = recording(call_id)
            wait_bytes(path, 2 * BYTES_PER_SECOND, 10)  # some talk before the conference: the file must keep it

            desk.select_option("#conf-department", "housing")
            button(desk, "三方通话").click()
            expect(desk.locator("#conf-msg")).to_have_text("三方通话 · 已执行")
            dept = now.locator(f"[data-party='number:{PHONE}']")
            expect(dept).to_have_attribute("data-status", "joined", timeout=15_000)
            expect(dept).to_contain_text(f"{NAME} {PHONE}")
            expect(dept.locator("time")).to_have_text(CLOCK)
            expect(card.locator(f".party-log [data-kind=joined][data-party='number:{PHONE}']")).to_have_count(1)
            three = wait_members(clean, call_id, 3)
            assert len(three) == 3, three
            assert sum(m.startswith("PJSIP/agent1001-") for m in three) == 1
            assert sum(m.startswith("PJSIP/carrier-") for m in three) == 2  # the citizen and the department

            # The one recording (the caller's leg appends to it in the conference) grows.
            size = path.stat().st_size
            started = time.monotonic()
            grown = wait_bytes(path, size + 2 * BYTES_PER_SECOND, 10) - size
            took = time.monotonic() - started
            assert grown >= 2 * BYTES_PER_SECOND and took > 1.5, (grown, took)  # audio as it is spoken

            shot = tmp_path / "desk-conference.png"
            desk.screenshot(path=str(shot), full_page=True)
            card_shot = tmp_path / "desk-parties.png"
            card.screenshot(path=str(card_shot))
            for image in (shot, card_shot):
                with Image.open(image) as img:
                    colours = img.convert("RGB").getcolors(maxcolors=1 << 20)
                assert colours is not None and len(colours) > 20, image  # drawn, not one flat colour
                assert max(colours)[0] / sum(n for n, _ in colours) < 0.95, image
            shown = card.inner_text()
            assert all(word in shown for word in ("通话方", "市民", "坐席 1001", NAME, PHONE)), shown
            assert "13800000001" not in shown

            button(desk, "挂断部门").click()
            expect(dept).to_have_count(0)
            expect(card.locator(f".party-log [data-kind=left][data-party='number:{PHONE}']")).to_have_count(1)
            two = wait_members(clean, call_id, 2)
            assert len(two) == 2 and [m.split("-")[0] for m in two] == ["PJSIP/agent1001", "PJSIP/carrier"], two

            # 咨询转: 1002's phone rings and joins; 1002's desk shows the call as theirs too.
            second = site.page(browser, "agent1002")
            expect(second.locator("body[data-live=open]")).to_have_count(1)
            phones.append(sipp.agent_uas(SECOND_PORT))
            sipp.register([("agent1002", password("1002"))], contact_port=SECOND_PORT)
            running.wait_for(lambda e: e.dispatcher.state.agents["1002"].available(), 10, "1002 ready")
            desk.locator("#conf-to").fill("1002")
            button(desk, "咨询转").click()
            expect(now.locator("[data-party='agent:1002']")).to_have_attribute("data-status", "joined",
                                                                              timeout=15_000)
            theirs = second.locator("#parties .party-now")
            expect(theirs.locator("[data-party='agent:1002']")).to_contain_text("坐席 1002 (本人)")
            expect(theirs.locator("[data-party=caller] .who")).to_have_text("市民")
            three = wait_members(clean, call_id, 3)
            assert len(three) == 3 and any(m.startswith("Local/1002*") for m in three), three

            button(desk, "退出三方").click()
            expect(now.locator("[data-party='agent:1001']")).to_have_count(0)
            expect(desk.locator("#parties .conf-buttons button:enabled")).to_have_count(0)
            expect(theirs.locator("[data-party='agent:1001']")).to_have_count(0)
            expect(second.locator("#parties").get_by_role("button", name="退出三方")).to_be_enabled()
            two = wait_members(clean, call_id, 2)
            assert len(two) == 2 and not any(m.startswith("PJSIP/agent1001") for m in two), two
            assert any(m.startswith("Local/1002*") for m in two), two  # the citizen and 1002 talk on
            running.wait_for(lambda e: e.dispatcher.state.agents["1001"].call_id is None, 5, "1001 freed")
            assert running.call(lambda: running.e.dispatcher.state.calls[call_id].state) is CallState.AFTER_TALK
            assert members(clean, call_id) == two  # still bridged, nobody hung up meanwhile

            assert caller.wait(60) == 0
            assert all_hung_up(clean)  # the second agent too
            (row,) = running.records(wait_for=1)
            assert (row.call_id, row.outcome, row.agent_id) == (call_id, "answered", "1001")
            assert row.answered is not None and row.ended is not None
            expect(desk.locator("#pop .pop-call.ended")).to_have_count(1)
            assert_parties_recorded(row.parties, row.answered.timestamp(), row.ended.timestamp())
            whole = (row.ended - row.answered).total_seconds()
            audio = closed_audio(path, whole - 1.0)
            assert audio.has_audio and audio.seconds >= whole - 1.0, (audio, whole)  # the whole conversation
        finally:
            for run in phones:
                run.stop()
            site.close()


def assert_parties_recorded(text: str, answered: float, ended: float) -> None:
    """The engine's wiring of the conference's changes into the call's record (on_change ->
    PartyNoted -> the call's parties -> call_records.parties): who joined and left, in order,
    within the call. The caller and 1002 were on the line when the caller hung up: their leaving
    is the dialplan's report if it came before the record, else the record's own closing entry
    ("call_ended", at the record's end)."""
    entries = json.loads(text)
    assert all(isinstance(e, list) and len(e) == 4 for e in entries), entries
    for at, kind, party, detail in entries:
        assert answered - 1 <= at <= ended + 1, (at, kind, party, detail, answered, ended)
        if detail == "call_ended":
            assert kind == "left" and abs(at - ended) < 1, (at, kind, party, ended)

    def of(party: str) -> list[tuple[str, str]]:
        return [(kind, detail) for _, kind, who, detail in entries if who == party]

    def ended_by(party: str) -> str:
        kind, detail = of(party)[-1]
        assert kind == "left" and detail in ("hangup", "call_ended"), (party, entries)
        return detail

    assert of(f"number:{PHONE}") == [("dialing", "by:1001"), ("joined", ""), ("left", "drop")], entries
    assert of("agent:1001") == [("joined", ""), ("left", "leave")], entries
    assert of("agent:1002")[:2] == [("dialing", "by:1001"), ("joined", "")], entries
    assert len(of("agent:1002")) == 3 and ended_by("agent:1002")
    assert of("caller")[:1] == [("joined", "")] and len(of("caller")) == 2 and ended_by("caller")
    order = [(kind, party) for _, kind, party, _ in entries]
    steps = [("dialing", f"number:{PHONE}"), ("joined", f"number:{PHONE}"), ("left", f"number:{PHONE}"),
             ("dialing", "agent:1002"), ("joined", "agent:1002"), ("left", "agent:1001"), ("left", "agent:1002")]
    assert [order.index(s) for s in steps] == sorted(order.index(s) for s in steps), entries
    times = [at for at, *_ in entries]
    # In the order they happened (the closing entries' time is the record's, from the monotonic clock).
    assert all(later >= earlier - 0.5 for earlier, later in itertools.pairwise(times)), entries


def closed_audio(path: Path, seconds: float, timeout: float = 5) -> AudioCheck:
    """The recording once MixMonitor has closed it (the WAV header's sizes are written then)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            audio = check_audio(path)
        except (EOFError, wave.Error):
            audio = AudioCheck(0.0, 0.0)
        if audio.seconds >= seconds or time.monotonic() > deadline:
            return audio
        time.sleep(0.1)
