"""Export and import (tickets.export, `hotline export|import`): the city's data in open formats,
back into an empty store with every id, byte for byte the same when exported again, on SQLite,
on PostgreSQL and from one to the other."""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import os
import re
import stat
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, event, insert, select
from sqlalchemy.orm import Session

from cti.cli import main
from reports import periods, report, versions
from testbed.configs import write_config
from tests.pg import pg_database
from tests.tickets.helpers import FORM, PASSWORD, T0, seed, service
from tests.unit.store_helpers import record
from tickets import auth, kb
from tickets.db import MIGRATIONS, insert_record, migrate, open_engine, record_values
from tickets.export import PROGRESS_EVERY, TABLE_NAMES, Refused, export, import_
from tickets.lifecycle import Action
from tickets.models import CallRecordRow, TicketRow, UserRow

# Text a CSV or a line-oriented reader could trip over: a comma, quotes, a line break, a Unicode
# line separator, a character outside the BMP.
AWKWARD = '小区供暖不热，室温只有12度, "再不修就投诉"\n第二行\u2028第三行 🔥'






@contextlib.contextmanager
def migrated(url: str) -> Iterator[Engine]:
    engine = open_engine(url)
    migrate(engine)
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture
def empty(db: Engine, tmp_path: Path) -> Iterator[Engine]:
    """A second migrated store with no rows, on the same backend as `db`."""
    with contextlib.ExitStack() as stack:
        url = (f"sqlite:///{tmp_path / 'second.db'}" if db.dialect.name == "sqlite"
               else stack.enter_context(pg_database()))
        yield stack.enter_context(migrated(url))


def populate(db: Engine) -> None:
    """Some of everything: departments and users, call records, a 知识库 article, tickets through
    their lifecycle (with history, calls, counters and push events), a ticket attached to a
    later one (a reference to a higher id)."""
    who = seed(db)
    svc = service(db, push=True)
    with Session(db) as s, s.begin():
        article = kb.add_article(s, title="供暖不热怎么办", body="先查看阀门是否打开，再联系供热公司。",
                                 category="咨询", tags=["供暖", "热力"], valid_from=date(2026, 1, 1),
                                 valid_to=date(2027, 3, 15), author="admin", now=T0)
        article_id = article.id
    insert_record(db, record("1764122400.1", arrived=T0.timestamp() - 60, answered=T0.timestamp() - 50.125,
                             ended=T0.timestamp(), wait_seconds=0.1 + 0.2, caller_name=AWKWARD))
    insert_record(db, record("1764122400.2", answered=None, agent_id=None, recording=None, restricted=True,
                             talk_seconds=0.0))
    draft = svc.open_draft(call_id="1764122400.1", caller_num="13800000001", caller_name="", restricted=False,
                           agent_id="1001", recording="/var/spool/hotline/rec/1764122400.1.wav", now=T0)
    now = T0 + timedelta(minutes=1, microseconds=123_456)
    t = svc.create(who["agent1"], {**FORM, "content": AWKWARD}, now)
    for user, action, body in [
        ("agent1", Action.DISPATCH, {"department": "housing"}), ("zhujian", Action.ACCEPT, {}),
        ("zhujian", Action.REPLY, {"reply": "已维修管道"}), ("boss", Action.APPROVE_REPLY, {}),
        ("agent2", Action.FOLLOW_UP, {"rating": "满意", "result": "已恢复供暖"}), ("agent2", Action.CLOSE, {}),
    ]:
        now += timedelta(minutes=10)
        svc.act(who[user], t["number"], action, body, now)
    svc.act(who["agent1"], draft["number"], Action.ATTACH, {"target": t["number"]}, now)
    answered = svc.create(who["agent2"], {**FORM, "category": "咨询", "caller_num": ""}, now + timedelta(days=1))
    svc.act(who["agent2"], answered["number"], Action.ANSWER_DIRECTLY,
            {"reply": "请联系供热公司", "article_id": article_id}, now + timedelta(days=1))
    # A frozen month report and its restatement: the published figures belong to the authority too.
    month = periods.month(T0.year, T0.month)
    later = month.end_utc + timedelta(days=2)
    for reason in ("月度发布", "更正：补录 1 通"):
        versions.freeze(db, report.build(db, month, report.ReportOptions(topics=False), later), by="admin",
                        reason=reason, now=later)


