"""Rules that look at several settings at once: published secrets, listeners that collide.

Each finding says where it belongs (file and key path); the loader turns it into an error
with file:line, or into a warning the engine starts with.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Literal

from config.settings import DEFAULT_AMI_SECRET, AgentConfig, EngineFile, QueueConfig, is_loopback

# The passwords of config/defaults/agents.yaml (and of the SIPp scenarios): published.
DEMO_PASSWORD = re.compile(r"pw-[0-9]+-hotline")


@dataclass(frozen=True)
class Finding:
    file: Literal["engine.yaml", "agents.yaml", "queues.yaml"]
    loc: tuple[str | int, ...]
    refuse: bool  # False: accepted, reported as a warning
    message: str


def review(engine: EngineFile, agents: list[AgentConfig], queues: list[QueueConfig] | None = None) -> list[Finding]:
    return [*_ami_secret(engine), *_demo_passwords(engine, agents), *_listeners(engine), *_control_api(engine),
            *_within_max_hold(engine, queues or [])]


def _control_api(engine: EngineFile) -> list[Finding]:
    if is_loopback(engine.http.listen):
        return []
    return [Finding("engine.yaml", ("http", "listen"), False,
                    f"http.listen {engine.http.listen} opens the control API beyond this host: it speaks plain HTTP, "
                    "so its token crosses the network in clear; keep it on 127.0.0.1 and reach it through an "
                    "SSH tunnel or a TLS proxy (only metrics.listen needs to face Prometheus)")]


def _within_max_hold(engine: EngineFile, queues: list[QueueConfig]) -> list[Finding]:
    """The dialplan sends a caller to the time-out message on its own after fallback.max_hold,
    without an event the engine sees: every rule of the engine must fall due before that."""
    limit = engine.fallback.max_hold
    out = []
    for i, q in enumerate(queues):
        timed: list[tuple[tuple[str | int, ...], str, float]] = [(("queues", i, "max_wait"), "max_wait", q.max_wait)]
        if q.overflow is not None:
            timed.append((("queues", i, "overflow", "after"), "overflow.after", q.overflow.after))
        timed += [(("queues", i, "widen", j, "after"), "widen.after", w.after) for j, w in enumerate(q.widen)]
        out += [Finding("queues.yaml", loc, True,
                        f"queue {q.name}: {what} {value:g} s is not below fallback.max_hold {limit} s (engine.yaml), "
                        "after which the dialplan sends the caller to the time-out message on its own: lower it, "
                        "or raise fallback.max_hold and install the dialplan again")
                for loc, what, value in timed if value >= limit]
    return out


def _ami_secret(engine: EngineFile) -> list[Finding]:
    ami = engine.ami
    if ami.secret != DEFAULT_AMI_SECRET:
        return []
    if is_loopback(ami.host):
        return [Finding("engine.yaml", ("ami", "secret"), False,
                        f"ami.secret is the published default {DEFAULT_AMI_SECRET!r}; accepted while AMI is on "
                        f"loopback ({ami.host}), but set a secret of your own (here and in manager.conf)")]
    return [Finding("engine.yaml", ("ami", "secret"), True,
                    f"ami.secret is the published default {DEFAULT_AMI_SECRET!r} and ami.host {ami.host} is not "
                    "loopback: set ami.secret to a secret of your own (8-128 characters), then install it into "
                    "manager.conf with `hotline asterisk-conf install`")]


def _demo_passwords(engine: EngineFile, agents: list[AgentConfig]) -> list[Finding]:
    demo = [(i, a) for i, a in enumerate(agents) if DEMO_PASSWORD.fullmatch(a.password)]
    if not demo:
        return []
    bind = engine.sip.bind
    if is_loopback(bind):
        ids = ", ".join(a.id for _, a in demo)
        return [Finding("agents.yaml", ("agents", demo[0][0], "password"), False,
                        f"agent(s) {ids} use a published demo password (pw-NNNN-hotline); accepted while SIP is "
                        f"bound to loopback ({bind}), but give each agent a password of their own")]
    return [Finding("agents.yaml", ("agents", i, "password"), True,
                    f"agent {a.id} uses a published demo password (pw-NNNN-hotline) and sip.bind {bind} is not "
                    "loopback: give the agent a password of their own")
            for i, a in demo]


def _listeners(engine: EngineFile) -> list[Finding]:
    http, metrics = engine.http, engine.metrics
    if http.port == 0 or http.port != metrics.port:  # 0: any free port
        return []
    a, b = ipaddress.ip_address(http.listen), ipaddress.ip_address(metrics.listen)
    if a == b or a.is_unspecified or b.is_unspecified:
        return [Finding("engine.yaml", ("metrics", "port"), True,
                        f"metrics and http both listen on port {http.port} ({metrics.listen} and {http.listen}): "
                        "give metrics.port and http.port different ports")]
    return []
