"""The ticket platform at a million tickets: TicketService under 60 concurrent clients.

Loads 1,000,000 tickets and 2,000,000 call records by COPY (Chinese text from a
vocabulary of 12345 matters in 咸阳's districts, a few matters far more common than the
rest; states across the whole lifecycle; deadlines of which some thousands have passed;
callers of whom some call very often), then builds migration 0005's text indexes over them
(timed: that is what upgrading a big store costs) and runs VACUUM ANALYZE. Then `--clients`
threads run for `--seconds`, each an agent at a desk: one operation, a pause (exponential,
mean `--think` s), the next, drawn from this mix, all through the real TicketService:
  register          create() a ticket, as an agent
  transition        act() on a ticket the client registered: dispatch, then accept and reply
                    as the department's user
  phone search      search(phone=...) as the supervisor (callers with up to ~150 tickets)
  text 2 chars      search(text=...) as the supervisor: 供暖, 噪音, ... (the bigram index)
  text 3+ chars     the same with 物业费, 锦绣花园, ... (the trigram index)
  text 2 words      the same with two words (供暖 秦都, 物业费 上涨)
  overdue list      due_list("overdue") as the supervisor: the first page and the total
  dept text search  search(text=...) as a department's user: scoped to the department
It prints p50/p99/max and the count per operation against the goal (p99 < 50 ms), the
plans of a few searches, and baselines from the same run, one client at a time on a sample:
the same text searches with the 0005 indexes and then with them dropped (a plain scan, as
before 0005), and the same phone searches with and without ix_tickets_caller_num.

Run: .venv/bin/python -m bench.tickets_load --url postgresql+psycopg://postgres@127.0.0.1:5432/DB --scratch
     [--tickets 1000000] [--calls 2000000] [--clients 60] [--seconds 30] [--think 1.0]
With --scratch, DB is only where it connects to create a new database for the run, which
is dropped at the end however the run ends (Ctrl-C, SIGTERM). Without it, DB must be an
empty database: it is migrated, loaded and measured, and the baselines drop its indexes.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import random
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
from sqlalchemy import Engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session
from sqlalchemy.pool import QueuePool

from config.loader import load as load_settings
from tickets import auth, service
from tickets.auth import Principal
from tickets.db import migrate, open_engine
from tickets.lifecycle import Action
from tickets.platform import policy
from tickets.service import Filters, TicketService

GOAL_MS = 50.0
LOCAL = ZoneInfo("Asia/Shanghai")
PROGRESS = 100_000
SPAN_DAYS = 365  # the tickets were registered over the last year

# ---- the vocabulary -------------------------------------------------------------------------
DISTRICTS = {  # 咸阳's districts (tickets.yaml locations) and some of their streets and towns
    "秦都区": ["人民路街道", "西兰路街道", "吴家堡街道", "渭阳西路街道", "陈杨寨街道", "古渡街道", "钓台街道"],
    "渭城区": ["中山街道", "新兴路街道", "渭阳街道", "体育场街道", "渭城街道", "窑店街道", "正阳街道"],
    "杨陵区": ["杨陵街道", "李台街道", "大寨街道", "五泉镇"],
    "兴平市": ["东城街道", "西城街道", "店张街道", "马嵬街道"], "彬州市": ["城关街道", "豳风街道", "新民镇"],
    "三原县": ["城关街道", "陂西镇", "独李镇"], "泾阳县": ["泾干街道", "永乐镇", "云阳镇"],
    "乾县": ["城关街道", "薛录镇", "梁村镇"], "礼泉县": ["城关街道", "烟霞镇", "西张堡镇"],
    "永寿县": ["监军街道", "店头镇"], "长武县": ["昭仁街道", "相公镇"], "旬邑县": ["城关街道", "太村镇"],
    "淳化县": ["城关街道", "官庄镇"], "武功县": ["普集街道", "武功镇", "长宁镇"],
}
ROADS = ["人民路", "渭阳西路", "世纪大道", "文林路", "玉泉路", "彩虹路", "乐育路", "西兰路", "咸通路", "统一路",
         "朝阳路", "沣河路", "陇海路", "中华路", "北平街", "文汇路", "秦皇路", "毕塬路", "安谷路", "龙渡路"]
ESTATES = ["阳光小区", "锦绣花园", "华府小区", "世纪城", "渭滨苑", "翠园小区", "丽彩广场", "恒大名都", "碧桂园",
           "秦宫小区", "统一小区", "古渡小区", "西兰苑", "玉泉小区", "金科城", "海泉湾", "正荣府", "凤凰台",
           "御景湾", "兰亭小区", "电建小区", "纺织厂家属院", "彩虹新村", "茂坤小区", "天王小区"]
# Matters: (what is wrong, the category it is, the department that handles it).
MATTERS = [
    ("小区供暖不热", "投诉", "heating"), ("暖气片不热", "投诉", "heating"), ("供暖费收费标准", "咨询", "heating"),
    ("楼下商户噪音扰民", "投诉", "urban"), ("工地夜间施工噪音", "投诉", "eco"), ("餐饮店油烟扰民", "投诉", "eco"),
    ("占道经营", "投诉", "urban"), ("违章建筑", "举报", "urban"), ("垃圾清运不及时", "投诉", "urban"),
    ("路灯不亮", "求助", "urban"), ("井盖缺失", "求助", "urban"), ("道路积水严重", "求助", "urban"),
    ("共享单车乱停放", "建议", "urban"), ("树木遮挡视线需修剪", "建议", "urban"), ("渣土车遗撒", "投诉", "urban"),
    ("突然停水", "求助", "water"), ("自来水水压低", "投诉", "water"), ("自来水发黄", "投诉", "water"),
    ("燃气停供", "求助", "gas"), ("燃气表故障", "求助", "gas"), ("频繁停电", "投诉", "power"),
    ("电梯经常故障", "投诉", "housing"), ("物业服务差", "投诉", "housing"), ("物业费上涨", "投诉", "housing"),
    ("加装电梯", "咨询", "housing"), ("维修基金使用", "咨询", "housing"), ("商品房延期交付", "投诉", "housing"),
    ("老旧小区改造", "建议", "housing"), ("房产证迟迟办不下来", "投诉", "natres"), ("不动产登记", "咨询", "natres"),
    ("公积金提取", "咨询", "fund"), ("公租房申请", "咨询", "housing"), ("拖欠工资", "投诉", "hrss"),
    ("劳动合同纠纷", "求助", "hrss"), ("社保缴纳", "咨询", "hrss"), ("失业金申领", "咨询", "hrss"),
    ("工伤认定", "咨询", "hrss"), ("养老金发放", "咨询", "hrss"), ("医保报销", "咨询", "medins"),
    ("异地就医备案", "咨询", "medins"), ("医保卡补办", "咨询", "medins"), ("门诊慢特病认定", "咨询", "medins"),
    ("公交线路调整", "建议", "traffic"), ("出租车拒载", "投诉", "traffic"), ("网约车乱收费", "投诉", "traffic"),
    ("红绿灯故障", "求助", "police"), ("违章停车堵路", "投诉", "police"), ("电动车上牌", "咨询", "police"),
    ("户口迁移", "咨询", "police"), ("身份证办理", "咨询", "police"), ("居住证办理", "咨询", "police"),
    ("幼儿园入园", "咨询", "edu"), ("小学入学学位", "咨询", "edu"), ("校外培训退费", "投诉", "edu"),
    ("课后服务收费", "投诉", "edu"), ("预付卡退费难", "投诉", "market"), ("食品安全问题", "举报", "market"),
    ("价格欺诈", "举报", "market"), ("营业执照办理", "咨询", "market"), ("低保申请", "求助", "civil"),
    ("残疾证办理", "咨询", "disabled"), ("高龄津贴", "咨询", "civil"), ("养老服务", "咨询", "civil"),
    ("新生儿落户", "咨询", "police"), ("疫苗接种", "咨询", "health"), ("医院挂号难", "投诉", "health"),
    ("污水直排", "举报", "eco"), ("焚烧秸秆", "举报", "eco"), ("工地扬尘", "投诉", "eco"),
    ("殡葬服务收费", "咨询", "civil"), ("无偿献血", "咨询", "health"), ("法律援助", "求助", "justice"),
    ("窗口工作人员服务热情", "表扬", "gov"),
]
MATTER_WEIGHTS = [1 / (i + 1) ** 0.9 for i in range(len(MATTERS))]  # the first are the most common
RARE = [("快递柜超时收费", "投诉", "market"), ("拆迁补偿", "咨询", "natres"), ("古树保护", "建议", "urban"),
        ("文物保护", "建议", "gov")]  # one ticket in a thousand is about one of these
WHO = ["市民", "来电人", "群众", "业主", "租户", "商户", "居民", "老人家属"]
DETAILS = ["已持续{n}天", "多次向物业反映无果", "严重影响居民正常生活", "室温只有{n}度", "夜间{n}点后仍未停止",
           "家中有老人和小孩", "之前打过12345但问题没有解决", "已向社区反映过", "涉及{n}户居民", "材料已经准备齐全",
           "不清楚需要哪些材料", "窗口说系统不能办理", "网上申请一直审核不通过"]
DEMANDS = ["希望相关部门尽快核实处理", "要求退还费用", "咨询办理流程和所需材料", "请求帮助协调解决",
           "建议增设便民设施", "要求给出书面答复", "希望加强监管", "表示感谢"]
SURNAMES = "王李张刘陈杨赵黄周吴徐孙马朱胡郭何林罗高"
RATINGS = ["非常满意", "满意", "基本满意", "不满意"]
DEPARTMENTS = {  # code -> name; the share of tickets each handles comes from the matters
    "heating": "市热力公司", "urban": "市城市管理执法局", "eco": "市生态环境局", "water": "市水务集团",
    "gas": "市燃气公司", "power": "国网咸阳供电公司", "housing": "市住房和城乡建设局", "natres": "市自然资源局",
    "fund": "市住房公积金中心", "hrss": "市人力资源和社会保障局", "medins": "市医疗保障局", "traffic": "市交通运输局",
    "police": "市公安局", "edu": "市教育局", "market": "市市场监督管理局", "civil": "市民政局",
    "disabled": "市残疾人联合会", "health": "市卫生健康委员会", "justice": "市司法局", "gov": "市政务服务中心",
}
# What desks search for: 2-character words (no trigram: the 0005 bigram index), 3+ characters
# (the trigram index), a place, and two words at once; common and rare ones.
TERMS_2 = ["供暖", "噪音", "停水", "物业", "油烟", "路灯", "井盖", "积水", "电梯", "工资", "医保", "户口", "低保",
           "扬尘", "退费", "拒载", "学位", "停电", "燃气", "社保", "殡葬", "献血", "秸秆", "渣土", "拆迁", "快递"]
TERMS_3 = ["物业费", "公积金", "出租车", "幼儿园", "房产证", "居住证", "残疾证", "预付卡", "不动产", "养老金",
           "共享单车", "占道经营", "暖气片", "锦绣花园", "渭阳西路", "渣土车", "违章建筑", "高龄津贴", "网约车"]
TERMS_PAIR = [("供暖", "秦都"), ("噪音", "锦绣花园"), ("物业费", "上涨"), ("停水", "渭城"), ("电梯", "故障"),
              ("工资", "拖欠")]

# Where tickets are by age (days since registration): (state, weight).
STATES_BY_AGE: list[tuple[int, list[tuple[str, float]]]] = [
    (1, [("draft", 2), ("registered", 5), ("pending_dispatch", 5), ("dispatched", 40), ("designated", 2),
         ("returned", 3), ("in_progress", 30), ("direct_answered", 10), ("invalid", 2), ("duplicate", 1)]),
    (15, [("dispatched", 5), ("in_progress", 40), ("extension_requested", 3), ("replied", 10), ("callback", 10),
          ("followed_up", 5), ("closed", 15), ("direct_answered", 5), ("returned", 1), ("invalid", 3),
          ("duplicate", 3)]),
    (45, [("in_progress", 5), ("extension_requested", 1), ("replied", 2), ("callback", 5), ("followed_up", 5),
          ("closed", 40), ("archived", 35), ("invalid", 3), ("duplicate", 3), ("merged", 1)]),
    (10_000, [("archived", 90), ("closed", 2), ("in_progress", 0.2), ("invalid", 3), ("duplicate", 3),
              ("merged", 1)]),
]
HELD = {"dispatched", "designated", "in_progress", "extension_requested", "replied", "callback", "followed_up",
        "closed", "archived"}  # a department has (had) the ticket
ACCEPTED = HELD - {"dispatched", "designated"}
REPLIED = ACCEPTED - {"in_progress", "extension_requested"}
CLOSED = {"closed", "archived"}
TICKET_COLUMNS = (
    "id", "number", "state", "channel", "caller_name", "caller_num", "caller_restricted", "category", "urgency",
    "district", "street", "address", "content", "agent_id", "department_id", "returns", "extensions", "redos",
    "urged", "late", "due_at", "accept_due", "handle_due", "reply", "followup", "rating", "created",
    "registered_at", "dispatched_at", "accepted_at", "replied_at", "closed_at", "updated", "version")
CALL_COLUMNS = (
    "call_id", "queue", "caller_num", "caller_name", "caller_restricted", "arrived", "answered", "ended",
    "agent_id", "outcome", "wait_seconds", "talk_seconds", "recording", "offered_queue", "path", "priority",
    "service_level", "short_abandon", "served_by", "source")


# ---- the data -------------------------------------------------------------------------------


class Callers:
    """Phone numbers: 200 callers who call all the time (about 100 tickets each), 20,000
    regulars (about 10), and everyone else once or twice."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.heavy = [self._number() for _ in range(200)]
        self.regular = [self._number() for _ in range(20_000)]

    def _number(self) -> str:
        return f"1{self.rng.choice('3456789')}{self.rng.randrange(10**9):09d}"

    def pick(self) -> str:
        r = self.rng.random()
        return self.rng.choice(self.heavy) if r < 0.02 else self.rng.choice(self.regular) if r < 0.22 \
            else self._number()


