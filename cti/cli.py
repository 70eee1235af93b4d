"""The `hotline` command."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from config.loader import DEFAULTS_DIR, ConfigError, load
from config.settings import Settings

EPILOG = """\
examples:
  hotline run                          run the engine with the embedded defaults
  hotline run --config /etc/hotline    run with an admin's YAML (engine.yaml, queues.yaml, agents.yaml)
  hotline config check --config DIR    list every error with file:line, exit 1 if any
  hotline reload --config DIR          apply changed YAML to the running engine (or: kill -HUP)
  hotline sandbox up                   build (once) and start Asterisk 22 + SIPp in a chroot (root)
  hotline sandbox rx "core show channels"
  hotline sandbox sipp -- -v           run SIPp inside the sandbox
  hotline asterisk-conf install --etc /etc/asterisk --sounds /usr/share/asterisk/sounds
  hotline demo                         sandbox + engine + a burst of simulated calls, then the figures
"""


def _settings(args: argparse.Namespace) -> Settings:
    try:
        return load(Path(args.config) if args.config else None)
    except ConfigError as exc:
        print("hotline: configuration has errors:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        print("Fix the lines above; `hotline config check --config DIR` re-checks without starting.",
              file=sys.stderr)
        raise SystemExit(2) from None


def cmd_run(args: argparse.Namespace) -> int:
    from cti import engine, logs

    settings = _settings(args)
    logs.setup(settings.engine.log.level, json=not args.console_log)
    asyncio.run(engine.run(settings, Path(args.config) if args.config else None))
    return 0


def cmd_reload(args: argparse.Namespace) -> int:
    """Check the YAML here first, then ask the running engine to apply it."""
    import urllib.error
    import urllib.request

    settings = _settings(args)
    url = args.url or f"http://{settings.engine.http.listen}:{settings.engine.http.port}/reload"
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="POST"), timeout=10) as resp:
            body = json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        body = json.loads(exc.read() or b"{}")
    except OSError as exc:
        print(f"hotline reload: no engine answered at {url} ({exc}); is `hotline run` running?", file=sys.stderr)
        return 1
    if body.get("ok"):
        print("reloaded: the new configuration applies to the next decision")
        return 0
    print("hotline reload: the engine refused the configuration and keeps the old one:", file=sys.stderr)
    for err in body.get("errors", []):
        print(f"  {err}", file=sys.stderr)
    return 1


def cmd_config_check(args: argparse.Namespace) -> int:
    settings = _settings(args)
    where = args.config or f"{DEFAULTS_DIR} (embedded defaults)"
    print(f"configuration OK: {where}: {len(settings.queues)} queue(s), {len(settings.agents)} agent(s)")
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
    from cti.asterisk_conf import install, render

    settings = _settings(args)
    if args.action == "render":
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        for name, text in render(settings).items():
            (out / name).write_text(text, encoding="utf-8")
            print(out / name)
    else:
        for path in install(settings, Path(args.etc), Path(args.sounds)):
            print(path)
        print("now reload Asterisk: asterisk -rx 'core reload'", file=sys.stderr)
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
        sp.add_argument("--config", metavar="DIR",
                        help="directory with engine.yaml, queues.yaml, agents.yaml "
                        "(a missing file takes the embedded default)")

    r = sub.add_parser("run", help="run the engine until SIGTERM/SIGINT")
    with_config(r)
    r.add_argument("--console-log", action="store_true", help="human-readable logs instead of JSON lines")
    r.set_defaults(func=cmd_run)

    rl = sub.add_parser("reload", help="apply changed YAML to the running engine (same as SIGHUP); "
                        "no call is dropped or rung twice")
    with_config(rl)
    rl.add_argument("--url", help="the engine's reload endpoint (default from engine.yaml http:)")
    rl.set_defaults(func=cmd_reload)

    c = sub.add_parser("config", help="configuration tools")
    csub = c.add_subparsers(dest="action", required=True, metavar="ACTION")
    chk = csub.add_parser("check", help="validate the YAML; every error with file, line and reason")
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
    ren = asub.add_parser("render", help="write the rendered files into --out")
    ren.add_argument("--out", required=True)
    with_config(ren)
    ins = asub.add_parser("install", help="install into an existing Asterisk (then core reload)")
    ins.add_argument("--etc", default="/etc/asterisk", help="Asterisk's config dir (default /etc/asterisk)")
    ins.add_argument("--sounds", default="/usr/share/asterisk/sounds", help="Asterisk's sounds dir")
    with_config(ins)
    for sp in (ren, ins):
        sp.set_defaults(func=cmd_asterisk_conf)

    d = sub.add_parser("demo", help="start the sandbox and the engine, place simulated calls, print the figures")
    d.add_argument("--calls", type=int, default=20, help="simulated citizens' calls (default 20)")
    d.add_argument("--agents", type=int, default=5, help="simulated agents answering (default 5)")
    d.add_argument("--keep", action="store_true", help="leave Asterisk running afterwards")
    d.add_argument("--workdir", default="/var/lib/hotline/demo",
                   help="where the demo keeps its config, DB, spool, recordings and engine log (mode 0750)")
    d.set_defaults(func=cmd_demo)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
