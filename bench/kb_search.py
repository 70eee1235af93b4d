"""知识库 search latency: tickets.kb.search on the trigram index against a plain LIKE scan, same run.

Builds 10,000 articles of government-service text (sentences drawn from a vocabulary of
12345 terms, fixed seed), then 8 threads search 2-character words (医保, 供暖: too short to be a
trigram), 3-character words (社保卡, 居住证) and 4+-character words or two-word queries
(不动产登记, 公积金 提取). It prints p50/p99 per kind, the goal (p99 < 20 ms),
and the baseline: the same queries as a LIKE over title, body and tags of kb_articles, which
no index serves (it counts and pages like search, without ranking). Each latency is one
search as a request handler makes it: a session, the query, the hits with their snippets.

The store is a scratch one, removed at the end however the run ends:
  sqlite://                      a file in a temporary directory
  sqlite:///PATH                 a new file at PATH (refused if it exists)
  postgresql+psycopg://U@H/DB    a new database on that server (DB is only where it connects
                                 to create and drop it)

Back to back (the default), 8 threads keep the machine saturated and a search's latency is
mostly its wait for a core (and for the GIL: one Python process); --rate R instead sends a
steady R searches/s (a 60-seat center sends a few) and counts each from when it was due.

Run: .venv/bin/python -m bench.kb_search --url URL [--articles 10000] [--queries 2000] [--threads 8]
                                                   [--rate R]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import Engine, and_, event, func, or_, select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from tickets import kb
from tickets.db import migrate, open_engine
from tickets.models import ArticleRow

GOAL_MS = 20.0
TODAY = date(2026, 12, 3)
NOW = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)

# What a 12345 知识库 is about: topics by domain (the domain is also a tag).
TOPICS = {
    "社保": ["社保卡", "医保卡", "养老保险", "失业保险", "工伤认定", "生育津贴", "医保报销", "异地就医", "门诊慢特病",
             "灵活就业参保", "退休审批", "养老金", "失业金", "新生儿参保", "城乡居民医保"],
    "就业": ["就业登记", "职业培训", "技能补贴", "创业担保贷款", "人才引进", "劳动仲裁", "拖欠工资", "劳动合同",
             "高校毕业生", "就业困难人员"],
    "住房": ["公积金", "公租房", "不动产登记", "房产证", "契税", "购房资格", "住房租赁", "物业费", "维修基金",
             "老旧小区改造", "加装电梯", "商品房交付"],
    "户籍": ["居住证", "身份证", "户口迁移", "积分落户", "新生儿落户", "护照", "港澳通行证", "出生医学证明",
             "结婚登记", "户籍证明"],
    "城管": ["供暖", "供水", "停水", "停电", "燃气", "路灯", "井盖", "占道经营", "噪音扰民", "餐饮油烟", "违章建筑",
             "垃圾分类", "共享单车", "树木修剪", "道路积水"],
    "交通": ["公交线路", "地铁", "出租车", "网约车", "违章停车", "电动车上牌", "驾驶证", "行驶证", "机动车年检"],
    "教育": ["幼儿园入园", "小学入学", "学位", "义务教育", "校外培训", "学籍", "助学金", "中考", "课后服务"],
    "市场": ["营业执照", "个体工商户", "食品安全", "消费维权", "预付卡", "价格欺诈", "药品安全", "个税", "发票"],
    "民政": ["低保", "特困供养", "残疾证", "老年卡", "高龄津贴", "殡葬", "婚姻登记", "养老服务", "临时救助"],
    "卫健": ["疫苗接种", "医院挂号", "生育登记", "家庭医生", "献血", "职业病"],
    "其他": ["退役军人", "优抚", "法律援助", "公证", "政务服务网", "津心办"],
}
ACTIONS = ["补办", "提取", "办理", "申领", "挂失", "续期", "转移", "变更", "查询", "报销", "缴纳", "注销", "投诉"]
PLACES = ["和平区", "河西区", "南开区", "河东区", "红桥区", "河北区", "东丽区", "西青区", "津南区", "北辰区"]
# Where a matter is handled: its domain's own offices, or the generic ones.
WINDOWS = {"社保": ["区医保分中心", "人社局服务大厅"], "就业": ["人社局服务大厅", "劳动监察大队"],
           "住房": ["公积金管理中心", "不动产登记中心", "住建委"], "户籍": ["派出所户籍窗口", "出入境管理大厅"],
           "城管": ["城管执法大队", "供热办"], "交通": ["车管所", "交通运输委"], "教育": ["区教育局"],
           "市场": ["市场监管所", "税务服务厅"], "民政": ["区民政局"], "卫健": ["区卫健委"], "其他": ["区司法局"]}
GENERIC_WINDOWS = ["政务服务中心", "街道便民服务站", "社区服务中心"]
PAPERS = ["身份证原件", "户口本", "近期免冠照片", "银行卡", "申请表", "委托书", "相关证明材料"]
SENTENCES = [
    "市民{act}{obj}，需携带{paper}和{paper2}到{place}{window}办理。",
    "{obj}{act}可通过政务服务网或“津心办”小程序在线申请，审核通过后{n}个工作日内办结。",
    "{place}居民咨询{obj}{act}事宜，坐席可按本条直接答复，无需转办。",
    "如对{obj}{act}结果有异议，可在{n}日内向{window}提出复核，或拨打12345反映。",
    "{obj}相关问题由{place}{window}负责，工作时间为工作日9:00-17:00。",
    "根据{year}年政策，{obj}{act}不收取任何费用，材料齐全的当场办结。",
    "群众反映{obj}问题的，按投诉登记并转{place}相关部门，{n}个工作日内回复。",
    "异地人员办理{obj}，应先在原参保地{act}，再到本市{window}申请。",
]
# What agents type, by length: 2 characters is no trigram at all (on PostgreSQL a scan).
KINDS = {
    "2 chars": ["医保", "社保", "供暖", "停水", "停电", "燃气", "路灯", "井盖", "噪音", "油烟", "户籍", "低保", "护照",
                "物业", "学位", "个税", "公证", "地铁", "积水", "落户", "失业", "工伤", "契税", "殡葬", "学籍", "献血"],
    "3 chars": ["社保卡", "医保卡", "公积金", "居住证", "身份证", "驾驶证", "残疾证", "老年卡", "公租房", "房产证",
                "养老金", "失业金", "出租车", "网约车", "行驶证", "预付卡", "助学金", "物业费", "职业病"],
    "4+ chars": ["不动产登记", "垃圾分类", "异地就医", "养老保险", "劳动仲裁", "港澳通行证", "政务服务网", "积分落户",
                 "拖欠工资", "占道经营", "住房租赁", "新生儿参保", "营业执照", "幼儿园入园", "违章停车", "噪音扰民"],
}


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile of sorted values (as bench.rig's, without the Asterisk rig)."""
    if not values:
        return float("nan")
    return values[max(1, min(len(values), round(p / 100 * len(values) + 0.5))) - 1]


