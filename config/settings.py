"""Typed settings. The YAML an admin edits is validated against these models."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from datetime import date, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from acd.calendar import ALWAYS, Calendar, Hours
from acd.events import AgentProfile
from acd.model import Announce, Overflow, OverflowTo, QueueSettings, Strategy, WhenClosed, WhenEmpty, Widen
from config.ticket_settings import TicketsFile

if TYPE_CHECKING:  # ivr.flows_yaml reads YAML through config.loader, which imports this module
    from ivr.config import IvrConfig


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _ip_address(value: str) -> str:
    # These values are written into manager.conf and pjsip.conf as they are: an address
    # is all we accept, so nothing else can ride along into Asterisk's configuration.
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise ValueError(f"{value!r} is not an IP address; write one, e.g. 127.0.0.1 or ::1 "
                         "(host names are not accepted)") from None
    return value


UNSAFE_PATH_CHARACTERS = ";[],$(){}\"'\\|"


def _absolute_path(value: Path) -> Path:
    if not value.is_absolute():
        raise ValueError("must be an absolute path")
    # Paths are written into Asterisk's configuration (the recordings folder, the account's
    # file as a section name) and into dialplan arguments (MixMonitor's file): nothing that
    # could end a line, a comment or a section, split an argument or expand a variable.
    text = str(value)
    if any(not ch.isprintable() or ch in UNSAFE_PATH_CHARACTERS for ch in text):
        raise ValueError(f"{text[:80]!r}: a path may not hold control characters or any of "
                         f"{' '.join(UNSAFE_PATH_CHARACTERS)}")
    return value


def _sqlite_url(value: str) -> str:
    if value.startswith("sqlite:") and not (value.startswith("sqlite:////") or value in ("sqlite://",
                                                                                         "sqlite:///:memory:")):
        raise ValueError("a SQLite store needs an absolute path: sqlite:////var/lib/hotline/hotline.db (four "
                         "slashes), so that the engine and `hotline quarantine` find the same file")
    return value


IPAddress = Annotated[str, AfterValidator(_ip_address)]
AbsolutePath = Annotated[Path, AfterValidator(_absolute_path)]

DEFAULT_AMI_SECRET = "change-me-hotline"
# manager.conf is line based and ';' starts a comment there: keep the secret to characters
# that mean nothing to Asterisk's config parser.
AMI_SECRET = re.compile(r"[A-Za-z0-9_.~!@#%^*+=-]{8,128}")


def is_loopback(address: str) -> bool:
    return ipaddress.ip_address(address).is_loopback


class AmiSection(_Strict):
    host: IPAddress = "127.0.0.1"
    port: int = Field(5038, ge=1, le=65535)
    username: str = Field("hotline", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    secret: str = DEFAULT_AMI_SECRET
    action_timeout: float = Field(5.0, gt=0, le=60)
    ping_interval: float = Field(5.0, gt=0, le=300)
    ping_timeout: float = Field(5.0, gt=0, le=60)

    @field_validator("secret")
    @classmethod
    def _secret(cls, v: str) -> str:
        if not AMI_SECRET.fullmatch(v):
            raise ValueError("must be 8-128 characters from A-Z a-z 0-9 _ . ~ ! @ # % ^ * + = - "
                             "(it goes into manager.conf, where ';' or a line break would cut it or add settings)")
        return v


class HttpSection(_Strict):
    """The control API (agents, reload, callbacks); writes need `Authorization: Bearer <token>`."""

    listen: IPAddress = "127.0.0.1"
    port: int = Field(9109, ge=0, le=65535)
    # Created by the engine at its first start (0600); `hotline reload` reads it.
    token_file: AbsolutePath = Path("/var/lib/hotline/control.token")


class MetricsSection(_Strict):
    """A read-only listener: /metrics and /healthz only, safe to open to a Prometheus host."""

    listen: IPAddress = "127.0.0.1"
    port: int = Field(9108, ge=0, le=65535)
    month_to_date_interval: float = Field(30, ge=1, le=300)  # seconds between store reads of hotline_month_*


class AgiSection(_Strict):
    """The engine's FastAGI listener: the dialplan runs the IVR flows of ivr.yaml through it.
    Asterisk connects to it (keep it on loopback, or on a link only Asterisk reaches: AGI has
    no authentication). Port 0 is not allowed: the dialplan must name the port."""

    listen: IPAddress = "127.0.0.1"
    port: int = Field(4573, ge=1, le=65535)


class StoreSection(_Strict):
    url: Annotated[str, AfterValidator(_sqlite_url)] = "sqlite:////var/lib/hotline/hotline.db"
    spool: AbsolutePath = Path("/var/lib/hotline/spool")


class AccountSection(_Strict):
    """Asterisk's own durable account of every call (CEL, written by its hangup handler),
    which the engine reads to record the calls it did not see end: those that ended while
    it was stopped, and those the dialplan's fallback served meanwhile."""

    # The SQLite file Asterisk's cel_sqlite3_custom writes, as both see it (Asterisk in
    # the sandbox sees it through a bind mount at the same path). None: no account kept.
    cel_db: AbsolutePath | None = Path("/var/lib/hotline/cel/hotline-cel.db")
    # With no checkpoint yet (the first start), how far back the account is read.
    first_days: int = Field(7, ge=0, le=366)



