"""`hotline asterisk-conf install` into a distribution's Asterisk keeps each file readable
by the user Asterisk runs as: Debian ships /etc/asterisk/*.conf as asterisk:asterisk 0640, and
a file replaced by a root:root 0640 one would vanish for that Asterisk at its next reload."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from config.loader import load
from cti.asterisk_conf import install

ASTERISK_UID = ASTERISK_GID = 101  # Debian's asterisk user and group (any non-root ids do)


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
def test_install_keeps_a_file_readable_by_the_asterisk_user_that_owned_it(tmp_path: Path) -> None:
    etc = tmp_path / "etc-asterisk"
    etc.mkdir()
    for name in ("manager.conf", "pjsip.conf", "extensions.conf"):
        path = etc / name
        path.write_text("; shipped by the distribution\n")
        os.chown(path, ASTERISK_UID, ASTERISK_GID)
        path.chmod(0o640)
    install(load(None), etc, tmp_path / "sounds")
    for name in ("manager.conf", "pjsip.conf", "extensions.conf"):
        st = (etc / name).stat()
        readable_by_asterisk = (st.st_uid == ASTERISK_UID and st.st_mode & stat.S_IRUSR) or \
                               (st.st_gid == ASTERISK_GID and st.st_mode & stat.S_IRGRP)
        assert readable_by_asterisk, f"{name}: now {st.st_uid}:{st.st_gid} {stat.S_IMODE(st.st_mode):04o}"