def jsonl(folder: Path, table: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (folder / f"{table}.jsonl").read_bytes().splitlines()]


def assert_same_export(first: Path, second: Path) -> None:
    """Byte for byte the same files, but the users', which differ in `disabled` only (true for all)."""
    for table in TABLE_NAMES:
        if table == "users":
            continue
        for ext in ("jsonl", "csv"):
            assert (first / f"{table}.{ext}").read_bytes() == (second / f"{table}.{ext}").read_bytes(), table
    assert jsonl(second, "users") == [{**u, "disabled": True} for u in jsonl(first, "users")]
    one, two = (json.loads((f / "manifest.json").read_text()) for f in (first, second))
    assert {t: v["rows"] for t, v in one["tables"].items()} == {t: v["rows"] for t, v in two["tables"].items()}


def test_an_export_imported_into_an_empty_store_exports_the_same_bytes(db: Engine, empty: Engine,
                                                                        tmp_path: Path) -> None:
    populate(db)
    counts = export(db, tmp_path / "first")
    assert all(counts[t] > 0 for t in TABLE_NAMES), counts
    assert import_(empty, tmp_path / "first") == counts
    assert export(empty, tmp_path / "second") == counts
    assert_same_export(tmp_path / "first", tmp_path / "second")
    tickets = {t["id"]: t for t in jsonl(tmp_path / "first", "tickets")}
    assert any(t["original_id"] is not None and t["original_id"] > i for i, t in tickets.items())  # was deferred

    # New rows after an import take ids past the imported ones (PostgreSQL: the sequences were moved on).
    who = seed_more(empty)
    created = service(empty).create(who, FORM, T0 + timedelta(days=2))
    assert created["id"] == max(tickets) + 1


def seed_more(db: Engine) -> auth.Principal:
    """A new user and department in an imported store; the principal of the user."""
    with Session(db) as s, s.begin():
        dept = auth.add_department(s, "traffic", "市交通局", "", T0)
        user = auth.add_user(s, "agent9", PASSWORD, "agent", T0, agent_id="1009")
        assert (dept.id, user.id) == (3, 7)  # after the 2 departments and 6 users of seed()
        return auth._principal(user)


def test_a_sqlite_store_moves_to_postgresql_unchanged(tmp_path: Path, pg_url: str) -> None:
    with migrated(f"sqlite:///{tmp_path / 'small.db'}") as small, migrated(pg_url) as big:
        populate(small)
        counts = export(small, tmp_path / "from-sqlite")
        assert import_(big, tmp_path / "from-sqlite") == counts
        assert export(big, tmp_path / "from-postgresql") == counts
        assert_same_export(tmp_path / "from-sqlite", tmp_path / "from-postgresql")


def test_json_lines_carry_types_and_times_with_their_offset(db: Engine, tmp_path: Path) -> None:
    populate(db)
    export(db, tmp_path / "out")
    [first_call, second_call] = jsonl(tmp_path / "out", "call_records")
    assert first_call["arrived"] == "2026-11-26T01:59:00+00:00"
    assert first_call["answered"] == "2026-11-26T01:59:09.875000+00:00"
    assert first_call["wait_seconds"] == 0.1 + 0.2  # every bit of a float survives
    assert (first_call["caller_name"], first_call["caller_restricted"]) == (AWKWARD, False)
    assert (second_call["answered"], second_call["caller_restricted"]) == (None, True)
    [article] = jsonl(tmp_path / "out", "kb_articles")
    assert (article["valid_from"], article["valid_to"], article["uses"]) == ("2026-01-01", "2027-03-15", 1)
    events = jsonl(tmp_path / "out", "ticket_events")
    # 登记, six steps, and the call of the draft attached to it: the whole history, in order
    assert [e["seq"] for e in events if e["ticket_id"] == 2] == list(range(1, 9))


def test_the_csv_opens_in_excel_and_says_what_the_json_lines_say(db: Engine, tmp_path: Path) -> None:
    populate(db)
    export(db, tmp_path / "out")
    raw = (tmp_path / "out" / "tickets.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbfid,number,state,")  # the BOM Excel needs for UTF-8, then the header
    assert raw.count(b"\r\n") >= 4  # RFC 4180 ends a row with CRLF
    with (tmp_path / "out" / "tickets.csv").open(encoding="utf-8-sig", newline="") as f:
        header, *rows = list(csv.reader(f))
    cells = [{k: "" if v is None else str(v).lower() if isinstance(v, bool) else str(v) for k, v in t.items()}
             for t in jsonl(tmp_path / "out", "tickets")]
    assert [dict(zip(header, row, strict=True)) for row in rows] == cells
    assert AWKWARD in [row[header.index("content")] for row in rows]


