"""acd/ and the ticket platform's pure cores import no I/O library and read no clock, checked
on the syntax tree.

`datetime` stays allowed for date arithmetic (opening hours, holidays), so its clock
readers are refused by name, whatever they are imported as: `datetime.now()`,
`datetime.utcnow()`, `datetime.today()`, `date.today()`. The `time` module (and every other
module that could read a clock, the network or the disk) is outside the allowed list.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import acd

ALLOWED = {"__future__", "dataclasses", "enum", "collections", "typing", "bisect", "heapq", "datetime", "acd"}
# Attributes that read the clock on datetime's classes; nothing in acd/ has another use for them.
CLOCK_READERS = {"now", "utcnow", "today"}
ACD = Path(acd.__file__).resolve().parent  # the core under test
TICKETS = ACD.parent / "tickets"
# The ticket lifecycle, its deadlines and who may do what: pure like acd/, and they may import
# each other (a module outside this set, like tickets.db, is I/O).
PURE_TICKETS = ("lifecycle", "deadlines", "permissions")
CORES = sorted(ACD.glob("*.py")) + [TICKETS / f"{name}.py" for name in PURE_TICKETS]


def _pure_ticket(name: str) -> bool:
    return name in {f"tickets.{n}" for n in PURE_TICKETS}


def impurities(source: str) -> list[str]:
    """What in this module reads a clock or imports a module outside the allowed list."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
            found += [f"imports {a.name} from {node.module}" for a in node.names if a.name in CLOCK_READERS]
        found += [f"imports {name}" for name in names if name.split(".")[0] not in ALLOWED and not _pure_ticket(name)]
        if isinstance(node, ast.Attribute) and node.attr in CLOCK_READERS:
            found.append(f"line {node.lineno}: reads the clock ({ast.unparse(node)})")
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("__import__", "eval",
                                                                                              "exec"):
            found.append(f"line {node.lineno}: {node.func.id}()")
    return found


@pytest.mark.parametrize("path", CORES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_the_cores_import_only_pure_modules_and_read_no_clock(path: Path) -> None:
    assert impurities(path.read_text(encoding="utf-8")) == []


@pytest.mark.parametrize(
    "source",
    [
        "from datetime import datetime\nx = datetime.now()",
        "from datetime import datetime, timezone\nx = datetime.now(timezone.utc)",
        "import datetime\nx = datetime.datetime.utcnow()",
        "from datetime import date as d\nx = d.today()",
        "from datetime import datetime as dt\nf = dt.today",
        "import time",
        "import time as t",
        "from time import monotonic",
        "import os.path",
        "import asyncio",
        "x = __import__('time').time()",
        "import tickets.db",
        "from tickets.store import Outbox",
    ],
)
def test_the_check_finds_every_way_of_reading_a_clock(source: str) -> None:
    assert impurities(source)


def test_the_check_lets_date_arithmetic_through() -> None:
    source = ("from datetime import date, datetime, time, timedelta, timezone\n"
              "x = datetime.fromtimestamp(now, timezone(timedelta(hours=8))).time() < time.max\n")
    assert impurities(source) == []
