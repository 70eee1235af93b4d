"""SQLAlchemy 2 models of the store. Changes go through an Alembic migration."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Boolean, Date, DateTime, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from acd.model import Outcome


class Base(DeclarativeBase):
    pass


class CallRecordRow(Base):
    """One row per citizen call, keyed by Asterisk's Linkedid.

    Column sizes are limits the database enforces (PostgreSQL; SQLite does not): a record
    with a longer value is quarantined by the outbox, never truncated.
    """

    __tablename__ = "call_records"

    call_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    queue: Mapped[str] = mapped_column(String(32))  # where the call ended
    caller_num: Mapped[str] = mapped_column(String(64), default="")
    caller_name: Mapped[str] = mapped_column(String(128), default="")
    caller_restricted: Mapped[bool] = mapped_column(Boolean, default=False)
    arrived: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    answered: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    ended: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    agent_id: Mapped[str | None] = mapped_column(String(16), nullable=True)
    outcome: Mapped[str] = mapped_column(String(16))
    wait_seconds: Mapped[float] = mapped_column(Float)
    talk_seconds: Mapped[float] = mapped_column(Float)
    recording: Mapped[str | None] = mapped_column(String(512), nullable=True)
    # Added by migration 0002; the server defaults are what rows from before it got.
    offered_queue: Mapped[str] = mapped_column(String(32), server_default="")  # KPIs count the call here
    path: Mapped[str] = mapped_column(Text, server_default="[]")  # JSON array of queue names, in order
    priority: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    service_level: Mapped[float] = mapped_column(Float, server_default=text("15"))  # seconds, in force then
    short_abandon: Mapped[float] = mapped_column(Float, server_default=text("5"))  # seconds, in force then
    served_by: Mapped[str] = mapped_column(String(16), server_default="engine")  # engine | fallback
    source: Mapped[str] = mapped_column(String(16), server_default="live")  # live | resync | asterisk
    # Added by migration 0007: the satisfaction survey after the talk (满意度评价).
    surveyed: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))  # the caller reached it
    rating: Mapped[int | None] = mapped_column(Integer, nullable=True)  # 1 = best; null with surveyed: none
    # Added by migration 0010: who else was on the call, JSON [[at, kind, party, detail], ...].
    parties: Mapped[str] = mapped_column(Text, server_default="[]")

    __table_args__ = (
        Index("ix_call_records_arrived", "arrived"),
        # The month report: one offered queue, arrival time in a range.
        Index("ix_call_records_offered_queue_arrived", "offered_queue", "arrived"),
    )


def outcome_of(value: str) -> Outcome:
    """The outcome a stored value means. Short abandons are no longer an outcome: the KPI
    module counts a hang-up as short from `wait_seconds` and `short_abandon`, so a record
    that still says "short_abandon" (an old spool file, an older engine) is "abandoned"."""
    return Outcome.ABANDONED if value == "short_abandon" else Outcome(value)


# ---- The ticket platform (工单), migration 0003 -------------------------------------------------
# Times are stored timezone-aware (UTC); SQLite gives them back naive, so readers go through
# tickets.db._epoch or an explicit replace(tzinfo=UTC).


class DepartmentRow(Base):
    """A 承办单位: the government department a ticket is dispatched to."""

    __tablename__ = "departments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)  # short id used by the CLI and the API
    name: Mapped[str] = mapped_column(String(64), unique=True)
    phone: Mapped[str] = mapped_column(String(32), default="")  # for 三方通话 through the trunk
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class UserRow(Base):
    """A person who signs in: agent, supervisor, department (of one department) or admin."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(64), default="")
    role: Mapped[str] = mapped_column(String(16))
    department_id: Mapped[int | None] = mapped_column(ForeignKey("departments.id"), nullable=True)
    agent_id: Mapped[str | None] = mapped_column(String(16), nullable=True, unique=True)  # 工号 of an agent
    password_hash: Mapped[str] = mapped_column(String(256))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    password_changed: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class TokenRow(Base):
    """A bearer token. Only its SHA-256 is stored: a copy of the database signs nobody in."""

    __tablename__ = "auth_tokens"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)


class LoginFailureRow(Base):
    """One failed sign-in: the limiter counts these per user name in a window."""

    __tablename__ = "login_failures"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    source: Mapped[str] = mapped_column(String(64), default="")  # the client address

    __table_args__ = (Index("ix_login_failures_username_at", "username", "at"),)


