"""SQLAlchemy 2 models of the store. Changes go through an Alembic migration."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, DateTime, Float, Index, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class CallRecordRow(Base):
    """One row per citizen call, keyed by Asterisk's Linkedid."""

    __tablename__ = "call_records"

    call_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    queue: Mapped[str] = mapped_column(String(32))
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

    __table_args__ = (Index("ix_call_records_arrived", "arrived"),)