def a_matter(rng: random.Random) -> tuple[str, str, str]:
    return rng.choice(RARE) if rng.random() < 0.001 else rng.choices(MATTERS, MATTER_WEIGHTS)[0]


def place(rng: random.Random, district: str) -> tuple[str, str]:
    """(street, address) in the district."""
    street = rng.choice(DISTRICTS[district])
    if rng.random() < 0.8:
        return street, (f"{district}{rng.choice(ROADS)}{rng.randint(1, 300)}号{rng.choice(ESTATES)}"
                        f"{rng.randint(1, 30)}号楼{rng.randint(1, 6)}单元")
    return street, f"{district}{rng.choice(ROADS)}与{rng.choice(ROADS)}交叉口"


def content(rng: random.Random, matter: str, address: str) -> str:
    estate = next((e for e in ESTATES if e in address), "")
    where = estate or rng.choice(ROADS)
    details = "，".join(d.format(n=rng.randint(2, 30)) for d in rng.sample(DETAILS, rng.randint(1, 3)))
    return f"{rng.choice(WHO)}来电反映：{where}{matter}，{details}，{rng.choice(DEMANDS)}。"


def ticket_rows(n: int, rng: random.Random, callers: Callers, departments: dict[str, int],
                now: datetime) -> Iterator[tuple[Any, ...]]:
    """n tickets in registration order over the last SPAN_DAYS, numbered by local day."""
    start = now - timedelta(days=SPAN_DAYS)
    step = timedelta(days=SPAN_DAYS) / n
    seq: dict[str, int] = {}
    states = [(limit, [s for s, _ in table], [w for _, w in table]) for limit, table in STATES_BY_AGE]
    for i in range(n):
        created = start + step * i
        day = created.astimezone(LOCAL).strftime("%Y%m%d")
        seq[day] = seq.get(day, 0) + 1
        age = (now - created).total_seconds() / 86400
        _, names, weights = next(t for t in states if age < t[0])
        state = rng.choices(names, weights)[0]
        matter, category, dept = a_matter(rng)
        district = rng.choice(list(DISTRICTS))
        street, address = place(rng, district)
        urgency = "normal" if rng.random() < 0.9 else rng.choice(["urgent", "critical"])
        held = state in HELD
        dispatched = created + timedelta(minutes=rng.randint(5, 120)) if held else None
        accepted = dispatched + timedelta(hours=rng.uniform(0.5, 20)) if dispatched and state in ACCEPTED else None
        replied = accepted + timedelta(days=rng.uniform(1, 12)) if accepted and state in REPLIED else None
        closed = replied + timedelta(days=rng.uniform(1, 5)) if replied and state in CLOSED else None
        accept_due = dispatched + timedelta(days=1) if dispatched else None
        handle_due = accepted + timedelta(days=rng.choice([3, 5, 13, 18])) if accepted else None
        due = accept_due if state in ("dispatched", "designated") else \
            handle_due if state in ("in_progress", "extension_requested") else None
        late = bool((replied and handle_due and replied > handle_due) or (due and due < now))
        last = max(t for t in (created, dispatched, accepted, replied, closed) if t is not None)
        yield (
            i + 1, f"{day}{seq[day]:05d}", state, "phone" if rng.random() < 0.85 else "web",
            f"{rng.choice(SURNAMES)}{rng.choice('先生女士')}", callers.pick(), rng.random() < 0.01, category,
            urgency, district, street, address, content(rng, matter, address), str(1001 + rng.randrange(60)),
            (departments[dept] if rng.random() < 0.8 else rng.choice(list(departments.values()))) if held else None,
            0, 1 if state == "extension_requested" else 0, 0, 1 if due and due < now and rng.random() < 0.3 else 0,
            late, due, accept_due, handle_due, "已核实处理。" if replied else "",
            "已回访，问题解决。" if closed else "", rng.choice(RATINGS) if closed else "", created, created, dispatched,
            accepted, replied, closed, last, 2 + sum(t is not None for t in (dispatched, accepted, replied, closed)),
        )


