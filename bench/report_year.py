"""Period reports at a year's volume: reports.report.build for 2026 and for November 2026.

Loads a year (2026, Beijing time) into a throwaway PostgreSQL database by COPY:
  - 1,500,000 call records: arrivals spread over the year by weekday, season (heating months
    busier, 春节 quieter) and hour of day (peaks 9-11 and 14-17, a trickle at night); five
    queues, a few percent overflowing between them; the tax line closed outside 08-18 (its
    night callers are `closed`, not offered); ~93% answered, abandons of which ~40% within
    5 s, time-outs, overflows, callbacks; the survey after most answered calls;
  - 600,000 tickets over the same year with their whole history (ticket_events): drafts and
    direct registrations, 直接答复, dispatch to 20 departments (some returned and dispatched
    again, some designated), acceptance mostly within the limit, extensions, replies mostly
    by the deadline, rejected replies, follow-ups with ratings, 重办 after a bad rating, close,
    archive; everything after `--now` (default 2027-01-15 10:00 Beijing) not yet happened,
    so late-December tickets are still open;
then VACUUM ANALYZE, and times `build` (the figures, the tables and the previous period for
环比, as `hotline report` runs it) for the year and for one month, each twice (the second
with warm caches), then once more under tracemalloc for the peak of Python memory. Prints
the figures, the times against the goals (year < 30 s, month < 5 s) and the ratio.

Run: .venv/bin/python -m bench.report_year --url postgresql+psycopg://postgres@127.0.0.1:5432/postgres
     [--calls 1500000] [--tickets 600000] [--seed 12345]
The database named in --url is only where it connects to create the scratch database, which
is dropped at the end however the run ends (Ctrl-C, SIGTERM).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import resource
import signal
import time
import tracemalloc
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg
from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from reports.output import summary
from reports.periods import SHANGHAI, Period, parse
from reports.report import ReportOptions, build
from tickets import auth
from tickets.db import migrate, open_engine

GOALS = {"year": 30.0, "month": 5.0}  # seconds
PROGRESS = 250_000
YEAR = 2026
SPRING_FESTIVAL = date(2026, 2, 17)

# ---- the shape of a year ----------------------------------------------------------------------
HOUR_WEIGHTS = [0.35, 0.25, 0.2, 0.2, 0.25, 0.4, 0.8, 1.6, 3.5, 6.0, 7.0, 6.2, 3.4, 4.0, 6.0, 6.2, 5.6, 4.2,
                2.6, 2.1, 1.9, 1.6, 1.1, 0.6]
TICKET_HOUR_WEIGHTS = [0.05, 0.03, 0.02, 0.02, 0.03, 0.05, 0.2, 1.0, 3.5, 6.0, 7.0, 6.2, 3.4, 4.0, 6.0, 6.2, 5.6,
                       4.2, 2.6, 2.1, 1.9, 1.6, 1.1, 0.3]


def day_weight(day: date) -> float:
    w = {5: 0.7, 6: 0.6}.get(day.weekday(), 1.0)
    if day.month in (1, 2, 11, 12):  # heating season: 供暖 calls
        w *= 1.2
    if abs((day - SPRING_FESTIVAL).days) <= 3:
        w *= 0.5
    return w


def spread(n: int, hour_weights: list[float]) -> Iterator[tuple[datetime, int]]:
    """(start of a Beijing hour of 2026, how many arrive in it), summing to exactly n."""
    slots = []
    day = date(YEAR, 1, 1)
    while day.year == YEAR:
        for h in range(24):
            start = datetime(day.year, day.month, day.day, h, tzinfo=SHANGHAI)
            slots.append((start, day_weight(day) * hour_weights[h]))
        day += timedelta(days=1)
    total = sum(w for _, w in slots)
    given, acc = 0, 0.0
    for start, w in slots:
        acc += n * w / total
        k = round(acc) - given
        given += k
        yield start, k


# ---- call records ------------------------------------------------------------------------------
QUEUES = [("main", 0.58), ("social", 0.16), ("tax", 0.14), ("urgent", 0.06), ("en", 0.06)]
CALL_COLUMNS = ("call_id", "queue", "caller_num", "caller_name", "caller_restricted", "arrived", "answered", "ended",
                "agent_id", "outcome", "wait_seconds", "talk_seconds", "recording", "offered_queue", "path",
                "priority", "service_level", "short_abandon", "served_by", "source", "surveyed", "rating")


def call_rows(n: int, rng: random.Random) -> Iterator[tuple[Any, ...]]:
    names, weights = zip(*QUEUES, strict=True)
    i = 0
    for hour, k in spread(n, HOUR_WEIGHTS):
        local_hour = hour.hour
        for _ in range(k):
            i += 1
            arrived = (hour + timedelta(seconds=rng.random() * 3600)).astimezone(UTC)
            offered = rng.choices(names, weights)[0]
            sl, short = (20.0, 8.0) if offered == "en" else (15.0, 5.0)
            queue, path = offered, [offered]
            r = rng.random()
            if offered == "tax" and not 8 <= local_hour < 18:
                outcome, wait = "closed", 0.0
            elif r < 0.925:
                outcome, wait = "answered", rng.expovariate(1 / (9.0 if 9 <= local_hour <= 16 else 5.0))
            elif r < 0.975:
                outcome = "abandoned"
                wait = rng.uniform(0, short) if rng.random() < 0.4 else short + rng.expovariate(1 / 40)
            else:
                outcome = rng.choice(["timed_out", "overflow", "callback", "forwarded"])
                wait = rng.uniform(60, 300)
            if outcome == "answered" and rng.random() < 0.05:  # overflowed: answered by another queue's agents
                queue = "main" if offered != "main" else "social"
                path = [offered, queue]
            answered = arrived + timedelta(seconds=wait) if outcome == "answered" else None
            talk = rng.lognormvariate(4.9, 0.6) if answered else 0.0
            ended = (answered or arrived + timedelta(seconds=wait)) + timedelta(seconds=talk)
            surveyed = answered is not None and rng.random() < 0.7
            rating = rng.choices([1, 2, 3, 4, 5, None], [44, 24, 7, 3, 2, 20])[0] if surveyed else None
            call_id = f"{int(arrived.timestamp())}.{i}"
            yield (call_id, queue, f"1{rng.choice('3456789')}{rng.randrange(10**9):09d}", "", rng.random() < 0.01,
                   arrived, answered, ended, str(1001 + rng.randrange(60)) if answered else None, outcome, wait,
                   talk, f"/var/spool/hotline/rec/{call_id}.wav" if answered else None, offered, json.dumps(path),
                   0, sl, short, "engine", "live", surveyed, rating)


# ---- tickets and their history ------------------------------------------------------------------
MATTERS = [  # (what, category, department code), the first the most common
    ("小区供暖不热", "投诉", "heating"), ("楼下商户噪音扰民", "投诉", "urban"), ("物业服务差", "投诉", "housing"),
    ("突然停水", "求助", "water"), ("医保报销", "咨询", "medins"), ("公积金提取", "咨询", "fund"),
    ("拖欠工资", "投诉", "hrss"), ("路灯不亮", "求助", "urban"), ("餐饮店油烟扰民", "投诉", "eco"),
    ("违章建筑", "举报", "urban"), ("燃气停供", "求助", "gas"), ("频繁停电", "投诉", "power"),
    ("电梯经常故障", "投诉", "housing"), ("户口迁移", "咨询", "police"), ("小学入学学位", "咨询", "edu"),
    ("预付卡退费难", "投诉", "market"), ("低保申请", "求助", "civil"), ("公交线路调整", "建议", "traffic"),
    ("医院挂号难", "投诉", "health"), ("法律援助", "求助", "justice"), ("窗口工作人员服务热情", "表扬", "gov"),
    ("不动产登记", "咨询", "natres"), ("残疾证办理", "咨询", "disabled"), ("工地扬尘", "投诉", "eco"),
]
MATTER_WEIGHTS = [1 / (i + 1) ** 0.8 for i in range(len(MATTERS))]
DEPARTMENTS = {
    "heating": "市热力公司", "urban": "市城市管理执法局", "eco": "市生态环境局", "water": "市水务集团",
    "gas": "市燃气公司", "power": "国网咸阳供电公司", "housing": "市住房和城乡建设局", "natres": "市自然资源局",
    "fund": "市住房公积金中心", "hrss": "市人力资源和社会保障局", "medins": "市医疗保障局", "traffic": "市交通运输局",
    "police": "市公安局", "edu": "市教育局", "market": "市市场监督管理局", "civil": "市民政局",
    "disabled": "市残疾人联合会", "health": "市卫生健康委员会", "justice": "市司法局", "gov": "市政务服务中心",
}
DISTRICTS = ["秦都区", "渭城区", "杨陵区", "兴平市", "彬州市", "三原县", "泾阳县", "乾县", "礼泉县", "永寿县", "长武县",
             "旬邑县", "淳化县", "武功县"]
DISTRICT_WEIGHTS = [30, 25, 6, 8, 5, 5, 5, 4, 4, 2, 2, 2, 2, 4]
RATINGS = ["非常满意", "满意", "基本满意", "不满意", "非常不满意"]
RATING_WEIGHTS = [55, 25, 9, 7, 4]
HANDLE_DAYS = {"咨询": 5, "求助": 5, "投诉": 18, "举报": 18, "建议": 18, "表扬": 7}
TICKET_COLUMNS = ("id", "number", "state", "channel", "caller_name", "caller_num", "caller_restricted", "category",
                  "urgency", "district", "street", "address", "content", "agent_id", "department_id", "returns",
                  "extensions", "redos", "urged", "late", "due_at", "accept_due", "handle_due", "reply", "followup",
                  "rating", "created", "registered_at", "dispatched_at", "accepted_at", "replied_at", "closed_at",
                  "updated", "version")
EVENT_COLUMNS = ("ticket_id", "seq", "at", "actor", "role", "action", "from_state", "to_state", "note", "data")


class Stop(Exception):
    """The next step would happen after `now`: the ticket stays where it is."""


class Ticket:
    """One ticket's life, step by step, with the row fields the service would have set."""

    def __init__(self, tid: int, now: datetime, rng: random.Random) -> None:
        self.id, self.now, self.rng = tid, now, rng
        self.state, self.at = "new", now
        self.events: list[tuple[Any, ...]] = []
        self.f: dict[str, Any] = {"returns": 0, "extensions": 0, "redos": 0, "late": False, "due_at": None,
                                  "accept_due": None, "handle_due": None, "reply": "", "followup": "", "rating": "",
                                  "registered_at": None, "dispatched_at": None, "accepted_at": None,
                                  "replied_at": None, "closed_at": None, "department_id": None}

    def step(self, at: datetime, action: str, to: str, role: str = "agent", actor: str = "agent1",
             note: str = "", **data: Any) -> datetime:
        if at > self.now:
            raise Stop
        self.events.append((self.id, len(self.events) + 1, at, actor, role, action, self.state, to, note,
                            json.dumps(data, ensure_ascii=False)))
        self.state, self.at = to, at
        return at

    def later(self, lo: float, hi: float) -> datetime:
        """A moment lo..hi hours after the last step."""
        return self.at + timedelta(hours=self.rng.uniform(lo, hi))


