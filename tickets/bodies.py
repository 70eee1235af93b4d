"""The ticket API's request bodies: pydantic models that check them (422 names the field) and
that the OpenAPI document is built from, so the two cannot drift apart."""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class LoginBody(_Body):
    # A password is taken exactly as typed: spaces around it are part of it.
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)

    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


Category = Literal["咨询", "求助", "投诉", "举报", "建议", "表扬", "其他"]
Urgency = Literal["normal", "urgent", "critical"]
Channel = Literal["phone", "web", "wechat", "mailbox", "provincial"]
Rating = Literal["非常满意", "满意", "基本满意", "不满意", "非常不满意"]


class TicketForm(_Body):
    caller_name: str | None = Field(None, max_length=128)
    caller_num: str | None = Field(None, max_length=64, pattern=r"^[0-9+*#]*$")
    caller_restricted: bool | None = None
    category: Category | None = None
    urgency: Urgency | None = None
    district: str | None = Field(None, max_length=32)
    street: str | None = Field(None, max_length=64)
    address: str | None = Field(None, max_length=256)
    content: str | None = Field(None, max_length=20_000)


class CreateBody(TicketForm):
    channel: Channel = "phone"
    call_id: str | None = Field(None, max_length=64)
    recording: str | None = Field(None, max_length=512)
    note: str = Field("", max_length=2000)


class ActionBody(TicketForm):
    """One body for every action; each action reads the fields it needs (the service names a missing one)."""

    note: str = Field("", max_length=2000)
    version: int | None = Field(None, ge=0, description="the version you read: a change since then is refused (409)")
    department: str | None = Field(None, max_length=32, description="dispatch, designate: the department's code")
    reply: str | None = Field(None, max_length=20_000)
    rating: Rating | None = None
    result: str | None = Field(None, max_length=2000)
    article_id: int | None = Field(None, ge=1, le=2**31 - 1)
    target: str | None = Field(None, max_length=16, description="attach: the existing ticket's number")
    original: str | None = Field(None, max_length=16, description="mark_duplicate: the original's number")


class LinkCallBody(_Body):
    call_id: str = Field(min_length=1, max_length=64)
    recording: str | None = Field(None, max_length=512)


class SearchBody(_Body):
    number: str | None = Field(None, max_length=16)
    phone: str | None = Field(None, max_length=64)
    category: str | None = Field(None, max_length=8)
    department: str | None = Field(None, max_length=32)
    state: str | None = Field(None, max_length=24)
    created_from: AwareDatetime | None = Field(None, description="with its UTC offset, e.g. 2026-11-01T00:00:00+08:00")
    created_to: AwareDatetime | None = None
    text: str | None = Field(None, max_length=200)
    agent_id: str | None = Field(None, max_length=16)
    page: int = Field(1, ge=1, le=100_000)
    per_page: int = Field(20, ge=1, le=200)


class CallerBody(_Body):
    number: str = Field(min_length=1, max_length=64)


class KbSearchBody(_Body):
    text: str = Field(min_length=1, max_length=200)
    category: str | None = Field(None, max_length=8)
    include_expired: bool = False
    page: int = Field(1, ge=1, le=10_000)
    per_page: int = Field(20, ge=1, le=100)


class ArticleBody(_Body):
    title: str = Field(min_length=1, max_length=200)
    body: str = Field(min_length=1, max_length=100_000)
    category: str = Field("", max_length=8)
    tags: list[str] = Field(default_factory=list, max_length=50)
    valid_from: date | None = None
    valid_to: date | None = None


class ArticlePatch(_Body):
    title: str | None = Field(None, min_length=1, max_length=200)
    body: str | None = Field(None, min_length=1, max_length=100_000)
    category: str | None = Field(None, max_length=8)
    tags: list[str] | None = Field(None, max_length=50)
    valid_from: date | None = None
    valid_to: date | None = None