class TicketCounterRow(Base):
    """The last sequence number given out on a local day: ticket numbers are never reused."""

    __tablename__ = "ticket_counters"

    day: Mapped[str] = mapped_column(String(8), primary_key=True)  # YYYYMMDD, Asia/Shanghai
    last: Mapped[int] = mapped_column(Integer)


class TicketRow(Base):
    """A 工单. `state` is one of tickets.lifecycle.State; every change is also a TicketEventRow.

    `due_at` is the deadline running now (签收 while dispatched, 办理 while handled, none when
    no department holds the ticket): overdue is `due_at < now`, an indexed comparison, so no
    batch job is needed to know it. `late` records that a step was done after its deadline."""

    __tablename__ = "tickets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    number: Mapped[str] = mapped_column(String(16), unique=True)  # YYYYMMDD + 5-digit daily sequence
    state: Mapped[str] = mapped_column(String(24))
    channel: Mapped[str] = mapped_column(String(16))
    caller_name: Mapped[str] = mapped_column(String(128), default="")
    caller_num: Mapped[str] = mapped_column(String(64), default="")
    caller_restricted: Mapped[bool] = mapped_column(Boolean, default=False)  # shown masked
    category: Mapped[str] = mapped_column(String(8), default="")
    urgency: Mapped[str] = mapped_column(String(16), default="normal")
    district: Mapped[str] = mapped_column(String(32), default="")
    street: Mapped[str] = mapped_column(String(64), default="")
    address: Mapped[str] = mapped_column(String(256), default="")
    content: Mapped[str] = mapped_column(Text, default="")
    agent_id: Mapped[str | None] = mapped_column(String(16), nullable=True)  # who took the call or typed it
    origin_call_id: Mapped[str | None] = mapped_column(String(64), nullable=True, unique=True)  # opened the draft
    department_id: Mapped[int | None] = mapped_column(ForeignKey("departments.id"), nullable=True)
    original_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"), nullable=True)  # 重复/attached
    article_id: Mapped[int | None] = mapped_column(ForeignKey("kb_articles.id"), nullable=True)  # 直接答复 basis
    returns: Mapped[int] = mapped_column(Integer, default=0)
    extensions: Mapped[int] = mapped_column(Integer, default=0)
    redos: Mapped[int] = mapped_column(Integer, default=0)
    urged: Mapped[int] = mapped_column(Integer, default=0)  # 督办 count
    late: Mapped[bool] = mapped_column(Boolean, default=False)  # a step was done after its deadline
    due_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    accept_due: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    handle_due: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    reply: Mapped[str] = mapped_column(Text, default="")
    followup: Mapped[str] = mapped_column(Text, default="")  # 回访 result in words
    rating: Mapped[str] = mapped_column(String(8), default="")  # 非常满意 .. 非常不满意
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    registered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    dispatched_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    accepted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    replied_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    updated: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # Every UPDATE says `WHERE version = <what was read>` and bumps it (SQLAlchemy's version
    # counter): on SQLite, where SELECT ... FOR UPDATE locks nothing, two people stepping the same
    # ticket at once cannot both succeed from the same stale state.
    version: Mapped[int] = mapped_column(Integer)
    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012

    __table_args__ = (
        Index("ix_tickets_caller_num", "caller_num"),
        Index("ix_tickets_department_due", "department_id", "due_at"),
        Index("ix_tickets_due_at", "due_at"),
        Index("ix_tickets_state_created", "state", "created"),
        Index("ix_tickets_created", "created"),
        Index("ix_tickets_agent_state", "agent_id", "state"),
    )


class TicketCallRow(Base):
    """A call that belongs to a ticket (the one that opened it, and citizens calling back)."""

    __tablename__ = "ticket_calls"

    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), primary_key=True)
    call_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    recording: Mapped[str | None] = mapped_column(String(512), nullable=True)
    linked: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # Migration 0007: the caller's satisfaction survey of this call, copied from its record.
    surveyed: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    rating: Mapped[int | None] = mapped_column(Integer, nullable=True)  # 1 = 非常满意 .. 5 = 非常不满意

    __table_args__ = (Index("ix_ticket_calls_call_id", "call_id"),)


class TicketEventRow(Base):
    """The append-only history: one row per change. Database triggers refuse UPDATE and DELETE."""

    __tablename__ = "ticket_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"))
    seq: Mapped[int] = mapped_column(Integer)  # 1, 2, ... per ticket, no gaps
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    actor: Mapped[str] = mapped_column(String(64))  # user name, or "engine" for drafts from calls
    role: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(24))
    from_state: Mapped[str] = mapped_column(String(24))
    to_state: Mapped[str] = mapped_column(String(24))
    note: Mapped[str] = mapped_column(Text, default="")
    data: Mapped[str] = mapped_column(Text, default="{}")  # JSON: the fields this change set

    __table_args__ = (UniqueConstraint("ticket_id", "seq", name="uq_ticket_events_ticket_seq"),)


