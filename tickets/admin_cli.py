"""`hotline user ...` and `hotline dept ...`: the ticket platform's users and departments (承办单位).

Passwords never come from argv, where a shell's history and `ps` would show them: they are
asked twice on the terminal, or read as one line from stdin with --password-stdin.
The database and argon2 are imported only when a command runs, so that `hotline --help`
stays instant.
"""
# The lazy imports are the point (as in cti/cli.py): the parser is built for every `hotline` call.
# ruff: noqa: PLC0415

from __future__ import annotations

import argparse
import getpass
import json
import sys
import unicodedata
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy import Engine
    from sqlalchemy.orm import Session

# tickets.auth.ROLES, spelled out so that building the parser imports no database code
# (a test keeps the two equal).
ROLES = ("agent", "supervisor", "department", "admin")
EXIT_REFUSED = 2


class Refused(Exception):
    """A command that cannot be done as asked; the text says what to do instead."""


# ---- plumbing ----------------------------------------------------------------------------------


@contextmanager
def configured_engine(args: argparse.Namespace, refused: type[Exception] | None = None) -> Iterator[Engine]:
    """The store the configuration names, migrated first; a store that cannot be opened is
    `refused` (this module's Refused by default) with what to check."""
    from sqlalchemy import make_url
    from sqlalchemy.exc import OperationalError

    from cti.cli import _settings
    from tickets.db import migrate, open_engine

    url = _settings(args).engine.store.url
    engine = open_engine(url)
    try:
        try:
            migrate(engine)
        except OperationalError as exc:
            where = make_url(url).render_as_string(hide_password=True)
            why = " ".join(str(exc.orig).split())  # one line: the driver's text spans several
            raise (refused or Refused)(f"cannot open the store {where} ({why}); is the database running? "
                                       "check store.url in engine.yaml") from None
        yield engine
    finally:
        engine.dispose()


@contextmanager
def _store(args: argparse.Namespace) -> Iterator[Session]:
    """One transaction on the configured store, migrated first."""
    from sqlalchemy.orm import Session

    with configured_engine(args) as engine, Session(engine) as s, s.begin():
        yield s


def _run(args: argparse.Namespace, work: Callable[[Session], str | None]) -> int:
    """Do `work` in one transaction; a refusal rolls everything back and exits 2."""
    from sqlalchemy.exc import IntegrityError

    from tickets.auth import AdminError

    command = f"hotline {args.command} {args.action}"
    try:
        with _store(args) as s:
            line = work(s)
    except (AdminError, Refused) as exc:
        print(f"{command}: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    except IntegrityError:
        print(f"{command}: another change to the same user or department got there first; nothing was changed, "
              "run the command again", file=sys.stderr)
        return EXIT_REFUSED
    if line:
        print(line)
    return 0


def _password(args: argparse.Namespace) -> str:
    """The new password: one line of stdin with --password-stdin, else asked twice on the terminal."""
    from tickets.auth import check_password

    if args.password_stdin:
        password = sys.stdin.readline().removesuffix("\n").removesuffix("\r")
        if not password:
            raise Refused("--password-stdin read no password; send it as one line, e.g. from a file: "
                          "--password-stdin < secret.txt")
    else:
        if not sys.stdin.isatty():
            raise Refused("no terminal to ask the password on; pipe it as one line with --password-stdin")
        password = getpass.getpass(f"new password for {args.username}: ")
        check_password(args.username, password)  # refused before it is typed again
        if getpass.getpass("again: ") != password:
            raise Refused("the two passwords differ; nothing was changed, run the command again")
    check_password(args.username, password)
    return password


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)  # 汉字 take two columns


