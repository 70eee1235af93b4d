"""`hotline demo --workdir DIR` keeps what the demo writes in DIR, not in the production
defaults (/var/lib/hotline/hotline.db), and nobody but root and its group can read it."""

from __future__ import annotations

import stat
from pathlib import Path

from config.loader import DEFAULTS_DIR, load
from testbed.demo import private_dir, write_config


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_demo_config_puts_db_spool_and_recordings_in_the_workdir(tmp_path: Path) -> None:
    workdir = private_dir(tmp_path / "demo")
    settings = load(write_config(workdir))
    e = settings.engine
    assert e.store.url == f"sqlite:///{workdir / 'hotline.db'}"
    assert Path(e.store.spool) == workdir / "spool"
    assert Path(e.recordings.dir) == workdir / "recordings"
    defaults = load(None)
    assert [a.id for a in settings.agents] == [a.id for a in defaults.agents]  # otherwise the embedded defaults
    ours, theirs = settings.engine.ami, defaults.engine.ami
    assert (ours.host, ours.port, ours.username) == (theirs.host, theirs.port, theirs.username)
    # A secret of the run's own, so an engine left over from an earlier demo cannot log in.
    assert ours.secret != theirs.secret and len(ours.secret) >= 20
    assert ours.secret != load(write_config(private_dir(tmp_path / "again"))).engine.ami.secret


def test_nothing_in_the_demo_config_points_at_the_production_data_folder(tmp_path: Path) -> None:
    workdir = private_dir(tmp_path / "demo")
    text = (write_config(workdir) / "engine.yaml").read_text(encoding="utf-8")
    assert str(workdir) in text
    assert "/var/lib/hotline/" not in text.replace(str(workdir), "")


def test_the_demo_workdir_and_its_config_are_not_world_readable(tmp_path: Path) -> None:
    workdir = tmp_path / "demo"
    workdir.mkdir(mode=0o755)
    config = write_config(private_dir(workdir))
    assert mode(workdir) == 0o750 and mode(config) == 0o750
    files = sorted(config.iterdir())
    assert [f.name for f in files] == sorted(f.name for f in DEFAULTS_DIR.glob("*.yaml"))
    assert {f.name: mode(f) for f in files} == {f.name: 0o640 for f in files}  # AMI secret, SIP passwords
