"""What the integration tests share; the parts benchmarks need too live in testbed."""

from __future__ import annotations

from pathlib import Path

import yaml

from testbed.configs import AGENT_IDS, RECORDINGS, password, write_config
from testbed.engine_thread import RunningEngine

__all__ = ["AGENT_IDS", "RECORDINGS", "RunningEngine", "password", "with_trunk_port", "write_config"]


def with_trunk_port(directory: Path, port: int) -> Path:
    """The configuration in `directory` with the carrier trunk on `port` (a SIPp UAS there plays
    the outside number: a department's phone, a citizen called back, a forward's target)."""
    engine_yaml = yaml.safe_load((directory / "engine.yaml").read_text(encoding="utf-8"))
    engine_yaml.setdefault("sip", {})["trunk_port"] = port
    (directory / "engine.yaml").write_text(yaml.safe_dump(engine_yaml), encoding="utf-8")
    return directory