def _cell(value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"  # as `hotline dept set --active` spells it
    return "-" if value is None else str(value)


def _print_rows(args: argparse.Namespace, rows: list[dict[str, Any]], columns: dict[str, str]) -> None:
    """JSON lines with --json, else a table aligned for a terminal that shows 汉字 two columns wide."""
    if args.json:
        for row in rows:
            print(json.dumps(row, ensure_ascii=False))
        return
    cells = [list(columns.values())] + [[_cell(row[k]) for k in columns] for row in rows]
    widths = [max(_width(line[i]) for line in cells) for i in range(len(columns))]
    for line in cells:
        print("  ".join(c + " " * (w - _width(c)) for c, w in zip(line, widths, strict=True)).rstrip())


# ---- hotline user ------------------------------------------------------------------------------


def _with_password(args: argparse.Namespace, precheck: Callable[[Session], object],
                   work: Callable[[Session, str], str]) -> int:
    """Check what can be checked, then ask for the password, then do the work: nobody types a
    password twice for a command that was bound to be refused."""
    from tickets.auth import AdminError

    if (code := _run(args, lambda s: (precheck(s), None)[1])) != 0:
        return code
    try:
        password = _password(args)
    except (AdminError, Refused) as exc:
        print(f"hotline {args.command} {args.action}: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    except (EOFError, KeyboardInterrupt):
        print(f"\nhotline {args.command} {args.action}: cancelled; nothing was changed", file=sys.stderr)
        return EXIT_REFUSED
    return _run(args, lambda s: work(s, password))


def cmd_user_add(args: argparse.Namespace) -> int:
    from tickets.auth import add_user, find_user

    def precheck(s: Session) -> None:
        if find_user(s, args.username) is not None:
            raise Refused(f"user {args.username!r} exists already; to give it a new password: "
                          f"hotline user passwd {args.username}")

    def work(s: Session, password: str) -> str:
        row = add_user(s, args.username, password, args.role, datetime.now(UTC), department_code=args.dept,
                       agent_id=args.agent_id, display_name=args.name)
        where = f" of department {args.dept}" if args.dept else ""
        agent = f", 工号 {row.agent_id}" if row.agent_id else ""
        return f"added user {row.username} ({row.role}{where}{agent})"

    return _with_password(args, precheck, work)


def cmd_user_passwd(args: argparse.Namespace) -> int:
    from tickets.auth import get_user, set_password

    def work(s: Session, password: str) -> str:
        row = set_password(s, args.username, password, datetime.now(UTC))
        return f"password of {row.username} changed: its earlier sign-ins are ended, its failed ones forgotten"

    return _with_password(args, lambda s: get_user(s, args.username), work)


def cmd_user_disable(args: argparse.Namespace) -> int:
    from tickets.auth import disable_user

    def work(s: Session) -> str:
        row = disable_user(s, args.username)
        return f"disabled {row.username}: it can no longer sign in, and its tokens are revoked"

    return _run(args, work)


def cmd_user_enable(args: argparse.Namespace) -> int:
    from tickets.auth import enable_user

    def work(s: Session) -> str:
        row = enable_user(s, args.username)
        return f"enabled {row.username}: it may sign in again with its password"

    return _run(args, work)


def cmd_user_list(args: argparse.Namespace) -> int:
    from tickets.auth import list_departments, list_users

    def work(s: Session) -> None:
        codes = {d.id: d.code for d in list_departments(s)}
        rows = [{"username": u.username, "role": u.role,
                 "department": codes.get(u.department_id) if u.department_id is not None else None,
                 "agent_id": u.agent_id, "disabled": u.disabled, "display_name": u.display_name}
                for u in list_users(s)]
        _print_rows(args, rows, {"username": "USER", "role": "ROLE", "department": "DEPT", "agent_id": "AGENT",
                                 "disabled": "DISABLED", "display_name": "NAME"})

    return _run(args, work)


# ---- hotline dept ------------------------------------------------------------------------------


def cmd_dept_add(args: argparse.Namespace) -> int:
    from tickets.auth import add_department

    def work(s: Session) -> str:
        row = add_department(s, args.code, args.name, args.phone, datetime.now(UTC))
        return f"added department {row.code} ({row.name})"

    return _run(args, work)


def cmd_dept_set(args: argparse.Namespace) -> int:
    from tickets.auth import update_department

    if args.name is None and args.phone is None and args.active is None:
        print("hotline dept set: nothing to change; give --name, --phone or --active", file=sys.stderr)
        return EXIT_REFUSED

    def work(s: Session) -> str:
        active = None if args.active is None else args.active == "yes"
        row = update_department(s, args.code, name=args.name, phone=args.phone, active=active)
        state = "active" if row.active else "inactive: its users cannot sign in"
        return f"department {row.code}: {row.name}, phone {row.phone or '-'}, {state}"

    return _run(args, work)


def cmd_dept_list(args: argparse.Namespace) -> int:
    from tickets.auth import list_departments

    def work(s: Session) -> None:
        rows = [{"code": d.code, "name": d.name, "phone": d.phone, "active": d.active} for d in list_departments(s)]
        _print_rows(args, rows, {"code": "CODE", "name": "NAME", "phone": "PHONE", "active": "ACTIVE"})

    return _run(args, work)


# ---- the parser --------------------------------------------------------------------------------

STORE = "Works on the store of the configuration (store.url of engine.yaml), migrated first, in one transaction. "
EXITS = ("Exit 0 when done; 2 when refused, when the configuration has errors or when the store cannot be opened "
         "(one line on stderr says why and what to do; nothing is changed).")
PASSWORD = ("The password is asked twice on the terminal, or read as one line from stdin with --password-stdin; "
            "it is never taken from the command line. It needs at least 10 characters, not all digits, "
            "and must differ from the user name. ")


def add_commands(sub: argparse._SubParsersAction,  # type: ignore[type-arg]
                 with_config: Callable[[argparse.ArgumentParser], None]) -> None:
    """Register `hotline user ...` and `hotline dept ...` on the `hotline` parser."""
    u = sub.add_parser("user", help="ticket-platform users (坐席 agent, 班长 supervisor, 承办部门 department, "
                       "admin): add, passwd, disable, enable, list",
                       description="Manage who signs in to the ticket platform. " + STORE)
    usub = u.add_subparsers(dest="action", required=True, metavar="ACTION")

    def password_stdin(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--password-stdin", action="store_true",
                        help="read the password as one line from stdin (for scripts) instead of asking twice")

    # No abbreviations where a password is read: `--password SECRET` must be an error, not --password-stdin.
    add = usub.add_parser("add", allow_abbrev=False, help="add a user",
                          description="Add a user. A department user belongs to one existing, active department "
                          "(--dept); other roles belong to none. An agent may carry its 工号 (--agent-id, the id "
                          "of agents.yaml). " + PASSWORD + STORE + EXITS)
    add.add_argument("username", metavar="USERNAME", help="sign-in name: 1-64 lower-case letters, digits, _ . -")
    add.add_argument("--role", required=True, choices=ROLES, help="agent (坐席), supervisor (班长), "
                     "department (承办部门), admin (管理员)")
    add.add_argument("--dept", metavar="CODE", help="with --role department: the department's code (hotline dept list)")
    add.add_argument("--agent-id", metavar="N", help="with --role agent: its 工号, 2-12 digits as in agents.yaml")
    add.add_argument("--name", default="", metavar="显示名", help="the name people see, e.g. 张三")
    password_stdin(add)
    add.set_defaults(func=cmd_user_add)

    pw = usub.add_parser("passwd", allow_abbrev=False, help="set a user's password (ends its sign-ins)",
                         description="Set a new password. Every token the user holds is revoked, and its failed "
                         "sign-ins are forgotten, so a locked-out user may sign in at once. " + PASSWORD + STORE
                         + EXITS)
    pw.add_argument("username", metavar="USERNAME", help="the user's sign-in name (hotline user list)")
    password_stdin(pw)
    pw.set_defaults(func=cmd_user_passwd)

    dis = usub.add_parser("disable", help="stop a user signing in (revokes its tokens)",
                          description="Stop a user signing in; every token it holds is revoked at once. The user "
                          "and its history stay; `hotline user enable` lets it back. " + STORE + EXITS)
    dis.add_argument("username", metavar="USERNAME", help="the user's sign-in name (hotline user list)")
    dis.set_defaults(func=cmd_user_disable)

    en = usub.add_parser("enable", help="let a disabled user sign in again",
                         description="Let a disabled user sign in again with its password (its old tokens stay "
                         "revoked). " + STORE + EXITS)
    en.add_argument("username", metavar="USERNAME", help="the user's sign-in name (hotline user list)")
    en.set_defaults(func=cmd_user_enable)

    ls = usub.add_parser("list", help="list the users", description="List the users: name, role, department, "
                         "工号, whether disabled, display name; an aligned table, or JSON lines with --json. "
                         + STORE + EXITS)
    ls.add_argument("--json", action="store_true", help="one JSON object per line instead of a table")
    ls.set_defaults(func=cmd_user_list)

    d = sub.add_parser("dept", help="departments (承办单位) tickets are dispatched to: add, set, list",
                       description="Manage the departments (承办单位) tickets are dispatched to. " + STORE)
    dsub = d.add_subparsers(dest="action", required=True, metavar="ACTION")

    dadd = dsub.add_parser("add", help="add a department",
                           description="Add an active department. Code and name must both be unused. " + STORE + EXITS)
    dadd.add_argument("code", metavar="CODE", help="short id: 1-32 lower-case letters, digits, _ or -, e.g. housing")
    dadd.add_argument("name", metavar="NAME", help="its name, e.g. 市住建局 (at most 64 characters)")
    dadd.add_argument("--phone", default="", metavar="P",
                      help="the number a 三方通话 dials through the trunk: digits, optionally a leading +")

    dset = dsub.add_parser("set", help="change a department's name, phone or whether it is active",
                           description="Change what is given and leave the rest. An inactive department's users "
                           "cannot sign in or use their tokens until it is active again. " + STORE + EXITS)
    dset.add_argument("code", metavar="CODE", help="the department's code (hotline dept list)")
    dset.add_argument("--name", help="a new name (unused by any other department)")
    dset.add_argument("--phone", metavar="P", help="a new number (digits, optionally a leading +; '' for none)")
    dset.add_argument("--active", choices=["yes", "no"], help="no: its users are locked out; yes: let them back")

    dls = dsub.add_parser("list", help="list the departments",
                          description="List the departments: code, name, phone, active; an aligned table, or JSON "
                          "lines with --json. " + STORE + EXITS)
    dls.add_argument("--json", action="store_true", help="one JSON object per line instead of a table")

    for sp, func in ((dadd, cmd_dept_add), (dset, cmd_dept_set), (dls, cmd_dept_list)):
        sp.set_defaults(func=func)
    for sp in (add, pw, dis, en, ls, dadd, dset, dls):
        with_config(sp)
