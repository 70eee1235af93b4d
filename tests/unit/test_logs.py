"""The engine's log: one JSON object per line, each line one write(), whoever logs it."""

from __future__ import annotations

import json
import logging
import sys
import threading
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from cti import logs


class Writes:
    """A stream that remembers every write() call."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def write(self, text: str) -> int:
        self.calls.append(text)
        return len(text)

    def flush(self) -> None:
        pass

    def getvalue(self) -> str:
        return "".join(self.calls)

    def lines(self) -> list[dict[str, Any]]:
        text = self.getvalue()
        assert text.endswith("\n")
        return [json.loads(line) for line in text.splitlines()]


@pytest.fixture
def out(monkeypatch: pytest.MonkeyPatch) -> Iterator[Writes]:
    """What `hotline run` writes to stderr after logs.setup()."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    hooks = sys.excepthook, threading.excepthook
    stream = Writes()
    monkeypatch.setattr(sys, "stderr", stream)
    logs.setup("info", json=True)
    yield stream
    root.handlers[:] = handlers
    root.setLevel(level)
    sys.excepthook, threading.excepthook = hooks
    logging.captureWarnings(False)
    structlog.reset_defaults()


def test_a_structlog_line_is_one_write_with_its_newline(out: Writes) -> None:
    structlog.get_logger("hotline.engine").info("reloaded", queues=2, name="王小明\n(市民)")
    (call,) = out.calls
    assert call.endswith("}\n") and call.count("\n") == 1
    line = json.loads(call)
    assert (line["event"], line["queues"], line["name"], line["level"]) == ("reloaded", 2, "王小明\n(市民)", "info")


def test_a_stdlib_exception_is_one_json_line_with_the_exception_inside(out: Writes) -> None:
    try:
        raise ValueError("Got more than 8190 bytes when reading Status line is too long")
    except ValueError:
        logging.getLogger("aiohttp.server").exception("Error handling request")
    (call,) = out.calls
    assert call.count("\n") == 1
    line = json.loads(call)
    assert (line["event"], line["level"], line["logger"]) == ("Error handling request", "error", "aiohttp.server")
    (exc,) = line["exception"]
    assert exc["exc_type"] == "ValueError" and "8190 bytes" in exc["exc_value"]
    assert exc["frames"][-1]["name"] == "test_a_stdlib_exception_is_one_json_line_with_the_exception_inside"


def test_stdlib_messages_below_the_level_are_dropped_and_arguments_filled_in(out: Writes) -> None:
    logging.getLogger("asyncio").debug("poll took %.3f ms", 1.5)
    logging.getLogger("asyncio").warning("Executing %s took %.3f seconds", "<Task>", 0.25)
    (line,) = out.lines()
    assert line["event"] == "Executing <Task> took 0.250 seconds" and line["level"] == "warning"


def test_alembic_narration_stays_out_at_info(out: Writes) -> None:
    logging.getLogger("alembic.runtime.migration").info("Running upgrade  -> 0001")
    assert out.calls == []


def test_a_python_warning_is_one_json_line(out: Writes) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("coroutine 'x' was never awaited", RuntimeWarning, stacklevel=1)
    (line,) = out.lines()
    assert line["logger"] == "py.warnings" and "never awaited" in line["event"]


def test_an_uncaught_exception_is_one_json_line(out: Writes) -> None:
    try:
        raise OSError(13, "Permission denied")
    except OSError:
        sys.excepthook(*sys.exc_info())  # type: ignore[arg-type]
    (call,) = out.calls
    line = json.loads(call)
    assert (line["event"], line["level"]) == ("uncaught_exception", "critical")
    assert line["exception"][0]["exc_type"] == "PermissionError"


def test_calling_setup_again_does_not_double_the_lines(out: Writes, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stderr", out)  # pytest puts its own back between the fixture and the test
    logs.setup("info", json=True)
    logging.getLogger("aiohttp.server").error("once")
    assert len(out.calls) == 1


async def test_a_withheld_number_stays_masked_in_the_rendered_log_even_when_decide_fails(
    out: Writes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What reaches stderr, rendered: the masked number in the call's own lines, and nothing
    of it in a failure's traceback (frames are logged without their local variables, which
    would hold the Call with its number, the settings with the secrets)."""
    from prometheus_client import CollectorRegistry

    import acd.lifecycle
    from acd.events import AgentProfile, CallerHungUp, CallerJoined
    from acd.model import QueueSettings
    from cti.dispatcher import CoreEvent, Dispatcher
    from metrics.exporter import Metrics

    class Sink:
        def put(self, rec: object) -> None:
            pass

    d = Dispatcher((QueueSettings(),), (AgentProfile("1001", frozenset({"main"})),), Sink(),
                   Metrics(CollectorRegistry()))
    d.state.routing = True
    d.handle(CoreEvent(CallerJoined("c1", "chan-c1", "main", caller_num="13812345678", caller_name="张三丰",
                                    restricted=True)))

    def broken(*_: object) -> None:
        raise RuntimeError("injected")

    monkeypatch.setattr(acd.lifecycle, "release", broken)
    d.handle(CoreEvent(CallerHungUp("c1", "chan-c1")))
    d.cancel_timers()
    text = "".join(out.calls)
    assert "decide_failed" in text and "*******5678" in text
    assert "13812345678" not in text and "张三丰" not in text
