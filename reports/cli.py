"""`hotline report`: period reports from the store, their files, and their frozen versions.

    hotline report month 2026-11 [--queue Q] [--department CODE] [--category C] [--district D]
                                 [--short-abandon S] [--json] [--csv DIR] [--xlsx FILE]
                                 [--html FILE] [--pdf FILE] [--no-topics]
    hotline report quarter 2026Q4 | year 2026 | range 2026-11-03..2026-11-17   (same options)
    hotline report freeze 2026-11 --by NAME --reason TEXT
    hotline report versions 2026-11
    hotline report assess 2025 [--scheme FILE] [--manual KEY=VALUE:WHO] [--json] [--live] [--store URL]

A frozen period is shown as frozen (its latest version, the others listed) unless `--live`;
a filtered report (a special analysis) or one with `--short-abandon` is always computed live.
Progress goes to stderr, the report to stdout.
"""
# The lazy imports are the point (as in cti/cli.py; pyproject lets */cli.py import lazily): the parser
# is built for every `hotline` call.

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from reports.periods import Period
    from reports.report import ReportOptions, Snapshot
    from reports.versions import Version

EXIT_FAILED = 1
EXIT_REFUSED = 2

PERIOD_FORMS = {"month": ("YYYY-MM", "2026-11"), "quarter": ("YYYYQn", "2026Q4"), "year": ("YYYY", "2026"),
                "range": ("FIRST..LAST", "2026-11-03..2026-11-17")}


class Refused(Exception):
    """A report that cannot be made as asked; the text says why and what to do."""


# ---- plumbing ----------------------------------------------------------------------------------


@contextmanager
def _engine(args: argparse.Namespace) -> Iterator[Engine]:
    """`--store URL`, or the store of the configuration (store.url of engine.yaml); migrated first."""
    from sqlalchemy import make_url
    from sqlalchemy.exc import ArgumentError, OperationalError

    from tickets.db import migrate, open_engine

    url = args.store
    if url is None:
        from cti.cli import _settings

        url = _settings(args).engine.store.url
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise Refused("--store 不是有效的数据库地址 (not a database URL): e.g. "
                      "postgresql+psycopg://user@host/db or sqlite:////var/lib/hotline/hotline.db") from None
    path = parsed.database
    if parsed.get_backend_name() == "sqlite" and path and path != ":memory:" and not Path(path).exists():
        # Opening would create an empty store, and a typo would report a month of zeros.
        raise Refused(f"数据库文件 {path} 不存在 (no such store file): check --store or store.url in engine.yaml")
    engine = open_engine(url)
    try:
        try:
            migrate(engine)
        except OperationalError as exc:
            where = make_url(url).render_as_string(hide_password=True)
            why = " ".join(str(exc.orig).split())
            raise Refused(f"cannot open the store {where} ({why}); is the database running? check --store or "
                          "store.url in engine.yaml") from None
        yield engine
    finally:
        engine.dispose()


def _progress(command: str) -> Callable[[str], None]:
    started = time.monotonic()

    def say(what: str) -> None:
        print(f"{command}: {time.monotonic() - started:6.1f} s  {what}", file=sys.stderr, flush=True)

    return say


def _options(args: argparse.Namespace) -> ReportOptions:
    from reports.report import ReportOptions

    short = args.short_abandon
    if short is not None and not (math.isfinite(short) and 0 <= short <= 600):
        raise Refused(f"--short-abandon 须为 0 到 600 秒 (not {short})")
    return ReportOptions(
        queues=tuple(getattr(args, "queue", None) or ()), departments=tuple(getattr(args, "department", None) or ()),
        categories=tuple(getattr(args, "category", None) or ()), districts=tuple(getattr(args, "district", None) or ()),
        short_abandon=short,
        satisfied_calls=(1, 2, 3) if args.basic_satisfied else (1, 2),
        satisfied_tickets=("非常满意", "满意", "基本满意") if args.basic_satisfied else ("非常满意", "满意"),
        compare=not getattr(args, "no_compare", False),
        topics=not getattr(args, "no_topics", False),
    )


