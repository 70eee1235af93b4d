"""The control API's token: created private by the engine, read by clients, refused when exposed."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

import pytest

from config.control_token import TokenError, authorized, load_or_create_token, read_token


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_engine_creates_a_random_token_0600_in_a_new_0750_folder(tmp_path: Path) -> None:
    path = tmp_path / "lib" / "hotline" / "control.token"
    old = os.umask(0o022)
    try:
        token = load_or_create_token(path)
    finally:
        os.umask(old)
    assert len(base64.urlsafe_b64decode(token + "=")) >= 32
    assert (mode(path), mode(path.parent)) == (0o600, 0o750)
    assert path.read_text(encoding="ascii") == token + "\n"
    assert sorted(p.name for p in path.parent.iterdir()) == ["control.token"]  # no temporary file left


def test_the_token_survives_a_restart_and_differs_between_hosts(tmp_path: Path) -> None:
    first = load_or_create_token(tmp_path / "a" / "control.token")
    assert load_or_create_token(tmp_path / "a" / "control.token") == first
    assert load_or_create_token(tmp_path / "b" / "control.token") != first


def test_an_existing_folder_keeps_its_mode(tmp_path: Path) -> None:
    os.chmod(tmp_path, 0o755)
    load_or_create_token(tmp_path / "control.token")
    assert mode(tmp_path) == 0o755


@pytest.mark.parametrize("file_mode", [0o640, 0o604, 0o660])
def test_a_token_file_others_can_read_is_refused_with_the_chmod_to_run(tmp_path: Path, file_mode: int) -> None:
    path = tmp_path / "control.token"
    load_or_create_token(path)
    os.chmod(path, file_mode)
    with pytest.raises(TokenError) as err:
        load_or_create_token(path)
    assert str(err.value).endswith(f"(mode 0{file_mode:o}); chmod 600 {path}")


@pytest.mark.parametrize("text", ["", "short\n", "x" * 43 + "\nsecond line\n", "a b" * 20])
def test_a_token_file_without_a_token_is_refused(tmp_path: Path, text: str) -> None:
    path = tmp_path / "control.token"
    path.write_text(text, encoding="ascii")
    os.chmod(path, 0o600)
    with pytest.raises(TokenError, match="does not hold a control token"):
        load_or_create_token(path)
    with pytest.raises(TokenError, match="does not hold a control token"):
        read_token(path)


def test_a_client_reads_the_token_the_engine_created(tmp_path: Path) -> None:
    path = tmp_path / "control.token"
    token = load_or_create_token(path)
    assert read_token(path) == token


def test_a_client_without_the_token_file_is_told_why(tmp_path: Path) -> None:
    path = tmp_path / "control.token"
    with pytest.raises(TokenError) as err:
        read_token(path)
    assert str(err.value) == f"no control token at {path}; is the engine running on this host, and are you root?"
    assert not path.exists()  # a client never creates one


def test_only_the_bearer_token_authorizes() -> None:
    token = "t" * 43
    assert authorized(f"Bearer {token}", token)
    assert authorized(f"bearer {token}", token)
    for header in (None, "", token, f"Basic {token}", f"Bearer {token[:-1]}", "Bearer ", f"Bearer {token}x",
                   "Bearer 令牌"):
        assert not authorized(header, token)


def test_a_folder_where_the_token_should_be_is_a_token_error(tmp_path: Path) -> None:
    path = tmp_path / "control.token"
    path.mkdir()
    with pytest.raises(TokenError, match=rf"^cannot read the control token {path}: Is a directory$"):
        load_or_create_token(path)