class RecordingsSection(_Strict):
    dir: AbsolutePath = Path("/var/lib/hotline/recordings")


class SipSection(_Strict):
    bind: IPAddress = "127.0.0.1"
    port: int = Field(5060, ge=1, le=65535)
    # The carrier's address: INVITEs from here are citizens' calls, and calls forwarded
    # to an external number (overflow `to: number`) go there.
    trunk_address: IPAddress = "127.0.0.2"
    trunk_port: int = Field(5060, ge=1, le=65535)
    rtp_start: int = Field(10000, ge=1024, le=65535)
    rtp_end: int = Field(20000, ge=1024, le=65535)
    # Seconds between Asterisk's OPTIONS pings to each agent's phone (pjsip qualify_frequency):
    # a phone that stops answering is Unreachable within about this plus qualify_timeout(),
    # long before its registration runs out. 0: no pings (a dead phone counts as registered
    # until its registration expires).
    qualify: int = Field(10, ge=0, le=3600)
    # The longest registration Asterisk grants an agent's phone (maximum_expiration, and
    # default_expiration for a phone that asks for none): softphones ask for an hour.
    max_expiry: int = Field(300, ge=60, le=7200)

    def qualify_timeout(self) -> float:
        """Seconds Asterisk waits for an OPTIONS reply: its default 3 s, less on a short interval."""
        return min(3.0, self.qualify / 2) if self.qualify else 3.0


class FallbackSection(_Strict):
    # If the engine has not been heard from for this long, the dialplan rings every
    # agent itself so that no caller is stranded.
    engine_stale: int = Field(20, ge=5, le=3600)
    # Hard limit the dialplan applies on its own (the engine's max_wait comes first).
    max_hold: int = Field(1800, ge=60)


class LogSection(_Strict):
    level: str = Field("info", pattern=r"^(debug|info|warning|error)$")


class EngineFile(_Strict):
    ami: AmiSection = AmiSection()
    http: HttpSection = HttpSection()
    metrics: MetricsSection = MetricsSection()
    agi: AgiSection = AgiSection()
    store: StoreSection = StoreSection()
    recordings: RecordingsSection = RecordingsSection()
    account: AccountSection = AccountSection()
    sip: SipSection = SipSection()
    fallback: FallbackSection = FallbackSection()
    log: LogSection = LogSection()


SkillName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,31}$")]
SkillLevel = Annotated[int, Field(ge=1, le=100)]
Skills = dict[SkillName, SkillLevel]


class NumberConfig(_Strict):
    """A number citizens dial; it may raise the caller's priority or ask for skills."""

    number: str = Field(pattern=r"^[0-9]{3,15}$")
    priority: int = Field(0, ge=0, le=9)
    skills: Skills = Field(default_factory=dict)


class WidenConfig(_Strict):
    after: float = Field(gt=0, le=86400)
    min_level: int | None = Field(None, ge=1, le=100)
    add_queues: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _does_something(self) -> WidenConfig:
        if self.min_level is None and not self.add_queues:
            raise ValueError("a widening step needs min_level or add_queues")
        return self