def test_no_password_hash_leaves_the_store(db: Engine, tmp_path: Path) -> None:
    populate(db)
    with Session(db) as s:
        hashes = [h.encode() for h in s.scalars(select(UserRow.password_hash))]
    export(db, tmp_path / "out")
    for file in (tmp_path / "out").iterdir():
        data = file.read_bytes()
        assert b"$argon2" not in data and not any(h in data for h in hashes), file.name
    assert "password_hash" not in jsonl(tmp_path / "out", "users")[0]
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert "hotline user passwd" in manifest["not_exported"]["users.password_hash"]


def test_imported_users_may_not_sign_in_until_an_admin_sets_a_password_and_enables_them(
        db: Engine, empty: Engine, tmp_path: Path) -> None:
    populate(db)
    export(db, tmp_path / "out")
    import_(empty, tmp_path / "out")

    def sign_in(password: str) -> bool:
        with Session(empty) as s, s.begin():
            try:
                auth.login(s, "agent1", password, T0, source="test", ttl=timedelta(hours=1), max_failures=100,
                           window=timedelta(minutes=1), lockout=timedelta(minutes=1))
            except auth.LoginRefused:
                return False
            return True

    with Session(empty) as s:
        users = list(s.scalars(select(UserRow)))
    assert all(u.disabled for u in users) and len({u.password_hash for u in users}) == 1
    assert not sign_in(PASSWORD)
    with Session(empty) as s, s.begin():
        auth.set_password(s, "agent1", "a-new-secret-7", T0)
        auth.enable_user(s, "agent1")
    assert sign_in("a-new-secret-7")


def test_files_are_0640_in_a_0750_folder_whatever_the_umask(db: Engine, tmp_path: Path) -> None:
    populate(db)
    for umask in (0o077, 0o000):
        old = os.umask(umask)
        try:
            export(db, tmp_path / f"umask-{umask:o}")
        finally:
            os.umask(old)
        folder = tmp_path / f"umask-{umask:o}"
        assert stat.S_IMODE(folder.stat().st_mode) == 0o750
        names = sorted(f.name for f in folder.iterdir())
        assert names == sorted(["manifest.json", *(f"{t}.{e}" for t in TABLE_NAMES for e in ("csv", "jsonl"))])
        assert {stat.S_IMODE(f.stat().st_mode) for f in folder.iterdir()} == {0o640}


def test_the_manifest_counts_rows_and_hashes_every_file(db: Engine, tmp_path: Path) -> None:
    populate(db)
    counts = export(db, tmp_path / "out")
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert (manifest["format"], manifest["format_version"]) == ("hotline-export", 1)
    head = ScriptDirectory(str(MIGRATIONS)).get_current_head()
    assert manifest["source"] == {"store": db.dialect.name, "alembic_revision": head}
    assert datetime.fromisoformat(manifest["exported_at"]).tzinfo is not None
    assert {t: v["rows"] for t, v in manifest["tables"].items()} == counts
    assert len(manifest["files"]) == 2 * len(TABLE_NAMES)
    for name, meta in manifest["files"].items():
        data = (tmp_path / "out" / name).read_bytes()
        assert meta == {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}


def test_postgresql_streams_rows_through_a_server_side_cursor(pg_url: str, tmp_path: Path) -> None:
    cursors: dict[str, str] = {}

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if found := re.match(r"SELECT .*?\sFROM (\w+)", statement, re.DOTALL):
            cursors[found[1]] = type(cursor).__name__

    with migrated(pg_url) as engine:
        event.listen(engine, "before_cursor_execute", seen)
        export(engine, tmp_path / "out")
    # A named cursor: PostgreSQL hands rows over FETCH by FETCH, never the whole table at once.
    assert {table: cursors.get(table) for table in TABLE_NAMES} == dict.fromkeys(TABLE_NAMES, "ServerCursor")


