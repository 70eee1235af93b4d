"""What the integration tests share; the parts benchmarks need too live in testbed."""

from __future__ import annotations

from testbed.configs import AGENT_IDS, RECORDINGS, password, write_config
from testbed.engine_thread import RunningEngine

__all__ = ["AGENT_IDS", "RECORDINGS", "RunningEngine", "password", "write_config"]