def live(t: Ticket, category: str, urgency: str, dept_ids: list[int], dept: int) -> None:
    """The ticket's steps from registration on (raises Stop at `now`)."""
    rng, f = t.rng, t.f
    accept_h = {"normal": 24.0, "urgent": 0.5, "critical": 0.25}[urgency]
    handle_h = {"normal": 24.0 * HANDLE_DAYS.get(category, 7), "urgent": 72.0, "critical": 24.0}[urgency]
    p = rng.random()
    if p < 0.02:
        f["category"] = "无效"
        t.step(t.later(0.02, 0.2), "mark_invalid", "invalid", note="无效诉求")
        t.step(t.later(480, 960), "archive", "archived", role="supervisor", actor="boss")
        return
    if p < 0.03:
        f["category"] = "重复"
        t.step(t.later(0.02, 0.2), "mark_duplicate", "duplicate")
        t.step(t.later(480, 960), "archive", "archived", role="supervisor", actor="boss")
        return
    if p < 0.33:  # 直接答复
        f["reply"] = "已按知识库答复"
        t.step(t.later(0.01, 0.1), "answer_directly", "direct_answered", reply=f["reply"])
        if rng.random() < 0.4:
            f["rating"] = rng.choices(RATINGS, RATING_WEIGHTS)[0]
            t.step(t.later(4, 48), "follow_up", "followed_up", rating=f["rating"])
            if f["rating"] in ("不满意", "非常不满意") and rng.random() < 0.3:
                t.step(t.later(0.5, 4), "submit", "pending_dispatch")
                handled(t, accept_h, handle_h, dept_ids, dept, submitted=True)
                return
        f["closed_at"] = t.step(t.later(0.1, 2), "close", "closed")
        t.step(t.later(480, 960), "archive", "archived", role="supervisor", actor="boss")
        return
    submitted = rng.random() < 0.3
    if submitted:
        t.step(t.later(0.02, 0.1), "submit", "pending_dispatch")
    handled(t, accept_h, handle_h, dept_ids, dept, submitted=submitted)


