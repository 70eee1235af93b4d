"""The tooling's one blocking AMI client: log in, read messages, wait for FullyBooted.

The engine's own client (cti/ami.py) is asyncio; the sandbox start-up check and the
benchmarks' passive listener only need a socket they can read in a plain thread.
Framing is cti's byte framer, so split UTF-8 and odd messages are handled the same way.
"""

from __future__ import annotations

import socket
import time
from typing import Any

from cti.ami_frame import AmiFramer


class AmiRefused(Exception):
    """Asterisk answered the login with an error (wrong user or secret)."""


class BlockingAmi:
    """A logged-in AMI session. Messages that arrived with the login reply are kept
    for the first read()."""

    def __init__(self, host: str, port: int, user: str, secret: str, timeout: float = 5.0) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self._framer = AmiFramer()
        self._pending: list[Any] = []
        try:
            self.sock.sendall(f"Action: Login\r\nUsername: {user}\r\nSecret: {secret}\r\n\r\n".encode())
            deadline = time.monotonic() + timeout
            while True:
                messages = self.read(max(0.1, deadline - time.monotonic()))
                if messages is None or time.monotonic() > deadline:
                    raise OSError(f"AMI {host}:{port} gave no login reply")
                replies = [m for m in messages if "Response" in m]
                if replies:
                    self._pending = [m for m in messages if "Response" not in m]
                    if replies[0].get("Response") != "Success":
                        raise AmiRefused(f"AMI refused user {user!r}: {replies[0].get('Message', 'no reason')}")
                    return
        except BaseException:
            self.sock.close()
            raise

    def read(self, timeout: float) -> list[Any] | None:
        """The next messages (panoramisk Message): [] after `timeout` s with none, None once
        Asterisk has closed the connection."""
        if self._pending:
            out, self._pending = self._pending, []
            return out
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536)
        except TimeoutError:
            return []
        return self._framer.feed(data) if data else None

    def close(self) -> None:
        self.sock.close()


def wait_fully_booted(host: str, port: int, user: str, secret: str, timeout: float) -> bool:
    """Log in (retrying while nothing listens yet) and wait for FullyBooted, which Asterisk
    sends right after a login once it has finished starting. AmiRefused if the login is
    refused: retrying would not help."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            ami = BlockingAmi(host, port, user, secret, timeout=2.0)
        except OSError:  # not listening yet; AmiRefused is not an OSError and propagates
            time.sleep(0.3)
            continue
        try:
            while time.monotonic() < deadline:
                messages = ami.read(max(0.1, deadline - time.monotonic()))
                if messages is None:
                    break
                if any(m.get("Event") == "FullyBooted" for m in messages):
                    return True
        except OSError:
            pass
        finally:
            ami.close()
        time.sleep(0.3)
    return False
