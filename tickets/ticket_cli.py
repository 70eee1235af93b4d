"""`hotline ticket ...`: the ticket API's operations from a shell, for scripts.

The commands are clients of the HTTP API (the same checks, roles and history as a page): a
script signs in once with `hotline ticket login`, which writes the token to a 0600 file,
and passes it with --token-file (or HOTLINE_TICKET_TOKEN). Bodies are JSON read from stdin
(`--body -`) or a file, never from argv: a caller's number or name on a command line would
stay in the shell's history and in `ps`. Output is the API's JSON; a refusal prints the
API's message on stderr and exits 1 (the HTTP status is in the message).
"""
# The lazy imports are the point (as in cti/cli.py): the parser is built for every `hotline` call.
# ruff: noqa: PLC0415

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

ACTIONS = ("register", "edit", "attach", "answer_directly", "submit", "dispatch", "accept", "return", "designate",
           "request_extension", "approve_extension", "refuse_extension", "reply", "approve_reply", "reject_reply",
           "follow_up", "reopen", "close", "archive", "urge", "mark_invalid", "mark_duplicate")
ENV_TOKEN = "HOTLINE_TICKET_TOKEN"


class CliError(Exception):
    pass


def _url(args: argparse.Namespace) -> str:
    if args.url:
        return str(args.url).rstrip("/")
    from cti.cli import _client_host, _settings

    h = _settings(args).tickets.http
    if h.port == 0:
        raise CliError("tickets.yaml http.port is 0 (any free port): give the API's address with --url")
    return f"http://{_client_host(h.listen)}:{h.port}"


def _token(args: argparse.Namespace) -> str:
    if args.token_file:
        try:
            return Path(args.token_file).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise CliError(f"cannot read the token file {args.token_file}: {getattr(exc, 'strerror', exc)}; "
                           "sign in with `hotline ticket login USER --token-file FILE`") from None
    token = os.environ.get(ENV_TOKEN, "").strip()
    if not token:
        raise CliError(f"no token: sign in with `hotline ticket login USER --token-file FILE` and pass "
                       f"--token-file FILE (or set {ENV_TOKEN})")
    return token