def _period(text: str, kind: str | None = None) -> Period:
    from reports.periods import KINDS, parse

    try:
        return parse(text, None if kind is None else KINDS[kind])
    except ValueError as exc:
        raise Refused(str(exc)) from None


def _known_departments(db: Engine, codes: tuple[str, ...]) -> None:
    """A code nobody has would give an all-zero special analysis that looks like a real one."""
    if not codes:
        return
    from sqlalchemy import select

    from tickets.models import DepartmentRow

    with db.connect() as conn:
        known = set(conn.scalars(select(DepartmentRow.code)))
    unknown = [c for c in codes if c not in known]
    if unknown:
        listed = "、".join(sorted(known)) or "（尚无承办单位）"
        raise Refused(f"没有代码为 {'、'.join(unknown)} 的承办单位 (no such department); 已有：{listed} "
                      "(hotline dept list)")


def _frozen_line(shown: Version, every: list[Version]) -> str:
    from reports.report import local_time

    check = "校验通过" if shown.intact else "校验失败：内容与冻结时的 SHA-256 不符，请核查数据库"
    line = (f"已冻结：第 {shown.version} 版，{local_time(shown.frozen_at)} 由 {shown.frozen_by} 冻结"
            f"（{shown.reason}）；SHA-256 {shown.sha256[:16]}…，{check}")
    others = [v for v in every if v.version != shown.version]
    if others:
        line += "\n其他版本：" + "；".join(f"第 {v.version} 版 {local_time(v.frozen_at)} {v.frozen_by}（{v.reason}）"
                                       for v in others)
        line += "（hotline report versions 查看全部；--version N 显示指定版本；--live 重新计算）"
    return line


def _emit(args: argparse.Namespace, snap: Snapshot, frozen: str | None = None, version: Version | None = None) -> None:
    from reports.output import json_text, summary, write_csv, write_xlsx

    written: list[Path] = []
    if args.html or args.pdf:
        from reports import layout
        from reports.browser import BrowserError

        label = "" if version is None else f"已冻结第 {version.version} 版（{version.frozen_by}，{version.reason}）"
        if args.html:
            layout.write_html(snap, Path(args.html), version=label)
            written.append(Path(args.html))
        if args.pdf:
            try:
                layout.write_pdf(snap, Path(args.pdf), version=label)
            except BrowserError as exc:
                raise Refused(f"PDF 未生成：{exc}") from None
            written.append(Path(args.pdf))
    if args.csv:
        written += write_csv(snap, Path(args.csv))
    if args.xlsx:
        written.append(write_xlsx(snap, Path(args.xlsx)))
    if args.json:
        text = json_text(snap)
        if version is not None:  # which frozen version this is, beside the report as it was frozen
            document = json.loads(text)
            document["frozen"] = {"version": version.version, "frozen_at": version.frozen_at.isoformat(),
                                  "frozen_by": version.frozen_by, "reason": version.reason,
                                  "sha256": version.sha256, "intact": version.intact}
            text = json.dumps(document, ensure_ascii=False, indent=2) + "\n"
        sys.stdout.write(text)
    else:
        print(summary(snap, frozen))
    for path in written:
        print(f"已写入 {path}", file=sys.stderr if args.json else sys.stdout)


