"""A loopback TCP proxy a test can cut, hold down, and make split every read.

Put between the engine and Asterisk's AMI it turns "the network dropped" and
"TCP delivered a character in two pieces" into things a test can cause.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time


class TcpProxy:
    def __init__(self, target: tuple[str, int], chunk: int = 65536) -> None:
        self.target = target
        self.chunk = chunk  # bytes per forwarded write towards the client
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()
        self._refuse_until = 0.0
        self._closed = False
        self.accepted = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if time.monotonic() < self._refuse_until:
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            self.accepted += 1
            with self._lock:
                self._open += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, 65536), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, self.chunk), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, chunk: int) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                for i in range(0, len(data), chunk):
                    dst.sendall(data[i : i + chunk])
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()

    def cut(self, hold_down: float = 0.0) -> None:
        """Drop every open connection; refuse new ones for `hold_down` seconds."""
        self._refuse_until = time.monotonic() + hold_down
        with self._lock:
            conns, self._open = self._open, []
        for s in conns:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def close(self) -> None:
        self._closed = True
        self.cut()
        self.listener.close()
