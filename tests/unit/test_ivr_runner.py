"""The AGI adapter (ivr/runner.py) against a fake Asterisk on a real socket: what the flow's
steps turn into on the wire, the verdict the dialplan reads, and what happens when the caller
hangs up or the flow fails. The flows are the shipped ones (config/defaults/ivr.yaml)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime

from config.loader import DEFAULTS_DIR
from ivr import flow as f
from ivr.agi import FastAgiServer
from ivr.flows_yaml import load_flows
from ivr.runner import FlowRunner

FLOWS, _ = load_flows((DEFAULTS_DIR / "ivr.yaml").read_text(encoding="utf-8"), "ivr.yaml")


@dataclass
class Hooks:
    flows_: f.Flows = FLOWS
    wait: float = 0.0
    ratings: list[tuple[str, int | None]] = field(default_factory=list)
    surveys: list[str] = field(default_factory=list)
    tickets: dict[str, f.TicketFound] = field(default_factory=dict)
    booked: list[tuple[str, f.RequestCallback]] = field(default_factory=list)
    broken: bool = False

    def flows(self) -> f.Flows:
        if self.broken:
            raise RuntimeError("flows exploded")
        return self.flows_

    def queues(self) -> frozenset[str]:
        return frozenset({"main", "english"})

    def is_open(self, queue: str) -> bool:
        return True

    def estimated_wait(self, queue: str) -> float:
        return self.wait

    def survey_started(self, call_id: str) -> None:
        self.surveys.append(call_id)

    def rated(self, call_id: str, score: int | None) -> None:
        self.ratings.append((call_id, score))

    async def lookup_ticket(self, number: str) -> f.TicketFound | f.TicketNotFound | f.Done:
        return self.tickets.get(number, f.TicketNotFound())

    async def book_callback(self, call_id: str, request: f.RequestCallback, caller: str, caller_restricted: bool,
                            arrived_wall: float) -> bool:
        self.booked.append((call_id, request))
        return True


@dataclass
class Call:
    """What the fake Asterisk saw and was told."""

    commands: list[str] = field(default_factory=list)
    variables: dict[str, str] = field(default_factory=dict)


async def run_call(hooks: Hooks, script: str, keys: Callable[[str], str], *, hang_up_after: int = 10_000,
                   args: str = "1795720000.1", digit_wait: float = 0.0) -> Call:
    """One FastAGI session: `keys(command)` says which key the caller presses during a
    STREAM FILE or WAIT FOR DIGIT ("" for none); the caller hangs up after that many commands."""
    server = FastAgiServer(FlowRunner(hooks, local_now=lambda: datetime(2026, 11, 26, 10, 0)))
    port = await server.start("127.0.0.1", 0)
    call = Call()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = (f"agi_network: yes\nagi_network_script: {script}\nagi_request: agi://127.0.0.1/{script}\n"
            f"agi_channel: PJSIP/carrier-00000001\nagi_uniqueid: {args}\nagi_callerid: 13800000001\n"
            f"agi_arg_1: {args}\nagi_arg_2: 0\n\n")
    writer.write(head.encode())
    await writer.drain()
    try:
        while True:
            line = await asyncio.wait_for(reader.readline(), 5)
            if not line:
                break
            command = line.decode().strip()
            call.commands.append(command)
            if len(call.commands) > hang_up_after:
                writer.write(b"HANGUP\n")
                await writer.drain()
                reply = "511 Command Not Permitted on a dead channel or intercepted\n"
            elif command.startswith(("STREAM FILE", "WAIT FOR DIGIT")):
                if command.startswith("WAIT FOR DIGIT"):
                    await asyncio.sleep(digit_wait)  # Asterisk waits for a key that does not come
                key = keys(command)
                reply = f"200 result={ord(key) if key else 0} endpos=8000\n"
            elif command.startswith("SET VARIABLE"):
                _, _, name, value = command.split(" ", 3)
                call.variables[name.strip('"')] = value.strip('"')
                reply = "200 result=1\n"
            elif command.startswith("GET VARIABLE"):
                reply = "200 result=1 (main)\n" if "HOTLINE_QUEUE" in command else "200 result=0\n"
            else:
                reply = "200 result=0\n"
            writer.write(reply.encode())
            await writer.drain()
    finally:
        writer.close()
        await server.close()
    return call


def press(plan: dict[str, str]) -> Callable[[str], str]:
    """Press plan[prompt] when a STREAM FILE of that prompt plays (once), nothing otherwise."""
    left = dict(plan)

    def keys(command: str) -> str:
        for prompt, key in list(left.items()):
            if f'"hotline/zh/{prompt}"' in command or f'"hotline/en/{prompt}"' in command:
                del left[prompt]
                return key
        return ""
    return keys


async def test_no_key_at_the_intake_menu_sends_the_caller_to_the_queue_answered_first() -> None:
    call = await run_call(Hooks(), "intake", press({}))
    assert call.commands[0] == "ANSWER"
    assert any("hotline/zh/welcome" in c for c in call.commands)
    assert call.variables["HOTLINE_IVR"] == "queue"
    assert call.variables["__HOTLINE_QUEUE"] == "main"
    assert call.variables["HOTLINE_LANG"] == "zh"


async def test_the_urgent_key_raises_the_callers_priority() -> None:
    call = await run_call(Hooks(), "intake", press({"intake-menu": "1"}))
    assert call.variables["HOTLINE_PRIORITY"] == "5"
    assert call.variables["HOTLINE_IVR"] == "queue"


async def test_key_9_switches_the_later_prompts_and_the_queue_language_to_english() -> None:
    call = await run_call(Hooks(), "intake", press({"intake-menu": "9"}))
    assert any(c.startswith('STREAM FILE "hotline/en/lang-en-chosen"') for c in call.commands)
    assert call.variables["HOTLINE_LANG"] == "en"


async def test_a_ticket_number_is_read_back_with_its_state_and_due_date_in_mandarin() -> None:
    hooks = Hooks(tickets={"2026112600001": f.TicketFound("in_progress", date(2026, 12, 3))})
    digits = iter("2026112600001#")
    plan = press({"intake-menu": "2", "ticket-ask": next(digits)})

    def keys(command: str) -> str:
        if command.startswith("WAIT FOR DIGIT"):
            return next(digits, "")
        return plan(command)

    call = await run_call(hooks, "intake", keys)
    played = [c.split('"')[1] for c in call.commands if c.startswith("STREAM FILE")]
    after = played[played.index("hotline/zh/ticket-state-is"):]
    assert after[:3] == ["hotline/zh/ticket-state-is", "hotline/zh/state-in-progress", "hotline/zh/ticket-due"]
    # 二零二六年十二月三日: the year digit by digit, then month and day.
    assert after[3:8] == ["hotline/zh/d-2", "hotline/zh/d-0", "hotline/zh/d-2", "hotline/zh/d-6", "hotline/zh/w-nian"]
    assert call.variables["HOTLINE_IVR"] == "hangup"


async def test_the_survey_records_the_key_pressed_and_says_so_to_the_engine_first() -> None:
    hooks = Hooks()
    call = await run_call(hooks, "survey", press({"survey-ask": "4"}))
    assert hooks.surveys == ["1795720000.1"]
    assert hooks.ratings == [("1795720000.1", 4)]
    assert call.variables["HOTLINE_IVR"] == "hangup"


async def test_a_hang_up_during_the_survey_records_no_rating_once() -> None:
    hooks = Hooks()
    await run_call(hooks, "survey", press({}), hang_up_after=2)
    assert hooks.ratings == [("1795720000.1", None)]


async def test_a_hang_up_mid_flow_ends_the_session_without_a_verdict() -> None:
    hooks = Hooks()
    call = await run_call(hooks, "intake", press({}), hang_up_after=2)
    assert "HOTLINE_IVR" not in call.variables  # the channel is gone: nothing more is sent
    assert len(call.commands) == 3


async def test_a_flow_that_fails_sends_the_caller_to_the_queue() -> None:
    hooks = Hooks(broken=True)
    call = await run_call(hooks, "intake", press({}))
    assert call.variables == {"HOTLINE_IVR": "queue"}


async def test_an_unknown_flow_sends_the_caller_to_the_queue() -> None:
    call = await run_call(Hooks(), "no-such-flow", press({}))
    assert call.variables["HOTLINE_IVR"] == "queue"


async def test_a_long_wait_offers_a_callback_on_the_callers_own_number() -> None:
    hooks = Hooks(wait=600)
    call = await run_call(hooks, "intake", press({"callback-offer": "1", "callback-own-number": "1"}))
    assert [(cid, r.number, r.queue) for cid, r in hooks.booked] == [("1795720000.1", "13800000001", "main")]
    assert call.variables["HOTLINE_IVR"] == "hangup"


LIMITED = """
survey: {enabled: false}
flows:
  short:
    start: menu
    nodes:
      menu: {type: menu, prompts: [intake-menu], timeout: 5, limit: 1, tries: 3, options: {1: queue}, on_fail: bye}
      queue: {type: enqueue}
      bye: {type: hangup, prompts: [goodbye]}
"""


async def test_a_node_whose_limit_runs_out_while_asterisk_waits_takes_its_own_give_up_path() -> None:
    flows, _ = load_flows(LIMITED, "ivr.yaml")
    call = await run_call(Hooks(flows_=flows), "short", press({}), digit_wait=1.5)
    assert call.variables["HOTLINE_IVR"] == "hangup"  # on_fail, not the error path's queue
    assert any('"hotline/zh/goodbye"' in c for c in call.commands)