def dispatch(t: Ticket, accept_h: float, dept: int, action: str = "dispatch") -> None:
    f = t.f
    f["dispatched_at"] = t.step(t.later(0.05, 3), action, "dispatched" if action == "dispatch" else "designated",
                                role="supervisor" if action == "designate" else "agent", department=dept)
    f["department_id"] = dept
    f["accept_due"] = f["due_at"] = f["dispatched_at"] + timedelta(hours=accept_h)
    f["handle_due"] = None


def handled(t: Ticket, accept_h: float, handle_h: float, dept_ids: list[int], dept: int, submitted: bool) -> None:
    rng, f = t.rng, t.f
    dispatch(t, accept_h, dept)
    if rng.random() < 0.05:  # 退单, then dispatched again (or designated)
        at = t.step(f["dispatched_at"] + timedelta(hours=accept_h * rng.uniform(0.1, 1.3)), "return", "returned",
                    role="department", actor="dept", note="不属本单位职责", department_id=dept)
        f["late"] = f["late"] or at > f["accept_due"]
        f["department_id"] = f["due_at"] = None
        dispatch(t, accept_h, rng.choice(dept_ids), "designate" if rng.random() < 0.2 else "dispatch")
    late = rng.random() < 0.07
    at = f["dispatched_at"] + timedelta(hours=accept_h * (rng.uniform(1.0, 2.5) if late else rng.uniform(0.02, 0.9)))
    f["accepted_at"] = t.step(at, "accept", "in_progress", role="department", actor="dept")
    f["late"] = f["late"] or late
    f["handle_due"] = f["due_at"] = at + timedelta(hours=handle_h)
    while True:
        if f["extensions"] == 0 and rng.random() < 0.06:
            t.step(t.at + (f["handle_due"] - t.at) * 0.6, "request_extension", "extension_requested",
                   role="department", actor="dept", note="需协调多部门")
            t.step(t.later(1, 6), "approve_extension", "in_progress", role="supervisor", actor="boss")
            f["extensions"] += 1
            f["handle_due"] = f["due_at"] = f["handle_due"] + timedelta(hours=handle_h * 0.5)
        left = max(1.0, (f["handle_due"] - t.at).total_seconds() / 3600)  # after a rejection it may have passed
        late = rng.random() < 0.08
        at = t.at + timedelta(hours=left * rng.uniform(0.05, 0.95) if not late else left + rng.uniform(2, 120))
        f["reply"] = "已现场核实并处理"
        f["replied_at"] = t.step(at, "reply", "replied", role="department", actor="dept", reply=f["reply"])
        f["late"] = f["late"] or late
        f["due_at"] = None
        if rng.random() < 0.04:  # 驳回: the deadline stands
            t.step(t.later(1, 12), "reject_reply", "in_progress", role="supervisor", actor="boss", note="答复不完整")
            f["due_at"] = f["handle_due"]
            continue
        t.step(t.later(1, 24), "approve_reply", "callback", role="supervisor", actor="boss")
        if rng.random() < 0.12:  # the citizen could not be reached
            f["closed_at"] = t.step(t.later(24, 72), "close", "closed", note="多次联系不上")
            break
        f["rating"] = rng.choices(RATINGS, RATING_WEIGHTS)[0]
        f["followup"] = "已回访"
        t.step(t.later(2, 48), "follow_up", "followed_up", rating=f["rating"], result=f["followup"])
        if f["rating"] in ("不满意", "非常不满意") and rng.random() < 0.5:  # 重办
            t.step(t.later(1, 24), "reopen", "in_progress", role="supervisor", actor="boss", note="市民不满意")
            f["redos"] += 1
            f["handle_due"] = f["due_at"] = t.at + timedelta(hours=handle_h)
            continue
        f["closed_at"] = t.step(t.later(0.5, 24), "close", "closed")
        break
    t.step(t.later(480, 960), "archive", "archived", role="supervisor", actor="boss")


