"""Integration fixtures: the sandbox Asterisk (started fresh, once, by this session), a fresh
engine per test, and cleanup that leaves no registered agent, call or SIPp behind.

The session claims the sandbox for its whole run and refuses to start while another run
holds it or while an Asterisk it did not start is running: reinstalling configuration into
that Asterisk, or hanging up its channels, would break whoever started it."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from config.loader import load
from testbed import sipp
from testbed.sandbox import Sandbox, SandboxError
from tests.integration.harness import AGENT_IDS, RunningEngine, password, write_config

pytestmark = pytest.mark.integration


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "integration" in str(item.path):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    if os.geteuid() != 0:
        pytest.fail("integration tests need root (the Asterisk sandbox is a chroot): run `make test` as root")
    box = Sandbox()
    try:
        claim = box.claim("integration tests")
    except SandboxError as exc:
        refused = str(exc)
    else:
        refused = ""
    if refused:
        pytest.fail(f"integration tests cannot use the sandbox: {refused}", pytrace=False)
    try:
        box.start(load(write_config(tmp_path_factory.mktemp("sandbox-config"))))
        yield box
    finally:
        try:
            box.stop()
        finally:
            claim.release()


def channels(box: Sandbox) -> int:
    out = box.rx("core show channels count")
    for line in out.splitlines():
        if "active channel" in line:
            return int(line.split()[0])
    return 0


def unregister_all() -> None:
    sipp.register([(f"agent{a}", password(a)) for a in AGENT_IDS], contact_port=5999, expires=0)


@pytest.fixture
def clean(sandbox: Sandbox) -> Iterator[Sandbox]:
    """Start and end every test with no channels and no registered agent."""
    unregister_all()
    yield sandbox
    sipp.stop_all()
    sandbox.rx("channel request hangup all")
    deadline = time.monotonic() + 10
    while channels(sandbox) and time.monotonic() < deadline:
        time.sleep(0.2)
    unregister_all()


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    return write_config(tmp_path / "config")


@pytest.fixture
def engine(clean: Sandbox, config_dir: Path) -> Iterator[RunningEngine]:
    running = RunningEngine.from_dir(config_dir)
    running.wait_ready()
    yield running
    running.close()