def call_rows(n: int, rng: random.Random, callers: Callers, now: datetime) -> Iterator[tuple[Any, ...]]:
    start = now - timedelta(days=SPAN_DAYS)
    step = timedelta(days=SPAN_DAYS) / n
    base = int(start.timestamp())
    for i in range(n):
        arrived = start + step * i
        wait = rng.expovariate(1 / 12)
        answered = arrived + timedelta(seconds=wait) if rng.random() < 0.93 else None
        talk = rng.expovariate(1 / 180) if answered else 0.0
        ended = (answered or arrived + timedelta(seconds=wait)) + timedelta(seconds=talk)
        call_id = f"{base + i * SPAN_DAYS * 86400 // n}.{i}"
        yield (call_id, "main", callers.pick(), "", rng.random() < 0.01, arrived, answered, ended,
               str(1001 + rng.randrange(60)) if answered else None, "answered" if answered else "abandoned", wait,
               talk, f"/var/spool/hotline/rec/{call_id}.wav" if answered else None, "main", '["main"]', 0, 15.0,
               5.0, "engine", "live")


def copy_rows(url: str, table: str, columns: tuple[str, ...], rows: Iterator[tuple[Any, ...]], total: int) -> None:
    """COPY rows into table, printing progress every PROGRESS rows."""
    cols = ", ".join(columns)
    t0 = last = time.perf_counter()
    done = 0
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        with cur.copy(f"COPY {table} ({cols}) FROM STDIN") as copy:
            for i, row in enumerate(rows, 1):
                copy.write_row(row)
                if i % PROGRESS == 0 or i == total:
                    now = time.perf_counter()
                    print(f"    {table}: {i:>9,} rows, {(i - done) / (now - last):>8,.0f} rows/s now, "
                          f"{i / (now - t0):>8,.0f} rows/s overall", flush=True)
                    last, done = now, i
        conn.commit()


