"""Review probes: `.ci/run` on "a clean clone on a fresh Debian machine, as root".

This machine hides two missing steps: Python comes from pyenv (pip may install into it), and
PostgreSQL's pg_hba.conf was edited by hand to `trust`. On a fresh Debian 12:
- `make install` runs `python3 -m pip install -e .[test]` with Debian's python3, which refuses
  (PEP 668, /usr/lib/python3.11/EXTERNALLY-MANAGED), and python3-pip is not even installed;
- `.ci/services.sh` installs and starts PostgreSQL but leaves Debian's pg_hba.conf as
  pg_createcluster writes it: `scram-sha-256` for 127.0.0.1 (PostgreSQL >= 14), so every
  test connecting as `host=127.0.0.1 user=postgres` without a password fails."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEBIAN_PYTHON = Path("/usr/bin/python3")


@pytest.mark.skipif(not DEBIAN_PYTHON.exists(), reason="no distribution python3 here")
def test_make_install_works_with_the_distributions_python(tmp_path: Path) -> None:
    dry = subprocess.run(["make", "-n", "install", f"PY={DEBIAN_PYTHON}"], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout.strip()
    argv = dry.replace("pip install -q", "pip install -q --dry-run --no-index --no-deps").split()
    proc = subprocess.run([a.strip("'") for a in argv], cwd=ROOT, capture_output=True, text=True, check=False)
    assert "externally-managed-environment" not in proc.stderr + proc.stdout, f"`{dry}` is refused by PEP 668"


def test_services_script_lets_the_tests_connect_to_a_freshly_installed_postgresql() -> None:
    script = "\n".join(line.split("#", 1)[0] for line in (ROOT / ".ci/services.sh").read_text().splitlines())
    createcluster = Path("/usr/bin/pg_createcluster")
    if createcluster.exists():  # what a fresh cluster gets for host connections
        assert re.search(r"\$version >= 14 \? 'scram-sha-256'", createcluster.read_text())
    assert re.search(r"pg_hba|trust|PGPASSWORD|ALTER USER|--auth-host", script), \
        "services.sh does not make 127.0.0.1 connections as postgres work without a password"
