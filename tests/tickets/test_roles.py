"""Each role may do its part and nothing else, written out here independently of the table
in tickets/permissions.py: a step outside a role's part is 403 whatever the ticket's state;
a step inside it is never 403 (it may still be 409 or 422 for the state or the body)."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

from tests.tickets.helpers import FORM, T0, seed, service
from tickets.lifecycle import Action
from tickets.service import Forbidden, ServiceError

DESK = {"register", "edit", "attach", "answer_directly", "submit", "dispatch", "mark_invalid", "mark_duplicate",
        "follow_up", "close"}
PARTS = {
    "agent": DESK,
    "supervisor": DESK | {"designate", "approve_extension", "refuse_extension", "approve_reply", "reject_reply",
                          "reopen", "archive", "urge"},
    "department": {"accept", "return", "request_extension", "reply"},
    "admin": set(),
}
USER = {"agent": "agent1", "supervisor": "boss", "department": "zhujian", "admin": "admin"}


@pytest.mark.parametrize("role", sorted(PARTS))
def test_each_role_may_do_its_part_and_nothing_else(db: Engine, role: str) -> None:
    who = seed(db)
    svc = service(db)
    t = svc.create(who["agent1"], FORM, T0)
    svc.act(who["agent1"], t["id"], Action.DISPATCH, {"department": "housing"}, T0)  # visible to zhujian
    for action in Action:
        if action is Action.OPEN_DRAFT:
            continue
        try:
            svc.act(who[USER[role]], t["id"], action, {}, T0)
        except Forbidden:
            assert action.value not in PARTS[role], f"{role} was refused {action.value}"
            continue
        except ServiceError:
            pass
        assert action.value in PARTS[role], f"{role} was let {action.value}"
