"""Who may do what to a ticket: a table of role -> actions, and the rule of whose tickets a
role sees. Pure; the service enforces both in its queries (tickets/service.py), so a
department never reads or changes another department's ticket whatever the page shows.
"""

from __future__ import annotations

from typing import Literal

from tickets.lifecycle import Action

Role = Literal["agent", "supervisor", "department", "admin"]
ROLES: tuple[Role, ...] = ("agent", "supervisor", "department", "admin")
ROLE_LABELS: dict[Role, str] = {"agent": "话务员", "supervisor": "班长/质检", "department": "承办单位",
                                "admin": "管理员"}

A = Action
_HOTLINE_DESK = frozenset({A.REGISTER, A.EDIT, A.ATTACH, A.ANSWER_DIRECTLY, A.SUBMIT, A.DISPATCH, A.MARK_INVALID,
                           A.MARK_DUPLICATE, A.FOLLOW_UP, A.CLOSE})
ACTIONS: dict[Role, frozenset[Action]] = {
    # Agents take the call and type the ticket; many centres let them dispatch it too (派单).
    "agent": _HOTLINE_DESK,
    # Supervisors run the flow: designate, approve, review, reopen, archive and urge (督办).
    "supervisor": _HOTLINE_DESK | {A.DESIGNATE, A.APPROVE_EXTENSION, A.REFUSE_EXTENSION, A.APPROVE_REPLY,
                                   A.REJECT_REPLY, A.REOPEN, A.ARCHIVE, A.URGE},
    # A department works what it was given: accept or return it, ask for time, answer.
    "department": frozenset({A.ACCEPT, A.RETURN, A.REQUEST_EXTENSION, A.REPLY}),
    # Admins manage accounts, departments and the knowledge base, not tickets: least privilege.
    "admin": frozenset(),
}
del A

# Who may manage what beside tickets.
MAY_MANAGE_KB: frozenset[Role] = frozenset({"supervisor", "admin"})
MAY_READ_ALL: frozenset[Role] = frozenset({"agent", "supervisor", "admin"})  # a department reads its own only


def may(role: Role, action: Action) -> bool:
    return action in ACTIONS[role]


def why_not(role: Role, action: Action) -> str:
    """The reason a 403 gives, in the user's words."""
    holders = [ROLE_LABELS[r] for r in ROLES if action in ACTIONS[r]]
    return (f"{ROLE_LABELS[role]} ({role}) 无权执行 {action.value}; "
            f"allowed for: {'、'.join(holders) if holders else 'nobody (the engine only)'}")


def sees(role: Role, own_department: int | None, ticket_department: int | None) -> bool:
    """Whether a user of `role` (of `own_department`) may see a ticket held by `ticket_department`."""
    if role in MAY_READ_ALL:
        return True
    return own_department is not None and ticket_department == own_department