def tickets(n: int, seed: int, now: datetime, depts: dict[str, int]) -> Iterator[tuple[tuple[Any, ...],
                                                                                      list[tuple[Any, ...]]]]:
    """(the ticket row, its history), in order of creation; the same for the same seed."""
    rng = random.Random(seed)
    dept_ids = list(depts.values())
    daily: dict[str, int] = {}
    tid = 0
    for hour, k in spread(n, TICKET_HOUR_WEIGHTS):
        for _ in range(k):
            tid += 1
            t = Ticket(tid, now, rng)
            created = (hour + timedelta(seconds=rng.random() * 3600)).astimezone(UTC)
            matter, category, code = rng.choices(MATTERS, MATTER_WEIGHTS)[0]
            urgency = rng.choices(["normal", "urgent", "critical"], [90, 8, 2])[0]
            district = rng.choices(DISTRICTS, DISTRICT_WEIGHTS)[0]
            phone = rng.random() < 0.75
            t.at = created
            try:
                if phone:
                    t.step(created, "open_draft", "draft", role="agent", actor="engine", call_id=f"c{tid}")
                t.f["registered_at"] = t.step(t.later(0.01, 0.08) if phone else created, "register", "registered",
                                              category=category, district=district)
                live(t, category, urgency, dept_ids, depts[code])
            except Stop:
                pass
            f = t.f
            cat = f.get("category", category)
            day = created.astimezone(SHANGHAI).strftime("%Y%m%d")
            daily[day] = daily.get(day, 0) + 1
            row = (tid, f"{day}{daily[day]:05d}", t.state, "phone" if phone else "web", "市民",
                   f"1{rng.choice('3456789')}{rng.randrange(10**9):09d}", False, cat if t.state != "draft" else "",
                   urgency, district if t.state != "draft" else "", "", "", content(rng, district, matter) if
                   t.state != "draft" else "", str(1001 + rng.randrange(60)), f["department_id"], f["returns"],
                   f["extensions"], f["redos"], 0, f["late"], f["due_at"], f["accept_due"], f["handle_due"],
                   f["reply"], f["followup"], f["rating"], created, f["registered_at"], f["dispatched_at"],
                   f["accepted_at"], f["replied_at"], f["closed_at"], t.at, max(1, len(t.events)))
            yield row, t.events


