"""Review probes: the control token file the engine trusts.

`load_or_create_token` checks the mode (no group/other bits) but not who owns the file, and
follows symlinks. An engine running as root with `http.token_file` in a folder others can
write (/tmp, a shared /run folder) reads a token another user planted there, 0600 and owned
by that user, and from then on that user can pause agents and reload the engine."""

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
