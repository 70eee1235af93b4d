"""`hotline user ...` and `hotline dept ...` on a SQLite store named by a config folder."""

from __future__ import annotations

import argparse
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from cti.cli import main, parser
from testbed.configs import write_config
from tickets import admin_cli, auth
from tickets.db import open_engine

GOOD = "correct-horse-9"




@pytest.fixture
def cfg(tmp_path: Path) -> str:
    """A config folder whose store is a SQLite file in tmp_path."""
    return str(write_config(tmp_path / "cfg", db_url=f"sqlite:///{tmp_path / 'hotline.db'}", account=False))


def hotline(cfg: str, *args: str, stdin: str = "", monkeypatch: pytest.MonkeyPatch | None = None) -> int:
    if monkeypatch is not None:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    return main([*args, "--config", cfg])


def can_sign_in(cfg: str, username: str, password: str) -> bool:
    engine = open_engine(f"sqlite:///{Path(cfg).parent / 'hotline.db'}")
    try:
        with Session(engine) as s:
            auth.login(s, username, password, datetime.now(UTC), source="test", ttl=timedelta(hours=1),
                       max_failures=100, window=timedelta(minutes=1), lockout=timedelta(minutes=1))
        return True
    except auth.LoginRefused:
        return False
    finally:
        engine.dispose()


