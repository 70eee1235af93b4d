"""Agent state that outlives the engine: what one engine keeps (acd/saved.py, cti/agent_file.py)
the next takes back before its first resync, and the resync reconciles with Asterisk."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from acd.agents import Activity, Control, Presence, label
from acd.events import AgentsRestored, DeviceChanged, DevicesSnapshot, LinkLost, PhoneReach, SavedAgent
from acd.saved import saved
from cti import agent_file
from tests.unit.world import World, rings

WALL = 1_800_000_000.0


def engine_before_the_kill() -> World:
    w = World(agents=("1001", "1002", "1003", "1004"), wall_offset=WALL)
    w.register("1001", "1002", "1003", "1004", at=1)
    w.control("1001", Control.PAUSE, "05", at=2)
    w.control("1002", Control.LOGOUT, at=3)
    w.join("c1", at=10)
    w.dial_begin("c1", at=10.1)
    w.answer("c1", at=12)  # 1003 (longest idle among the free)
    w.hangup("c1", at=40)  # 1003 in wrap-up until 45
    w.feed(PhoneReach("1004", reachable=False), at=41)
    return w


def restarted(kept: tuple[SavedAgent, ...], now: float, wall: float, written: float | None = None) -> World:
    """A new engine: its own monotonic clock, the agents configured, what was kept restored
    (written a second before the start unless said otherwise)."""
    w = World(agents=("1001", "1002", "1003", "1004"), now=now, wall_offset=wall - now, routing=False)
    w.feed(AgentsRestored(kept, wall - 1 if written is None else written), at=now)
    return w


def test_paused_logged_out_tallies_and_wrap_up_survive_a_restart() -> None:
    before = engine_before_the_kill()
    kept = saved(before.state, 42.0, 42.0 + WALL)
    # The next engine starts 2 s of wall time later, on a monotonic clock that began elsewhere.
    w = restarted(kept, now=5000.0, wall=44.0 + WALL)
    a1, a2, a3, a4 = (w.agent(x) for x in ("1001", "1002", "1003", "1004"))
    assert (a1.presence, a1.pause_reason) == (Presence.PAUSED, "05")
    assert a2.presence is Presence.LOGGED_OUT
    assert a3.calls_taken == 1 and a3.talk_total == pytest.approx(28.0)
    assert a3.activity is Activity.WRAP_UP and a3.wrap_until == pytest.approx(5001.0)  # 1 s of its wrap-up left
    assert a4.unreachable
    # Asterisk's picture comes in: the phones are registered, 1004's phone is not.
    w.feed(DevicesSnapshot((DeviceChanged("1001", True, False), DeviceChanged("1002", True, False),
                            DeviceChanged("1003", True, False), DeviceChanged("1004", False, False))), at=5000.5)
    shown = {x: label(w.agent(x), 5000.5) for x in ("1001", "1002", "1003", "1004")}
    assert shown == {"1001": "paused", "1002": "logged_out", "1003": "wrap_up", "1004": "unreachable"}


def test_a_paused_agent_is_not_rung_after_a_restart() -> None:
    before = World(agents=("1001",), wall_offset=WALL)
    before.register("1001", at=1)
    before.control("1001", Control.PAUSE, "05", at=2)
    w = restarted(saved(before.state, 3.0, 3.0 + WALL), now=100.0, wall=4.0 + WALL)
    w.feed(DevicesSnapshot((DeviceChanged("1001", True, False),)), at=100.1)
    w.state.routing = True
    assert rings(w.join("c1", at=101)) == []


def test_idle_since_survives_the_restart_and_the_resync() -> None:
    before = World(agents=("1001", "1002"), wall_offset=WALL)
    before.register("1002", at=1)
    before.register("1001", at=5)  # 1002 has been free longer
    w = restarted(saved(before.state, 50.0, 50.0 + WALL), now=900.0, wall=60.0 + WALL)
    w.feed(DevicesSnapshot((DeviceChanged("1001", True, False), DeviceChanged("1002", True, False))), at=900.1)
    assert w.agent("1002").idle_since == pytest.approx(900.0 - 59.0)
    assert w.agent("1001").idle_since == pytest.approx(900.0 - 55.0)


def test_the_resync_clears_an_unreachable_phone_that_asterisk_has_registered_again() -> None:
    before = World(agents=("1001",), wall_offset=WALL)
    before.register("1001", at=1)
    before.feed(PhoneReach("1001", reachable=False), at=2)
    w = restarted(saved(before.state, 3.0, 3.0 + WALL), now=10.0, wall=4.0 + WALL)
    w.feed(DevicesSnapshot((DeviceChanged("1001", True, False),)), at=10.1)
    assert label(w.agent("1001"), 11) == "available"


def test_a_long_wrap_up_from_a_jumped_clock_is_cut_short() -> None:
    kept = (SavedAgent("1001", Presence.READY, wrap_until=WALL + 86400),)
    w = restarted(kept, now=10.0, wall=WALL)
    assert w.agent("1001").wrap_until <= 10.0 + 600.0


def test_agents_removed_from_configuration_are_not_restored() -> None:
    kept = (SavedAgent("9999", Presence.PAUSED, "05"),)
    w = restarted(kept, now=10.0, wall=WALL)
    assert "9999" not in w.state.agents


def test_a_link_drop_resync_keeps_the_agents_state() -> None:
    w = engine_before_the_kill()
    w.feed(LinkLost(), at=50)
    w.feed(DevicesSnapshot((DeviceChanged("1001", True, False), DeviceChanged("1002", True, False))), at=51)
    assert w.agent("1001").pause_reason == "05"
    assert w.agent("1002").presence is Presence.LOGGED_OUT


# -- the file --------------------------------------------------------------------------------


def test_the_file_round_trips_every_kept_field(tmp_path: Path) -> None:
    kept = saved(engine_before_the_kill().state, 42.0, 42.0 + WALL)
    path = tmp_path / "agents.json"
    agent_file.write(path, agent_file.encode(kept, 42.0 + WALL))
    assert agent_file.read(path) == AgentsRestored(kept, 42.0 + WALL)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640
    assert not (tmp_path / "agents.json.tmp").exists()


def test_no_file_means_nothing_to_restore(tmp_path: Path) -> None:
    assert agent_file.read(tmp_path / "agents.json").agents == ()


@pytest.mark.parametrize(("content", "named"), [
    (b"{not json", "not JSON"),
    (b'{"version": 2, "agents": []}', "version 1"),
    (b'{"version": 1, "agents": [{"id": "10x1", "presence": "ready"}]}', "agents[0].id"),
    (b'{"version": 1, "agents": [{"id": "1001", "presence": "asleep"}]}', "agents[0].presence"),
    (b'{"version": 1, "agents": [{"id": "1001", "presence": "ready", "calls_taken": -3}]}', "agents[0].calls_taken"),
    (b'{"version": 1, "agents": [{"id": "1001", "presence": "ready", "idle_since": true}]}', "agents[0].idle_since"),
    (b'{"version": 1, "agents": [{"id": "1001", "presence": "paused", "pause_reason": 5}]}', "agents[0].pause_reason"),
])
def test_a_bad_file_is_refused_naming_the_entry(content: bytes, named: str) -> None:
    with pytest.raises(agent_file.AgentFileError, match=named.replace("[", r"\[").replace("]", r"\]")):
        agent_file.decode(content)


def test_a_bad_file_is_set_aside_and_the_agents_start_afresh(tmp_path: Path) -> None:
    path = tmp_path / "agents.json"
    path.write_text(json.dumps({"version": 1, "agents": [{"id": "1001", "presence": "asleep"}]}))
    assert agent_file.read(path).agents == ()
    assert not path.exists() and (tmp_path / "agents.json.bad").exists()


async def test_the_writer_writes_the_newest_snapshot(tmp_path: Path) -> None:
    path = tmp_path / "agents.json"
    writer = agent_file.AgentFile(path)
    first = (SavedAgent("1001", Presence.READY),)
    last = (SavedAgent("1001", Presence.PAUSED, "05"),)
    writer.put(agent_file.encode(first, WALL))
    writer.put(agent_file.encode(last, WALL + 1))
    await writer.flush()
    assert agent_file.read(path).agents == last


def test_the_days_tallies_of_another_day_are_not_taken_but_the_states_are() -> None:
    before = engine_before_the_kill()
    kept = saved(before.state, 42.0, 42.0 + WALL)
    # Written at 23:59 China time, read at 00:01 the next day (the calendar's UTC+8).
    midnight = (WALL // 86400 + 1) * 86400 - 8 * 3600
    w = restarted(kept, now=10.0, wall=midnight + 60, written=midnight - 60)
    assert w.agent("1003").calls_taken == 0 and w.agent("1003").talk_total == 0
    assert w.agent("1001").pause_reason == "05"
    same_day = restarted(kept, now=10.0, wall=midnight - 30, written=midnight - 60)
    assert same_day.agent("1003").calls_taken == 1


def test_idle_time_is_kept_only_for_an_agent_free_at_the_time() -> None:
    before = World(agents=("1001", "1002"), wall_offset=WALL)
    before.register("1001", "1002", at=1)
    before.join("c1", at=5)
    before.dial_begin("c1", at=5.1)
    before.answer("c1", at=6)  # 1001 (or 1002) talks: its old idle time means nothing now
    talking = before.call("c1").agent_id
    assert talking is not None
    kept = {a.agent_id: a for a in saved(before.state, 50.0, 50.0 + WALL)}
    assert kept[talking].idle_since == 0.0
    free = "1002" if talking == "1001" else "1001"
    assert kept[free].idle_since == pytest.approx(WALL + 1)


def test_a_phone_that_came_back_during_a_link_drop_starts_its_idle_time_at_the_resync() -> None:
    w = World(agents=("1001", "1002"))
    w.register("1001", at=1000)
    w.feed(DeviceChanged("1001", registered=False, busy=False), at=1010)  # off, seen live
    w.register("1002", at=1035)
    w.feed(LinkLost(), at=1050)
    w.feed(DevicesSnapshot((DeviceChanged("1001", True, False), DeviceChanged("1002", True, False))), at=1100)
    assert w.agent("1001").idle_since == 1100  # became free when the engine could not see
    assert w.agent("1002").idle_since == 1035  # free all along


def test_a_deeply_nested_file_is_refused_not_a_crash() -> None:
    with pytest.raises(agent_file.AgentFileError, match="not JSON"):
        agent_file.decode(b"[" * 100_000 + b"]" * 100_000)


def test_a_short_write_never_replaces_a_good_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "agents.json"
    good = agent_file.encode((SavedAgent("1001", Presence.PAUSED, "05"),), WALL)
    agent_file.write(path, good)
    real = os.write
    monkeypatch.setattr(os, "write", lambda fd, data: real(fd, bytes(data[:7])))  # 7 bytes at a time
    agent_file.write(path, agent_file.encode((SavedAgent("1001", Presence.LOGGED_OUT),), WALL + 1))
    assert agent_file.read(path).agents == (SavedAgent("1001", Presence.LOGGED_OUT),)

    def full(fd: int, data: bytes) -> int:
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(os, "write", full)
    with pytest.raises(OSError):
        agent_file.write(path, good)
    assert agent_file.read(path).agents == (SavedAgent("1001", Presence.LOGGED_OUT),)
    assert not (tmp_path / "agents.json.tmp").exists()


def test_the_kept_state_in_the_spool_folder_is_never_taken_for_a_call_record(tmp_path: Path) -> None:
    from sqlalchemy import create_engine

    from tickets.store import Outbox

    spool = tmp_path / "spool"
    spool.mkdir()
    path = spool / agent_file.FILE_NAME
    agent_file.write(path, agent_file.encode((SavedAgent("1001", Presence.PAUSED, "05"),), WALL))
    (spool / (agent_file.FILE_NAME + ".tmp")).write_bytes(b"{")  # a write cut short by a kill
    outbox = Outbox(create_engine(f"sqlite:///{tmp_path / 'hotline.db'}"), spool)
    assert outbox.recover() == 0
    assert path.exists() and outbox.in_quarantine() == 0
