"""ivr.yaml as the engine holds it: the flows, the IVR settings, and where they came from."""

from __future__ import annotations

from dataclasses import dataclass

from ivr.flow import Flows
from ivr.flows_yaml import IvrSettings


@dataclass(frozen=True)
class IvrConfig:
    flows: Flows
    settings: IvrSettings
    file: str  # the ivr.yaml read (the embedded default's path when the folder has none)
