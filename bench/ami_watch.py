"""A passive AMI listener for benchmarks: Asterisk's own event timestamps, per Linkedid.

Both paths are timed on Asterisk's clock (timestampevents=yes), from the moment the
caller joins a queue (our UserEvent HotlineJoin, or app_queue's QueueCallerJoin) to
the first DialBegin towards an agent. It also notes each caller channel's Newchannel (the
first ring) and the number dialled, for the time from the ring to the queue join, and each
AGI command's start and end (AGIExecStart / AGIExecEnd: Asterisk's own time per command).
"""

from __future__ import annotations

import threading

from testbed.blocking_ami import BlockingAmi

BENCH_USER = "bench"
BENCH_SECRET = "bench-observer-only"
MANAGER_USER = f"""
[{BENCH_USER}]
secret = {BENCH_SECRET}
deny = 0.0.0.0/0.0.0.0
permit = 127.0.0.1/255.255.255.255
read = call,user,agent,agi
write =
"""


def agi_verb(command: str) -> str:
    """`SET VARIABLE __HOTLINE_QUEUE main` -> `SET VARIABLE`; `ANSWER` -> `ANSWER`."""
    words = command.upper().split()
    return " ".join(words[:2] if words[:1] in (["SET"], ["GET"], ["STREAM"], ["WAIT"]) else words[:1])


class AmiWatch:
    def __init__(self, host: str = "127.0.0.1", port: int = 5038) -> None:
        self.ami = BlockingAmi(host, port, BENCH_USER, BENCH_SECRET)
        self.joins: dict[str, float] = {}
        self.dials: dict[str, float] = {}
        # Per agent: when its leg last hung up, and the gaps from that to its next dial.
        self.freed: dict[str, float] = {}
        self.gaps: list[float] = []
        # Per Linkedid: the caller channel's Newchannel (its first ring) and the number it dialled.
        self.rings: dict[str, float] = {}
        self.dialled: dict[str, str] = {}
        # AGI commands: Asterisk's time per command (ms, by verb), and per Linkedid when its
        # first command started and its last one ended.
        self.agi_ms: dict[str, list[float]] = {}
        self.agi_first: dict[str, float] = {}
        self.agi_last: dict[str, float] = {}
        self._agi_open: dict[tuple[str, str], float] = {}
        # With the `dialplan` read class (Newexten): per caller, whether a prompt was playing in
        # the wait loop when the engine's Redirect took them to ring an agent, and the hand-off
        # gaps of those callers (an agent freeing up mid-announcement).
        self._playing: dict[str, bool] = {}
        self._cut_short: dict[str, bool] = {}
        self.cut_gaps: list[float] = []
        self._stop = False
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop:
            try:
                messages = self.ami.read(0.5)
            except OSError:
                return
            if messages is None:
                return
            for msg in messages:
                name = msg.get("Event")
                linkedid = msg.get("Linkedid")
                stamp = msg.get("Timestamp")
                if not (name and linkedid and stamp):
                    continue
                if name == "QueueCallerJoin" or (name == "UserEvent" and msg.get("UserEvent") == "HotlineJoin"):
                    self.joins.setdefault(linkedid, float(stamp))
                elif name == "DialBegin" and str(msg.get("DestChannel", "")).startswith("PJSIP/agent"):
                    self.dials.setdefault(linkedid, float(stamp))
                    agent = str(msg["DestChannel"]).split("-", 1)[0]
                    cut_short = self._cut_short.pop(linkedid, False)
                    if agent in self.freed:
                        self.gaps.append((float(stamp) - self.freed.pop(agent)) * 1000)
                        if cut_short:
                            self.cut_gaps.append(self.gaps[-1])
                elif name == "Newexten" and msg.get("Uniqueid") == linkedid:
                    if msg.get("Context") == "hotline-connect":
                        # The Redirect landed: was the caller in a prompt just before? (Kept until the Dial.)
                        self._cut_short.setdefault(linkedid, self._playing.pop(linkedid, False))
                    else:
                        self._playing[linkedid] = msg.get("Application") == "Playback"
                elif name == "Hangup" and str(msg.get("Channel", "")).startswith("PJSIP/agent"):
                    self.freed[str(msg["Channel"]).split("-", 1)[0]] = float(stamp)
                elif name == "Newchannel" and msg.get("Uniqueid") == linkedid:
                    self.rings.setdefault(linkedid, float(stamp))
                    self.dialled.setdefault(linkedid, str(msg.get("Exten", "")))
                elif name == "AGIExecStart":
                    self._agi_open[(str(msg.get("Uniqueid")), str(msg.get("CommandId")))] = float(stamp)
                    self.agi_first.setdefault(linkedid, float(stamp))
                elif name == "AGIExecEnd":
                    started = self._agi_open.pop((str(msg.get("Uniqueid")), str(msg.get("CommandId"))), None)
                    if started is not None:
                        self.agi_ms.setdefault(agi_verb(str(msg.get("Command", ""))), []).append(
                            (float(stamp) - started) * 1000)
                    self.agi_last[linkedid] = float(stamp)

    def latencies_ms(self) -> list[float]:
        return sorted((self.dials[k] - t) * 1000 for k, t in self.joins.items() if k in self.dials)

    def ring_to_join_ms(self, number: str) -> list[float]:
        """Sorted, per call to `number`: its caller channel's Newchannel -> its queue join."""
        return sorted((self.joins[k] - t) * 1000 for k, t in self.rings.items()
                      if k in self.joins and self.dialled.get(k) == number)

    def rang(self, number: str) -> int:
        """Calls to `number` seen (a Newchannel), joined or not."""
        return sum(1 for n in self.dialled.values() if n == number)

    def reset(self) -> None:
        self.joins.clear()
        self.dials.clear()
        self.freed.clear()
        self.gaps.clear()
        self.rings.clear()
        self.dialled.clear()
        self.agi_ms.clear()
        self.agi_first.clear()
        self.agi_last.clear()
        self._agi_open.clear()
        self._playing.clear()
        self._cut_short.clear()
        self.cut_gaps.clear()

    def close(self) -> None:
        self._stop = True
        self.ami.close()
