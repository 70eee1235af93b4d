"""The configuration tests and benchmarks give the engine: a config directory with
engine.yaml, queues.yaml and agents.yaml, agents 1001-1010 with known passwords, the
store in the directory itself and recordings in a test folder."""

from __future__ import annotations

import secrets
import socket
from pathlib import Path
from typing import Any

import yaml

IVR_DEFAULTS = Path(__file__).resolve().parent.parent / "config" / "defaults" / "ivr.yaml"
RECORDINGS = Path("/var/lib/hotline/test-recordings")
# Asterisk's call account (CEL) is one file for the whole sandbox; every engine reads only
# the calls that ended after it first started (first_days: 0).
CEL_DB = Path("/var/lib/hotline/test-cel/hotline-cel.db")
# Every process that writes configurations (a test session, a benchmark) gets an AMI secret of
# its own, rendered into the sandbox's manager.conf when it starts Asterisk: an engine left
# behind by an earlier run (killed, its terminal closed) cannot log into this run's Asterisk.
SESSION_AMI_SECRET = secrets.token_urlsafe(18)
AGENT_IDS = tuple(str(i) for i in range(1001, 1011))


def free_tcp_port() -> int:
    """A TCP port free on loopback now (the engine's FastAGI listener: the dialplan names it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def password(agent_id: str) -> str:
    return f"pw-{agent_id}-test"


def write_config(
    directory: Path,
    *,
    ami_port: int = 5038,
    db_url: str | None = None,
    queue: dict[str, Any] | None = None,
    agents: list[str] | None = None,
    http_port: int = 0,
    metrics_port: int = 0,
    account: bool = True,
    ami_secret: str = SESSION_AMI_SECRET,
    tickets: dict[str, Any] | None = None,
    ivr: dict[str, Any] | None = None,
    agi_port: int | None = None,
    sip: dict[str, Any] | None = None,
) -> Path:
    """ivr: keys of ivr.yaml over the test default, which is no IVR at all (no numbers, no
    survey, no job number): tests of the queue keep their timing; IVR tests opt in.
    sip: keys of engine.yaml's sip: over the test default, which has no OPTIONS pings and
    hour-long registrations: SIPp's UAS takes each out-of-dialog OPTIONS for a new call (it
    would count in its stats and linger), and SIPp agents register once per test or bench
    run. The softphone tests opt in to the shipped defaults."""
    directory.mkdir(parents=True, exist_ok=True)
    engine = {
        "ami": {"port": ami_port, "secret": ami_secret, "ping_interval": 2, "ping_timeout": 2},
        "agi": {"port": agi_port or free_tcp_port()},
        "http": {"port": http_port, "token_file": str(directory / "control.token")},
        "metrics": {"port": metrics_port},
        "account": {"cel_db": str(CEL_DB) if account else None, "first_days": 0},
        "store": {"url": db_url or f"sqlite:///{directory / 'hotline.db'}", "spool": str(directory / "spool")},
        "recordings": {"dir": str(RECORDINGS)},
        "log": {"level": "info"},
        "sip": {"qualify": 0, "max_expiry": 3600, **(sip or {})},
    }
    q = {"name": "main", "number": "12345", "ring_timeout": 6, "wrapup": 1, "max_wait": 120, "short_abandon": 3}
    q.update(queue or {})
    roster = [{"id": a, "name": f"坐席{a}", "password": password(a)} for a in (agents or AGENT_IDS)]
    (directory / "engine.yaml").write_text(yaml.safe_dump(engine, allow_unicode=True), encoding="utf-8")
    (directory / "queues.yaml").write_text(yaml.safe_dump({"queues": [q]}), encoding="utf-8")
    (directory / "agents.yaml").write_text(yaml.safe_dump({"agents": roster}, allow_unicode=True), encoding="utf-8")
    # The ticket API on any free port, so that engines of tests and the demo never fight over 9110.
    ticket_settings: dict[str, Any] = {"http": {"port": 0}}
    ticket_settings.update(tickets or {})
    (directory / "tickets.yaml").write_text(yaml.safe_dump(ticket_settings, allow_unicode=True), encoding="utf-8")
    ivr_settings = yaml.safe_load(IVR_DEFAULTS.read_text(encoding="utf-8"))
    ivr_settings.update({"numbers": {}, "survey": {"enabled": False}, "announce_agent": False,
                         "prompts": {"override_dir": None}})
    ivr_settings.update(ivr or {})
    (directory / "ivr.yaml").write_text(yaml.safe_dump(ivr_settings, allow_unicode=True), encoding="utf-8")
    for secret in ("agents.yaml", "engine.yaml"):  # they hold the AMI secret and SIP passwords
        (directory / secret).chmod(0o640)
    return directory
