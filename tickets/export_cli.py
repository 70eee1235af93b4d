"""`hotline export` and `hotline import`: the whole store in open formats, and back (tickets.export).

Progress goes to stderr, the summary to stdout. The database is imported only when a command
runs, so that `hotline --help` stays instant.
"""
# The lazy imports are the point (as in cti/cli.py): the parser is built for every `hotline` call.
# ruff: noqa: PLC0415

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy import Engine

EXIT_FAILED = 1
EXIT_REFUSED = 2
EXIT_CANCELLED = 130  # as a shell reports Ctrl-C


@contextmanager
def _engine(args: argparse.Namespace) -> Iterator[Engine]:
    """The configured store, migrated first."""
    from tickets.admin_cli import configured_engine
    from tickets.export import Refused

    with configured_engine(args, Refused) as engine:
        yield engine


def _run(args: argparse.Namespace, work: Callable[[Engine, Callable[[str, int], None]], dict[str, int]],
         heading: str, done: Callable[[dict[str, int]], list[str]]) -> int:
    from tickets.export import Refused

    command = f"hotline {args.command}"

    def progress(table: str, rows: int) -> None:
        print(f"{command}: {table}: {rows} rows", file=sys.stderr, flush=True)

    try:
        with _engine(args) as engine:
            counts = work(engine, progress)
    except Refused as exc:
        print(f"{command}: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    except OSError as exc:
        where = f" {exc.filename}" if exc.filename else ""
        print(f"{command}: cannot read or write{where}: {exc.strerror or exc}; nothing was kept", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print(f"\n{command}: cancelled; nothing was kept", file=sys.stderr)
        return EXIT_CANCELLED
    print(heading)
    width = max(map(len, counts))
    for table, rows in counts.items():
        print(f"  {table:<{width}}  {rows:>9}")
    for line in done(counts):
        print(line)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from tickets.export import export

    out = Path(args.out)

    def done(counts: dict[str, int]) -> list[str]:
        return [f"{sum(counts.values())} rows of {len(counts)} tables, each as .csv and .jsonl; manifest.json "
                "holds every file's SHA-256.",
                "Users are exported without their password hashes. The files hold citizens' data: keep the folder "
                "private."]

    return _run(args, lambda engine, progress: export(engine, out, progress=progress), f"exported to {out}:", done)


def cmd_import(args: argparse.Namespace) -> int:
    from tickets.export import import_

    source = Path(args.source)

    def done(counts: dict[str, int]) -> list[str]:
        lines = [f"{sum(counts.values())} rows of {len(counts)} tables imported, ids kept."]
        if counts.get("users"):
            lines.append(f"The {counts['users']} users are disabled and have no usable password: give each a "
                         "password, then enable it: hotline user passwd NAME; hotline user enable NAME")
        return lines

    return _run(args, lambda engine, progress: import_(engine, source, progress=progress),
                f"imported from {source}:", done)


STORE = "Works on the store of the configuration (store.url of engine.yaml), migrated first. "
EXITS = ("Exit 0 when done; 1 when a file cannot be read or written; 2 when refused, when the configuration has "
         "errors or when the store cannot be opened (one line on stderr says why and what to do); 130 when "
         "interrupted. Unless it exits 0 nothing is kept. Progress goes to stderr every 10,000 rows, the row "
         "counts to stdout.")
TABLES = ("call_records, departments, users, kb_articles, ticket_counters, tickets, ticket_calls, ticket_events "
          "(the history), push_outbox")


def add_commands(sub: argparse._SubParsersAction,  # type: ignore[type-arg]
                 with_config: Callable[[argparse.ArgumentParser], None]) -> None:
    """Register `hotline export` and `hotline import` on the `hotline` parser."""
    ex = sub.add_parser(
        "export", help="write every ticket, call record, user, department and 知识库 article to a new folder "
        "as CSV and JSON Lines, with a manifest of SHA-256 sums",
        description=f"Write the tables {TABLES} to a new folder, each twice: NAME.jsonl (one JSON object per row; "
        "times ISO 8601 in UTC, booleans true/false, NULL null; `hotline import` reads these) and NAME.csv (UTF-8 "
        "with a byte-order mark so that Excel shows Chinese, RFC 4180, a header row). Then manifest.json: format "
        "version, time, the store's schema revision, rows per table, the SHA-256 and size of every file. "
        "Users are written WITHOUT their password hashes; sign-in tokens and failed sign-ins are not exported; "
        "recordings are paths, their audio files are not in the store. Everything is read in one consistent "
        "snapshot, streamed; on SQLite, writers wait until the export ends (the engine spools call records "
        "meanwhile). The folder is created 0750 and its files 0640: they hold citizens' names, numbers and words. "
        "An existing folder must be empty; an export that fails leaves nothing behind. " + STORE + EXITS)
    ex.add_argument("--out", required=True, metavar="DIR", help="the new (or empty) folder to write")
    with_config(ex)
    ex.set_defaults(func=cmd_export)

    im = sub.add_parser(
        "import", help="read a `hotline export` folder into an empty store (a new center, SQLite to PostgreSQL)",
        description="Read a folder written by `hotline export` into a store that holds no rows of its tables. "
        "First every file is checked against manifest.json: a file changed or cut short is refused by name. "
        "Then the .jsonl files are inserted in one transaction, keeping every id; on PostgreSQL each id "
        "sequence is moved past the largest id, so new rows do not collide. A bad line is refused with its file "
        "and line number, and nothing is imported. Every user is created DISABLED with an unusable password "
        "(the export has no password hashes): give each a password with `hotline user passwd NAME`, then "
        "`hotline user enable NAME`. " + STORE + EXITS)
    im.add_argument("--from", required=True, dest="source", metavar="DIR", help="the folder `hotline export` wrote")
    with_config(im)
    im.set_defaults(func=cmd_import)
