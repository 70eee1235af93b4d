"""tickets.yaml: the ticket platform's (工单) deadlines, returns, places, log-in and push settings.

Every key is optional; left out, it takes the value the embedded default file writes out
(config/defaults/tickets.yaml, which a test holds equal to the defaults here).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    field_validator,
    model_validator,
)

from tickets.deadlines import ANY, Limits, Rule, RuleTable, Span

# 12345 request types (DB12/T 1438-2025 §3.1) and 其他 for what fits none.
CATEGORIES = ("咨询", "求助", "投诉", "举报", "建议", "表扬", "其他")
# normal 一般; urgent 紧急 (e.g. water, power, gas, heating cut off); critical 特急 (risk to life or property).
URGENCIES = ("normal", "urgent", "critical")

Loc = tuple[str | int, ...]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _span(value: object) -> Span:
    if isinstance(value, Span):
        return value
    if not isinstance(value, str):  # e.g. `accept: 15`: minutes? hours?
        raise ValueError(f"{value!r} has no unit; write e.g. 15m, 8h, 3d or 13wd")
    return Span.parse(value)


def _natural_span(value: object) -> Span:
    span = _span(value)
    if not span.natural or span.amount == 0:
        raise ValueError(f"{span}: write a length of natural time above 0 (minutes, hours or days: 15m, 8h, 1d); "
                         "working days are for ticket deadlines only")
    return span


# Read from and written back as text ("15m"), so a dump of the settings reads like the file.
SpanText = Annotated[Span, PlainValidator(_span), PlainSerializer(str, return_type=str)]
NaturalSpan = Annotated[Span, PlainValidator(_natural_span), PlainSerializer(str, return_type=str)]


def _place(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a place name; write the name as text")
    if not any(ch.isalpha() for ch in value) or len(value) > 40 or not value.isprintable() or value != value.strip():
        raise ValueError(f"{value!r} is not a place name: write its name (汉字 or letters, at most 40 characters, "
                         "one line, no spaces around it)")
    return value


PlaceName = Annotated[str, PlainValidator(_place)]


class DeadlineRule(_Strict):
    category: str
    urgency: str
    accept: SpanText
    handle: SpanText
    extensions: int = Field(0, ge=0, le=10)
    extension: SpanText = Span(0, "working_days")

    @field_validator("category")
    @classmethod
    def _category(cls, v: str) -> str:
        if v != ANY and v not in CATEGORIES:
            raise ValueError(f"unknown category {v!r}; use one of {' '.join(CATEGORIES)}, or \"*\" for any")
        return v

    @field_validator("urgency")
    @classmethod
    def _urgency(cls, v: str) -> str:
        if v != ANY and v not in URGENCIES:
            raise ValueError(f"unknown urgency {v!r}; use one of {' '.join(URGENCIES)}, or \"*\" for any")
        return v

    @model_validator(mode="after")
    def _limits(self) -> DeadlineRule:
        self.limits()  # accept and handle above 0; an extension that adds something if any are allowed
        return self

    def limits(self) -> Limits:
        return Limits(self.accept, self.handle, self.extensions, self.extension)


def _rule(category: str, urgency: str, accept: str, handle: str, extensions: int = 0,
          extension: str = "0wd") -> DeadlineRule:
    return DeadlineRule.model_validate({"category": category, "urgency": urgency, "accept": accept, "handle": handle,
                                        "extensions": extensions, "extension": extension})


def default_deadlines() -> list[DeadlineRule]:
    return [
        _rule("*", "critical", "15m", "24h"),
        _rule("*", "urgent", "30m", "72h", 1, "24h"),
        _rule("咨询", "normal", "1wd", "3wd", 1, "3wd"),
        _rule("求助", "normal", "1wd", "3wd", 1, "3wd"),
        _rule("投诉", "normal", "1wd", "13wd", 1, "10wd"),
        _rule("举报", "normal", "1wd", "13wd", 1, "10wd"),
        _rule("建议", "normal", "1wd", "13wd", 1, "10wd"),
        _rule("*", "*", "1wd", "5wd", 1, "5wd"),
    ]


# 咸阳市: its 14 districts, county-level cities and counties; streets are the admin's to add.
XIANYANG = ("秦都区", "渭城区", "杨陵区", "兴平市", "彬州市", "三原县", "泾阳县", "乾县", "礼泉县", "永寿县",
            "长武县", "旬邑县", "淳化县", "武功县")


def default_locations() -> dict[str, list[str]]:
    return {district: [] for district in XIANYANG}


class AuthSection(_Strict):
    token_ttl: NaturalSpan = Span(8, "hours")
    max_failures: int = Field(5, ge=1, le=100)
    failure_window: NaturalSpan = Span(15, "minutes")
    lockout: NaturalSpan = Span(15, "minutes")


class PushSection(_Strict):
    url: str = ""  # "" = off
    timeout_seconds: float = Field(10, gt=0, le=300)
    max_backoff_seconds: float = Field(300, ge=1, le=86400)

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not v:
            return v
        parts = urlsplit(v)
        if parts.scheme not in ("http", "https") or not parts.hostname or not v.isprintable() or " " in v:
            raise ValueError(f"{v[:80]!r} is not an http(s) URL; write the receiver's address, e.g. "
                             "https://12345.example.gov.cn/receive, or \"\" to push nothing")
        return v


class HttpSection(_Strict):
    """The ticket API's own listener: per-user sign-in, unlike the control API's one token."""

    enabled: bool = True  # false: `hotline run` leaves the ticket platform to `hotline ticket serve`
    listen: str = "127.0.0.1"
    port: int = Field(9110, ge=0, le=65535)  # 0: any free port (tests)

    @field_validator("listen")
    @classmethod
    def _address(cls, v: str) -> str:
        try:
            ipaddress.ip_address(v)
        except ValueError:
            raise ValueError(f"{v[:60]!r} is not an IP address; write e.g. 127.0.0.1 or 0.0.0.0") from None
        return v


class TicketsFile(_Strict):
    http: HttpSection = HttpSection()
    deadlines: list[DeadlineRule] = Field(default_factory=default_deadlines)
    max_returns: int = Field(3, ge=1, le=20)
    soon_due: NaturalSpan = Span(4, "hours")
    locations: dict[PlaceName, list[PlaceName]] = Field(default_factory=default_locations)
    auth: AuthSection = AuthSection()
    push: PushSection = PushSection()
    max_body_bytes: int = Field(65536, ge=1024, le=16 * 1024 * 1024)

    @field_validator("locations", mode="before")
    @classmethod
    def _no_streets(cls, v: Any) -> Any:
        # `秦都区:` with nothing after it reads as null: no streets, like `[]`.
        return {k: [] if s is None else s for k, s in v.items()} if isinstance(v, dict) else v

    def rule_table(self) -> RuleTable:
        return RuleTable(tuple(Rule(r.category, r.urgency, r.limits()) for r in self.deadlines))


def review(tickets: TicketsFile, line_of: Callable[[Loc], int]) -> list[tuple[Loc, str]]:
    """What the models cannot see item by item, as (where, message): a rule written twice, no
    catch-all rule, a street listed twice in one district."""
    found: list[tuple[Loc, str]] = []
    first: dict[tuple[str, str], int] = {}
    for i, rule in enumerate(tickets.deadlines):
        key = (rule.category, rule.urgency)
        if key in first:
            found.append((("deadlines", i), f"deadlines: a second rule for category {rule.category}, urgency "
                                            f"{rule.urgency} (the first is at line {line_of(('deadlines', first[key]))}"
                                            "); keep one"))
        first.setdefault(key, i)
    if (ANY, ANY) not in first:
        found.append((("deadlines",), 'deadlines: no catch-all rule; add {category: "*", urgency: "*", accept: 1wd, '
                                      "handle: 5wd, extensions: 1, extension: 5wd} (your limits) so that every "
                                      "ticket has a deadline"))
    for district, streets in tickets.locations.items():
        seen: set[str] = set()
        for j, street in enumerate(streets):
            if street in seen:
                found.append((("locations", district, j), f"locations.{district}: {street} is listed twice; keep one"))
            seen.add(street)
    return found