def _body(args: argparse.Namespace) -> dict[str, Any]:
    source = getattr(args, "body", None)
    if source is None:
        return {}
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError(f"cannot read the body from {source}: {exc}; give a UTF-8 JSON file, or - for stdin") from None
    try:
        data = json.loads(text or "{}")
    except (ValueError, RecursionError) as exc:
        raise CliError(f"the body ({'stdin' if source == '-' else source}) is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise CliError("the body must be a JSON object, e.g. {\"department\": \"housing\"}")
    return data


def request(base: str, method: str, path: str, body: dict[str, Any] | None = None,
            token: str | None = None) -> tuple[int, Any]:
    import urllib.error
    import urllib.parse
    import urllib.request

    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = None if body is None else json.dumps(body, ensure_ascii=False).encode()
    try:
        req = urllib.request.Request(f"{base}/api/v1{urllib.parse.quote(path)}", data=data, method=method,
                                     headers=headers)
    except ValueError as exc:
        raise CliError(f"{base} is not a usable URL ({exc}); e.g. --url http://127.0.0.1:9110") from None
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.load(resp)
    except urllib.error.HTTPError as exc:
        try:
            return exc.code, json.load(exc)
        except ValueError:
            return exc.code, {"message": exc.reason}
    except (OSError, ValueError) as exc:  # ValueError: http.client refuses a malformed URL late
        raise CliError(f"cannot reach the ticket API at {base}: {exc}; is `hotline run` (or `hotline ticket "
                       "serve`) running, and is --url right?") from None


def _print(status: int, answer: Any) -> int:
    if status >= 400:
        message = answer.get("message", "") if isinstance(answer, dict) else str(answer)
        extra = ""
        if isinstance(answer, dict) and answer.get("allowed"):
            extra = f" (allowed now: {', '.join(answer['allowed'])})"
        print(f"hotline ticket: {status} {message}{extra}", file=sys.stderr)
        return 1
    print(json.dumps(answer, ensure_ascii=False, indent=2))
    return 0


def cmd_login(args: argparse.Namespace) -> int:
    try:
        password = (sys.stdin.readline().removesuffix("\n").removesuffix("\r") if args.password_stdin
                    else getpass.getpass("密码 (password): "))
    except (EOFError, KeyboardInterrupt):
        raise CliError("no password given") from None
    path = Path(args.token_file)
    if not path.parent.is_dir():  # checked before signing in: a token must not be issued for nothing
        raise CliError(f"{path.parent} is not a folder: give --token-file a path in an existing folder")
    status, answer = request(_url(args), "POST", "/login", {"username": args.username, "password": password})
    if status != 200:
        return _print(status, answer)
    if not isinstance(answer, dict) or not isinstance(answer.get("token"), str):
        raise CliError("the answer has no token: is --url the hotline ticket API?")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(answer["token"] + "\n")
        os.chmod(path, 0o600)
    except OSError as exc:
        raise CliError(f"cannot write the token to {path}: {exc.strerror} (a symbolic link is refused)") from None
    print(f"signed in as {answer['user']['username']} ({answer['user']['role']}) until {answer['expires']}; "
          f"token in {path}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import asyncio

    from cti.cli import _settings
    from cti.logs import setup
    from tickets import worker

    settings = _settings(args)
    setup(settings.engine.log.level)
    return asyncio.run(worker.run(settings))


def _call(method: str, path: Callable[[argparse.Namespace], str], with_body: bool = False
          ) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        body = _body(args) if with_body else None
        return _print(*request(_url(args), method, path(args), body, _token(args)))
    return run


def main(args: argparse.Namespace) -> int:
    try:
        handler: Callable[[argparse.Namespace], int] = args.ticket_handler
        return handler(args)
    except CliError as exc:
        print(f"hotline ticket: {exc}", file=sys.stderr)
        return 2


def add_commands(sub: argparse._SubParsersAction,  # type: ignore[type-arg]
                 with_config: Callable[[argparse.ArgumentParser], None]) -> None:
    t = sub.add_parser("ticket", help="工单 operations for scripts, through the ticket API (see --help)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    tsub = t.add_subparsers(dest="ticket_command", required=True, metavar="COMMAND")

    def common(p: argparse.ArgumentParser, token: bool = True, body: str | None = None) -> None:
        with_config(p)
        p.add_argument("--url", help="the ticket API, e.g. http://127.0.0.1:9110 (default: from tickets.yaml)")
        if token:
            p.add_argument("--token-file", help=f"the token `hotline ticket login` wrote (or set {ENV_TOKEN})")
        if body is not None:
            p.add_argument("--body", metavar="FILE|-", required=body == "required",
                           help="the JSON body, from a file or - for stdin (never on the command line)")
        p.set_defaults(func=main)

    lg = tsub.add_parser("login", help="sign in; writes the token to --token-file (mode 0600)")
    lg.add_argument("username")
    lg.add_argument("--token-file", required=True, help="where to write the token (created 0600)")
    lg.add_argument("--password-stdin", action="store_true", help="read the password as one line from stdin")
    common(lg, token=False)
    lg.set_defaults(ticket_handler=cmd_login)

    def ref(p: argparse.ArgumentParser) -> None:
        p.add_argument("ref", help="the ticket's 13-digit number or its id")

    cr = tsub.add_parser("create", help="登记 a ticket (body: category, urgency, district, content, caller_...)")
    common(cr, body="required")
    cr.set_defaults(ticket_handler=_call("POST", lambda a: "/tickets", with_body=True))

    act = tsub.add_parser("act", help="a lifecycle step: " + ", ".join(ACTIONS))
    ref(act)
    act.add_argument("action", choices=ACTIONS, metavar="ACTION")
    common(act, body="optional")
    act.set_defaults(ticket_handler=_call("POST", lambda a: f"/tickets/{a.ref}/actions/{a.action}", with_body=True))

    show = tsub.add_parser("show", help="one ticket")
    ref(show)
    common(show)
    show.set_defaults(ticket_handler=_call("GET", lambda a: f"/tickets/{a.ref}"))

    hist = tsub.add_parser("history", help="a ticket's append-only history")
    ref(hist)
    common(hist)
    hist.set_defaults(ticket_handler=_call("GET", lambda a: f"/tickets/{a.ref}/history"))

    link = tsub.add_parser("attach-call", help="attach a call (body: call_id, recording)")
    ref(link)
    common(link, body="required")
    link.set_defaults(ticket_handler=_call("POST", lambda a: f"/tickets/{a.ref}/calls", with_body=True))

    se = tsub.add_parser("search", help="search (body: number, phone, category, department, state, created_from, "
                                        "created_to, text, page, per_page)")
    common(se, body="optional")
    se.set_defaults(ticket_handler=_call("POST", lambda a: "/tickets/search", with_body=True))

    for name, path in (("overdue", "/tickets/overdue"), ("soon-due", "/tickets/soon-due"),
                       ("drafts", "/tickets/unfinished-drafts")):
        p = tsub.add_parser(name, help={"overdue": "超期 tickets", "soon-due": "tickets due soon",
                                        "drafts": "drafts left unfinished after the agent's wrap-up"}[name])
        common(p)
        p.set_defaults(ticket_handler=_call("GET", lambda a, path=path: path))  # type: ignore[misc]

    sv = tsub.add_parser("serve", help="run the ticket platform as its own process (API, drafts, push) until "
                                       "SIGTERM; for centers that run several against one PostgreSQL")
    with_config(sv)
    sv.set_defaults(func=cmd_serve)

    kb = tsub.add_parser("kb-search", help="知识库 search (body: text, category, page)")
    common(kb, body="required")
    kb.set_defaults(ticket_handler=_call("POST", lambda a: "/kb/search", with_body=True))
