"""Mounting a host folder into the sandbox (recordings.dir, the folder of account.cel_db)
leaves the host folder's mode alone when it already exists: with account.cel_db in /tmp the
host's /tmp must stay 1777."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

import testbed.sandbox as sandbox_module
from config.loader import load
from testbed.configs import write_config
from testbed.sandbox import Sandbox


def test_mounting_a_shared_folder_leaves_the_host_folders_mode_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shared_tmp = tmp_path / "host-tmp"  # stands for the host's /tmp
    shared_tmp.mkdir()
    shared_tmp.chmod(0o1777)
    cfg = write_config(tmp_path / "config")
    text = (cfg / "engine.yaml").read_text().replace("/var/lib/hotline/test-cel/hotline-cel.db",
                                                     str(shared_tmp / "hotline-cel.db"))
    (cfg / "engine.yaml").write_text(text)
    settings = load(cfg)
    assert settings.engine.account.cel_db == shared_tmp / "hotline-cel.db"
    mounted: list[list[str]] = []
    monkeypatch.setattr(sandbox_module, "_run", lambda argv, what, log=None: mounted.append(argv))
    Sandbox(root=tmp_path / "rootfs")._mount(settings)
    assert any(str(shared_tmp) in argv for argv in mounted)
    assert stat.S_IMODE(shared_tmp.stat().st_mode) == 0o1777, \
        f"the host folder is now {stat.S_IMODE(shared_tmp.stat().st_mode):04o}"
