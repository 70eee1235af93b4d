"""testbed/random_callers.py: the drawn plan and the scenario written per call (SIPp itself
runs in the sandbox: bench/erlang_engine.py drives it)."""

from __future__ import annotations

import itertools
import statistics
import xml.etree.ElementTree as ET

import pytest

from testbed.random_callers import index_of, number_of, plan_calls, scenario


def test_plan_is_reproducible_and_ordered() -> None:
    a = plan_calls(200, rate=0.9, mean_talk=4, mean_patience=6, seed=7)
    assert a == plan_calls(200, rate=0.9, mean_talk=4, mean_patience=6, seed=7)
    assert a != plan_calls(200, rate=0.9, mean_talk=4, mean_patience=6, seed=8)
    assert [c.index for c in a] == list(range(200))
    assert all(x.at < y.at for x, y in itertools.pairwise(a))
    assert all(c.talk_ms >= 1 and c.patience_ms >= 1 for c in a)


def test_each_quantity_has_its_own_stream() -> None:
    """A different rate moves the arrivals only: the same callers come, sooner or later."""
    slow = plan_calls(50, rate=0.5, mean_talk=4, mean_patience=6, seed=1)
    fast = plan_calls(50, rate=2.0, mean_talk=4, mean_patience=6, seed=1)
    assert [c.talk_ms for c in slow] == [c.talk_ms for c in fast]
    assert [c.patience_ms for c in slow] == [c.patience_ms for c in fast]
    assert fast[-1].at == pytest.approx(slow[-1].at / 4)


def test_draws_are_exponential_with_the_given_means() -> None:
    calls = plan_calls(20_000, rate=0.9, mean_talk=4, mean_patience=6, seed=3)
    gaps = [b.at - a.at for a, b in itertools.pairwise(calls)]
    talks = [c.talk_ms / 1000 for c in calls]
    patiences = [c.patience_ms / 1000 for c in calls]
    # Means within ~4 standard errors; an exponential's sd equals its mean, its median is mean·ln 2.
    assert statistics.fmean(gaps) == pytest.approx(1 / 0.9, rel=0.03)
    assert statistics.fmean(talks) == pytest.approx(4, rel=0.03)
    assert statistics.fmean(patiences) == pytest.approx(6, rel=0.03)
    assert statistics.stdev(talks) == pytest.approx(4, rel=0.05)
    assert statistics.median(patiences) == pytest.approx(6 * 0.6931, rel=0.05)


def test_plan_refuses_nonsense() -> None:
    with pytest.raises(ValueError):
        plan_calls(0, rate=1, mean_talk=1, mean_patience=1, seed=1)
    with pytest.raises(ValueError):
        plan_calls(10, rate=0, mean_talk=1, mean_patience=1, seed=1)


def test_numbers_round_trip() -> None:
    assert number_of(42) == "13910000042"
    assert index_of(number_of(42)) == 42
    assert index_of("13900000001") is None
    assert index_of("1391abc0001") is None
    with pytest.raises(ValueError):
        number_of(10_000_000)


def _elements(xml: str) -> list[ET.Element]:
    return list(ET.fromstring(xml.split("?>", 1)[1].split(">", 1)[1]))  # past the declaration and DOCTYPE


def test_scenario_carries_the_calls_patience_and_talk() -> None:
    xml = scenario(patience_ms=5321, talk_ms=3456)
    elements = _elements(xml)
    waits = [e for e in elements if e.tag == "recv" and e.get("response") == "200" and e.get("timeout")]
    assert len(waits) == 1 and waits[0].get("timeout") == "5321" and waits[0].get("ontimeout") == "give_up"
    assert waits[0].get("response_txn") == "invite"
    assert [e.get("milliseconds") for e in elements if e.tag == "pause"] == ["3456"]
    labels = {e.get("id") for e in elements if e.tag == "label"}
    targets = {e.get(a) for e in elements for a in ("next", "ontimeout") if e.get(a)}
    assert targets <= labels


def test_scenario_provisionals_do_not_sit_in_sequence_before_the_timed_wait() -> None:
    """An optional recv right before the 200 would become SIPp's current message and carry (and
    restart) the wait: the 180/183 must be jumped over, matched only by transaction."""
    elements = _elements(scenario(6000, 4000))
    tags = [(e.tag, e.get("response") or e.get("request") or e.get("id") or e.get("next")) for e in elements]
    wait = next(i for i, e in enumerate(elements) if e.get("timeout"))
    assert tags[wait - 1] == ("label", "wait")
    jump = next(i for i, e in enumerate(elements) if e.tag == "nop" and e.get("next") == "wait")
    between = elements[jump + 1: wait - 1]
    assert {e.get("response") for e in between if e.get("response")} == {"180", "183"}
    assert all(e.get("response_txn") == "invite" for e in between if e.get("response"))
    assert not any(e.get("optional") == "true" for e in elements[:wait])


def test_cancel_reuses_the_invite_branch() -> None:
    xml = scenario(1000, 1000)
    invite = xml.split("INVITE sip:", 1)[1]
    branch = invite.split("branch=", 1)[1].split(";", 1)[0]
    cancel = xml.split("CANCEL sip:", 1)[1]
    assert branch == cancel.split("branch=", 1)[1].split(";", 1)[0]
    assert "[branch]" not in branch


def test_scenario_refuses_a_patience_sipp_would_read_as_none() -> None:
    with pytest.raises(ValueError):
        scenario(0, 1000)
