"""What `.ci/run` does on a clean clone on a fresh Debian machine, where nothing was set up by
hand: the Python packages go into a virtual environment (Debian's python3 refuses a system-wide
pip install, PEP 668), and the tests get into a freshly created PostgreSQL cluster, whose
pg_hba.conf asks for a password on 127.0.0.1."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEBIAN_PYTHON = Path("/usr/bin/python3")


def make_n(target: str, **variables: str) -> list[str]:
    argv = ["make", "-n", target, *(f"{k}={v}" for k, v in variables.items())]
    out = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return [line.strip() for line in out.splitlines() if line.strip()]


def test_make_install_runs_pip_only_inside_the_projects_venv(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    commands = make_n("install", VENV=str(venv))
    pips = [c for c in commands if " pip " in f" {c} "]
    assert pips, commands
    assert all(c.startswith(f"{venv}/bin/python -m pip ") for c in pips), pips
    assert f"python3 -m venv {venv}" in commands  # made first when it is not there


def pip_install(python: Path) -> subprocess.CompletedProcess[str]:
    # pip checks PEP 668 before it looks for the package; --no-index keeps it off the network.
    return subprocess.run([str(python), "-m", "pip", "install", "--no-index", "--dry-run", "hotline-no-such-pkg"],
                          capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.skipif(not DEBIAN_PYTHON.exists(), reason="no distribution python3 here")
def test_the_distributions_python_refuses_pip_but_its_venv_takes_it(tmp_path: Path) -> None:
    if subprocess.run([str(DEBIAN_PYTHON), "-m", "pip", "--version"], capture_output=True,
                      check=False).returncode == 0:  # python3-pip is not installed on a fresh machine
        assert "externally-managed-environment" in pip_install(DEBIAN_PYTHON).stderr
    # python3-venv is one of the packages .ci/packages.sh installs; without it this fails.
    venv = tmp_path / "venv"
    subprocess.run([str(DEBIAN_PYTHON), "-m", "venv", str(venv)], check=True, capture_output=True, timeout=120)
    proc = pip_install(venv / "bin/python")
    assert "externally-managed-environment" not in proc.stderr
    assert "No matching distribution found for hotline-no-such-pkg" in proc.stderr, proc.stderr


PG_PORT = 5499
CLUSTER = "hotline_ci_probe"


def pg_version() -> str:
    return sorted(os.listdir("/etc/postgresql"), key=float)[-1]


@pytest.fixture
def fresh_cluster() -> Iterator[Path]:
    """A cluster as pg_createcluster makes it on a fresh machine (stopped, scram on TCP)."""
    if os.geteuid() != 0 or shutil.which("pg_createcluster") is None:
        pytest.skip("needs root and Debian's postgresql-common")
    version = pg_version()
    subprocess.run(["pg_dropcluster", "--stop", version, CLUSTER], capture_output=True, check=False)
    subprocess.run(["pg_createcluster", "-p", str(PG_PORT), version, CLUSTER], capture_output=True, check=True,
                   timeout=120)
    try:
        yield Path(f"/etc/postgresql/{version}/{CLUSTER}/pg_hba.conf")
    finally:
        subprocess.run(["pg_dropcluster", "--stop", version, CLUSTER], capture_output=True, check=False,
                       timeout=120)


def services(**env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("HOTLINE_TEST_DB_SETUP", "PGPASSWORD")}
    return subprocess.run(["bash", str(ROOT / ".ci/services.sh")], capture_output=True, text=True, timeout=120,
                          check=False, env={**clean, "PG_CLUSTER": CLUSTER, "PG_PORT": str(PG_PORT), **env})


def connects() -> bool:
    return subprocess.run(["psql", "-w", "-h", "127.0.0.1", "-p", str(PG_PORT), "-U", "postgres", "-d", "postgres",
                           "-Atqc", "select 1"], capture_output=True, check=False, timeout=30).returncode == 0


def test_services_script_starts_a_fresh_cluster_and_lets_the_tests_in(fresh_cluster: Path) -> None:
    proc = services(HOTLINE_TEST_DB_SETUP="1")
    assert proc.returncode == 0, proc.stderr
    assert connects()
    assert services(HOTLINE_TEST_DB_SETUP="1").returncode == 0  # a second run changes nothing
    assert fresh_cluster.read_text().count("added by hotline") == 1


def test_services_script_leaves_an_existing_cluster_alone_unless_told_it_is_a_test_machine(
        fresh_cluster: Path) -> None:
    before = fresh_cluster.read_text()
    proc = services()
    assert proc.returncode == 1
    assert "host all postgres 127.0.0.1/32 trust" in proc.stderr and "HOTLINE_TEST_DB_SETUP=1" in proc.stderr
    assert fresh_cluster.read_text() == before
    assert not connects()


def test_system_deps_installs_no_recommended_network_daemons() -> None:
    # `make demo` (and `make test`) run .ci/packages.sh, whose `apt-get install prometheus`
    # also pulls Recommends: prometheus-node-exporter. On an operator's systemd host both start
    # at once and listen on every interface (:9090, :9100: host metrics for anyone), for a demo
    # that needs neither (the tests need the prometheus/promtool binaries, not the services).
    script = (Path(__file__).resolve().parents[2] / ".ci" / "packages.sh").read_text(encoding="utf-8")
    installs = [line for line in script.splitlines() if "apt-get install" in line]
    assert installs
    assert all("--no-install-recommends" in line for line in installs), installs