def load_data(engine: Engine, psycopg_url: str, args: argparse.Namespace, rng: random.Random,
              now: datetime) -> list[str]:
    """Departments, tickets, call records and the daily counters; returns callers with many tickets."""
    with Session(engine) as s, s.begin():
        for code, name in DEPARTMENTS.items():
            auth.add_department(s, code, name, f"0291{rng.randrange(10**7):07d}", now - timedelta(days=400))
    with Session(engine) as s:
        departments = {code: s.scalar(text("SELECT id FROM departments WHERE code = :c"), {"c": code})
                       for code in DEPARTMENTS}
    callers = Callers(rng)
    copy_rows(psycopg_url, "tickets", TICKET_COLUMNS, ticket_rows(args.tickets, rng, callers, departments, now),
              args.tickets)
    copy_rows(psycopg_url, "call_records", CALL_COLUMNS, call_rows(args.calls, rng, callers, now), args.calls)
    with psycopg.connect(psycopg_url, autocommit=True) as conn:
        conn.execute("SELECT setval(pg_get_serial_sequence('tickets', 'id'), (SELECT max(id) FROM tickets))")
        # Registering goes on from each day's last number (the service's daily counter).
        conn.execute("INSERT INTO ticket_counters (day, last) SELECT left(number, 8), max(right(number, 5)::int) "
                     "FROM tickets GROUP BY 1")
    return callers.heavy + callers.regular[:200]