def article(rng: random.Random, topics: list[tuple[str, str]], weights: list[float]) -> dict[str, Any]:
    """One article about one topic (a few are far more common than most), a title like
    社保卡补办, 4-10 sentences of body that now and then touch a neighbouring topic, 3 tags."""
    domain, topic = rng.choices(topics, weights)[0]
    act = rng.choice(ACTIONS)

    def sentence() -> str:
        r = rng.random()
        obj = topic if r < 0.7 else rng.choice(TOPICS[domain]) if r < 0.9 else rng.choice(topics)[1]
        return rng.choice(SENTENCES).format(
            act=rng.choice(ACTIONS), obj=obj, paper=rng.choice(PAPERS), paper2=rng.choice(PAPERS),
            place=rng.choice(PLACES), window=rng.choice(WINDOWS[domain] + GENERIC_WINDOWS), n=rng.randint(3, 20),
            year=rng.randint(2022, 2026))

    r = rng.random()
    valid_from = TODAY - timedelta(days=rng.randint(30, 900))
    valid_to = None
    if 0.85 <= r < 0.97:
        valid_to = TODAY - timedelta(days=rng.randint(1, 29))  # withdrawn
    elif r >= 0.97:
        valid_from = TODAY + timedelta(days=rng.randint(1, 60))  # published ahead of a policy change
    return {"title": f"{topic}{act}{rng.choice(['', '指南', '须知', '常见问题', '流程'])}",
            "body": "".join(sentence() for _ in range(rng.randint(4, 10))),
            "category": rng.choice(kb.CATEGORIES[:5]), "tags": list(dict.fromkeys([topic, act, domain])),
            "valid_from": valid_from, "valid_to": valid_to, "author": rng.choice(["张敏", "李静", "王磊", "赵丽"])}


