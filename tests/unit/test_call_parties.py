"""Who was on the call (三方通话, transfers) is kept on the call and written with its one
record: the core keeps the order and a bound, the spool file carries it and refuses a bad
one by name, and the store and the ticket's view give it back."""

from __future__ import annotations

import dataclasses
import json

import pytest

from acd.decide import MAX_PARTIES
from acd.events import PartyNoted
from tests.unit.world import World
from tickets.spool import BadSpoolFile, record_from_json, record_to_json


def test_the_joins_and_leaves_of_a_call_land_on_its_record_in_order() -> None:
    w = World(agents=("1001",))
    w.register("1001", at=900)
    w.join("c1", at=1000)
    w.answer("c1", "1001", at=1002)
    w.feed(PartyNoted("c1", 1_700_000_010.0, "dialing", "number:02933000001", "by:1001"), at=1010)
    w.feed(PartyNoted("c1", 1_700_000_014.0, "joined", "number:02933000001"), at=1014)
    w.feed(PartyNoted("c1", 1_700_000_030.0, "left", "agent:1001", "leave"), at=1030)
    w.feed(PartyNoted("other", 1_700_000_031.0, "joined", "agent:1002"), at=1031)  # no such call: ignored
    w.hangup("c1", at=1060)
    (rec,) = w.records()
    assert [(kind, party) for _, kind, party, _ in rec.parties][:3] == [
        ("dialing", "number:02933000001"), ("joined", "number:02933000001"), ("left", "agent:1001")]
    assert rec.parties[0] == (1_700_000_010.0, "dialing", "number:02933000001", "by:1001")


def test_whoever_is_still_on_the_call_when_it_ends_leaves_with_it_in_the_record() -> None:
    w = World(agents=("1001",))
    w.register("1001", at=900)
    w.join("c1", at=1000)
    w.answer("c1", "1001", at=1002)
    w.feed(PartyNoted("c1", 5000.0, "dialing", "number:02933000001"), at=1010)
    w.feed(PartyNoted("c1", 5004.0, "joined", "number:02933000001"), at=1014)
    w.feed(PartyNoted("c1", 5005.0, "dialing", "number:02933000002"), at=1015)  # still ringing at the end
    w.feed(PartyNoted("c1", 5006.0, "dialing", "number:02933000003"), at=1016)
    w.feed(PartyNoted("c1", 5009.0, "failed", "number:02933000003", "BUSY"), at=1019)  # over already
    w.hangup("c1", at=1060)
    (rec,) = w.records()
    ended = rec.ended
    assert rec.parties[5:] == ((ended, "left", "number:02933000001", "call_ended"),
                               (ended, "failed", "number:02933000002", "call_ended"))
    # A call with nobody else on it has no history at all.
    w.join("c2", at=2000)
    w.answer("c2", "1001", at=2002)
    w.hangup("c2", at=2030)
    assert w.records()[-1].parties == ()


def test_a_runaway_conference_history_is_kept_only_up_to_its_bound() -> None:
    w = World(agents=("1001",))
    w.register("1001", at=900)
    w.join("c1", at=1000)
    w.answer("c1", "1001", at=1002)
    for i in range(MAX_PARTIES + 10):
        w.feed(PartyNoted("c1", 1_700_000_000.0 + i, "joined", f"agent:{i}"), at=1003)
    w.hangup("c1", at=1060)
    (rec,) = w.records()
    noted = [p for p in rec.parties if p[3] != "call_ended"]
    assert len(noted) == MAX_PARTIES and len(rec.parties) == 2 * MAX_PARTIES  # each kept one also ends


def _answered_record() -> object:
    w = World(agents=("1001",))
    w.register("1001", at=900)
    w.join("c1", at=1000)
    w.answer("c1", "1001", at=1002)
    w.feed(PartyNoted("c1", 1_700_000_010.5, "joined", "number:02933000001", "by:1001"), at=1010)
    w.hangup("c1", at=1060)
    (rec,) = w.records()
    return rec


def test_the_spool_file_carries_the_parties_and_reads_them_back_equal() -> None:
    rec = _answered_record()
    assert record_from_json(record_to_json(rec)) == rec  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [
    "not a list", [[1.0, "joined", "agent:1"]], [["soon", "joined", "agent:1", ""]],
    [[float("inf"), "joined", "agent:1", ""]], [[1.0, "joined", 7, ""]], [[1.0, "joined", "x" * 200, ""]]])
def test_a_spool_file_with_a_bad_party_list_is_refused_naming_the_field(bad: object) -> None:
    data = json.loads(record_to_json(_answered_record()))  # type: ignore[arg-type]
    data["parties"] = bad
    with pytest.raises(BadSpoolFile, match="parties"):
        record_from_json(json.dumps(data))


def test_a_spool_file_from_before_parties_reads_as_nobody_else_on_the_call() -> None:
    data = json.loads(record_to_json(dataclasses.replace(_answered_record(), parties=())))  # type: ignore[type-var]
    del data["parties"]
    assert record_from_json(json.dumps(data)).parties == ()
