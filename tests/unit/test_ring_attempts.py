"""A ring is one attempt: Asterisk's Dial events and the shell's failures carry it back,
so that nothing from an older attempt can change the current one (review B4, B11, M2)."""

from __future__ import annotations

import pytest

from acd import next_deadline
from acd.agents import Activity, Presence
from acd.calls import CallState
from acd.commands import CallAnswered, Command, ProbeCall, RingAgent, Unexpected
from acd.events import DialEnded, DialStarted, Probed, RingFailed, Where
from acd.model import Outcome, QueueSettings
from tests.unit.world import World, chan, of_type, probes, rings


def two_agents() -> World:
    w = World(agents=("1001", "1002"))
    w.register("1001", at=900)
    w.register("1002", at=950)
    return w


def lone_agent_rung_twice() -> World:
    """c1 rang 1001 out (attempt 1), walked back, and is ringing 1001 again (attempt 2)."""
    w = World(agents=("1001",))
    w.register("1001")
    w.join("c1", at=1000)
    w.dial_begin("c1", at=1000.1)
    w.no_answer("c1", at=1015)
    assert rings(w.park("c1", at=1015.1)) == [("c1", "1001")]
    assert w.call("c1").attempt == 2
    return w


def test_a_refused_ring_backs_off_the_caller_and_marks_the_agent_tried() -> None:
    """B4: the old core rang the same agent again at once (a tight loop on a persistent
    error). The back-off doubles per refusal in a row, up to 30 s."""
    w = World(agents=("1001",))
    w.register("1001")
    w.join("c1", at=1000)
    for attempt, delay in enumerate((1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0), start=1):
        assert rings(w.feed(RingFailed("c1", attempt, sure=True), at=w.now + 0.01)) == []
        assert w.call("c1").tried == frozenset({"1001"})
        assert w.deadline_of("c1") == pytest.approx(w.now + delay)
        assert rings(w.tick(w.now + delay)) == [("c1", "1001")]  # nobody else: the tried agent again


def test_a_ring_refused_every_time_costs_a_handful_of_redirects_in_ten_seconds() -> None:
    """B4: Asterisk refuses every Redirect 10 ms after it is sent. The old core measured
    8,038 Redirects a second; a copy of acd/lifecycle.py whose ring_failed sets no
    retry_after sends about a thousand here."""
    w = World(agents=("1001",))
    w.register("1001")
    sent: list[RingAgent] = of_type(w.join("c1", at=1000), RingAgent)
    redirects = len(sent)
    while w.now < 1010:
        due = next_deadline(w.state)
        out: list[Command]
        if sent and (due is None or w.now + 0.01 <= due):
            ring = sent.pop()
            out = w.feed(RingFailed(ring.call_id, ring.attempt, sure=True), at=w.now + 0.01)
        elif due is not None:
            out = w.tick(max(due, w.now))
        else:
            break
        new = of_type(out, RingAgent)
        redirects += len(new)
        sent += new
    assert redirects <= 5  # at 0, 1, 3 and 7 s


def test_a_refusal_reported_for_an_older_ring_does_not_undo_the_current_one() -> None:
    """M2 (the stale-attempt guard of RingFailed): attempt 1's Redirect was probed and
    found never done, attempt 2 is under way when the shell's late refusal of attempt 1
    arrives."""
    w = World(agents=("1001",))
    w.register("1001")
    w.join("c1", at=1000)
    assert probes(w.tick(1003)) == ["c1"]
    assert rings(w.feed(Probed("c1", Where.HOLD), at=1003.1)) == [("c1", "1001")]
    out = w.feed(RingFailed("c1", attempt=1, sure=True), at=1003.2)
    assert [c.trigger for c in of_type(out, Unexpected)] == ["ring_failed_stale"]
    call = w.call("c1")
    assert (call.state, call.attempt, call.tried, call.retry_after) == (CallState.REDIRECTING, 2, frozenset(), 0.0)
    assert w.agent("1001").activity is Activity.RINGING


def test_dial_events_of_an_older_attempt_never_change_the_current_ring() -> None:
    """B11: the old core's Dial events carried no attempt, so a late event of a finished
    ring was credited to the current one. Fails on a copy of acd/ringing.py whose
    dial_started and dial_ended do not compare the attempt."""
    w = lone_agent_rung_twice()
    w.feed(DialStarted("c1", "1001", attempt=1), at=1015.2)
    assert w.call("c1").state is CallState.REDIRECTING  # the late DialBegin confirms nothing
    w.dial_begin("c1", at=1015.3)
    w.feed(DialEnded("c1", "1001", "NOANSWER", attempt=1), at=1015.4)
    call, agent = w.call("c1"), w.agent("1001")
    assert (call.state, call.agent_id, call.attempt) == (CallState.DIALING, "1001", 2)
    assert (agent.activity, agent.no_answer_streak) == (Activity.RINGING, 1)  # not charged twice
    assert w.deadline_of("c1") == pytest.approx(1015.3 + 20)