def build(engine: Engine, n: int, rng: random.Random) -> None:
    topics = [(domain, t) for domain, ts in TOPICS.items() for t in ts]
    rng.shuffle(topics)
    weights = [1 / (i + 1) ** 0.8 for i in range(len(topics))]
    with Session(engine) as s:
        for i in range(n):
            row = kb.add_article(s, **article(rng, topics, weights), now=NOW)
            row.uses = rng.randint(0, 200)
            if i % 1000 == 999:
                s.commit()
        s.commit()
    with engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE" if engine.dialect.name == "sqlite" else "ANALYZE kb_articles")


def queries(n: int, rng: random.Random) -> list[tuple[str, str]]:
    """(kind, text) in a fixed random order; 4+ includes two-word queries like 公积金 提取."""
    out = []
    for _ in range(n):
        kind = rng.choice(list(KINDS))
        q = rng.choice(KINDS[kind])
        if kind == "4+ chars" and rng.random() < 0.3:
            q = f"{rng.choice(KINDS['3 chars'])} {rng.choice(ACTIONS)}"
        out.append((kind, q))
    return out


def baseline(s: Session, q: str, *, today: date) -> tuple[list[Any], int]:
    """The same question without the index: every word LIKE'd over the three columns."""
    a = ArticleRow
    words = [kb.like_pattern(t) for t in kb.terms_of(q)]  # the same escaping as search
    found = (select(a.id, a.title, a.body, a.tags, a.uses, func.count().over().label("total"))
             .where(*(or_(a.title.like(p, escape="\\"), a.body.like(p, escape="\\"), a.tags.like(p, escape="\\"))
                      for p in words),
                    and_(or_(a.valid_from.is_(None), a.valid_from <= today),
                         or_(a.valid_to.is_(None), a.valid_to >= today)))
             .order_by(a.uses.desc(), a.id).limit(20))
    rows = s.execute(found).all()
    return list(rows), int(rows[0].total) if rows else 0


