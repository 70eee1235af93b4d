"""`hotline demo`: the whole path once, with the embedded defaults.

Claims the sandbox and starts a fresh Asterisk, runs `hotline run` as a real process,
registers simulated agents (SIPp softphones that answer and echo audio), places a burst of
simulated citizens' calls, then prints what the engine counted and stored. Everything the
demo writes (config, DB, spool, recordings, engine log) stays in --workdir, readable by
root and its group only.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import wave
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from config.loader import DEFAULTS_DIR, load
from config.settings import Settings
from cti.asterisk_conf import CONF_DIR
from metrics import kpi
from testbed import sipp
from testbed.audio import check_audio
from testbed.ivr_caller import ivr_caller
from testbed.sandbox import Sandbox, SandboxError
from tickets.models import TicketRow
from tickets.store import read_records


def say(msg: str) -> None:
    print(f"[demo] {msg}", flush=True)


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError:
        return 0, ""


def _counters(text: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.endswith("_total"):
                out[sample.name] = out.get(sample.name, 0.0) + sample.value
    return out


def private_dir(path: Path) -> Path:
    """A directory only root and its group can read (0750), whatever the umask."""
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o750)
    return path


def private_file(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
    os.fchmod(fd, 0o640)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)


PRODUCTION_DIR = "/var/lib/hotline/"


def _into(workdir: Path, value: Any) -> Any:
    """`value` with every path under the production data folder moved into `workdir`."""
    if isinstance(value, dict):
        return {key: _into(workdir, v) for key, v in value.items()}
    if isinstance(value, str):
        return value.replace(PRODUCTION_DIR, f"{workdir}/")
    return value


def write_config(workdir: Path) -> Path:
    """The embedded defaults, with every file the engine keeps (DB, spool, recordings, ...)
    in `workdir` instead of /var/lib/hotline. 0640: it holds the AMI secret and SIP passwords."""
    config = private_dir(workdir / "config")
    engine = yaml.safe_load((DEFAULTS_DIR / "engine.yaml").read_text(encoding="utf-8"))
    # A secret of this run's own: an engine left behind by an earlier demo cannot log in.
    engine["ami"]["secret"] = secrets.token_urlsafe(18)
    private_file(config / "engine.yaml", yaml.safe_dump(_into(workdir, engine), allow_unicode=True))
    for default in sorted(DEFAULTS_DIR.glob("*.yaml")):
        if default.name != "engine.yaml":
            private_file(config / default.name, default.read_text(encoding="utf-8"))
    return config


def _ivr_seconds(settings: Settings) -> tuple[float, float]:
    """How long a caller who presses no key spends in the shipped intake flow before the
    queue (0: the number runs no IVR), and how long the job number plays on answer."""
    ivr = settings.ivr
    if ivr is None or settings.queue.number not in ivr.settings.numbers:
        return 0.0, 0.0
    sounds = CONF_DIR / "sounds" / "zh"

    def length(name: str) -> float:
        with wave.open(str(sounds / f"{name}.wav"), "rb") as w:
            return w.getnframes() / w.getframerate()

    menu_wait = 3.0  # the intake menu's timeout
    job_number = length("agent-prefix") + 4 * 0.45 + length("agent-suffix") if ivr.settings.announce_agent else 0
    return length("welcome") + length("intake-menu") + menu_wait + 1.0, job_number


def main(args: argparse.Namespace) -> int:
    if os.geteuid() != 0:
        print("hotline demo needs root (the Asterisk sandbox is a chroot): run it with sudo", file=sys.stderr)
        return 1
    box = Sandbox()
    try:
        claim = box.claim("hotline demo")
    except SandboxError as exc:
        print(f"hotline demo: {exc}", file=sys.stderr)
        return 1
    try:
        workdir = private_dir(Path(args.workdir).resolve())
        config = write_config(workdir)
        for leftover in (workdir / "hotline.db", workdir / "engine.log"):  # from a run before modes were set
            if leftover.exists():
                os.chmod(leftover, 0o640)
        settings = load(config)
        box.start(settings)
        return _calls(args, settings, config, workdir)
    except SandboxError as exc:
        print(f"hotline demo: {exc}", file=sys.stderr)
        return 1
    finally:
        if args.keep:
            say("Asterisk left running (--keep); `hotline sandbox down` stops it")
        else:
            box.stop()
        claim.release()


def _calls(args: argparse.Namespace, settings: Settings, config: Path, workdir: Path) -> int:
    e = settings.engine
    base = f"http://{e.metrics.listen}:{e.metrics.port}"  # /metrics and /healthz: the read-only listener
    log_path = workdir / "engine.log"
    say(f"starting the engine: hotline run --config {config} (the defaults, with DB, spool and recordings in "
        f"{workdir}), JSON log in {log_path}")
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
    with os.fdopen(fd, "ab") as log:
        engine = subprocess.Popen([sys.executable, "-m", "cti.cli", "run", "--config", str(config)],
                                  stdout=log, stderr=log, start_new_session=True,
                                  umask=0o027)  # the SQLite DB it creates holds callers' numbers: 0640
    agents = [(f"agent{a.id}", a.password) for a in settings.agents[: args.agents]]
    uas = None
    registered = False
    started = time.time()
    try:
        deadline = time.monotonic() + 30
        while _get(f"{base}/healthz")[0] != 200:
            if engine.poll() is not None or time.monotonic() > deadline:
                say(f"the engine did not become healthy; see {log_path}")
                return 1
            time.sleep(0.2)
        before = _counters(_get(f"{base}/metrics")[1])
        say(f"engine connected to AMI; registering {len(agents)} simulated agents (SIPp softphones)")
        ivr, job_number = _ivr_seconds(settings)
        if ivr:
            # The agents speak after the job number, talk 4 s and hang up first: the caller stays
            # for the satisfaction survey.
            uas = sipp.agent_uas(6090, scenario="agent_hangup.xml", answer_ms=500, talk_ms=4000,
                                 speak_after_ms=int(max(0.0, job_number - 2) * 1000))
        else:
            uas = sipp.agent_uas(6090, answer_ms=500)
        sipp.register(agents, contact_port=6090)
        registered = True
        time.sleep(1)
        if ivr:
            say(f"placing {args.calls} simulated calls to {settings.queue.number}: each hears the "
                f"IVR first (greeting and menu, no key pressed: {ivr:.0f} s), waits, hears the agent's job number, "
                "talks, and when the agent hangs up rates the service 2 (满意) in the survey")
            # Key 2 every 3 s once past the menu: ignored while waiting, the rating once the survey asks.
            steps: list[tuple[str, int | str]] = [("pause", int(ivr * 1000))]
            steps += [("keys", "2"), ("pause", 3000)] * 40
            names = [(f"测试来电{i + 1}", f"1390000{i + 1:04d}") for i in range(args.calls)]
            # A pace the agents keep up with (each call holds an agent for the job number, the
            # talk and the wrap-up), so that the figures show service, not a queue.
            rate = min(2.0, 0.8 * len(agents) / (job_number + 4 + settings.queue.wrapup))
            run = ivr_caller(steps, stay_ms=30_000, calls=names, rate=rate)
        else:
            say(f"placing {args.calls} simulated calls to {settings.queue.number} (2 per second, 3 s conversations)")
            run = sipp.callers(args.calls, rate=2, names=None, talk_ms=3000)
        while run.running():
            s = run.stats()
            say(f"  calls: {s.created} placed, {s.current} in progress, {s.successful} done, {s.failed} failed")
            time.sleep(2)
        run.wait(5)
        time.sleep(1.5)  # let the last records reach the store
        after = _counters(_get(f"{base}/metrics")[1])
    finally:
        if uas is not None:
            uas.stop()
        sipp.stop_all()  # callers left by an interrupted run end their calls
        if registered:
            sipp.register(agents, contact_port=6090, expires=0)
        engine.send_signal(signal.SIGTERM)
        try:
            engine.wait(15)
        except subprocess.TimeoutExpired:
            engine.kill()
            engine.wait()

    def delta(name: str) -> int:
        return int(after.get(f"hotline_calls_{name}_total", 0) - before.get(f"hotline_calls_{name}_total", 0))

    # The live counters and the stored records, both through the one KPI definition (metrics/kpi.py).
    live = kpi.Totals(offered=delta("offered"), answered=delta("answered"),
                      answered_within_sl=delta("answered_within_service_level"), abandoned=delta("abandoned"),
                      short_abandoned=delta("short_abandoned"))
    rows = [r for r in read_records(create_engine(e.store.url)) if r.arrived.timestamp() >= started - 1]
    stored = kpi.totals(rows)
    recordings = [Path(r.recording) for r in rows if r.recording]
    with_audio = sum(1 for p in recordings if p.exists() and check_audio(p).has_audio)
    waits = [r.wait_seconds for r in rows if r.outcome == "answered"]
    level = settings.queue.service_level
    print()
    print("hotline demo: 结果 results")
    print(f"  呼入量 offered              {stored.offered}")
    print(f"  接通量 answered             {stored.answered}  ({level:g} 秒内 within {level:g} s: "
          f"{stored.answered_within_sl})")
    print(f"  放弃量 abandoned            {stored.abandoned}  (速挂 short: {stored.short_abandoned})")
    print(f"  接通率 answer rate          {kpi.percent(stored.answer_rate)}  = 接通量 / (呼入量 - 速挂)")
    print(f"  {level:g}秒接通率 service level   {kpi.percent(stored.sl_rate)}")
    if waits:
        print(f"  平均等待 average wait       {sum(waits) / len(waits):.1f} s, 最长 longest {max(waits):.1f} s")
    agree = "一致 the same" if live == stored else f"不一致 DIFFERENT: live {live}"
    print(f"  实时计数 live counters      {agree}")
    print(f"  话单 call records           {len(rows)} rows in {e.store.url} (table call_records)")
    print(f"  录音 recordings             {len(recordings)} files ({with_audio} with audio) under "
          f"{e.recordings.dir}")
    if recordings:
        print(f"                              e.g. {recordings[0]}")
    surveyed = [r for r in rows if r.surveyed]
    if surveyed:
        rated = [r for r in surveyed if r.rating is not None]
        print(f"  满意度 survey               {len(surveyed)} callers asked, {len(rated)} rated "
              f"(response rate {kpi.percent(len(rated) / len(surveyed))}), "
              f"{sum(1 for r in rated if r.rating in (1, 2))} 满意 or better")
    answered_ids = {r.call_id for r in rows if r.outcome == "answered"}
    drafts = _drafts(e.store.url, answered_ids)
    print(f"  工单草稿 draft tickets      {len(drafts)} opened, one per answered call, for the agent who answered "
          f"(e.g. {drafts[0] if drafts else '-'}); table tickets")
    print(f"  引擎日志 engine log         {log_path}")
    print(json.dumps({"offered": stored.offered, "answered": stored.answered,
                      "answer_rate": kpi.percent(stored.answer_rate), "live_counters_agree": live == stored,
                      "draft_tickets": len(drafts)}))
    offered, answered = stored.offered, stored.answered
    return 0 if offered == args.calls and answered == offered and live == stored and len(drafts) == answered else 1


def _drafts(url: str, call_ids: set[str]) -> list[str]:
    """The numbers of the draft 工单 the answered calls opened."""
    db = create_engine(url)
    try:
        with Session(db) as s:
            return sorted(s.scalars(select(TicketRow.number).where(TicketRow.origin_call_id.in_(call_ids))))
    finally:
        db.dispose()
