"""Frozen reports (报表冻结): the published version of a period, and its restatements.

A frozen version is the report's JSON (`Snapshot.as_json`, serialised canonically) with the
SHA-256 of exactly those bytes, who froze it, when and why. Freezing a period again adds
version n+1 beside the old ones (table report_versions, migration 0009: the database refuses
UPDATE and DELETE), so what was published stays readable byte for byte; reading a frozen
period shows the latest version and lists the others.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from reports.report import Report, Snapshot
from tickets.models import ReportVersionRow


class FreezeRefused(Exception):
    """A freeze that cannot be done as asked; the text says why and what to do."""


def canonical(document: dict[str, Any]) -> str:
    """The JSON text that is stored and hashed: keys sorted, no spaces, Chinese as is."""
    return json.dumps(document, ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False)


def sha256(content: str) -> str:
    return hashlib.sha256(content.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Version:
    id: int
    period: str  # Period.key
    version: int
    frozen_at: datetime
    frozen_by: str
    reason: str
    sha256: str
    content: str

    @property
    def intact(self) -> bool:
        """Whether the stored JSON still has the hash it was frozen with."""
        return sha256(self.content) == self.sha256

    def snapshot(self) -> Snapshot:
        return Snapshot.from_json(json.loads(self.content))


def _version(row: ReportVersionRow) -> Version:
    at = row.frozen_at if row.frozen_at.tzinfo else row.frozen_at.replace(tzinfo=UTC)  # SQLite: naive UTC
    return Version(row.id, row.period, row.version, at, row.frozen_by, row.reason, row.sha256, row.content)


def freeze(db: Engine, report: Report | Snapshot, *, by: str, reason: str, now: datetime) -> Version:
    """Store `report` as the next version of its period."""
    snap = report.snapshot() if isinstance(report, Report) else report
    by, reason = by.strip(), reason.strip()
    if not by:
        raise FreezeRefused("冻结需注明操作人 (--by NAME)")
    if not reason:
        raise FreezeRefused("冻结需说明原因 (--reason TEXT)，如“月度正式发布”或更正的原因")
    if len(by) > 64:
        raise FreezeRefused("操作人名称不能超过 64 个字符 (--by is at most 64 characters)")
    if snap.options.get("queues") or snap.options.get("departments") or snap.options.get("categories") \
            or snap.options.get("districts"):
        raise FreezeRefused("专项分析（带筛选条件）不能冻结：冻结的是本期正式报表 (a filtered report cannot be frozen)")
    if now.tzinfo is None:
        raise ValueError("now must be an aware datetime")
    if now < snap.period.end:
        raise FreezeRefused(f"{snap.period.label} 尚未结束（至北京时间 {snap.period.end:%Y-%m-%d %H:%M}），不能冻结 "
                            "(a period is frozen once it has ended)")
    content = canonical(snap.as_json())
    key = snap.period.key
    for _ in range(3):  # two people freezing the same period at once: one gets n+1, the other n+2
        try:
            with Session(db) as s, s.begin():
                last = s.scalar(select(func.max(ReportVersionRow.version)).where(ReportVersionRow.period == key))
                row = ReportVersionRow(period=key, version=(last or 0) + 1, frozen_at=now.astimezone(UTC),
                                       frozen_by=by, reason=reason, content=content, sha256=sha256(content))
                s.add(row)
                s.flush()
                return _version(row)
        except IntegrityError:
            continue
    raise FreezeRefused(f"{key} 正被他人同时冻结，请稍后重试 (frozen concurrently by someone else: try again)")


def versions(db: Engine, key: str) -> list[Version]:
    """Every frozen version of the period `key`, oldest first."""
    with Session(db) as s:
        rows = s.scalars(select(ReportVersionRow).where(ReportVersionRow.period == key)
                         .order_by(ReportVersionRow.version))
        return [_version(r) for r in rows]


def latest(db: Engine, key: str) -> Version | None:
    found = versions(db, key)
    return found[-1] if found else None
