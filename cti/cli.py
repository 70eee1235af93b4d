"""The `hotline` command."""

from __future__ import annotations

import argparse
import asyncio
import errno
import ipaddress
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

from config.control_token import TokenError, read_token
from config.loader import DEFAULTS_DIR, ConfigError, load
from config.settings import EngineFile, Settings

EPILOG = """\
examples:
  hotline run                          run the engine with the embedded defaults
  hotline run --config /etc/hotline    run with an admin's YAML (agents.yaml and queues.yaml required)
  hotline config check --config DIR    list every error with file:line (exit 2 if any; the IVR flows of
                                       ivr.yaml included: undefined targets, unreachable nodes, loops with
                                       no exit, missing prompts), the files taken from the embedded
                                       defaults, and warnings (exit 0)
  hotline reload --config DIR          apply changed YAML to the running engine (or: kill -HUP)
  hotline sandbox up                   build (once) and start Asterisk 22 + SIPp in a chroot (root)
  hotline sandbox rx "core show channels"
  hotline sandbox sipp -- -v           run SIPp inside the sandbox
  hotline asterisk-conf install --etc /etc/asterisk --sounds /usr/share/asterisk/sounds
  hotline quarantine list --config DIR call records the store refused for good, with why and what to do
  hotline dept add housing 市住建局    add a department (承办单位) that tickets can be dispatched to
  hotline user add zhangsan --role department --dept housing  its user; the password is asked twice
  hotline export --out /srv/export-2026-12 --config DIR  every table as CSV and JSON Lines: the city's data
  hotline ticket login boss --token-file F   sign in to the 工单 API; then `hotline ticket search|act|...`
  hotline ticket serve --config DIR    the ticket platform as its own process (several against one PostgreSQL)
  hotline demo                         sandbox + engine + a burst of simulated calls, then the figures
"""


CONFIG_HELP = ("config folder: it must exist and hold agents.yaml and queues.yaml; engine.yaml and calendar.yaml "
               "may be left out and take the embedded defaults. Without --config: the embedded demo "
               "configuration (loopback only, published passwords)")


def _config_dir(args: argparse.Namespace) -> Path | None:
    if args.config is None:
        return None
    if not args.config:  # `--config "$UNSET"` must not quietly mean the current folder
        print("hotline: --config needs a folder (it was given an empty string)", file=sys.stderr)
        raise SystemExit(2)
    return Path(args.config)


def _settings(args: argparse.Namespace) -> Settings:
    try:
        return load(_config_dir(args))
    except ConfigError as exc:
        print("hotline: configuration has errors:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        print("Fix the lines above; `hotline config check --config DIR` re-checks without starting.",
              file=sys.stderr)
        raise SystemExit(2) from None


