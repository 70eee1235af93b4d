"""What a SIPp party hears: the RTP audio Asterisk sends to one media port, captured off the
loopback interface (a raw packet socket; root, as the sandbox already needs) with the time
each packet arrived, so that a test can ask "was there sound between t1 and t2?".

SIPp itself keeps no record of the audio it receives, and the recordings of the engine
(MixMonitor) start only once the conversation does: an announcement played to the caller
before it (the job number) is only to be heard here.
"""

from __future__ import annotations

import math
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from types import TracebackType

ETH_P_ALL = 0x0003
PACKET_HOST = 0  # addressed to this host (a packet on lo is also seen once as outgoing)
PCMU, PCMA = 0, 8


def _alaw(code: int) -> int:
    code ^= 0x55
    t = (code & 0x0F) << 4
    seg = (code & 0x70) >> 4
    if seg == 0:
        t += 8
    elif seg == 1:
        t += 0x108
    else:
        t = (t + 0x108) << (seg - 1)
    return t if code & 0x80 else -t


def _ulaw(code: int) -> int:
    code = ~code & 0xFF
    t = (((code & 0x0F) << 3) + 0x84) << ((code & 0x70) >> 4)
    return (0x84 - t) if code & 0x80 else (t - 0x84)


ALAW = [_alaw(i) for i in range(256)]
ULAW = [_ulaw(i) for i in range(256)]


@dataclass
class RtpListener:
    """Capture the audio sent to host:port while in the `with` block."""

    host: str
    port: int
    packets: list[tuple[float, bytes, int]] = field(default_factory=list)  # (wall time, payload, payload type)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> RtpListener:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.ntohs(ETH_P_ALL))
        sock.bind(("lo", 0))
        sock.settimeout(0.2)
        self._thread = threading.Thread(target=self._run, args=(sock,), daemon=True, name="rtp-listen")
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def _run(self, sock: socket.socket) -> None:
        want = socket.inet_aton(self.host)
        try:
            while not self._stop.is_set():
                try:
                    frame, addr = sock.recvfrom(65535)
                except TimeoutError:
                    continue
                if addr[2] != PACKET_HOST or len(frame) < 14 + 20 + 8 + 12:
                    continue
                ip = frame[14:]
                if ip[9] != socket.IPPROTO_UDP or ip[16:20] != want:
                    continue
                udp = ip[(ip[0] & 0x0F) * 4:]
                if struct.unpack("!H", udp[2:4])[0] != self.port:
                    continue
                rtp = udp[8:]
                if len(rtp) < 12 or rtp[0] >> 6 != 2:
                    continue
                header = 12 + 4 * (rtp[0] & 0x0F)
                self.packets.append((time.time(), rtp[header:], rtp[1] & 0x7F))
        finally:
            sock.close()

    def rms(self, start: float, end: float) -> float:
        """Loudness (16-bit linear RMS) of the G.711 audio that arrived in [start, end]."""
        total, count = 0, 0
        for at, payload, pt in self.packets:
            if start <= at <= end and pt in (PCMA, PCMU):
                table = ALAW if pt == PCMA else ULAW
                for b in payload:
                    v = table[b]
                    total += v * v
                count += len(payload)
        return math.sqrt(total / count) if count else 0.0