# ---- the clients ----------------------------------------------------------------------------

MIX = {"register": 15, "transition": 25, "phone search": 15, "text 2 chars": 10, "text 3+ chars": 8,
       "text 2 words": 4, "overdue list": 8, "dept text search": 15}


@dataclasses.dataclass
class Desk:
    """What the clients share: the service, who they act as, and the results."""

    svc: TicketService
    supervisor: Principal
    agents: list[Principal]
    departments: dict[str, Principal]  # code -> a user of it
    callers: list[str]  # numbers with many tickets
    latencies: dict[str, list[float]] = dataclasses.field(default_factory=lambda: {op: [] for op in MIX})
    errors: dict[str, list[str]] = dataclasses.field(default_factory=lambda: {op: [] for op in MIX})
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)


def principals(engine: Engine) -> tuple[Principal, list[Principal], dict[str, Principal]]:
    """The users the clients act as. TicketService takes a Principal; it does not read users."""
    with Session(engine) as s:
        ids: dict[str, int] = {code: id_ for code, id_ in s.execute(text("SELECT code, id FROM departments"))}
    boss = Principal(user_id=1, username="boss", role="supervisor", department_id=None, agent_id=None,
                     display_name="班长")
    agents = [Principal(user_id=100 + i, username=f"agent{1001 + i}", role="agent", department_id=None,
                        agent_id=str(1001 + i), display_name=f"话务员{i}") for i in range(60)]
    depts = {code: Principal(user_id=1000 + ids[code], username=f"dept_{code}", role="department",
                             department_id=ids[code], agent_id=None, display_name=DEPARTMENTS[code])
             for code in DEPARTMENTS}
    return boss, agents, depts