PLACES = ["人民路", "渭阳路", "文林路", "玉泉路", "世纪大道", "乐育路", "统一路", "中华路"]
ESTATES = ["幸福", "阳光", "锦绣", "和平", "紫薇", "兴盛", "东方", "翠苑"]
DETAILS = ["已持续一周左右", "已多次联系相关单位但未得到解决", "对方称正在排查但至今没有结果", "家中有老人和小孩",
           "周边居民意见很大", "影响正常生活和休息", "此前已反映过一次", "附近商户也有同样情况"]


def content(rng: random.Random, district: str, matter: str) -> str:
    """A ticket's text of a realistic length (80-130 characters, as agents type them): the
    matter with a place and a few details, so that hot topics segment what they would."""
    place = f"{district}{rng.choice(PLACES)}{rng.choice(ESTATES)}小区{rng.randint(1, 30)}号楼"
    details = "，".join(rng.sample(DETAILS, 3))
    return f"市民来电反映：{place}{matter}，{details}。希望相关部门尽快核实处理，并将处理结果及时回复市民。"


# ---- loading -----------------------------------------------------------------------------------


def copy_rows(url: str, table: str, columns: tuple[str, ...], rows: Iterator[tuple[Any, ...]], total: int | None,
              ) -> int:
    cols = ", ".join(columns)
    t0 = time.perf_counter()
    n = 0
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        with cur.copy(f"COPY {table} ({cols}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
                n += 1
                if n % PROGRESS == 0:
                    of = f" of {total:,}" if total else ""
                    print(f"    {table}: {n:>9,}{of} rows, {n / (time.perf_counter() - t0):>8,.0f} rows/s",
                          flush=True)
        conn.commit()
    print(f"    {table}: {n:,} rows in {time.perf_counter() - t0:.0f} s", flush=True)
    return n


def load(engine: Engine, url: str, args: argparse.Namespace, now: datetime) -> None:
    with Session(engine) as s, s.begin():
        for code, name in DEPARTMENTS.items():
            auth.add_department(s, code, name, "029330000", datetime(2025, 1, 1, tzinfo=UTC))
    with psycopg.connect(url) as conn:
        depts = {code: ident for code, ident in conn.execute("SELECT code, id FROM departments")}
    copy_rows(url, "call_records", CALL_COLUMNS, call_rows(args.calls, random.Random(args.seed)), args.calls)
    copy_rows(url, "tickets", TICKET_COLUMNS, (row for row, _ in tickets(args.tickets, args.seed, now, depts)),
              args.tickets)
    # The same seed draws the same tickets again: their histories, now that the tickets exist.
    copy_rows(url, "ticket_events", EVENT_COLUMNS,
              (e for _, events in tickets(args.tickets, args.seed, now, depts) for e in events), None)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT setval(pg_get_serial_sequence('tickets', 'id'), (SELECT max(id) FROM tickets))")
        t0 = time.perf_counter()
        conn.execute("VACUUM ANALYZE")
        conn.execute("CHECKPOINT")
        sizes = conn.execute(
            "SELECT pg_size_pretty(pg_total_relation_size('call_records')), "
            "pg_size_pretty(pg_total_relation_size('tickets')), "
            "pg_size_pretty(pg_total_relation_size('ticket_events')), (SELECT count(*) FROM ticket_events), "
            "current_setting('shared_buffers'), "
            "current_setting('max_parallel_workers_per_gather'), current_setting('work_mem')").fetchone()
    assert sizes is not None
    print(f"  VACUUM ANALYZE + CHECKPOINT {time.perf_counter() - t0:.0f} s; call_records {sizes[0]}, "
          f"tickets {sizes[1]}, ticket_events {sizes[2]} ({sizes[3]:,} rows)", flush=True)
    print(f"  server: shared_buffers {sizes[4]}, max_parallel_workers_per_gather {sizes[5]}, work_mem {sizes[6]}",
          flush=True)


# ---- measuring ---------------------------------------------------------------------------------


def timed(engine: Engine, period: Period, now: datetime) -> tuple[float, list[tuple[float, str]], Any]:
    marks: list[tuple[float, str]] = []
    t0 = time.perf_counter()

    def progress(what: str) -> None:
        marks.append((time.perf_counter() - t0, what))

    report = build(engine, period, ReportOptions(), now, progress=progress)
    snap = report.snapshot()  # the tables too: what the CLI prints and writes
    return time.perf_counter() - t0, marks, snap


@contextlib.contextmanager
def scratch(url: str) -> Iterator[str]:
    parsed = make_url(url)
    name = f"report_year_{uuid.uuid4().hex[:8]}"
    admin = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    print(f"scratch database {name} (dropped at the end)", flush=True)
    try:
        yield parsed.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        print(f"scratch database {name} dropped", flush=True)


def stopped_by_sigterm(_signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt  # unwinds like Ctrl-C, so the scratch database is dropped


def measure(engine: Engine, now: datetime, say: Callable[[str], None]) -> int:
    misses = 0
    for kind, period in (("year", parse(str(YEAR))), ("month", parse(f"{YEAR}-11"))):
        runs = [timed(engine, period, now) for _ in range(2)]
        tracemalloc.start()
        timed(engine, period, now)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        (cold, marks, snap), (warm, _, _) = runs
        goal = GOALS[kind]
        verdict = "PASS" if max(cold, warm) < goal else "MISS"
        misses += verdict == "MISS"
        say(f"\n== {period.label} ({kind}) ==")
        say(summary(snap))
        steps = "; ".join(f"{t:.2f} s {what.split(' (')[0]}" for t, what in marks)
        say(f"\nbuild {period.label}: first {cold:.2f} s, second {warm:.2f} s; goal < {goal:g} s: {verdict} "
            f"(ratio {max(cold, warm) / goal:.2f} of the goal); Python peak under tracemalloc {peak / 2**20:.1f} MiB")
        say(f"  stages of the first run (seconds from the start): {steps}")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    say(f"\nprocess peak RSS {rss:.0f} MiB (includes the data generation; the report itself: see tracemalloc above)")
    return misses


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", required=True, help="postgresql+psycopg://USER@HOST:PORT/DB (where to create the scratch "
                    "database)")
    ap.add_argument("--calls", type=int, default=1_500_000)
    ap.add_argument("--tickets", type=int, default=600_000)
    ap.add_argument("--seed", type=int, default=12345)
    ap.add_argument("--now", default="2027-01-15T10:00:00+08:00", help="when the report is made (ISO 8601, aware)")
    args = ap.parse_args()
    if make_url(args.url).get_backend_name() != "postgresql":
        raise SystemExit("--url must be a PostgreSQL URL (postgresql+psycopg://...)")
    now = datetime.fromisoformat(args.now).astimezone(UTC)
    signal.signal(signal.SIGTERM, stopped_by_sigterm)
    with scratch(args.url) as url:
        psycopg_url = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        engine = open_engine(url)
        try:
            migrate(engine)
            t0 = time.perf_counter()
            print(f"loading {args.calls:,} call records and {args.tickets:,} tickets with their history by COPY",
                  flush=True)
            load(engine, psycopg_url, args, now)
            print(f"  loaded in {time.perf_counter() - t0:.0f} s", flush=True)
            misses = measure(engine, now, lambda line: print(line, flush=True))
        finally:
            engine.dispose()
    return 1 if misses else 0


if __name__ == "__main__":
    raise SystemExit(main())