def test_a_department_and_its_user_are_added_listed_and_managed(cfg: str, monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert hotline(cfg, "dept", "add", "housing", "市住建局", "--phone", "057187001234") == 0
    assert capsys.readouterr().out == "added department housing (市住建局)\n"
    assert hotline(cfg, "user", "add", "zhangsan", "--role", "department", "--dept", "housing", "--name", "张三",
                   "--password-stdin", stdin=GOOD + "\n", monkeypatch=monkeypatch) == 0
    assert capsys.readouterr().out == "added user zhangsan (department of department housing)\n"
    assert can_sign_in(cfg, "zhangsan", GOOD)

    assert hotline(cfg, "user", "list") == 0
    header, row = capsys.readouterr().out.splitlines()
    assert header.split() == ["USER", "ROLE", "DEPT", "AGENT", "DISABLED", "NAME"]
    assert row.split() == ["zhangsan", "department", "housing", "-", "no", "张三"]
    assert hotline(cfg, "dept", "list", "--json") == 0
    assert [json.loads(line) for line in capsys.readouterr().out.splitlines()] == [
        {"code": "housing", "name": "市住建局", "phone": "057187001234", "active": True}]

    assert hotline(cfg, "user", "passwd", "zhangsan", "--password-stdin", stdin="a-new-secret-7\n",
                   monkeypatch=monkeypatch) == 0
    assert "password of zhangsan changed" in capsys.readouterr().out
    assert not can_sign_in(cfg, "zhangsan", GOOD)
    assert can_sign_in(cfg, "zhangsan", "a-new-secret-7")

    assert hotline(cfg, "user", "disable", "zhangsan") == 0
    assert capsys.readouterr().out.startswith("disabled zhangsan")
    assert not can_sign_in(cfg, "zhangsan", "a-new-secret-7")
    assert hotline(cfg, "user", "list", "--json") == 0
    assert json.loads(capsys.readouterr().out)["disabled"] is True
    assert hotline(cfg, "user", "enable", "zhangsan") == 0
    assert can_sign_in(cfg, "zhangsan", "a-new-secret-7")


def test_a_department_set_inactive_locks_its_users_out(cfg: str, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    hotline(cfg, "dept", "add", "housing", "市住建局")
    hotline(cfg, "user", "add", "zhangsan", "--role", "department", "--dept", "housing", "--password-stdin",
            stdin=GOOD, monkeypatch=monkeypatch)
    assert hotline(cfg, "dept", "set", "housing", "--active", "no", "--phone", "+8657187001234") == 0
    assert capsys.readouterr().out.splitlines()[-1] == \
        "department housing: 市住建局, phone +8657187001234, inactive: its users cannot sign in"
    assert not can_sign_in(cfg, "zhangsan", GOOD)


def test_the_table_lines_up_chinese_names(cfg: str, capsys: pytest.CaptureFixture[str]) -> None:
    hotline(cfg, "dept", "add", "housing", "市住建局", "--phone", "1")
    hotline(cfg, "dept", "add", "market", "市场监督管理局", "--phone", "2")
    capsys.readouterr()
    assert hotline(cfg, "dept", "list") == 0
    lines = capsys.readouterr().out.splitlines()
    # A terminal shows 汉字 two columns wide: the PHONE column starts at the same column on every line.
    starts = {admin_cli._width(line[: line.rindex(" ", 0, line.index(mark)) + 1])
              for line, mark in zip(lines, ["PHONE", "1", "2"], strict=True)}
    assert len(starts) == 1


def test_an_agent_carries_its_agent_id(cfg: str, monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    assert hotline(cfg, "user", "add", "li", "--role", "agent", "--agent-id", "1001", "--name", "李四",
                   "--password-stdin", stdin=GOOD, monkeypatch=monkeypatch) == 0
    assert capsys.readouterr().out == "added user li (agent, 工号 1001)\n"


def test_a_password_cannot_be_given_on_the_command_line(cfg: str, capsys: pytest.CaptureFixture[str]) -> None:
    for attempt in (["user", "add", "root", "--role", "admin"], ["user", "passwd", "root"]):
        with pytest.raises(SystemExit) as done:
            main([*attempt, "--password", GOOD, "--config", cfg])  # not taken as --password-stdin either
        assert done.value.code == 2
        assert "unrecognized arguments: --password" in capsys.readouterr().err
    # No option of any user or dept command takes a value that is a password.
    for group in ("user", "dept"):
        for command in _subcommands(_subcommands(parser())[group]).values():
            for action in command._actions:
                if any("pass" in option for option in action.option_strings):
                    assert action.nargs == 0, action.option_strings


def _subcommands(p: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    [sub] = [a for a in p._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(sub.choices)


@pytest.mark.parametrize(("args", "stdin", "message"), [
    (["user", "add", "wangwu", "--role", "department", "--password-stdin"], GOOD, "--dept CODE"),
    (["user", "add", "wangwu", "--role", "admin", "--password-stdin"], "12345678901", "不能全是数字"),
    (["user", "add", "wangwu", "--role", "admin", "--password-stdin"], "", "read no password"),
    (["user", "add", "wangwu", "--role", "admin"], GOOD, "no terminal to ask the password on"),
    (["user", "passwd", "nobody", "--password-stdin"], GOOD, "没有用户 'nobody'"),
    (["user", "disable", "nobody"], "", "没有用户 'nobody'"),
    (["dept", "add", "Housing", "市住建局"], "", "部门代码 'Housing' 无效"),
    (["dept", "set", "housing"], "", "nothing to change"),
    (["dept", "set", "nosuch", "--active", "no"], "", "没有代码为 'nosuch' 的部门"),
])
def test_a_refusal_exits_2_with_the_reason_and_changes_nothing(
        cfg: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        args: list[str], stdin: str, message: str) -> None:
    assert hotline(cfg, *args, stdin=stdin, monkeypatch=monkeypatch) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"hotline {args[0]} {args[1]}: ")
    assert message in err
    assert hotline(cfg, "user", "list", "--json") == 0
    assert capsys.readouterr().out == ""


def test_an_existing_user_is_refused_before_a_password_is_asked(cfg: str, monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    hotline(cfg, "user", "add", "li", "--role", "agent", "--password-stdin", stdin=GOOD, monkeypatch=monkeypatch)
    monkeypatch.setattr("getpass.getpass", lambda prompt: pytest.fail("asked for a password"))
    assert hotline(cfg, "user", "add", "li", "--role", "agent") == 2
    assert "hotline user passwd li" in capsys.readouterr().err


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_password_typed_on_the_terminal_is_asked_twice(cfg: str, monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr("sys.stdin", Terminal())
    answers = iter([GOOD, GOOD + "typo", GOOD, GOOD])
    monkeypatch.setattr("getpass.getpass", lambda prompt: next(answers))
    assert hotline(cfg, "user", "add", "li", "--role", "agent") == 2
    assert "the two passwords differ" in capsys.readouterr().err
    assert hotline(cfg, "user", "add", "li", "--role", "agent") == 0
    assert can_sign_in(cfg, "li", GOOD)


@pytest.mark.parametrize("command", [["user"], ["user", "add"], ["user", "passwd"], ["user", "disable"],
                                     ["user", "enable"], ["user", "list"], ["dept"], ["dept", "add"],
                                     ["dept", "set"], ["dept", "list"]])
def test_every_user_and_dept_command_has_its_own_help(command: list[str],
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main([*command, "--help"])
    assert done.value.code == 0
    out = " ".join(capsys.readouterr().out.split())  # as one line, whatever the terminal's width
    assert f"usage: hotline {' '.join(command)}" in out
    if len(command) == 2:
        assert "store.url of engine.yaml" in out
        assert "Exit 0" in out


def test_the_cli_offers_exactly_the_platforms_roles() -> None:
    assert admin_cli.ROLES == auth.ROLES


def test_a_store_that_cannot_be_reached_is_named_in_one_line(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    cfg = write_config(tmp_path / "cfg", db_url="postgresql+psycopg://hotline:secret@127.0.0.1:1/hotline",
                       account=False)
    assert main(["dept", "list", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hotline dept list: cannot open the store postgresql+psycopg://hotline:***@127.0.0.1:1/")
    assert err.endswith("check store.url in engine.yaml\n")
    assert err.count("\n") == 1
    assert "secret" not in err