def words_of(kind: str, rng: random.Random) -> str:
    if kind == "text 2 chars":
        return rng.choice(TERMS_2)
    if kind == "text 3+ chars":
        return rng.choice(TERMS_3)
    if kind == "text 2 words":
        return " ".join(rng.choice(TERMS_PAIR))
    return words_of(rng.choice(["text 2 chars", "text 3+ chars", "text 2 words"]), rng)


def client(desk: Desk, n: int, deadline: float, think: float, seed: int) -> None:
    rng = random.Random(seed)
    agent = desk.agents[n % len(desk.agents)]
    mine: list[tuple[int, str, Action]] = []  # (ticket id, department code, its next step)
    svc, boss = desk.svc, desk.supervisor

    def register() -> None:
        matter, category, dept = a_matter(rng)
        district = rng.choice(list(DISTRICTS))
        street, address = place(rng, district)
        t = svc.create(agent, {"category": category, "district": district, "street": street, "address": address,
                               "content": content(rng, matter, address), "caller_num": rng.choice(desk.callers),
                               "caller_name": "王女士"}, datetime.now(UTC))
        mine.append((t["id"], dept, Action.DISPATCH))

    def transition() -> None:
        ticket, dept, action = mine.pop(0)
        who, body = (agent, {"department": dept}) if action is Action.DISPATCH else \
            (desk.departments[dept], {} if action is Action.ACCEPT else {"reply": "已现场核实并处理完毕。"})
        svc.act(who, ticket, action, body, datetime.now(UTC))
        follows = {Action.DISPATCH: Action.ACCEPT, Action.ACCEPT: Action.REPLY}
        if action in follows:
            mine.append((ticket, dept, follows[action]))

    ops: dict[str, Callable[[], Any]] = {
        "register": register,
        "transition": transition,
        "phone search": lambda: svc.search(boss, Filters(phone=rng.choice(desk.callers)), datetime.now(UTC)),
        "overdue list": lambda: svc.due_list(boss, datetime.now(UTC), "overdue"),
        "dept text search": lambda: svc.search(rng.choice(list(desk.departments.values())),
                                               Filters(text=words_of("any", rng)), datetime.now(UTC)),
    }

    def text_search(kind: str) -> Callable[[], Any]:
        return lambda: svc.search(boss, Filters(text=words_of(kind, rng)), datetime.now(UTC))

    for kind in ("text 2 chars", "text 3+ chars", "text 2 words"):
        ops[kind] = text_search(kind)
    names, weights = list(MIX), list(MIX.values())
    time.sleep(rng.uniform(0, think))  # the clients do not all start at once
    while time.monotonic() < deadline:
        op = rng.choices(names, weights)[0]
        op = "register" if op == "transition" and not mine else op
        t0 = time.perf_counter()
        error = ""
        try:
            ops[op]()
        except Exception as e:  # counted and shown, and the client goes on
            error = f"{type(e).__name__}: {e}"[:200]
        ms = (time.perf_counter() - t0) * 1e3
        with desk.lock:
            desk.latencies[op].append(ms)
            if error:
                desk.errors[op].append(error)
        time.sleep(min(rng.expovariate(1 / think) if think > 0 else 0, max(0, deadline - time.monotonic())))


