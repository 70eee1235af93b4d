"""SQLAlchemy 2 models of the store. Changes go through an Alembic migration."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, DateTime, Float, Index, Integer, String, Text, text
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