def test_an_export_refuses_a_folder_that_is_not_empty_and_uses_an_empty_one(db: Engine, tmp_path: Path) -> None:
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("keep me")
    with pytest.raises(Refused, match="is not empty"):
        export(db, tmp_path / "busy")
    assert [f.name for f in (tmp_path / "busy").iterdir()] == ["notes.txt"]
    (tmp_path / "ready").mkdir(mode=0o755)
    export(db, tmp_path / "ready")
    assert stat.S_IMODE((tmp_path / "ready").stat().st_mode) == 0o750


def test_an_export_that_fails_leaves_nothing_behind(db: Engine, tmp_path: Path) -> None:
    populate(db)

    def fail(table: str, rows: int) -> None:
        if table == "tickets":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        export(db, tmp_path / "out", progress=fail)
    assert not (tmp_path / "out").exists()


def test_progress_is_reported_every_10000_rows(db: Engine, tmp_path: Path) -> None:
    rows = [record_values(record(f"c{i:06d}")) for i in range(2 * PROGRESS_EVERY + 5)]
    with db.begin() as conn:
        conn.execute(insert(CallRecordRow), rows)
    seen: list[tuple[str, int]] = []
    export(db, tmp_path / "out", progress=lambda table, n: seen.append((table, n)))
    assert [s for s in seen if s[0] == "call_records"] == [("call_records", 10_000), ("call_records", 20_000),
                                                          ("call_records", 20_005)]
    seen.clear()
    with migrated(f"sqlite:///{tmp_path / 'second.db'}") as second:
        import_(second, tmp_path / "out", progress=lambda table, n: seen.append((table, n)))
    assert [s for s in seen if s[0] == "call_records"] == [("call_records", 10_000), ("call_records", 20_000),
                                                          ("call_records", 20_005)]


