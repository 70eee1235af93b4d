"""JSON logs (structlog) with call_id / agent_id on every line about a call.

Every line on stderr is one JSON object, whoever logs it: structlog, or a library logging
through the standard library (aiohttp's request errors, asyncio, alembic), and exceptions
are a structured field, never a multi-line traceback. Each line is written with a single
write() that includes its newline, so a process killed mid-log never leaves a line without
its end for the next start's first line to be glued to.
"""

from __future__ import annotations

import logging
import sys
import threading
from types import TracebackType

import structlog
from structlog.typing import Processor

_OURS = "_hotline_handler"  # marks the root handler setup() installs, so a second call replaces it


def setup(level: str = "info", json: bool = True) -> None:
    out = sys.stderr
    lvl = getattr(logging, level.upper(), logging.INFO)
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    # The console renderer prints tracebacks itself; JSON gets them as a list of frames. Never
    # with the frames' local variables: they hold the control token, the AMI secret, agents'
    # passwords (the settings) and callers' numbers (a Call), which a log must not.
    frames = structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
    tail: list[Processor] = (
        [structlog.processors.ExceptionRenderer(frames), structlog.processors.JSONRenderer(ensure_ascii=False)]
        if json else [structlog.dev.ConsoleRenderer(exception_formatter=structlog.dev.plain_traceback)]
    )
    structlog.configure(
        processors=[*shared, *tail],
        wrapper_class=structlog.make_filtering_bound_logger(lvl),
        # WriteLogger writes message + "\n" in one call; PrintLogger's print() may use two.
        logger_factory=structlog.WriteLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )
    # StreamHandler also writes record + "\n" in one call.
    handler = logging.StreamHandler(out)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *tail],
    ))
    handler.addFilter(_BadRequests())
    setattr(handler, _OURS, True)
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _OURS, False)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(lvl)
    # Alembic narrates every migration step at INFO; keep what matters.
    logging.getLogger("alembic").setLevel(max(lvl, logging.WARNING))
    logging.captureWarnings(True)  # Python's warnings are two plain lines otherwise
    if json:
        sys.excepthook = _log_uncaught
        threading.excepthook = _log_uncaught_in_thread


class Throttle:
    """At most one line per kind every `every` seconds, and how many were left out since:
    a flood of the same error must not fill the disk."""

    def __init__(self, every: float = 10.0) -> None:
        self.every = every
        self._last: dict[str, tuple[float, int]] = {}  # kind -> (when logged, left out since)

    def allow(self, kind: str, now: float) -> int | None:
        """None: leave this one out; else log it, saying how many were left out before it."""
        since, left_out = self._last.get(kind, (float("-inf"), 0))
        if now - since < self.every:
            self._last[kind] = (since, left_out + 1)
            return None
        self._last[kind] = (now, 0)
        return left_out


class _BadRequests(logging.Filter):
    """aiohttp logs a request it could not parse as an error with the exception, whose text
    quotes the offending line (an oversized `Authorization: Bearer <token>` header puts the
    control token in the log). Such a line becomes one warning naming the kind of error only,
    at most one every 10 s, with how many were left out: a client sending junk cannot flood
    the log."""

    def __init__(self) -> None:
        super().__init__()
        self._throttle = Throttle()

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if record.name != "aiohttp.server" or exc is None or type(exc).__module__ != "aiohttp.http_exceptions":
            return True
        left_out = self._throttle.allow("bad_http_request", record.created)
        if left_out is None:
            return False
        record.msg = f"bad_http_request: {type(exc).__name__}, refused; {left_out} more left out since the last"
        record.args = ()
        record.exc_info = None
        record.exc_text = None
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def _log_uncaught(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, exc, tb)
        return
    structlog.get_logger("hotline").critical("uncaught_exception", exc_info=(kind, exc, tb))


def _log_uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
    if args.exc_value is not None:
        structlog.get_logger("hotline").error("thread_died", thread=getattr(args.thread, "name", None),
                                              exc_info=(args.exc_type, args.exc_value, args.exc_traceback))


def mask_number(number: str, restricted: bool) -> str:
    """A caller who withheld their number is logged as ****1234 (last four digits only)."""
    if not restricted or not number:
        return number
    keep = number[-4:] if len(number) > 4 else ""
    return "*" * (len(number) - len(keep)) + keep
