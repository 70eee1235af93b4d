"""What the Asterisk benchmarks share: the sandbox with app_queue beside our dialplan,
a passive AMI listener, simulated agents on one SIPp UAS, and our engine as a process.

A run holds the sandbox lock throughout and starts Asterisk fresh: every reload leaves
Asterisk 22.10.1 one more manager subscriber that slows every later call, so a reused
Asterisk drifts the figures (latency-experiment §7). It stops Asterisk and removes its
work directory at the end, however it ends."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.ami_watch import MANAGER_USER, AmiWatch
from config.loader import load
from config.settings import Settings
from ivr import prompts
from testbed import sipp
from testbed.configs import password, write_config
from testbed.sandbox import Sandbox, SandboxError

APP_QUEUE_NUMBER = "12399"
HTTP_PORT = 9119
METRICS_PORT = 9118


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile of sorted values."""
    if not values:
        return float("nan")
    rank = max(1, min(len(values), round(p / 100 * len(values) + 0.5)))
    return values[rank - 1]


@dataclass
class Rig:
    box: Sandbox
    watch: AmiWatch
    settings: Settings
    config: Path
    workdir: Path
    agents: int

    @contextlib.contextmanager
    def engine(self, config: Path | None = None) -> Iterator[None]:
        """Our engine as its own process, as in production (in the benchmark's process it
        would share the GIL with the AMI listener and wait for it in 5 ms slices). `config`:
        another configuration folder than the rig's (one condition of an A/B run)."""
        with open(self.workdir / "engine.log", "wb") as log:
            proc = subprocess.Popen([sys.executable, "-m", "cti.cli", "run", "--config", str(config or self.config)],
                                    stdout=subprocess.DEVNULL, stderr=log)
        try:
            self._wait_available()
            yield
        finally:
            proc.terminate()
            proc.wait(15)
            time.sleep(3)  # let the last calls end before the next phase

    def metrics(self) -> str:
        url = f"http://127.0.0.1:{METRICS_PORT}/metrics"
        return urllib.request.urlopen(url, timeout=5).read().decode()

    def _wait_available(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                if f'hotline_agents{{state="available"}} {float(self.agents)}' in self.metrics():
                    return
            time.sleep(0.2)
        # The work directory goes at the end of the run, so show the log's tail now.
        tail = "\n".join((self.workdir / "engine.log").read_text(errors="replace").splitlines()[-20:])
        raise SystemExit(f"the engine did not see {self.agents} available agents within {timeout:.0f} s; "
                         f"its log ends:\n{tail}")


def _install_app_queue(box: Sandbox, agent_ids: list[str]) -> None:
    etc = box.root / "etc/asterisk"
    members = "\n".join(f"member => PJSIP/agent{a}" for a in agent_ids)
    (etc / "queues.conf").write_text(
        "[general]\npersistentmembers = no\n\n[benchq]\nstrategy = leastrecent\ntimeout = 15\nretry = 1\n"
        f"wrapuptime = 0\nringinuse = no\nautopause = no\nautofill = yes\njoinempty = yes\n{members}\n"
    )
    (etc / "extensions_local.conf").write_text(
        f"[hotline-inbound](+)\nexten => {APP_QUEUE_NUMBER},1,Queue(benchq,r)\n same => n,Hangup()\n"
    )


def _remove_app_queue(box: Sandbox) -> None:
    for name in ("queues.conf", "extensions_local.conf"):
        (box.root / "etc/asterisk" / name).unlink(missing_ok=True)


@contextlib.contextmanager
def rig(name: str, agents: int, uas_port: int, queue: dict[str, Any],
        ivr: Callable[[Path], dict[str, Any]] | None = None, tickets: dict[str, Any] | None = None,
        answer_ms: int = 100, manager_user: str = MANAGER_USER) -> Iterator[Rig]:
    """ivr: given the run's work directory (removed at the end), the keys of ivr.yaml over the
    test default (no IVR); it may put a prompts override folder there. Asterisk gets the
    shipped prompts back at the end."""
    agent_ids = [str(1001 + i) for i in range(agents)]
    box = Sandbox()
    try:
        claim = box.claim(f"bench {name}")
    except SandboxError as exc:
        raise SystemExit(f"bench {name}: {exc}") from None
    workdir = Path(tempfile.mkdtemp(prefix="hotline-bench-"))
    try:
        config = write_config(workdir, agents=agent_ids, queue=queue, http_port=HTTP_PORT,
                              metrics_port=METRICS_PORT, ivr=ivr(workdir) if ivr is not None else None,
                              tickets=tickets)
        settings = load(config)
        box.build()
        # Written before the start, so app_queue loads them at boot and no reload is needed.
        _install_app_queue(box, agent_ids)
        box.start(settings, extra_manager_users=manager_user)
        if "Running" not in box.rx("module show like app_queue").replace("Not Running", ""):
            raise SystemExit(f"bench {name}: app_queue did not load; see {box.root}/var/log/asterisk/messages.log")
        print(f"bench: sandbox locked for this run; Asterisk freshly started (pid {box.pid()}, "
              f"{box.manager_subscribers()} manager:core subscriber), stopped at the end", flush=True)
        watch = AmiWatch()
        uas = sipp.agent_uas(uas_port, answer_ms=answer_ms)
        try:
            sipp.register([(f"agent{a}", password(a)) for a in agent_ids], contact_port=uas_port, timeout=60)
            yield Rig(box, watch, settings, config, workdir, agents)
        finally:
            uas.stop()
            watch.close()
    finally:
        try:
            sipp.stop_all()  # callers left by an interrupted run end their calls, not wait for SIGKILL
            _remove_app_queue(box)
            box.stop()  # the registrations go with it
            if ivr is not None:  # a prompts override of this run must not outlive it
                prompts.install_sounds(box.root / "usr/share/asterisk/sounds/hotline", None)
        finally:
            claim.release()
            shutil.rmtree(workdir, ignore_errors=True)