@pytest.mark.parametrize(("damage", "message"), [
    (lambda data: data.replace("供暖".encode(), "供水".encode(), 1), "its SHA-256 differs from manifest.json's"),
    (lambda data: data[: len(data) // 2], "was cut short or changed"),
])
def test_a_changed_or_truncated_file_is_refused_by_name(db: Engine, empty: Engine, tmp_path: Path,
                                                        damage: Any, message: str) -> None:
    populate(db)
    export(db, tmp_path / "out")
    path = tmp_path / "out" / "tickets.jsonl"
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(Refused, match=message) as refused:
        import_(empty, tmp_path / "out")
    assert str(path) in str(refused.value)
    assert_empty(empty)


def assert_empty(engine: Engine) -> None:
    with Session(engine) as s:
        assert s.scalar(select(TicketRow.id).limit(1)) is None
        assert s.scalar(select(UserRow.id).limit(1)) is None


def rewrite(folder: Path, name: str, lines: list[bytes]) -> None:
    """Replace a file and its hash in the manifest, as someone who edits an export on purpose would."""
    data = b"".join(line + b"\n" for line in lines)
    (folder / name).write_bytes(data)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["files"][name] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    (folder / "manifest.json").write_text(json.dumps(manifest))


@pytest.mark.parametrize(("edit", "message"), [
    (lambda first, t: b"{not json", "tickets.jsonl:2: Expecting property name"),
    (lambda first, t: {**t, "created": "2026-11-26 10:00:00"},
     "tickets.jsonl:2: created must be an ISO 8601 time with its offset"),
    (lambda first, t: {**t, "late": "no"}, "tickets.jsonl:2: late must be true or false"),
    (lambda first, t: {k: v for k, v in t.items() if k != "rating"},
     r"tickets.jsonl:2: missing \['rating'\], unknown \[\]"),
    (lambda first, t: {**t, "number": "2" * 17}, "tickets.jsonl:2: number is 17 characters long"),
    (lambda first, t: {**t, "number": first["number"]},  # the store's unique index refuses it
     "tickets.jsonl:1-3: the store refused a row of these lines"),
])
def test_a_bad_line_is_refused_naming_file_and_line_and_nothing_is_imported(
        db: Engine, empty: Engine, tmp_path: Path, edit: Any, message: str) -> None:
    populate(db)
    export(db, tmp_path / "out")
    lines = (tmp_path / "out" / "tickets.jsonl").read_bytes().splitlines()
    changed = edit(json.loads(lines[0]), json.loads(lines[1]))
    lines[1] = changed if isinstance(changed, bytes) else json.dumps(changed, ensure_ascii=False).encode()
    rewrite(tmp_path / "out", "tickets.jsonl", lines)
    with pytest.raises(Refused, match=message) as refused:
        import_(empty, tmp_path / "out")
    assert "Nothing was imported" in str(refused.value)
    assert_empty(empty)


def test_an_import_into_a_store_with_rows_is_refused(db: Engine, tmp_path: Path) -> None:
    populate(db)
    export(db, tmp_path / "out")
    with pytest.raises(Refused, match=r"already holds rows in call_records, departments, users, kb_articles"):
        import_(db, tmp_path / "out")


def test_a_folder_without_a_manifest_is_not_an_export(db: Engine, tmp_path: Path) -> None:
    populate(db)
    export(db, tmp_path / "out")
    (tmp_path / "out" / "manifest.json").unlink()
    with pytest.raises(Refused, match=r"manifest\.json is missing: .* did not finish"):
        import_(db, tmp_path / "out")


# ---- the command line --------------------------------------------------------------------------


def config(tmp_path: Path, name: str) -> str:
    return str(write_config(tmp_path / name, db_url=f"sqlite:///{tmp_path / name}.db", account=False))


def test_hotline_export_and_import_move_a_store_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old, new = config(tmp_path, "old"), config(tmp_path, "new")
    with migrated(f"sqlite:///{tmp_path / 'old.db'}") as engine:
        populate(engine)
    out = tmp_path / "export"

    assert main(["export", "--out", str(out), "--config", old]) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert lines[0] == f"exported to {out}:"
    assert lines[1].split() == ["call_records", "2"]
    assert "manifest.json holds every file's SHA-256" in captured.out
    assert "without their password hashes" in captured.out
    assert "hotline export: tickets: 3 rows" in captured.err.splitlines()

    assert main(["import", "--from", str(out), "--config", new]) == 0
    captured = capsys.readouterr()
    assert captured.out.splitlines()[0] == f"imported from {out}:"
    assert "The 6 users are disabled" in captured.out
    assert "hotline user passwd NAME; hotline user enable NAME" in captured.out

    assert main(["export", "--out", str(out), "--config", new]) == 2
    assert capsys.readouterr().err == f"hotline export: {out} is not empty; an export never writes over files: " \
                                      "name a new folder\n"
    assert main(["import", "--from", str(out), "--config", new]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hotline import: the store already holds rows in ") and err.count("\n") == 1

    assert main(["export", "--out", str(tmp_path / "again"), "--config", new]) == 0
    assert_same_export(out, tmp_path / "again")


def test_a_store_that_cannot_be_reached_is_named_in_one_line(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    cfg = write_config(tmp_path / "cfg", db_url="postgresql+psycopg://hotline:secret@127.0.0.1:1/hotline",
                       account=False)
    assert main(["export", "--out", str(tmp_path / "out"), "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hotline export: cannot open the store postgresql+psycopg://hotline:***@127.0.0.1:1/")
    assert err.count("\n") == 1 and "secret" not in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("command", ["export", "import"])
def test_export_and_import_have_their_own_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main([command, "--help"])
    assert done.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    assert f"usage: hotline {command}" in out
    assert "store.url of engine.yaml" in out and "Exit 0" in out
    assert "password" in out


def test_imported_times_keep_their_instant_whatever_offset_they_were_written_with(
        db: Engine, empty: Engine, tmp_path: Path) -> None:
    populate(db)
    export(db, tmp_path / "out")
    calls = [json.loads(line) for line in (tmp_path / "out" / "call_records.jsonl").read_bytes().splitlines()]
    calls[0]["arrived"] = "2026-11-26T09:59:00+08:00"  # the same instant, in Beijing time
    rewrite(tmp_path / "out", "call_records.jsonl", [json.dumps(c, ensure_ascii=False).encode() for c in calls])
    import_(empty, tmp_path / "out")
    with Session(empty) as s:
        arrived = s.scalar(select(CallRecordRow.arrived).where(CallRecordRow.call_id == "1764122400.1"))
    assert arrived is not None
    assert (arrived if arrived.tzinfo else arrived.replace(tzinfo=UTC)) == datetime(2026, 11, 26, 1, 59, tzinfo=UTC)