class OverflowConfig(_Strict):
    after: float = Field(gt=0, le=86400)
    to: Literal["queue", "message", "number", "callback"] = "message"
    queue: str | None = None
    number: str | None = Field(None, pattern=r"^[0-9]{3,20}$")  # sent to the carrier trunk

    @model_validator(mode="after")
    def _target(self) -> OverflowConfig:
        if self.to == "queue" and not self.queue:
            raise ValueError("overflow to a queue needs `queue:`")
        if self.to == "number" and not self.number:
            raise ValueError("overflow to a number needs `number:` (digits)")
        return self


class AnnounceConfig(_Strict):
    """A queue's position announcements (位置播报): `announce: {first: 30, every: 60}`."""

    first: float = Field(30, ge=0, le=3600)  # seconds after joining the queue
    # Not more often than every 20 s: a caller should hear mostly music, and each prompt
    # costs the engine an AMI action per waiting caller.
    every: float = Field(60, ge=20, le=3600)
    position: bool = True  # the caller's place in line
    wait: bool = True  # the expected wait, when the engine's figures support one

    @model_validator(mode="after")
    def _says_something(self) -> AnnounceConfig:
        if not (self.position or self.wait):
            raise ValueError("an announcement with position: false and wait: false says nothing; "
                             "turn one on, or write `announce: false`")
        return self


# A class of musiconhold.conf: written into the dialplan and Asterisk's configuration as it is.
MUSIC_CLASS = re.compile(r"[A-Za-z0-9_-]{1,40}")
NO_MUSIC = "none"


DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DAY_GROUPS = {"daily": DAYS, "mon-fri": DAYS[:5], "sat-sun": DAYS[5:], **{d: (d,) for d in DAYS}}
SPAN = re.compile(r"^(?P<a>[0-2][0-9]):(?P<b>[0-5][0-9])-(?P<c>[0-2][0-9]):(?P<d>[0-5][0-9])$")


def parse_spans(text: str) -> tuple[tuple[time, time], ...]:
    """'08:30-12:00, 13:30-17:30' -> intervals; '24:00' closes at midnight."""
    spans = []
    for part in (p.strip() for p in text.split(",")):
        m = SPAN.match(part)
        if not m:
            raise ValueError(f"{part!r} is not HH:MM-HH:MM")
        start = time(int(m["a"]), int(m["b"])) if int(m["a"]) < 24 else None
        end = time.max if (m["c"], m["d"]) == ("24", "00") else (
            time(int(m["c"]), int(m["d"])) if int(m["c"]) < 24 else None)
        if start is None or end is None or not start < end:
            raise ValueError(f"{part!r}: the start must come before the end, both within 00:00-24:00")
        spans.append((start, end))
    return tuple(spans)


class CalendarFile(_Strict):
    utc_offset: float = Field(8, ge=-12, le=14)
    holidays: list[str] = Field(default_factory=list)
    workdays: list[str] = Field(default_factory=list)

    @field_validator("holidays", "workdays", mode="before")
    @classmethod
    def _as_text(cls, v: object) -> object:
        # YAML reads 2026-01-01 as a date; keep one spelling.
        return [str(x) for x in v] if isinstance(v, list) else v

    @staticmethod
    def _days(items: list[str]) -> frozenset[date]:
        out: set[date] = set()
        for item in items:
            first, _, last = item.partition("..")
            try:
                a = date.fromisoformat(first.strip())
                b = date.fromisoformat(last.strip()) if last else a
            except ValueError:
                raise ValueError(f"{item!r} is not YYYY-MM-DD or YYYY-MM-DD..YYYY-MM-DD") from None
            if b < a:
                raise ValueError(f"{item!r}: the range ends before it starts")
            out.update(a + timedelta(days=i) for i in range((b - a).days + 1))
        return frozenset(out)

    @model_validator(mode="after")
    def _check(self) -> CalendarFile:
        both = self._days(self.holidays) & self._days(self.workdays)
        if both:
            raise ValueError(f"a day cannot be a holiday and a working day: {sorted(both)[0]}")
        return self

    def to_core(self) -> Calendar:
        return Calendar(self.utc_offset, self._days(self.holidays), self._days(self.workdays))