def run_clients(desk: Desk, clients: int, seconds: float, think: float) -> float:
    deadline = time.monotonic() + seconds
    threads = [threading.Thread(target=client, args=(desk, n, deadline, think, 1000 + n), daemon=True)
               for n in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - t0


# ---- figures --------------------------------------------------------------------------------


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile of sorted values (as bench.rig's, without the Asterisk rig)."""
    if not values:
        return float("nan")
    return values[max(1, min(len(values), round(p / 100 * len(values) + 0.5))) - 1]


def summary(values: list[float]) -> str:
    v = sorted(values)
    return (f"{len(v):6d} ops  p50 {percentile(v, 50):7.2f} ms  p99 {percentile(v, 99):7.2f} ms  "
            f"max {v[-1] if v else float('nan'):8.2f} ms")


@contextlib.contextmanager
def captured(engine: Engine) -> Iterator[list[tuple[str, Any]]]:
    """The statements the engine runs inside the block (to EXPLAIN the service's own queries)."""
    seen: list[tuple[str, Any]] = []

    def grab(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
        seen.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", grab)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", grab)


def explain(engine: Engine, svc: TicketService, who: Principal, words: str) -> list[str]:
    """EXPLAIN ANALYZE of the statements a text search runs on tickets: time and plan nodes."""
    with captured(engine) as seen:
        svc.search(who, Filters(text=words), datetime.now(UTC))
    out = []
    with engine.connect() as conn:
        raw = conn.connection.dbapi_connection
        assert raw is not None
        cur = raw.cursor()
        for statement, params in seen:
            if "FROM tickets" not in statement:
                continue
            cur.execute("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY ON) " + statement, params)
            lines = [str(r[0]) for r in cur.fetchall()]
            nodes = [ln.strip().removeprefix("->").strip().split("  ")[0] for ln in lines
                     if "Scan" in ln and "Recheck" not in ln]
            took = next((ln for ln in lines if ln.startswith("Execution Time")), "").split(": ")[-1]
            kind = "walk" if "ORDER BY" in statement else "by id" if "IN (__[POSTCOMPILE" in statement or \
                "tickets.id IN" in statement else "collect"
            out.append(f"{kind} {took} ({'; '.join(dict.fromkeys(nodes))})")
    return out


def timed(call: Callable[[str], Any], inputs: list[str]) -> list[float]:
    out = []
    for value in inputs:
        t0 = time.perf_counter()
        call(value)
        out.append((time.perf_counter() - t0) * 1e3)
    return sorted(out)


def baselines(engine: Engine, desk: Desk, rng: random.Random, n: int) -> None:
    """One client at a time on a sample: text search with the 0005 indexes and with them
    dropped, phone search with and without ix_tickets_caller_num. Run last: it drops them."""
    boss, svc = desk.supervisor, desk.svc
    words = [words_of("any", rng) for _ in range(n)]
    phones = [rng.choice(desk.callers) for _ in range(n)]

    def search(w: str) -> Any:
        return svc.search(boss, Filters(text=w), datetime.now(UTC))

    def lookup(p: str) -> Any:
        return svc.search(boss, Filters(phone=p), datetime.now(UTC))

    figures = {"text": [timed(search, words)], "phone": [timed(lookup, phones)]}
    with engine.begin() as conn:
        for name in (*TEXT_INDEXES, "ix_tickets_caller_num"):
            conn.exec_driver_sql(f"DROP INDEX {name}")
    figures["text"].append(timed(search, words))
    figures["phone"].append(timed(lookup, phones))
    for what, dropped in (("text", "ix_tickets_text_trgm and ix_tickets_text_bigrams (0005)"),
                          ("phone", "ix_tickets_caller_num")):
        ours, base = figures[what]
        print(f"baseline, {what} search: the same {n} searches one at a time, with and without {dropped}:",
              flush=True)
        print(f"  with the index       {summary(ours)}", flush=True)
        print(f"  dropped (a scan)     {summary(base)}", flush=True)
        print(f"  scan/index: p50 {percentile(base, 50) / percentile(ours, 50):.0f}x, "
              f"p99 {percentile(base, 99) / percentile(ours, 99):.0f}x", flush=True)


TEXT_INDEXES = ("ix_tickets_text_trgm", "ix_tickets_text_bigrams")


# ---- the run --------------------------------------------------------------------------------


@contextlib.contextmanager
def scratch(url: str, wanted: bool) -> Iterator[str]:
    """A new database for the run when `wanted`, dropped afterwards however the run ends."""
    if not wanted:
        yield url
        return
    parsed = make_url(url)
    name = f"tickets_load_{uuid.uuid4().hex[:8]}"
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


def pooled(url: str, size: int, overflow: int) -> Engine:
    """The product's engine (its timeouts and keepalives) with a pool for `size` clients:
    SQLAlchemy's default of 5 + 10 connections would make the clients queue for one."""
    engine = open_engine(url)
    engine.pool = QueuePool(engine.pool._creator, pool_size=size, max_overflow=overflow, pre_ping=True,
                            dialect=engine.dialect)
    return engine


def prepare(engine: Engine, psycopg_url: str, args: argparse.Namespace, rng: random.Random,
            now: datetime) -> list[str]:
    """Migrate, load, build the text indexes, VACUUM ANALYZE; returns the frequent callers."""
    t0 = time.perf_counter()
    migrate(engine, "0004")
    print(f"loading {args.tickets:,} tickets and {args.calls:,} call records by COPY", flush=True)
    callers = load_data(engine, psycopg_url, args, rng, now)
    took = time.perf_counter() - t0
    t0 = time.perf_counter()
    migrate(engine)
    print(f"  loaded in {took:.0f} s; migration 0005 (the text indexes) over them took "
          f"{time.perf_counter() - t0:.0f} s", flush=True)
    t0 = time.perf_counter()
    with psycopg.connect(psycopg_url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
        # The load's dirty pages are written now, not by a checkpoint during the measurement.
        conn.execute("CHECKPOINT")
        took = time.perf_counter() - t0
        sizes = conn.execute(
            "SELECT pg_size_pretty(pg_table_size('tickets')), pg_size_pretty(pg_indexes_size('tickets')), "
            "(SELECT string_agg(relname || ' ' || pg_size_pretty(pg_relation_size(oid)), ', ') FROM pg_class "
            "WHERE relname = ANY(%s)), (SELECT count(*) FROM tickets WHERE due_at < now()), "
            "current_setting('shared_buffers'), current_setting('max_parallel_workers_per_gather')",
            [list(TEXT_INDEXES)]).fetchone()
    assert sizes is not None
    print(f"  VACUUM ANALYZE and CHECKPOINT {took:.0f} s; tickets: table {sizes[0]}, its indexes {sizes[1]} "
          f"({sizes[2]}); {sizes[3]:,} overdue", flush=True)
    print(f"  server: shared_buffers {sizes[4]}, max_parallel_workers_per_gather {sizes[5]}", flush=True)
    return callers


def stopped_by_sigterm(_signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt  # unwinds like Ctrl-C, so the scratch database is dropped


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", required=True, help="postgresql+psycopg://USER@HOST:PORT/DB")
    ap.add_argument("--scratch", action="store_true", help="run in a new database, dropped at the end")
    ap.add_argument("--tickets", type=int, default=1_000_000)
    ap.add_argument("--calls", type=int, default=2_000_000)
    ap.add_argument("--clients", type=int, default=60)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--think", type=float, default=1.0, help="mean seconds a client waits between operations")
    ap.add_argument("--baseline", type=int, default=30, help="searches in each baseline sample")
    ap.add_argument("--seed", type=int, default=12345)
    args = ap.parse_args()
    if make_url(args.url).get_backend_name() != "postgresql":
        raise SystemExit("--url must be a PostgreSQL URL (postgresql+psycopg://...)")
    signal.signal(signal.SIGTERM, stopped_by_sigterm)
    rng = random.Random(args.seed)
    misses = 0
    with scratch(args.url, args.scratch) as url:
        psycopg_url = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        engine = pooled(url, args.clients, 10)
        try:
            callers = prepare(engine, psycopg_url, args, rng, datetime.now(UTC))
            boss, agents, depts = principals(engine)
            desk = Desk(TicketService(engine, policy(load_settings(None))), boss, agents, depts, callers)
            for who, words in ((boss, "供暖"), (boss, "物业费"), (boss, "拆迁"), (boss, "物业费 上涨"),
                               (depts["housing"], "不动产"), (depts["water"], "停水")):
                for line in explain(engine, desk.svc, who, words):
                    print(f"  plan {words} as {who.username}: {line}", flush=True)
            run_clients(desk, min(args.clients, 8), 3.0, 0.05)  # warm the caches and the pool
            desk.latencies, desk.errors = {op: [] for op in MIX}, {op: [] for op in MIX}
            print(f"{args.clients} clients for {args.seconds:g} s, each pausing {args.think:g} s on average between "
                  f"operations; SQLAlchemy pool_size {args.clients}, max_overflow 10; "
                  f"search totals capped at {service.TEXT_COUNT_CAP}", flush=True)
            wall = run_clients(desk, args.clients, args.seconds, args.think)
            done = sum(len(v) for v in desk.latencies.values())
            print(f"  {done} operations in {wall:.1f} s ({done / wall:.0f}/s)", flush=True)
            for op, values in desk.latencies.items():
                p99 = percentile(sorted(values), 99)
                verdict = "PASS" if p99 < GOAL_MS else "MISS"
                misses += verdict == "MISS"
                errors = desk.errors[op]
                print(f"  {op:16s} {summary(values)}  errors {len(errors):3d}  goal p99 < {GOAL_MS:g} ms: {verdict}"
                      + (f"  (first error: {errors[0]})" if errors else ""), flush=True)
            baselines(engine, desk, rng, args.baseline)
        finally:
            engine.dispose()
    return 1 if misses else 0


if __name__ == "__main__":
    raise SystemExit(main())
