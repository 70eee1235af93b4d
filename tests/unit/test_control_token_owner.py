"""The control token file the engine trusts is its own: one owned by another user, or a
symlink to someone else's file, is refused (an engine running as root with http.token_file in
a folder others can write would otherwise take a token another user planted)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from config.control_token import TokenError, load_or_create_token

PLANTED = "p" * 43
NOBODY = 65534


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root (chown; the engine as root reads any file)")
def test_a_token_file_owned_by_another_user_is_refused(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o1777)
    shared.chmod(0o1777)
    planted = shared / "control.token"
    planted.write_text(PLANTED + "\n")
    planted.chmod(0o600)
    os.chown(planted, NOBODY, NOBODY)
    with pytest.raises(TokenError):
        load_or_create_token(planted)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root (chown)")
def test_a_token_file_that_is_a_symlink_to_someone_elses_file_is_refused(tmp_path: Path) -> None:
    theirs = tmp_path / "theirs"
    theirs.write_text(PLANTED + "\n")
    theirs.chmod(0o600)
    os.chown(theirs, NOBODY, NOBODY)
    link = tmp_path / "control.token"
    link.symlink_to(theirs)
    with pytest.raises(TokenError):
        load_or_create_token(link)