class QueueConfig(_Strict):
    name: str = Field("main", pattern=r"^[a-z][a-z0-9_]{0,31}$")
    number: str | None = Field(None, pattern=r"^[0-9]{3,15}$")
    numbers: list[NumberConfig] = Field(default_factory=list)
    strategy: Strategy = Strategy.LONGEST_IDLE
    skills: Skills = Field(default_factory=dict)
    ring_timeout: float = Field(15, gt=0, le=300)
    wrapup: float = Field(5, ge=0, le=3600)
    max_wait: float = Field(300, gt=0, le=86400)
    short_abandon: float = Field(5, ge=0, le=60)
    service_level: float = Field(15, gt=0, le=600)
    priority_step: float = Field(30, ge=0, le=3600)
    max_boost: float = Field(120, ge=0, le=86400)
    max_no_answer: int = Field(3, ge=1, le=100)
    busy_backoff: float = Field(10, ge=0, le=3600)
    widen: list[WidenConfig] = Field(default_factory=list)
    overflow: OverflowConfig | None = None
    max_length: int = Field(0, ge=0, le=100000)
    when_empty: Literal["wait", "overflow"] = "wait"
    hours: dict[str, str] = Field(default_factory=dict)  # {"mon-fri": "08:30-17:30", "sat": "09:00-12:00"}
    open_on_holidays: bool = False
    when_closed: Literal["message", "overflow"] = "message"
    sticky_days: float = Field(0, ge=0, le=90)
    sticky_wait: float = Field(30, ge=0, le=3600)
    # What a caller hears while waiting and while an agent's phone rings: a music-on-hold class
    # over early media (never answering the call), or `none`: ringback, as a ringing phone.
    music: str = "default"
    announce: AnnounceConfig | None = None  # off unless configured

    @field_validator("music", mode="before")
    @classmethod
    def _music(cls, v: object) -> object:
        # `music: none`, `music: ""`, `music: off` (YAML reads false) and an empty `music:`: ringback.
        if v is None or v is False or v == NO_MUSIC:
            return ""
        if isinstance(v, str) and (v == "" or MUSIC_CLASS.fullmatch(v)):
            return v
        raise ValueError(f"{str(v)[:60]!r} is not a music-on-hold class: a name of A-Z, a-z, 0-9, _ and - "
                         f"(up to 40), e.g. `default`, or `{NO_MUSIC}` for ringback only")

    @field_validator("announce", mode="before")
    @classmethod
    def _announce(cls, v: object) -> object:
        # `announce: false` (or absent): off; `announce: true`: on with the defaults.
        if v is False:
            return None
        return {} if v is True else v

    @field_validator("announce")
    @classmethod
    def _announce_needs_music(cls, v: AnnounceConfig | None, info: ValidationInfo) -> AnnounceConfig | None:
        # A field validator (music is checked first), so that the error names announce's line.
        if v is not None and info.data.get("music") == "":
            raise ValueError(f"announce needs music (music: {NO_MUSIC} leaves the caller's line ringing, and a "
                             "ringing line carries no prompt); set `music: default` or drop `announce`")
        return v

    @field_validator("hours")
    @classmethod
    def _hours(cls, v: dict[str, str]) -> dict[str, str]:
        for key, spans in v.items():
            if key not in DAY_GROUPS:
                raise ValueError(f"unknown day {key!r}; use {', '.join(DAY_GROUPS)}")
            parse_spans(spans)
        return v

    def core_hours(self) -> Hours:
        if not self.hours:
            return ALWAYS
        weekly: list[tuple[tuple[time, time], ...]] = [()] * 7
        for key, spans in self.hours.items():
            for day in DAY_GROUPS[key]:
                weekly[DAYS.index(day)] = parse_spans(spans)
        return Hours(tuple(weekly), self.open_on_holidays)

    def dialled(self) -> list[NumberConfig]:
        extra = [NumberConfig(number=self.number)] if self.number else []
        return extra + list(self.numbers)

    def to_core(self) -> QueueSettings:
        return QueueSettings(
            name=self.name,
            ring_timeout=self.ring_timeout,
            wrapup=self.wrapup,
            max_wait=self.max_wait,
            short_abandon=self.short_abandon,
            service_level=self.service_level,
            strategy=self.strategy,
            skills=tuple(sorted(self.skills.items())),
            priority_step=self.priority_step,
            max_boost=self.max_boost,
            max_no_answer=self.max_no_answer,
            busy_backoff=self.busy_backoff,
            widen=tuple(
                Widen(w.after, w.min_level, tuple(w.add_queues)) for w in sorted(self.widen, key=lambda w: w.after)
            ),
            overflow=Overflow(self.overflow.after, OverflowTo(self.overflow.to),
                              (self.overflow.number if self.overflow.to == "number" else self.overflow.queue) or "")
            if self.overflow
            else None,
            max_length=self.max_length,
            when_empty=WhenEmpty(self.when_empty),
            hours=self.core_hours(),
            when_closed=WhenClosed(self.when_closed),
            sticky_days=self.sticky_days,
            sticky_wait=self.sticky_wait,
            music=self.music,
            announce=Announce(self.announce.first, self.announce.every, self.announce.position, self.announce.wait)
            if self.announce
            else None,
        )


