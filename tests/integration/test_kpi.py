"""One definition of every KPI: the live counters per queue equal what metrics/kpi.py
computes from the call records of the same calls, and no queue's answer rate passes
100%, with overflow into another queue, closed hours and short abandons in the mix."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from metrics import kpi
from testbed import sipp
from testbed.sandbox import Sandbox
from tests.integration.test_acd import acd_config, agent, available, start

CST = timedelta(hours=8)


def closed_now() -> str:
    """A one-minute opening window twelve hours from now (Asia/Shanghai): closed all test long."""
    later = datetime.now(UTC) + CST + timedelta(hours=12)
    start = later.replace(second=0, microsecond=0)
    end = start + timedelta(minutes=1)
    if end.day != start.day:
        start, end = start - timedelta(minutes=1), start
    return f"{start:%H:%M}-{end:%H:%M}"


def queues() -> list[dict[str, Any]]:
    return [
        {"name": "main", "number": "12345", "ring_timeout": 6, "wrapup": 0, "max_wait": 120, "short_abandon": 3,
         "service_level": 15},
        {"name": "tax", "number": "12366", "ring_timeout": 6, "wrapup": 0, "short_abandon": 5, "service_level": 10,
         "overflow": {"after": 2, "to": "queue", "queue": "main"}},
        {"name": "night", "number": "12377", "hours": {"daily": closed_now()}, "when_closed": "message"},
    ]


def counters(samples: dict[str, float], queue: str) -> kpi.Totals:
    def get(name: str) -> int:
        return int(samples.get(f"hotline_calls_{name}_total{{queue={queue}}}", 0))

    closed = int(samples.get(f"hotline_calls_ended_total{{outcome=closed,queue={queue}}}", 0))
    return kpi.Totals(offered=get("offered"), answered=get("answered"),
                      answered_within_sl=get("answered_within_service_level"), abandoned=get("abandoned"),
                      short_abandoned=get("short_abandoned"), closed=closed)


def test_per_queue_counters_equal_the_kpis_of_the_records_and_no_rate_passes_100_percent(
    clean: Sandbox, tmp_path: Path
) -> None:
    directory = acd_config(tmp_path / "kpi", queues())
    (directory / "agents.yaml").write_text(
        "agents:\n  - {id: '1001', name: 坐席1001, password: pw-1001-test, queues: [main]}\n", encoding="utf-8")
    engine = start(clean, directory)
    try:
        def abandon(number: str, to: str, hold_ms: int) -> None:
            sipp.callers(1, rate=1, names=[("速挂", number)], talk_ms=0, number=to,
                         scenario="caller_abandon.xml", hold_ms=hold_ms).check(30)

        # Nobody logged in yet: two short abandons and a long one in main, a short one in tax,
        # and a caller to a queue that is closed.
        abandon("13900000201", "12345", 1000)
        abandon("13900000202", "12345", 1000)
        abandon("13900000203", "12345", 4000)
        abandon("13900000204", "12366", 1000)
        assert sipp.callers(1, rate=1, names=[("夜间", "13900000205")], talk_ms=300,
                            number="12377").check(30).successful == 1
        # Then an agent of main only: two calls to main, and two to tax that overflow into main.
        uas = sipp.agent_uas(6701, answer_ms=200)
        sipp.register([agent("1001")], contact_port=6701)
        available(engine, "1001")
        for number, to in (("13900000206", "12345"), ("13900000207", "12366"), ("13900000208", "12345"),
                           ("13900000209", "12366")):
            assert sipp.callers(1, rate=1, names=[("来电", number)], talk_ms=500,
                                number=to).check(60).successful == 1
        rows = engine.records(wait_for=9)
        assert len(rows) == 9
        by_queue = kpi.by_queue(rows)
        samples = engine.metrics()
        for queue in ("main", "tax", "night"):
            assert counters(samples, queue) == by_queue.get(queue, kpi.Totals()), queue
        main, tax, night = by_queue["main"], by_queue["tax"], by_queue["night"]
        # Overflowed calls count where they were offered (tax), not where they were answered.
        assert (main.offered, main.answered, main.short_abandoned) == (5, 2, 2)
        assert (tax.offered, tax.answered, tax.short_abandoned) == (3, 2, 1)
        assert (night.offered, night.closed) == (0, 1)
        for totals in (main, tax):
            assert totals.answer_rate is not None and totals.answer_rate <= 1.0
        assert kpi.percent(main.answer_rate) == "66.67%"  # 2 / (5 - 2)
        assert kpi.percent(tax.answer_rate) == "100.00%"  # 2 / (3 - 1)
        uas.stop()
    finally:
        engine.close()
