"""The metrics listener (open to the Prometheus host) cannot starve the engine: clients
that send half a request are cut off after the head deadline and the listener holds a bounded
number of connections, so the spool, the database and the AMI reconnect keep their file
descriptors and the log stays quiet."""

from __future__ import annotations

import os
import resource
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.integration.harness import write_config

FDS = 256  # the engine's soft limit here; systemd's default for a service is 1024


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _healthz(port: int) -> int | str:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=3) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError as exc:
        return type(exc).__name__


def test_half_sent_requests_on_the_metrics_port_do_not_starve_the_engine(tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "config", ami_port=1)
    http_port, metrics_port = _free_port(), _free_port()
    text = (cfg / "engine.yaml").read_text()
    text = text.replace("http:\n  port: 0", f"http:\n  port: {http_port}")
    text = text.replace("metrics:\n  port: 0", f"metrics:\n  port: {metrics_port}")
    text = text.replace("cel_db: /var/lib/hotline/test-cel/hotline-cel.db", "cel_db: null")
    (cfg / "engine.yaml").write_text(text)
    log = tmp_path / "engine.log"

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (FDS, FDS))

    with log.open("wb") as err:
        engine = subprocess.Popen([sys.executable, "-m", "cti.cli", "run", "--config", str(cfg)],
                                  stderr=err, preexec_fn=limit, env=dict(os.environ))  # noqa: PLW1509
    socks: list[socket.socket] = []
    try:
        deadline = time.monotonic() + 20
        while _healthz(metrics_port) != 503 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _healthz(metrics_port) == 503  # up, not routing (no Asterisk)
        for _ in range(FDS + 50):
            s = socket.create_connection(("127.0.0.1", metrics_port))
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")  # the head is never finished
            socks.append(s)
        time.sleep(20)  # any sane head deadline has passed
        assert _healthz(metrics_port) == 503, "the engine accepts no connection: its descriptors are used up"
        assert log.stat().st_size < 1_000_000, f"the engine log grew to {log.stat().st_size} bytes in 20 s"
    finally:
        for s in socks:
            s.close()
        engine.terminate()
        engine.wait(15)
        shutil.rmtree(tmp_path, ignore_errors=True)


async def test_idle_connections_from_one_client_cannot_keep_prometheus_from_scraping() -> None:
    # README: open metrics.listen to the Prometheus host (0.0.0.0). Anyone who can reach it
    # opens MAX_CONNECTIONS (32) TCP connections and sends nothing: every later connection,
    # Prometheus's scrape included, is aborted at once until HEAD_TIMEOUT (5 s) frees a slot;
    # re-opening them keeps monitoring blind and pages HotlineEngineDown (up == 0 for 1m).
    import asyncio

    from cti.metrics_http import MAX_CONNECTIONS, MetricsServer

    server = MetricsServer({"/metrics": lambda: (200, "text/plain", b"hotline_up 1\n")})
    port = await server.start("127.0.0.1", 0)
    idle = [await asyncio.open_connection("127.0.0.1", port) for _ in range(MAX_CONNECTIONS)]
    try:
        await asyncio.sleep(0.2)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /metrics HTTP/1.1\r\nHost: engine\r\n\r\n")
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 3)
        writer.close()
        assert answer.startswith(b"HTTP/1.1 200"), answer[:80]
    finally:
        for _, w in idle:
            w.close()
        await server.close()
