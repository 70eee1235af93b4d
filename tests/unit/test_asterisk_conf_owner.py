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


def test_writing_a_rendered_file_never_follows_a_link_planted_at_its_temporary_name(tmp_path: Path) -> None:
    # write_private() opens `<name>.tmp` with O_CREAT|O_TRUNC and no O_NOFOLLOW/O_EXCL. Whoever
    # can write the target folder (the Asterisk user in its /etc/asterisk, anyone in a --out
    # folder they created first) plants manager.conf.tmp -> /some/file, and root's next
    # `hotline asterisk-conf install|render` overwrites that file with the AMI secret and then
    # renames the link into manager.conf.
    from cti.asterisk_conf import write_private

    victim = tmp_path / "victim"
    victim.write_text("precious\n", encoding="utf-8")
    out = tmp_path / "etc"
    out.mkdir()
    (out / "manager.conf.tmp").symlink_to(victim)
    write_private(out / "manager.conf", "[hotline]\nsecret = s3cret-ami\n")
    assert victim.read_text(encoding="utf-8") == "precious\n"
    assert not (out / "manager.conf").is_symlink()
    assert (out / "manager.conf").read_text(encoding="utf-8") == "[hotline]\nsecret = s3cret-ami\n"


# --- alerting rules -------------------------------------------------------------------------

def _promtool_rules_test(tmp_path: Path, input_series: list[dict[str, str]], eval_minute: int,
                         alert: str) -> tuple[int, str]:
    import json
    import shutil
    import subprocess

    binary = shutil.which("promtool")
    if binary is None:
        pytest.skip("promtool is not installed (make system-deps installs Prometheus)")
    rules = Path(__file__).resolve().parents[2] / "metrics" / "alerts.yml"
    spec = tmp_path / "alerts_test.yml"
    spec.write_text(json.dumps({"rule_files": [str(rules)], "evaluation_interval": "1m", "tests": [{
        "interval": "1m", "input_series": input_series,
        "alert_rule_test": [{"eval_time": f"{eval_minute}m", "alertname": alert, "exp_alerts": []}]}]}),
        encoding="utf-8")
    proc = subprocess.run([binary, "test", "rules", str(spec)], capture_output=True, text=True, timeout=60,
                          check=False)
    return proc.returncode, proc.stdout + proc.stderr


def test_a_link_planted_at_a_rendered_files_name_does_not_hand_the_secrets_to_whoever_planted_it(
        tmp_path: Path) -> None:
    """write_private now takes the owner to keep from `path.lstat()`: for a symbolic link
    planted at manager.conf by whoever can write the folder, that is the link's own owner.
    Root then creates the new manager.conf (the AMI secret inside) owned by that user, who
    reads it. With stat() the owner was the link target's (root's file: root); the fix
    against links at `.tmp` opened this one at the file's own name."""
    import os

    import pytest

    from cti.asterisk_conf import write_private

    if os.geteuid() != 0:
        pytest.skip("needs root (the ownership is kept only when root writes)")
    intruder = 54321
    target = tmp_path / "root-owned"
    target.write_text("x\n", encoding="utf-8")
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "manager.conf").symlink_to(target)
    os.lchown(etc / "manager.conf", intruder, intruder)
    write_private(etc / "manager.conf", "[hotline]\nsecret = s3cret-ami\n")
    st = (etc / "manager.conf").stat()
    assert intruder not in (st.st_uid, st.st_gid), f"the secrets file is now {st.st_uid}:{st.st_gid}"