def cmd_run(args: argparse.Namespace) -> int:
    # Before anything is created: logs, the database, the spool and the token are never
    # world-readable, whatever umask the service manager or the shell left us.
    os.umask(0o027)
    from cti import engine, logs

    settings = _settings(args)
    for warning in settings.warnings:
        print(f"hotline run: warning: {warning}", file=sys.stderr)
    logs.setup(settings.engine.log.level, json=not args.console_log)
    try:
        # 1 when a part of the engine died: the supervisor (Restart=on-failure) starts it again.
        return asyncio.run(engine.run(settings, _config_dir(args)))
    except TokenError as exc:
        print(f"hotline run: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"hotline run: {_os_error(exc, settings.engine)}", file=sys.stderr)
        return 2


# asyncio's create_server: "error while attempting to bind on address ('127.0.0.1', 9108): ..."
BIND_ADDRESS = re.compile(r"bind on address \('([^']*)', (\d+)")
LISTEN_REASONS = {
    errno.EADDRINUSE: "address already in use; is another hotline running? "
                      "change metrics.port / http.port in engine.yaml",
    errno.EADDRNOTAVAIL: "this host has no such address; change metrics.listen / http.listen in engine.yaml",
    errno.EACCES: "permission denied (ports below 1024 need privileges); "
                  "change metrics.port / http.port in engine.yaml",
}


def _os_error(exc: OSError, e: EngineFile) -> str:
    """One line for an OSError that stopped the engine; a listener that could not bind is named."""
    found = BIND_ADDRESS.search(str(exc))
    if found is None and exc.errno not in (errno.EADDRINUSE, errno.EADDRNOTAVAIL):
        return f"stopped: {exc}"
    # Which listener failed is known only from asyncio's wording; otherwise name both.
    if found:
        where = f"{_host(found[1])}:{found[2]}"
    else:
        where = f"{_host(e.http.listen)}:{e.http.port} or {_host(e.metrics.listen)}:{e.metrics.port}"
    reason = LISTEN_REASONS.get(exc.errno or 0) or \
        f"{(exc.strerror or str(exc)).lower()}; check metrics and http in engine.yaml"
    return f"cannot listen on {where}: {reason}"


def _host(address: str) -> str:
    return f"[{address}]" if ":" in address else address


def _client_host(listen: str) -> str:
    """Where a client on this host reaches a listener bound to `listen`."""
    address = ipaddress.ip_address(listen)
    if address.is_unspecified:
        return "[::1]" if address.version == 6 else "127.0.0.1"
    return _host(listen)


def cmd_reload(args: argparse.Namespace) -> int:
    """Check the YAML here first, then ask the running engine to apply it."""
    import urllib.error
    import urllib.request

    settings = _settings(args)
    http = settings.engine.http
    url = args.url or f"http://{_client_host(http.listen)}:{http.port}/reload"
    token_file = Path(args.token_file) if args.token_file else http.token_file
    try:
        token = read_token(token_file)
    except TokenError as exc:
        print(f"hotline reload: {exc}", file=sys.stderr)
        return 1
    request = urllib.request.Request(url, method="POST", headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            status, body = resp.status, _json(resp.read())
    except urllib.error.HTTPError as exc:
        status, body = exc.code, _json(exc.read())
    except OSError as exc:
        print(f"hotline reload: no engine answered at {url} ({exc}); is `hotline run` running?", file=sys.stderr)
        return 1
    detail = f" ({body['error']})" if isinstance(body.get("error"), str) else ""
    if status == 401:
        print(f"hotline reload: the engine at {url} did not accept the token in {token_file}{detail}; "
              "is it the engine of this configuration (http.token_file)?", file=sys.stderr)
        return 1
    if status == 403:
        print(f"hotline reload: the engine at {url} refused the request (403 Forbidden){detail}", file=sys.stderr)
        return 1
    if body.get("ok"):
        print("reloaded: the new configuration applies to the next decision")
        later = [str(s) for s in body.get("restart_needed", [])]
        if later:
            print(f"hotline reload: engine.yaml's {', '.join(later)} changed: they apply only when the engine "
                  "restarts (systemctl restart hotline)", file=sys.stderr)
        return 0
    if status != 422:
        print(f"hotline reload: unexpected answer {status} from {url}{detail}", file=sys.stderr)
        return 1
    print("hotline reload: the engine refused the configuration and keeps the old one:", file=sys.stderr)
    for err in body.get("errors", []):
        print(f"  {err}", file=sys.stderr)
    return 1


def _json(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw or b"{}")
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def cmd_quarantine(args: argparse.Namespace) -> int:
    """Records the store refused for good: list them, or put one back in line once fixed."""
    import urllib.error
    import urllib.parse
    import urllib.request

    from tickets.store import list_quarantine, requeue

    settings = _settings(args)
    spool = settings.engine.store.spool
    if args.action == "list":
        items = list_quarantine(spool)
        if not items:
            print(f"no quarantined call records in {spool / 'quarantine'}")
        for q in items:
            print(f"{q.call_id}  {q.quarantined_at}  {q.error}\n    {q.file}\n    {q.hint}")
        return 0
    if not args.call_id:
        print("hotline quarantine retry: name the call id (see `hotline quarantine list`)", file=sys.stderr)
        return 2
    http = settings.engine.http
    url = (f"http://{_client_host(http.listen)}:{http.port}/quarantine/"
           f"{urllib.parse.quote(args.call_id, safe='')}/retry")
    headers: dict[str, str] = {}
    token_problem = ""
    try:
        headers["Authorization"] = f"Bearer {read_token(http.token_file)}"
    except TokenError as exc:
        token_problem = f" ({exc})"  # ask anyway: a refused connection still means no engine here
    request = urllib.request.Request(url, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            if resp.status == 200:
                print(f"put back in line: the running engine writes call {args.call_id} now")
                return 0
            print(f"hotline quarantine retry: unexpected answer {resp.status} from {url}", file=sys.stderr)
            return 1
    except urllib.error.HTTPError as exc:
        print(f"hotline quarantine retry: {_json(exc.read()).get('error', exc)}{token_problem}", file=sys.stderr)
        return 1
    except OSError as exc:
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        if not isinstance(reason, ConnectionRefusedError):
            # Something listens but does not answer: an engine may be running, and moving the
            # file under it could write the record twice. Leave it where it is.
            print(f"hotline quarantine retry: the engine at {url} did not answer ({reason}); "
                  "the record stays in quarantine. Try again, or stop the engine and retry.", file=sys.stderr)
            return 1
    # Nothing listens there: no engine runs with this configuration. Move the file back; the
    # next start writes it.
    try:
        path = requeue(spool, args.call_id)
    except (LookupError, FileExistsError) as exc:
        print(f"hotline quarantine retry: {exc}", file=sys.stderr)
        return 1
    print(f"put back in line: {path}; the engine writes it at its next start")
    return 0


def cmd_config_check(args: argparse.Namespace) -> int:
    settings = _settings(args)
    folder = _config_dir(args)
    where = folder or f"{DEFAULTS_DIR} (embedded defaults)"
    print(f"configuration OK: {where}: {len(settings.queues)} queue(s), {len(settings.agents)} agent(s)")
    if settings.ivr is None:
        print("  IVR: none (no ivr.yaml in the folder: no flows, no survey, no job number; start from a copy of "
              f"{DEFAULTS_DIR / 'ivr.yaml'})")
    else:
        ivr = settings.ivr.settings
        numbers = ", ".join(f"{n} -> {flow}" for n, flow in sorted(ivr.numbers.items())) or "none"
        print(f"  IVR ({settings.ivr.file}): {len(settings.ivr.flows.flows)} flow(s); numbers with a flow: {numbers}; "
              f"survey {'on (' + ivr.survey.flow + ')' if ivr.survey.enabled else 'off'}; "
              f"job number {'on' if ivr.announce_agent else 'off'}")
    if folder and settings.from_defaults:
        print(f"  not in {folder}, taken from the embedded defaults: {', '.join(settings.from_defaults)}")
    for warning in settings.warnings:
        print(f"  warning: {warning}")
    return 0


def _no_tooling(command: str, exc: ModuleNotFoundError) -> int:
    """The dev/test tooling is a package of its own (testbed); say so if it is absent."""
    if not (exc.name or "").startswith("testbed"):
        raise exc
    print(f"hotline {command}: the dev/test tooling (package testbed) is not installed; "
          "install hotline from its source tree (pip install -e .) to use it", file=sys.stderr)
    return 1


def cmd_sandbox(args: argparse.Namespace) -> int:
    try:
        from testbed.commands import sandbox
    except ModuleNotFoundError as exc:
        return _no_tooling("sandbox", exc)
    return sandbox(args, lambda: _settings(args))


def cmd_asterisk_conf(args: argparse.Namespace) -> int:
    from cti.asterisk_conf import install, music_warnings, render, write_private
    from ivr.prompts import PromptError

    settings = _settings(args)
    try:
        if args.action == "render":
            out = Path(args.out)
            out.mkdir(parents=True, exist_ok=True)
            for name, text in render(settings).items():
                write_private(out / name, text)  # manager.conf and pjsip.conf hold secrets
                print(out / name)
        else:
            for path in install(settings, Path(args.etc), Path(args.sounds)):
                print(path)
            for warning in music_warnings(settings, Path(args.etc), Path(args.sounds)):
                print(f"warning: {warning}", file=sys.stderr)
            print("now reload Asterisk: asterisk -rx 'core reload'", file=sys.stderr)
    except PromptError as exc:
        print(f"hotline asterisk-conf {args.action}: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        where = f" {exc.filename}" if exc.filename else ""
        print(f"hotline asterisk-conf {args.action}: cannot write{where}: {exc.strerror or exc}; "
              "choose a folder you may write (--out / --etc / --sounds)", file=sys.stderr)
        return 1
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    try:
        from testbed.demo import main as demo
    except ModuleNotFoundError as exc:
        return _no_tooling("demo", exc)

    return int(demo(args))


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="hotline",
        description="12345 hotline call-center engine: ACD, recording, call records and live counters "
        "on a real Asterisk over AMI.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def with_config(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--config", metavar="DIR", help=CONFIG_HELP)

    r = sub.add_parser("run", help="run the engine until SIGTERM/SIGINT",
                       description="Run the engine until SIGTERM/SIGINT (then exit 0). Exits 1 when a part of "
                       "the engine (dispatcher, store writer, AMI link) dies, so that a supervisor with "
                       "Restart=on-failure starts it again; exits 2 when the configuration has errors or a "
                       "listener cannot be opened (one line on stderr says which and what to do). A database "
                       "that is down at start does not stop it: records wait in the spool. Warnings (published "
                       "default secrets, config files anyone may read) are printed first. Files are created with "
                       "umask 027 (never world-readable).")
    with_config(r)
    r.add_argument("--console-log", action="store_true", help="human-readable logs instead of JSON lines")
    r.set_defaults(func=cmd_run)

    rl = sub.add_parser("reload", help="apply changed YAML to the running engine (same as SIGHUP); "
                        "no call is dropped or rung twice",
                        description="Check the YAML here (exit 2 on errors), then ask the running engine to re-read "
                        "its config folder (POST /reload on the control API, with the control token as "
                        "Authorization: Bearer). Exit 0 when applied; 1 when the engine refuses the configuration "
                        "or the token, or cannot be reached.")
    with_config(rl)
    rl.add_argument("--url", help="the engine's reload endpoint (default: http.listen and http.port of engine.yaml)")
    rl.add_argument("--token-file", metavar="PATH",
                    help="the control token the engine created (default: http.token_file of engine.yaml; "
                    "reading it usually needs root or the engine's user)")
    rl.set_defaults(func=cmd_reload)

    c = sub.add_parser("config", help="configuration tools")
    csub = c.add_subparsers(dest="action", required=True, metavar="ACTION")
    chk = csub.add_parser("check", help="validate the YAML; every error with file, line and reason (exit 2), "
                          "the files taken from the embedded defaults, and warnings (exit 0)")
    with_config(chk)
    chk.set_defaults(func=cmd_config_check)

    s = sub.add_parser("sandbox", help="Asterisk 22 + SIPp in a Debian sid chroot (needs root)")
    s.add_argument("action", choices=["build", "up", "down", "status", "rx", "sipp"],
                   help="build: build/cache the chroot; up: build if needed, install asterisk-conf, start "
                   "Asterisk (or reload the one an earlier `up` started), wait for FullyBooted; down: stop "
                   "Asterisk and SIPp; status: JSON; rx CMD: asterisk -rx CMD; sipp -- ARGS: run SIPp inside. "
                   "One user at a time: tests, benchmarks, the demo and `up` lock the sandbox")
    s.add_argument("rest", nargs="*", help="the command for rx, the arguments for sipp (after --)")
    s.add_argument("--root", help="chroot directory (default /var/lib/hotline/sandbox/rootfs or $HOTLINE_SANDBOX)")
    s.add_argument("--force", action="store_true",
                   help="with down: stop Asterisk even while another run holds the sandbox (that run fails)")
    with_config(s)
    s.set_defaults(func=cmd_sandbox)

    a = sub.add_parser("asterisk-conf", help="render or install the Asterisk configuration the engine expects")
    asub = a.add_subparsers(dest="action", required=True, metavar="ACTION")
    ren = asub.add_parser("render", help="write the rendered files into --out (mode 0640: they hold secrets)")
    ren.add_argument("--out", required=True)
    with_config(ren)
    ins = asub.add_parser("install", help="install into an existing Asterisk (then core reload): the rendered "
                          "files, the IVR prompts under <sounds>/hotline/<zh|en>/ with the admin's own recordings "
                          "(ivr.yaml prompts.override_dir) over the shipped ones, and each agent's job number "
                          "announcement")
    ins.add_argument("--etc", default="/etc/asterisk", help="Asterisk's config dir (default /etc/asterisk)")
    ins.add_argument("--sounds", default="/usr/share/asterisk/sounds",
                     help="Asterisk's sounds dir (default /usr/share/asterisk/sounds)")
    with_config(ins)
    for sp in (ren, ins):
        sp.set_defaults(func=cmd_asterisk_conf)

    qr = sub.add_parser("quarantine", help="call records the store refused for good (a number too long for "
                        "its column, ...): list them, or put one back in line once the cause is fixed")
    qr.add_argument("action", choices=["list", "retry"])
    qr.add_argument("call_id", nargs="?", help="for retry: the call id `list` shows")
    with_config(qr)
    qr.set_defaults(func=cmd_quarantine)

    d = sub.add_parser("demo", help="start the sandbox and the engine, place simulated calls, print the figures")
    d.add_argument("--calls", type=int, default=20, help="simulated citizens' calls (default 20)")
    d.add_argument("--agents", type=int, default=5, help="simulated agents answering (default 5)")
    d.add_argument("--keep", action="store_true", help="leave Asterisk running afterwards")
    d.add_argument("--workdir", default="/var/lib/hotline/demo",
                   help="where the demo keeps its config, DB, spool, recordings and engine log (mode 0750)")
    d.set_defaults(func=cmd_demo)

    from tickets.admin_cli import add_commands  # `hotline user ...`, `hotline dept ...`
    from tickets.export_cli import add_commands as add_transfer_commands  # `hotline export`, `hotline import`
    from tickets.ticket_cli import add_commands as add_ticket_commands  # `hotline ticket ...`

    add_commands(sub, with_config)
    add_ticket_commands(sub, with_config)
    add_transfer_commands(sub, with_config)
    from planner.cli import register as add_plan_command  # `hotline plan`
    from reports.cli import register as add_report_command  # `hotline report ...`

    add_report_command(sub)
    add_plan_command(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