def timed(engine: Engine, work: list[tuple[str, str]], threads: int, search: Callable[..., tuple[list[Any], int]],
          rate: float | None = None) -> tuple[dict[str, list[float]], dict[str, int], float]:
    """Latency (ms) per kind, the mean hit count per kind, and searches per second, `threads`
    workers sharing the list: back to back, or (with `rate`) each search due at its place in a
    steady stream, its latency counted from when it was due, so a wait for a free worker counts."""
    lat: dict[str, list[float]] = {k: [] for k in KINDS}
    found: dict[str, list[int]] = {k: [] for k in KINDS}
    lock = threading.Lock()
    it = iter(enumerate(work))
    start = time.perf_counter()

    def worker() -> None:
        while True:
            with lock:
                item = next(it, None)
            if item is None:
                return
            i, (kind, q) = item
            due = start + i / rate if rate else time.perf_counter()
            time.sleep(max(0.0, due - time.perf_counter()))
            with Session(engine) as s:
                _hits, total = search(s, q, today=TODAY)
            ms = (time.perf_counter() - due) * 1e3
            with lock:
                lat[kind].append(ms)
                found[kind].append(total)

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    wall = time.perf_counter() - start
    return ({k: sorted(v) for k, v in lat.items()}, {k: sum(v) // max(1, len(v)) for k, v in found.items()},
            len(work) / wall)


def plan(engine: Engine, q: str) -> str:
    """How the database answers kb.search's ranking statement for `q` (the one it really sends)."""
    sent: list[tuple[str, Any]] = []

    def keep(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
        if "count(*) OVER" in statement:
            sent.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", keep)
    try:
        with Session(engine) as s:
            kb.search(s, q, today=TODAY)
    finally:
        event.remove(engine, "before_cursor_execute", keep)
    statement, parameters = sent[-1]
    with engine.connect() as conn:
        explain = "EXPLAIN QUERY PLAN " if engine.dialect.name == "sqlite" else "EXPLAIN "
        rows = conn.exec_driver_sql(explain + statement, parameters).all()
    lines = [str(r[-1]) for r in rows]
    return "; ".join(line.strip() for line in lines if "kb_fts" in line or "Scan" in line or "SCAN" in line)


@contextlib.contextmanager
def scratch(url: str) -> Iterator[str]:
    """A new, empty store for the run, gone afterwards."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            path = Path(parsed.database)
            if path.exists():
                raise SystemExit(f"{path} exists: the benchmark builds its own store, give a new path")
            try:
                yield f"sqlite:///{path}"
            finally:
                for leftover in (path, *(path.with_name(path.name + s) for s in ("-journal", "-wal", "-shm"))):
                    leftover.unlink(missing_ok=True)
        else:
            with tempfile.TemporaryDirectory(prefix="kb_bench_") as tmp:
                yield f"sqlite:///{Path(tmp) / 'kb.db'}"
        return
    name = f"kb_bench_{uuid.uuid4().hex[:8]}"
    admin = parsed.set(drivername="postgresql", query={}).render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield parsed.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def report(label: str, lat: dict[str, list[float]], hits: dict[str, int], rate: float) -> None:
    print(f"  {label} ({rate:.0f} searches/s):", flush=True)
    for kind, values in lat.items():
        print(f"    {kind:8s} {len(values):5d} searches, {hits[kind]:5d} hits on average: "
              f"p50 {percentile(values, 50):7.2f} ms, p99 {percentile(values, 99):7.2f} ms, "
              f"max {values[-1] if values else float('nan'):7.2f} ms", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", required=True)
    ap.add_argument("--articles", type=int, default=10000)
    ap.add_argument("--queries", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--rate", type=float, help="searches per second in all (a steady stream); default: back to back")
    ap.add_argument("--seed", type=int, default=12345)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    with scratch(args.url) as url:
        engine = open_engine(url)
        try:
            migrate(engine)
            t0 = time.perf_counter()
            build(engine, args.articles, rng)
            pace = f"at {args.rate:g}/s, latency from when due" if args.rate else "back to back"
            print(f"kb_search on {engine.dialect.name}: {args.articles} articles built in "
                  f"{time.perf_counter() - t0:.1f} s, {args.queries} queries from {args.threads} threads ({pace})",
                  flush=True)
            for q in ("医保卡", "医保"):
                print(f"  plan for {q}: {plan(engine, q)}", flush=True)
            work = queries(args.queries, rng)
            timed(engine, work[:100], args.threads, kb.search)  # warm the caches and the pool
            load = os.getloadavg()[0]
            ours, ours_hits, ours_rate = timed(engine, work, args.threads, kb.search, args.rate)
            theirs, theirs_hits, theirs_rate = timed(engine, work, args.threads, baseline, args.rate)
            print(f"  machine: {os.cpu_count()} cores, 1-minute load average {load:.1f} before the timed runs, "
                  f"{os.getloadavg()[0]:.1f} after (the figures include whatever else ran)", flush=True)
        finally:
            engine.dispose()
    report("kb.search (trigram index)", ours, ours_hits, ours_rate)
    report("baseline (LIKE scan, no ranking)", theirs, theirs_hits, theirs_rate)
    for kind in KINDS:
        mine, base = percentile(ours[kind], 99), percentile(theirs[kind], 99)
        verdict = "meets" if mine < GOAL_MS else "MISSES"
        print(f"  {kind:8s} p99 {mine:6.2f} ms ({verdict} goal < {GOAL_MS:g} ms); "
              f"baseline/search p99 = {base / mine:.2f}x", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
