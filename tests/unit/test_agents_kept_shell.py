"""The dispatcher keeps the agents' state in its spool folder and a new dispatcher takes it back
before its first resync; announcements reach the caller's channel as a Setvar (fake AMI)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from prometheus_client import CollectorRegistry

from acd import agent_state
from acd.events import AgentProfile
from acd.model import Announce as AnnounceSettings
from cti import agent_file
from cti.ami import AmiClient, AmiSettings
from cti.dispatcher import Dispatcher
from metrics.exporter import Metrics
from tests.fake_ami import FakeAmi, Fields
from tests.unit.test_dispatcher import Q, Sink, device, hold_row, join, until


@asynccontextmanager
async def engine(spool: Path, fake: FakeAmi, queue=Q) -> AsyncIterator[Dispatcher]:  # type: ignore[no-untyped-def]
    port = await fake.start()
    profiles = tuple(AgentProfile(a, frozenset({queue.name})) for a in ("1001", "1002", "1003"))
    dispatcher = Dispatcher((queue,), profiles, Sink(), Metrics(CollectorRegistry()))
    dispatcher.agents_file = agent_file.AgentFile(spool / "agents.json")
    ami = AmiClient(AmiSettings(port=port, secret="x" * 8, action_timeout=1.0, ping_interval=60),
                    dispatcher.on_ami_event, dispatcher.on_link_up, dispatcher.on_link_down)
    dispatcher.ami = ami
    tasks = [asyncio.create_task(dispatcher.run()), asyncio.create_task(ami.run())]
    try:
        await until(lambda: dispatcher.state.routing, what="routing")
        yield dispatcher
    finally:
        await ami.close()
        for t in tasks:
            t.cancel()  # no clean stop: what is on disk is what a kill -9 leaves
        await asyncio.gather(*tasks, return_exceptions=True)
        await fake.close()


def feature(agent: str, action: str, reason: str = "") -> Fields:
    return {"Event": "UserEvent", "UserEvent": "HotlineAgent", "Agent": f"agent{agent}", "Action": action,
            "Reason": reason, "Channel": f"PJSIP/agent{agent}-0001", "Linkedid": f"f-{agent}"}


def states(d: Dispatcher) -> dict[str, tuple[str, str | None]]:
    now = d.clock()
    return {a.agent_id: (agent_state(a, now), a.pause_reason) for a in d.state.agents.values()}


async def file_says(path: Path, check: Callable[[dict[str, str]], bool]) -> None:
    def ok() -> bool:
        try:
            return check({a.agent_id: a.presence.value for a in agent_file.decode(path.read_bytes()).agents})
        except (OSError, agent_file.AgentFileError):
            return False
    await until(ok, what=f"{path} to be written")


async def test_paused_and_logged_out_agents_come_back_so_after_the_engine_is_killed(tmp_path: Path) -> None:
    fake = FakeAmi()
    fake.devices = [device("1001"), device("1002"), device("1003")]
    async with engine(tmp_path, fake) as first:
        fake.push(feature("1001", "pause", "05"))
        fake.push(feature("1002", "logout"))
        await file_says(tmp_path / "agents.json", lambda p: p.get("1001") == "paused" and p.get("1002") == "logged_out")
        before = states(first)
    assert before == {"1001": ("paused", "05"), "1002": ("logged_out", None), "1003": ("available", None)}
    fake = FakeAmi()
    fake.devices = [device("1001"), device("1002"), device("1003")]
    async with engine(tmp_path, fake) as second:
        assert states(second) == before
        # And it routes by them: a caller goes to the only agent who is ready.
        fake.push(join("c1"))
        await until(lambda: bool(fake.actions("Redirect")), what="a ring")
        assert fake.actions("Redirect")[0]["Exten"].startswith("1003*")


async def test_an_announcement_is_set_on_the_callers_channel(tmp_path: Path) -> None:
    fake = FakeAmi()
    fake.devices = [device("1001", "UNAVAILABLE")]
    fake.channels = [hold_row("c1")]
    queue = dataclasses.replace(Q, announce=AnnounceSettings(first=0.2, every=60))
    async with engine(tmp_path, fake, queue):
        await until(lambda: any(a.get("Variable") == "HOTLINE_ANNOUNCE" for a in fake.actions("Setvar")),
                    what="the announcement")
        (told,) = [a for a in fake.actions("Setvar") if a.get("Variable") == "HOTLINE_ANNOUNCE"]
        assert told["Channel"] == "PJSIP/carrier-c1"
        assert told["Value"] == "queue-next&queue-thanks"


async def test_a_new_pause_reason_alone_is_kept(tmp_path: Path) -> None:
    fake = FakeAmi()
    fake.devices = [device("1001")]
    async with engine(tmp_path, fake):
        fake.push(feature("1001", "pause", "05"))
        await file_says(tmp_path / "agents.json", lambda p: p.get("1001") == "paused")
        fake.push(feature("1001", "pause", "07"))  # paused -> paused: no label changes

        def reason() -> str | None:
            kept = agent_file.read(tmp_path / "agents.json").agents
            return next(a.pause_reason for a in kept if a.agent_id == "1001")
        await until(lambda: reason() == "07", what="the new reason in the file")
