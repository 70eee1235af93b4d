"""The store side of hot topics: stream the texts of a period's tickets into reports.topics.

A ticket belongs to the period of its 登记 (`registered_at`, UTC): drafts never registered are
not requests yet. 无效, 重复 and 已并入 tickets are left out: they are not requests of their own,
and a duplicate would count the same matter twice.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from sqlalchemy import Engine, select

from reports.ticket_stats import NOT_VALID
from reports.topics import Segmenter, TicketText, Topics, topics
from tickets.lifecycle import State
from tickets.models import TicketRow

EXCLUDED = (State.INVALID.value, State.DUPLICATE.value, State.MERGED.value)
# An invalid or duplicate ticket moves on to 归档 (archived) with its category set to 无效/重复:
# the category keeps it out after the state has moved on.
FETCH = 2_000  # rows the database hands over at a time


@dataclass(frozen=True)
class TextFilters:
    """Narrow the tickets read; each empty tuple means any."""

    categories: tuple[str, ...] = ()
    districts: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()
    department_ids: tuple[int, ...] = ()


def _utc(value: datetime, name: str) -> datetime:
    if value.tzinfo is None:
        raise ValueError(f"{name} must carry its time zone (a naive time is ambiguous: UTC or Asia/Shanghai?)")
    # SQLite keeps the clock time without the zone: every bound must be in UTC, as stored.
    return value.astimezone(UTC)


def load_texts(db: Engine, start_utc: datetime, end_utc: datetime,
               filters: TextFilters | None = None) -> Iterator[TicketText]:
    """The tickets registered in [start_utc, end_utc), streamed: only the four columns hot topics
    reads, FETCH rows at a time (a server-side cursor on PostgreSQL)."""
    f = filters or TextFilters()
    t = TicketRow.__table__.c
    query = (select(t.category, t.district, t.street, t.content)
             .where(t.registered_at >= _utc(start_utc, "start_utc"), t.registered_at < _utc(end_utc, "end_utc"),
                    t.state.not_in(EXCLUDED), t.category.not_in(NOT_VALID))
             .execution_options(yield_per=FETCH))
    for column, wanted in ((t.category, f.categories), (t.district, f.districts), (t.channel, f.channels),
                           (t.department_id, f.department_ids)):
        if wanted:
            query = query.where(column.in_(wanted))
    with db.connect() as conn:
        for category, district, street, content in conn.execute(query):
            yield TicketText(category or "", district or "", street or "", content or "")


def hot_topics(db: Engine, period_start: datetime, period_end: datetime, previous_start: datetime,
               previous_end: datetime, top: int = 10, filters: TextFilters | None = None,
               segmenter: Segmenter | None = None) -> Topics:
    """热点诉求 of [period_start, period_end) against [previous_start, previous_end)."""
    found = topics(load_texts(db, period_start, period_end, filters),
                   load_texts(db, previous_start, previous_end, filters), top=top, segmenter=segmenter)
    return replace(found, period=(period_start, period_end), previous_period=(previous_start, previous_end))
