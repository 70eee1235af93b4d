"""States as they are: a backed-off agent shows as such with the time left, a dead phone leaves
routing when it stops answering OPTIONS, and a feature-code call never makes the agent look busy."""

from __future__ import annotations

from acd.agents import Control, backoff_left, label, reason
from acd.commands import AgentStateChanged, ControlDone
from acd.events import AgentControl, DeviceChanged, FeatureCallEnded, PhoneReach
from tests.unit.world import World, of_type, rings


def changes(out: list[object]) -> list[tuple[str, str, str, str]]:
    return [(c.agent_id, c.old, c.new, c.reason) for c in of_type(out, AgentStateChanged)]


def test_a_rejected_ring_shows_the_agent_backed_off_with_the_time_left_then_available() -> None:
    w = World(agents=("1001",))
    w.register("1001")
    w.join("c1", at=100)
    w.dial_begin("c1", at=100.1)
    out = w.dial_end("c1", "BUSY", at=102)
    a = w.agent("1001")
    assert ("1001", "ringing", "backed_off", "BUSY") in changes(out)
    assert label(a, 105) == "backed_off" and reason(a, 105) == "BUSY"
    assert backoff_left(a, 105) == 7.0  # busy_backoff 10 s from 102
    w.park("c1", at=102.01)
    out = w.run_until(112.5)
    assert ("1001", "backed_off", "available", "") in changes(out)
    assert backoff_left(a, 112.5) == 0.0
    assert rings(out) == [("c1", "1001")]  # rung again once the back-off ended


def test_without_a_clock_the_label_does_not_invent_a_back_off() -> None:
    w = World(agents=("1001",))
    w.register("1001")
    w.agent("1001").backoff_until = 50.0
    assert label(w.agent("1001")) == "available"
    assert label(w.agent("1001"), 49.0) == "backed_off"


def test_an_unreachable_phone_leaves_routing_at_once_and_comes_back_when_it_answers() -> None:
    w = World(agents=("1001", "1002"))
    w.register("1001", "1002")
    out = w.feed(PhoneReach("1001", reachable=False), at=10)
    assert ("1001", "available", "unreachable", "no reply to OPTIONS") in changes(out)
    # Its registration has not expired (Asterisk may still say registered): never rung.
    assert rings(w.join("c1", at=11)) == [("c1", "1002")]
    assert rings(w.join("c2", at=12)) == []
    out = w.feed(PhoneReach("1001", reachable=True), at=20)
    assert ("1001", "unreachable", "available", "") in changes(out)
    assert rings(out) == [("c2", "1001")]


def test_an_unreachable_phone_whose_device_goes_unavailable_stays_unreachable_not_logged_out() -> None:
    w = World(agents=("1001",))
    w.register("1001")
    w.feed(PhoneReach("1001", reachable=False), at=10)
    w.feed(DeviceChanged("1001", registered=False, busy=False), at=10.1)
    assert label(w.agent("1001"), 11) == "unreachable"
    # The registration expires (Removed): from then on it is simply not registered.
    w.feed(PhoneReach("1001", reachable=True), at=300)
    assert label(w.agent("1001"), 301) == "logged_out"


def test_an_unreachable_agent_does_not_count_as_staff_for_when_empty() -> None:
    w = World(agents=("1001",))
    w.register("1001")
    w.feed(PhoneReach("1001", reachable=False), at=10)
    assert not w.agent("1001").present()


def test_a_feature_code_call_never_shows_busy_and_takes_effect_at_once() -> None:
    w = World(agents=("1001",))
    w.register("1001")
    w.control("1001", Control.PAUSE, "05", at=5)
    w.join("c1", at=6)
    # *24 dialled: the request comes first (the dialplan raises it before answering), then
    # Asterisk's "in use" for the phone, then the hang-up.
    out = w.feed(AgentControl("1001", Control.UNPAUSE, by_phone=True), at=10)
    assert ("1001", "paused", "available", "") in changes(out)
    assert rings(out) == [("c1", "1001")]  # rung at once, not when the short call ends
    assert of_type(out, ControlDone)[0].ok


def test_the_phone_busy_with_a_feature_code_is_not_busy_other() -> None:
    w = World(agents=("1001",))
    w.register("1001")
    w.control("1001", Control.PAUSE, at=5)
    all_changes = []
    all_changes += changes(w.feed(AgentControl("1001", Control.UNPAUSE, by_phone=True), at=10))
    all_changes += changes(w.feed(DeviceChanged("1001", registered=True, busy=True), at=10.05))
    all_changes += changes(w.feed(FeatureCallEnded("1001"), at=11))
    all_changes += changes(w.feed(DeviceChanged("1001", registered=True, busy=False), at=11.05))
    assert [c[2] for c in all_changes] == ["available"]
    assert label(w.agent("1001"), 12) == "available"


def test_a_real_call_after_a_feature_call_is_busy_again() -> None:
    w = World(agents=("1001",))
    w.register("1001")
    w.feed(AgentControl("1001", Control.LOGIN, by_phone=True), at=10)
    w.feed(FeatureCallEnded("1001"), at=11)
    w.feed(DeviceChanged("1001", registered=True, busy=True), at=20)  # the agent dials out
    assert label(w.agent("1001"), 21) == "busy_other"
    assert rings(w.join("c1", at=22)) == []


def test_a_logged_out_agent_with_a_dead_phone_shows_logged_out() -> None:
    w = World(agents=("1001",))
    w.register("1001")
    w.control("1001", Control.LOGOUT, at=5)
    w.feed(PhoneReach("1001", reachable=False), at=10)
    assert label(w.agent("1001"), 11) == "logged_out"


def test_a_feature_code_dialled_on_a_second_line_leaves_the_busy_phone_busy() -> None:
    w = World(agents=("1001",))
    w.register("1001", busy=True)  # on a call of its own
    w.join("c1", at=5)
    out = w.feed(AgentControl("1001", Control.LOGIN, by_phone=True), at=10)
    assert rings(out) == []
    assert label(w.agent("1001"), 10) == "busy_other"
    w.feed(FeatureCallEnded("1001"), at=11)
    assert label(w.agent("1001"), 11) == "busy_other"  # the other call goes on
    assert rings(w.register("1001", at=20)) == [("c1", "1001")]  # its end frees the phone
