"""Typed settings. The YAML an admin edits is validated against these models."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from acd.model import QueueSettings


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AmiSection(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(5038, ge=1, le=65535)
    username: str = Field("hotline", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    secret: str = Field("change-me-hotline", min_length=8)
    action_timeout: float = Field(5.0, gt=0, le=60)
    ping_interval: float = Field(5.0, gt=0, le=300)
    ping_timeout: float = Field(5.0, gt=0, le=60)


class HttpSection(_Strict):
    listen: str = "127.0.0.1"
    port: int = Field(9108, ge=0, le=65535)


class StoreSection(_Strict):
    url: str = "sqlite:////var/lib/hotline/hotline.db"
    spool: Path = Path("/var/lib/hotline/spool")


class RecordingsSection(_Strict):
    dir: Path = Path("/var/lib/hotline/recordings")

    @field_validator("dir")
    @classmethod
    def _absolute(cls, v: Path) -> Path:
        if not v.is_absolute():
            raise ValueError("must be an absolute path (Asterisk writes there)")
        return v


class SipSection(_Strict):
    bind: str = "127.0.0.1"
    port: int = Field(5060, ge=1, le=65535)
    # The carrier's address: INVITEs from here are citizens' calls.
    trunk_address: str = "127.0.0.2"
    rtp_start: int = Field(10000, ge=1024, le=65535)
    rtp_end: int = Field(20000, ge=1024, le=65535)


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
    store: StoreSection = StoreSection()
    recordings: RecordingsSection = RecordingsSection()
    sip: SipSection = SipSection()
    fallback: FallbackSection = FallbackSection()
    log: LogSection = LogSection()


class QueueConfig(_Strict):
    name: str = Field("main", pattern=r"^[a-z][a-z0-9_]{0,31}$")
    number: str = Field("12345", pattern=r"^[0-9]{3,15}$")
    ring_timeout: float = Field(15, gt=0, le=300)
    wrapup: float = Field(5, ge=0, le=3600)
    max_wait: float = Field(300, gt=0, le=86400)
    short_abandon: float = Field(5, ge=0, le=60)
    service_level: float = Field(15, gt=0, le=600)

    def to_core(self) -> QueueSettings:
        return QueueSettings(
            name=self.name,
            ring_timeout=self.ring_timeout,
            wrapup=self.wrapup,
            max_wait=self.max_wait,
            short_abandon=self.short_abandon,
            service_level=self.service_level,
        )


class QueuesFile(_Strict):
    queues: list[QueueConfig] = Field(default_factory=lambda: [QueueConfig()])

    @model_validator(mode="after")
    def _one_queue(self) -> QueuesFile:
        if len(self.queues) != 1:
            raise ValueError(
                f"exactly one queue is supported so far (found {len(self.queues)}); "
                "multi-queue routing is tracked in issue 3"
            )
        return self


class AgentConfig(_Strict):
    # The softphone logs in as agent<id>; digits only so that ids are safe in dialplan.
    id: str = Field(pattern=r"^[0-9]{2,12}$")
    name: str = ""
    password: str = Field(min_length=8, pattern=r"^[A-Za-z0-9_.~!@#%^*+=-]+$")


class AgentsFile(_Strict):
    agents: list[AgentConfig] = Field(default_factory=list)

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

    @property
    def queue(self) -> QueueConfig:
        return self.queues[0]