def test_a_dial_confirm_expiry_asks_where_the_caller_is_instead_of_ringing_again() -> None:
    """B11: the old core re-Redirected a caller whose Dial began late (a phantom ring).
    Fails on a copy of acd/ringing.py that puts the caller back in line at the expiry."""
    w = two_agents()
    w.join("c1", at=1000)
    out = w.tick(1003)
    assert (rings(out), probes(out)) == ([], ["c1"])
    assert w.call("c1").state is CallState.CONFIRMING
    assert w.agent("1001").activity is Activity.RINGING  # still reserved: it may be ringing
    w.feed(Probed("c1", Where.CONNECT, attempt=1), at=1003.1)
    assert w.call("c1").state is CallState.DIALING
    w.feed(DialStarted("c1", "1001", attempt=1), at=1003.2)  # the late DialBegin
    w.answer("c1", at=1005)
    assert (w.call("c1").state, w.call("c1").agent_id) == (CallState.CONNECTED, "1001")
    assert rings(w.out) == [("c1", "1001")]  # one ring in all


def test_a_late_answer_of_an_older_attempt_connects_the_caller() -> None:
    """B11: Asterisk has the caller talking to 1001, whose ring the core had given up on
    (its DialEnd never came) while attempt 2 rings 1002: the answer is the truth. Fails
    on a copy of acd/ringing.py that ignores a stale ANSWER (the caller would be stranded
    in conversation while the core believes them ringing 1002)."""
    w = two_agents()
    w.join("c1", at=1000)
    w.dial_begin("c1", at=1000.1)
    w.tick(1020.1)  # ring_timeout + ring_grace: given up on 1001
    assert rings(w.park("c1", at=1020.5)) == [("c1", "1002")]
    out = w.feed(DialEnded("c1", "1001", "ANSWER", attempt=1), at=1021)
    assert [c.trigger for c in of_type(out, Unexpected)] == ["answer_stale_attempt"]
    assert [(c.agent_id, c.wait) for c in of_type(out, CallAnswered)] == [("1001", 21.0)]
    assert (w.call("c1").state, w.call("c1").agent_id) == (CallState.CONNECTED, "1001")
    assert (w.agent("1001").activity, w.agent("1002").activity) == (Activity.ON_CALL, Activity.IDLE)


def test_an_answer_after_the_ring_deadline_connects_the_caller() -> None:
    """Found with the liveness simulation: a ring whose DialEnd did not come by its deadline
    is only assumed over; Asterisk's Dial ran late and 1001 answered during the walk back.
    The call table refused that ANSWER, so the caller talking to 1001 was rung again (a
    Redirect out of the conversation)."""
    w = two_agents()
    w.join("c1", at=1000)
    w.dial_begin("c1", at=1000.1)
    w.tick(1020.1)  # ring_timeout + ring_grace
    assert w.call("c1").state is CallState.WALKING_BACK
    w.answer("c1", "1001", at=1021)
    assert (w.call("c1").state, w.call("c1").agent_id) == (CallState.CONNECTED, "1001")
    assert rings(w.run_until(1100)) == []


def test_a_late_answer_to_an_older_probe_is_not_taken_for_the_answer_to_the_current_one() -> None:
    """Found by the liveness simulation: the core asked twice where c1 is (no answer to the
    first within 5 s). The answer to the first question, observed before anything the core
    did since, was taken for the current one: with slow AMI actions, the core rang again
    while its previous Redirect was still on the way, and Redirected a caller already
    redirected. Only the answer to the latest ProbeCall counts (Probed echoes its number)."""
    w = World(agents=("1001",))
    w.register("1001")
    w.join("c1", at=1000)
    (first,) = of_type(w.tick(1003), ProbeCall)
    (second,) = of_type(w.tick(1008), ProbeCall)  # no answer in PROBE_WAIT: asked again
    out = w.feed(Probed("c1", Where.HOLD, probe=first.probe), at=1008.1)
    assert [c.trigger for c in of_type(out, Unexpected)] == ["probed_stale"]
    assert (rings(out), w.call("c1").state) == ([], CallState.CONFIRMING)
    assert rings(w.feed(Probed("c1", Where.HOLD, probe=second.probe), at=1008.2)) == [("c1", "1001")]


