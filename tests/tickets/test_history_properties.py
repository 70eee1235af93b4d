"""Property: whatever sequence of requests people send (any user, any action, good or bad
bodies), the ticket's history is a complete, ordered account — one row per change that was
accepted, none for a refusal, numbered 1..n without gaps, each row starting where the last
ended, the last ending in the ticket's state — and that state is one the table reaches."""

from __future__ import annotations

import itertools
from datetime import timedelta
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.tickets.helpers import FORM, T0, seed, service
from tickets.db import migrate, open_engine
from tickets.lifecycle import Action, State, reachable
from tickets.service import ServiceError

USERS = ["agent1", "agent2", "boss", "admin", "zhujian", "shuiwu"]
BODIES: list[dict[str, Any]] = [
    {}, {"note": "说明"}, {"department": "housing"}, {"department": "water"}, {"department": "nope"},
    {"reply": "已办结"}, {"rating": "满意", "result": "好"}, {"rating": "很好"}, FORM, {"category": "无效"},
]
REQUESTS = st.lists(st.tuples(st.sampled_from(USERS), st.sampled_from([a for a in Action if a is not
                                                                       Action.OPEN_DRAFT]),
                              st.sampled_from(BODIES)), max_size=40)


def test_any_sequence_of_requests_leaves_a_complete_ordered_history(tmp_path: Path) -> None:
    db = open_engine(f"sqlite:///{tmp_path / 'h.db'}")
    migrate(db)
    who = seed(db)
    svc = service(db)
    calls = itertools.count()

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(REQUESTS, st.booleans())
    def run(requests: list[tuple[str, Action, dict[str, Any]]], from_call: bool) -> None:
        if from_call:
            t = svc.open_draft(call_id=f"call-{next(calls)}", caller_num="1390000",
                               caller_name="", restricted=False, agent_id="1001", recording=None, now=T0)
        else:
            t = svc.create(who["agent1"], FORM, T0)
        accepted = 1
        now = T0
        for user, action, body in requests:
            now += timedelta(minutes=7)
            try:
                t = svc.act(who[user], t["id"], action, body, now)
            except ServiceError:
                continue
            accepted += 1
        history = svc.history(who["boss"], t["id"])
        assert [e["seq"] for e in history] == list(range(1, accepted + 1))
        assert history[0]["from"] == State.NEW.value
        assert all(a["to"] == b["from"] for a, b in itertools.pairwise(history))
        final = svc.get(who["boss"], t["id"], now)
        assert history[-1]["to"] == final["state"] and State(final["state"]) in reachable()
        assert [e["at"] for e in history] == sorted(e["at"] for e in history)

    run()
    db.dispose()
