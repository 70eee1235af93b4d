"""JSON logs (structlog) with call_id / agent_id on every line about a call."""

from __future__ import annotations

import logging
import sys

import structlog


def setup(level: str = "info", json: bool = True) -> None:
    lvl = getattr(logging, level.upper(), logging.INFO)
    logging.basicConfig(level=lvl, stream=sys.stderr, format="%(message)s")
    # Alembic narrates every migration step at INFO in plain text; keep the log JSON-only.
    logging.getLogger("alembic").setLevel(max(lvl, logging.WARNING))
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer(ensure_ascii=False) if json else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.dict_tracebacks,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(lvl),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )


def mask_number(number: str, restricted: bool) -> str:
    """A caller who withheld their number is logged as ****1234 (last four digits only)."""
    if not restricted or not number:
        return number
    keep = number[-4:] if len(number) > 4 else ""
    return "*" * (len(number) - len(keep)) + keep