class ArticleRow(Base):
    """A 知识库 article. Full-text search is the database's own (migration 0004)."""

    __tablename__ = "kb_articles"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    category: Mapped[str] = mapped_column(String(8), default="")
    tags: Mapped[str] = mapped_column(String(512), default="")  # space separated
    valid_from: Mapped[date | None] = mapped_column(Date, nullable=True)
    valid_to: Mapped[date | None] = mapped_column(Date, nullable=True)
    uses: Mapped[int] = mapped_column(Integer, default=0)  # tickets answered citing it
    author: Mapped[str] = mapped_column(String(64), default="")
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class PushEventRow(Base):
    """The outbox to the provincial 12345 platform, written in the ticket change's transaction.
    `key` is the idempotency key the receiver sees; the relay sets delivered when acknowledged."""

    __tablename__ = "push_outbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    ticket_id: Mapped[int] = mapped_column(Integer)
    event: Mapped[str] = mapped_column(String(24))
    payload: Mapped[str] = mapped_column(Text)  # JSON
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    delivered: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    last_error: Mapped[str] = mapped_column(Text, default="")

    __table_args__ = (
        Index("ix_push_outbox_pending", "delivered", "next_attempt"),
        Index("ix_push_outbox_ticket", "ticket_id", "id"),  # the relay sends a ticket's oldest first
    )


class TicketMarkRow(Base):
    """A moment the platform records once (migration 0006): `drafts_since`, when it first
    opened drafts from calls; the sweep never looks back before it."""

    __tablename__ = "ticket_marks"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class CallbackRow(Base):
    """A citizen's callback request (回拨, migration 0008), booked from the IVR while their call
    waited: kept here durably until it is done, failed or cancelled (cti/callbacks.py).

    `id` is "cb-" + the booking call's Linkedid, unique: booking the same call twice is one
    request. `arrived` is when the citizen's call arrived, their place in line. `attempts`
    counts the calls to the citizen; after a failed one the request waits until
    `next_attempt` (not in line meanwhile). `last_call_id` is the attempt's call id
    (<id>-<attempt>, the Linkedid of its agent's leg and recording)."""

    __tablename__ = "callback_requests"

    id: Mapped[str] = mapped_column(String(80), primary_key=True)
    origin_call_id: Mapped[str] = mapped_column(String(64))
    number: Mapped[str] = mapped_column(String(32))  # digits only, validated at booking
    restricted: Mapped[bool] = mapped_column(Boolean, default=False)  # the caller withheld their number: mask it
    queue: Mapped[str] = mapped_column(String(32))
    priority: Mapped[int] = mapped_column(Integer, default=0)
    skills: Mapped[str] = mapped_column(Text, default="[]")  # JSON [[name, level], ...]
    language: Mapped[str] = mapped_column(String(8), default="zh")
    arrived: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    state: Mapped[str] = mapped_column(String(16))  # pending | ringing | done | failed | cancelled
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # Of those, attempts an agent ended before the citizen could answer: not the citizen's retries.
    agent_hangups: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    outcome: Mapped[str] = mapped_column(String(16), default="")  # connected | no_answer | busy | failed | ...
    agent_id: Mapped[str | None] = mapped_column(String(16), nullable=True)
    last_call_id: Mapped[str | None] = mapped_column(String(80), nullable=True)
    recording: Mapped[str | None] = mapped_column(String(512), nullable=True)
    talk_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        Index("ix_callback_requests_due", "state", "next_attempt"),
        Index("ix_callback_requests_created", "created"),
    )


class ReportVersionRow(Base):
    """One frozen version of a period's report (migration 0009): its JSON exactly as hashed.
    A restatement is a new row with the next version; triggers refuse UPDATE and DELETE."""

    __tablename__ = "report_versions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    period: Mapped[str] = mapped_column(String(64))  # reports.periods.Period.key: "month:2026-11"
    version: Mapped[int] = mapped_column(Integer)  # 1, 2, ... per period
    frozen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    frozen_by: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text)
    content: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))

    __table_args__ = (UniqueConstraint("period", "version", name="uq_report_versions_period_version"),)
