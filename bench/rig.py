"""What the Asterisk benchmarks share: the sandbox with app_queue beside our dialplan,
a passive AMI listener, simulated agents on one SIPp UAS, and our engine as a process."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.ami_watch import MANAGER_USER, AmiWatch
from config.loader import load
from config.settings import Settings
from testbed import sipp
from testbed.configs import password, write_config
from testbed.sandbox import Sandbox

APP_QUEUE_NUMBER = "12399"
HTTP_PORT = 9119


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
    def engine(self) -> Iterator[None]:
        """Our engine as its own process, as in production (in the benchmark's process it
        would share the GIL with the AMI listener and wait for it in 5 ms slices)."""
        with open(self.workdir / "engine.log", "wb") as log:
            proc = subprocess.Popen([sys.executable, "-m", "cti.cli", "run", "--config", str(self.config)],
                                    stdout=subprocess.DEVNULL, stderr=log)
        try:
            self._wait_available()
            yield
        finally:
            proc.terminate()
            proc.wait(15)
            time.sleep(3)  # let the last calls end before the next phase

    def metrics(self) -> str:
        url = f"http://127.0.0.1:{HTTP_PORT}/metrics"
        return urllib.request.urlopen(url, timeout=5).read().decode()

    def _wait_available(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                if f'hotline_agents{{state="available"}} {float(self.agents)}' in self.metrics():
                    return
            time.sleep(0.2)
        raise SystemExit(f"the engine did not see {self.agents} available agents within {timeout:.0f} s")


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


@contextlib.contextmanager
def rig(agents: int, uas_port: int, queue: dict[str, Any]) -> Iterator[Rig]:
    agent_ids = [str(1001 + i) for i in range(agents)]
    workdir = Path(tempfile.mkdtemp(prefix="hotline-bench-"))
    config = write_config(workdir, agents=agent_ids, queue=queue, http_port=HTTP_PORT)
    settings = load(config)
    box = Sandbox()
    _install_app_queue(box, agent_ids)
    box.up(settings, extra_manager_users=MANAGER_USER)
    box.rx("core reload")
    # app_queue declines to load while there is no queues.conf, and a reload does not retry it.
    if "Running" not in box.rx("module show like app_queue").replace("Not Running", ""):
        with contextlib.suppress(Exception):
            box.rx("module unload app_queue.so")
        box.rx("module load app_queue.so")
    watch = AmiWatch()
    creds = [(f"agent{a}", password(a)) for a in agent_ids]
    uas = sipp.agent_uas(uas_port, answer_ms=100)
    try:
        sipp.register(creds, contact_port=uas_port, timeout=60)
        yield Rig(box, watch, settings, config, workdir, agents)
    finally:
        uas.stop()
        sipp.register(creds, contact_port=uas_port, expires=0, timeout=60)
        watch.close()
        for name in ("queues.conf", "extensions_local.conf"):
            (box.root / "etc/asterisk" / name).unlink(missing_ok=True)
        box.rx("core reload")