class QueuesFile(_Strict):
    queues: list[QueueConfig] = Field(min_length=1)  # no hidden default queue

    @model_validator(mode="after")
    def _unique(self) -> QueuesFile:
        names: set[str] = set()
        numbers: dict[str, str] = {}
        for q in self.queues:
            if q.name in names:
                raise ValueError(f"queue {q.name} appears twice")
            names.add(q.name)
            for n in q.dialled():
                if n.number in numbers:
                    raise ValueError(f"number {n.number} is used by queues {numbers[n.number]} and {q.name}")
                numbers[n.number] = q.name
        for q in self.queues:
            refs = [name for w in q.widen for name in w.add_queues]
            if q.overflow and q.overflow.queue:
                refs.append(q.overflow.queue)
            for ref in refs:
                if ref not in names:
                    known = ", ".join(sorted(names))
                    raise ValueError(f"queue {q.name} refers to unknown queue {ref!r} (known: {known})")
            if (q.when_empty == "overflow" or q.max_length) and q.overflow is None:
                raise ValueError(f"queue {q.name}: when_empty: overflow and max_length need an `overflow:` rule")
        return self


class AgentConfig(_Strict):
    # The softphone logs in as agent<id>; digits only so that ids are safe in dialplan.
    id: str = Field(pattern=r"^[0-9]{2,12}$")
    name: str = ""
    password: str = Field(min_length=8, pattern=r"^[A-Za-z0-9_.~!@#%^*+=-]+$")
    queues: list[str] | None = None  # None: every queue
    skills: Skills = Field(default_factory=dict)
    wrapup: float | None = Field(None, ge=0, le=3600)  # overrides the queue's


class AgentsFile(_Strict):
    agents: list[AgentConfig]  # `agents: []` must be written out: an empty file is a mistake

    @model_validator(mode="after")
    def _unique(self) -> AgentsFile:
        seen: set[str] = set()
        for agent in self.agents:
            if agent.id in seen:
                raise ValueError(f"agent id {agent.id} appears twice")
            seen.add(agent.id)
        return self


@dataclass(frozen=True)
class Settings:
    engine: EngineFile
    queues: list[QueueConfig]
    agents: list[AgentConfig]
    calendar: CalendarFile = field(default_factory=CalendarFile)
    tickets: TicketsFile = field(default_factory=TicketsFile)
    ivr: IvrConfig | None = None  # ivr.yaml: the flows and the IVR settings (None: built in code, no IVR)
    # Accepted but unsafe off loopback (default secrets), as "file:line: text".
    warnings: tuple[str, ...] = ()
    # The files the config folder did not have, taken from the embedded defaults.
    from_defaults: tuple[str, ...] = ()

    @property
    def queue(self) -> QueueConfig:
        return self.queues[0]

    def core_queues(self) -> tuple[QueueSettings, ...]:
        return tuple(q.to_core() for q in self.queues)

    def profiles(self) -> tuple[AgentProfile, ...]:
        every = frozenset(q.name for q in self.queues)
        return tuple(
            AgentProfile(
                agent_id=a.id,
                queues=frozenset(a.queues) if a.queues is not None else every,
                skills=tuple(sorted(a.skills.items())),
                wrapup=a.wrapup,
            )
            for a in self.agents
        )