def test_a_redirect_of_unknown_fate_asks_where_the_caller_is_and_numbers_each_question() -> None:
    """A RingFailed that is not sure (a time-out, the link dropped) may hide a Redirect that
    happened: nobody is rung again before Asterisk says where the caller is, and each new
    question gets the next number, so that only the answer to the latest one is taken."""
    w = two_agents()
    w.join("c1", at=1000)
    out = w.feed(RingFailed("c1", 1, sure=False), at=1000.5)
    assert (of_type(out, ProbeCall), rings(out)) == ([ProbeCall("c1", chan("c1"), 1)], [])
    assert w.call("c1").state is CallState.CONFIRMING
    out = w.run_until(1005.5)  # no answer to the question in time: asked again
    assert (of_type(out, ProbeCall), rings(out)) == ([ProbeCall("c1", chan("c1"), 2)], [])


def test_a_ring_whose_deadline_passes_counts_as_not_answered_by_the_agent() -> None:
    """No DialEnd by ring_timeout + ring_grace: the agent let the caller ring out as surely as
    with a NOANSWER, and max_no_answer such rings in a row pause them."""
    w = World((QueueSettings(max_no_answer=1),), ("1001",))
    w.register("1001")
    w.join("c1", at=1000)
    w.dial_begin("c1", at=1000.1)
    w.run_until(1020.1)
    agent = w.agent("1001")
    assert (agent.presence, agent.pause_reason, agent.no_answer_streak) == (Presence.PAUSED, "no answer", 1)


def test_a_ring_cancelled_by_asterisk_is_not_held_against_the_agent() -> None:
    w = two_agents()
    w.join("c1", at=1000)
    w.dial_begin("c1", at=1000.1)
    w.no_answer("c1", at=1005, status="CANCEL")
    assert w.call("c1").state is CallState.WALKING_BACK
    assert (w.call("c1").tried, w.agent("1001").no_answer_streak) == (frozenset(), 0)


def test_a_dial_that_begins_after_its_ring_was_assumed_over_rings_the_released_agent_again() -> None:
    """ringing.dial_started: the ring deadline passed with no DialEnd, so the core assumed the
    ring over and freed 1001; Asterisk's DialBegin for that same attempt then says it is on
    after all, and 1001 is reserved for the caller again (never offered to anyone else)."""
    w = World(agents=("1001",))
    w.register("1001")
    w.join("c1", at=1000)
    w.run_until(1003)  # no DialBegin in time: asked where the caller is
    w.feed(Probed("c1", Where.HOLD, probe=w.call("c1").probe), at=1003.1)  # the Redirect never happened
    assert w.agent("1001").activity is Activity.RINGING  # rung again at once (attempt 2)
    w.dial_begin("c1", at=1003.2)
    w.run_until(1023.2)  # ring_timeout + ring_grace: the ring is assumed over
    assert (w.call("c1").state, w.agent("1001").activity) == (CallState.WALKING_BACK, Activity.IDLE)
    w.feed(DialStarted("c1", "1001", attempt=2), at=1024)
    call, agent = w.call("c1"), w.agent("1001")
    assert (call.state, call.ringing, call.agent_id) == (CallState.DIALING, frozenset({"1001"}), "1001")
    assert (agent.activity, agent.call_id) == (Activity.RINGING, "c1")


def test_a_probe_answered_from_the_fallback_leaves_the_caller_to_it() -> None:
    w = two_agents()
    w.join("c1", at=1000)
    w.run_until(1003)
    w.feed(Probed("c1", Where.FALLBACK, probe=w.call("c1").probe), at=1003.1)
    assert (w.call("c1").state, w.deadline_of("c1")) == (CallState.FALLBACK, None)


def test_a_probe_answered_no_such_channel_records_the_call_and_frees_its_agents() -> None:
    """The caller's channel is gone and its Hangup was lost (review: the agent stayed ringing
    for a caller who did not exist, asked again every 5 s forever)."""
    w = two_agents()
    w.join("c1", at=1000)
    w.run_until(1003)  # ProbeCall 1
    w.feed(Probed("c1", None, probe=1), at=1004)
    assert "c1" not in w.state.calls
    (rec,) = w.records()
    assert (rec.outcome, rec.source) == (Outcome.ABANDONED, "resync")  # the shell prefers Asterisk's account
    assert {a.activity for a in w.state.agents.values()} == {Activity.IDLE}