def _guard(command: str, work: Callable[[], int]) -> int:
    try:
        return work()
    except Refused as exc:
        print(f"{command}: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    except OSError as exc:
        where = f" {exc.filename}" if exc.filename else ""
        print(f"{command}: cannot write{where}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_FAILED


# ---- commands ----------------------------------------------------------------------------------


def cmd_show(args: argparse.Namespace) -> int:
    command = f"hotline report {args.action}"

    def work() -> int:
        from reports.report import build
        from reports.versions import versions

        period = _period(args.period, args.action)
        options = _options(args)
        live = args.live or options.special or options.short_abandon is not None or options.satisfied_calls != (1, 2)
        if args.version is not None and live:
            raise Refused("--version 显示冻结时的报表原样，不能与筛选条件、--short-abandon、--basic-satisfied "
                          "或 --live 同用 (a frozen version is shown as frozen: drop the filters or --version)")
        with _engine(args) as db:
            _known_departments(db, options.departments)
            every = [] if live and args.version is None else versions(db, period.key)
            if args.version is not None:
                chosen = [v for v in every if v.version == args.version]
                if not chosen:
                    have = "、".join(str(v.version) for v in every) or "无"
                    raise Refused(f"{period.label} 没有第 {args.version} 版 (frozen versions: {have})")
                _emit(args, chosen[0].snapshot(), _frozen_line(chosen[0], every), chosen[0])
                return 0
            if every:
                _emit(args, every[-1].snapshot(), _frozen_line(every[-1], every), every[-1])
                return 0
            report = build(db, period, options, datetime.now(UTC), progress=_progress(command))
        _emit(args, report.snapshot())
        return 0

    return _guard(command, work)


def cmd_freeze(args: argparse.Namespace) -> int:
    command = "hotline report freeze"

    def work() -> int:
        from reports.report import build, local_time
        from reports.versions import FreezeRefused, freeze, versions

        period = _period(args.period)
        if args.short_abandon is not None:
            raise Refused("冻结的是本期正式报表：速挂按各通话记录当时所在队列的阈值统计，不能用 --short-abandon 改写 "
                          "(the official report uses each record's own threshold; change it in queues.yaml for "
                          "later calls)")
        now = datetime.now(UTC)
        with _engine(args) as db:
            report = build(db, period, _options(args), now, progress=_progress(command))
            try:
                v = freeze(db, report, by=args.by, reason=args.reason, now=now)
            except FreezeRefused as exc:
                raise Refused(str(exc)) from None
            every = versions(db, period.key)
        what = "首次冻结" if v.version == 1 else f"更正（第 {v.version} 版，旧版本保留不变）"
        print(f"{period.label}：{what}，{local_time(v.frozen_at)} 由 {v.frozen_by} 冻结；SHA-256 {v.sha256}")
        if len(every) > 1:
            print("全部版本：" + "、".join(f"第 {x.version} 版" for x in every))
        return 0

    return _guard(command, work)


def cmd_versions(args: argparse.Namespace) -> int:
    command = "hotline report versions"

    def work() -> int:
        from reports.output import grid
        from reports.report import local_time
        from reports.versions import versions

        period = _period(args.period)
        with _engine(args) as db:
            every = versions(db, period.key)
        if not every:
            print(f"{period.label}（{period.key}）尚未冻结；冻结：hotline report freeze {period.text} --by NAME "
                  "--reason TEXT")
            return 0
        rows = [["版本", "冻结时间（北京时间）", "操作人", "SHA-256", "校验", "原因"]]
        rows += [[str(v.version), local_time(v.frozen_at), v.frozen_by, v.sha256[:16] + "…",
                  "通过" if v.intact else "失败", v.reason] for v in reversed(every)]
        print(f"{period.label}（{period.key}）的冻结版本，最新在前；报表显示第 {every[-1].version} 版：")
        for line in grid(rows, right_from=99):
            print(line)
        return 0

    return _guard(command, work)


# ---- the parser --------------------------------------------------------------------------------

CONFIG_HELP = ("config folder whose engine.yaml names the store (store.url); without it and without --store: "
               "the embedded default store")


def _store_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--store", metavar="URL", help="the database: postgresql+psycopg://... or sqlite:////path "
                   "(default: store.url of the configuration)")
    p.add_argument("--config", metavar="DIR", help=CONFIG_HELP)


def _figure_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--short-abandon", type=float, metavar="SECONDS",
                   help="count a hang-up within SECONDS of joining as 速挂 for every call (default: each record's "
                        "own threshold, as configured for its queue then)")
    p.add_argument("--basic-satisfied", action="store_true",
                   help="count 基本满意 as satisfied too (default: 非常满意 and 满意)")


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add `hotline report` to the `hotline` parser."""
    r = sub.add_parser(
        "report", help="period reports (月报/季报/年报) of calls and tickets; CSV, XLSX, JSON; frozen versions",
        description="The call and ticket figures of a period, in Beijing time, each with its numerator, "
        "denominator and a note naming every exclusion (metrics/kpi.py defines the call KPIs once; README "
        "'Counting'). A frozen period shows its latest frozen version unless --live; a filter (--queue, "
        "--department, --category, --district), --short-abandon or --basic-satisfied makes a special analysis, "
        "always computed from the store. Progress on stderr; exit 2 when the report cannot be made as asked.")
    rsub = r.add_subparsers(dest="action", required=True, metavar="ACTION")
    for kind, (metavar, example) in PERIOD_FORMS.items():
        p = rsub.add_parser(kind, help=f"the report of a {kind}, e.g. {example}")
        p.add_argument("period", metavar=metavar)
        _store_options(p)
        p.add_argument("--queue", action="append", metavar="QUEUE", help="calls of this offered queue only "
                       "(repeatable; a special analysis)")
        p.add_argument("--department", action="append", metavar="CODE", help="tickets of this department only")
        p.add_argument("--category", action="append", metavar="NAME", help="tickets of this category only (咨询, "
                       "投诉, ...)")
        p.add_argument("--district", action="append", metavar="NAME", help="tickets of this district only")
        _figure_options(p)
        p.add_argument("--json", action="store_true", help="print the report as JSON instead of the summary")
        p.add_argument("--csv", metavar="DIR", help="write the figures and every table as CSV files (UTF-8 with "
                       "BOM, mode 0640) into DIR")
        p.add_argument("--xlsx", metavar="FILE", help="write an XLSX workbook (指标 sheet + one sheet per table)")
        p.add_argument("--html", metavar="FILE", help="write the report as one self-contained HTML page with "
                       "charts (no script, no remote file; mode 0640)")
        p.add_argument("--pdf", metavar="FILE", help="write the report as PDF: the HTML page printed by headless "
                       "Chromium (Debian's chromium package, or HOTLINE_CHROMIUM)")
        p.add_argument("--no-topics", action="store_true", help="skip 热点诉求 (hot topics: segments every "
                       "ticket's text, the slow part of a year's report)")
        p.add_argument("--live", action="store_true", help="compute from the store even if the period is frozen")
        p.add_argument("--version", type=int, metavar="N", help="show frozen version N of the period")
        p.add_argument("--no-compare", action="store_true", help="skip the previous period (环比)")
        p.set_defaults(func=cmd_show)

    fz = rsub.add_parser("freeze", help="freeze the period's report as its next version (a restatement keeps the "
                         "old versions unchanged)")
    fz.add_argument("period", metavar="PERIOD", help="2026-11, 2026Q4, 2026 or 2026-11-03..2026-11-17")
    fz.add_argument("--by", required=True, metavar="NAME", help="who freezes it")
    fz.add_argument("--reason", required=True, metavar="TEXT", help="why (月度发布, or what a restatement corrects)")
    _store_options(fz)
    _figure_options(fz)
    fz.set_defaults(func=cmd_freeze)

    vs = rsub.add_parser("versions", help="list the frozen versions of a period")
    vs.add_argument("period", metavar="PERIOD", help="2026-11, 2026Q4, 2026 or 2026-11-03..2026-11-17")
    _store_options(vs)
    vs.set_defaults(func=cmd_versions)

    from reports.assess_cli import register_assess

    register_assess(rsub)
