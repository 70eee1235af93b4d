"""Citizens who call at random: Poisson arrivals, and per call an exponential talk time and an
exponential patience (how long the caller waits for an answer before hanging up).

SIPp takes a receive timeout only as a literal of the scenario (never a variable), and its -r
rate is regular, not Poisson. So each call gets a scenario written for it (its patience as the
timeout on the 200 OK, its talk time as the pause) and runs as its own SIPp process (-m 1),
started at its arrival time by `RandomCallers`:

    calls = plan_calls(600, rate=0.9, mean_talk=4, mean_patience=6, seed=1)
    callers = RandomCallers(calls)
    callers.start()
    try:
        callers.wait(calls[-1].at + 120)
    finally:
        callers.stop()

One call (from 127.0.0.2, the carrier's address, as caller.xml):
    INVITE -> 100 -> (180 / 183, any number: absorbed by transaction, they do not restart the
    patience clock) -> 200 within `patience_ms` of the 100 -> ACK -> `talk_ms` -> BYE -> 200
    no 200 by then -> CANCEL -> 200 (CANCEL) -> 487 -> ACK (the caller gave up)
    an answer that crossed the CANCEL -> ACK -> BYE at once (the caller had already hung up)
    a BYE from the hotline at any point after the answer -> 200
Each call's caller number is 1391 + its index in 7 digits, so the call records and Asterisk's
events can be matched to the plan.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from testbed import sipp
from testbed.sipp import CARRIER_IP, SippRun

NUMBER_PREFIX = "1391"
SCENARIO_NAME = "random_caller.xml"


@dataclass(frozen=True)
class PlannedCall:
    index: int
    at: float  # seconds from the start of the run to this call's INVITE
    talk_ms: int  # conversation after the answer, then the caller hangs up
    patience_ms: int  # wait for the answer, counted from the 100 Trying (i.e. the INVITE)

    @property
    def number(self) -> str:
        return number_of(self.index)

    @property
    def name(self) -> str:
        return f"随机来电{self.index}"


def number_of(index: int) -> str:
    if not 0 <= index < 10_000_000:
        raise ValueError(f"call index {index} out of range")
    return f"{NUMBER_PREFIX}{index:07d}"


def index_of(number: str) -> int | None:
    """The call index a caller number stands for; None for a number not made by number_of."""
    if len(number) != len(NUMBER_PREFIX) + 7 or not number.startswith(NUMBER_PREFIX) or not number.isdigit():
        return None
    return int(number[len(NUMBER_PREFIX):])


def plan_calls(n: int, rate: float, mean_talk: float, mean_patience: float, seed: int | str) -> list[PlannedCall]:
    """n calls: exponential inter-arrival times of mean 1/rate s, talk times of mean `mean_talk`
    s and patiences of mean `mean_patience` s, rounded to whole ms and at least 1 ms (SIPp
    reads a timeout of 0 as "none"). Each quantity has its own random stream, so changing the
    rate keeps the same talk times and patiences."""
    if n < 1 or not (rate > 0 and mean_talk > 0 and mean_patience > 0):
        raise ValueError("plan_calls: n >= 1 and positive rate, mean_talk and mean_patience")
    arrivals = random.Random(f"{seed}:arrivals")
    talks = random.Random(f"{seed}:talk")
    patiences = random.Random(f"{seed}:patience")
    calls: list[PlannedCall] = []
    at = 0.0
    for i in range(n):
        at += arrivals.expovariate(rate)
        calls.append(PlannedCall(
            index=i,
            at=at,
            talk_ms=max(1, round(talks.expovariate(1.0 / mean_talk) * 1000)),
            patience_ms=max(1, round(patiences.expovariate(1.0 / mean_patience) * 1000)),
        ))
    return calls


_SDP = """
      v=0
      o=caller 53655765 2353687637 IN IP[local_ip_type] [local_ip]
      s=hotline caller
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 8 0 101
      a=rtpmap:8 PCMA/8000
      a=rtpmap:0 PCMU/8000
      a=rtpmap:101 telephone-event/8000
      a=fmtp:101 0-16
      a=ptime:20
      a=sendrecv
"""

# The INVITE's branch is spelled out: its CANCEL and the ACK of its 487 must carry it.
_INVITE_BRANCH = "z9hG4bK-[pid]-[call_number]-inv"


def _request(method: str, uri: str, cseq: str, *, branch: str = "[branch]", to_tag: bool = True,
             in_dialog: bool = True) -> str:
    """A request of the caller's. to_tag: the peer's tag from the last response; in_dialog: the
    routes and Contact of the dialog too (an ACK of a 200, a BYE)."""
    tag = "[peer_tag_param]" if to_tag else ""
    dialog = ("\n      [routes]\n      Contact: <sip:[field1]@[local_ip]:[local_port];transport=[transport]>"
              if in_dialog else "")
    return f"""
      {method} {uri} SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch={branch};rport
      Max-Forwards: 70
      From: "[field0]" <sip:[field1]@[local_ip]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>{tag}
      Call-ID: [call_id]
      CSeq: {cseq}{dialog}
      Content-Length: 0
"""


def scenario(patience_ms: int, talk_ms: int) -> str:
    """The SIPp UAC scenario of one call (module docstring), fed -inf rows (name; number)."""
    if patience_ms < 1 or talk_ms < 0:
        raise ValueError(f"patience_ms must be >= 1 (0 is no timeout to SIPp), talk_ms >= 0; "
                         f"got {patience_ms}, {talk_ms}")
    target = "sip:[service]@[remote_ip]:[remote_port]"
    contact = "\n      Contact: <sip:[field1]@[local_ip]:[local_port];transport=[transport]>"
    invite = f"""
      INVITE {target} SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch={_INVITE_BRANCH};rport
      Max-Forwards: 70
      From: "[field0]" <sip:[field1]@[local_ip]>;tag=[pid]SIPpTag00[call_number]
      To: <{target}>
      Call-ID: [call_id]
      CSeq: 1 INVITE{contact}
      Allow: INVITE, ACK, BYE, CANCEL, OPTIONS
      User-Agent: hotline-sipp-random
      Content-Type: application/sdp
      Content-Length: [len]
{_SDP}"""
    ack = _request("ACK", "[next_url]", "1 ACK")
    bye = _request("BYE", "[next_url]", "2 BYE")
    # CANCEL and the ACK of the 487 belong to the INVITE's transaction: its branch and URI.
    cancel = _request("CANCEL", target, "1 CANCEL", branch=_INVITE_BRANCH, to_tag=False, in_dialog=False)
    ack_487 = _request("ACK", target, "1 ACK", branch=_INVITE_BRANCH, in_dialog=False)
    ok_to_bye = """
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:[field1]@[local_ip]:[local_port];transport=[transport]>
      Content-Length: 0
"""

    def cdata(text: str) -> str:
        return f"<![CDATA[\n{text}\n    ]]>"

    return f"""<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<!-- Written by testbed/random_callers.py for one call: patience {patience_ms} ms, talk {talk_ms} ms. -->
<scenario name="hotline random caller">
  <send retrans="500" start_txn="invite">
    {cdata(invite)}
  </send>
  <!-- Asterisk sends 100 Trying at once: it stops the retransmissions, and the patience clock
       starts when SIPp moves on to the 200 below. -->
  <recv response="100" response_txn="invite"/>
  <nop next="wait"/>

  <!-- Never reached in sequence. A 180 / 183 (Ringing() at the queue join, again at every
       ring of an agent) matches these by transaction and SIPp ignores it, without restarting
       the 200's timeout (an optional recv in sequence would restart it). The global BYE is
       matched at any later point: the hotline hung up on the caller. -->
  <recv response="180" response_txn="invite"/>
  <recv response="183" response_txn="invite"/>
  <recv request="BYE" optional="global" next="their_bye"/>

  <label id="wait"/>
  <recv response="200" response_txn="invite" rrs="true" timeout="{patience_ms}" ontimeout="give_up"/>
  <send>
    {cdata(ack)}
  </send>
  <pause milliseconds="{talk_ms}"/>
  <send retrans="500">
    {cdata(bye)}
  </send>
  <recv response="200" crlf="true" next="done"/>

  <label id="their_bye"/>
  <send next="done">
    {cdata(ok_to_bye)}
  </send>

  <!-- Patience ran out. The CANCEL has no start_txn, so a plain recv of 200 matches only its
       response (by CSeq method), never the INVITE's. -->
  <label id="give_up"/>
  <send retrans="500">
    {cdata(cancel)}
  </send>
  <recv response="200" optional="true"/>
  <recv response="481" optional="true"/>
  <recv response="487" response_txn="invite" optional="true" next="ack_487"/>
  <!-- The answer crossed the CANCEL on the wire: take it and hang up at once. -->
  <recv response="200" response_txn="invite" rrs="true"/>
  <send>
    {cdata(ack)}
  </send>
  <send retrans="500">
    {cdata(bye)}
  </send>
  <recv response="200" crlf="true" next="done"/>

  <label id="ack_487"/>
  <send ack_txn="invite">
    {cdata(ack_487)}
  </send>
  <label id="done"/>
</scenario>
"""


@dataclass
class Placed:
    """A planned call once its SIPp was started."""

    call: PlannedCall
    started: float  # time.time() just before SIPp was started
    run: SippRun | None  # None: SIPp could not be started (`error` says why)
    error: str | None = None
    returncode: int | None = None  # SIPp's exit code once it has ended (0: the call went through a scenario path)
    overran: bool = False  # still running long after its patience + talk: stopped


class RandomCallers:
    """Starts each planned call's SIPp at its time (from `start()`), in a thread that also reaps
    them. `stop()` ends the schedule and every SIPp still running, however the run ends."""

    def __init__(self, calls: Sequence[PlannedCall], *, number: str = "12345", root: Path | None = None,
                 overrun: float = 30.0) -> None:
        """overrun: seconds past a call's patience + talk (+ its start) after which its SIPp is
        stopped as stuck."""
        self.calls = sorted(calls, key=lambda c: c.at)
        self.number = number
        self.root = root
        self.overrun = overrun
        self.placed: list[Placed] = []
        self.t0: float | None = None  # time.time() of the run's time 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._main, name="random-callers", daemon=True)

    def start(self) -> None:
        self.t0 = time.time()
        self._thread.start()

    def _main(self) -> None:
        assert self.t0 is not None
        t0_mono = time.monotonic()
        live: list[Placed] = []
        pending = list(self.calls)
        while (pending or live) and not self._stop.is_set():
            now = time.monotonic() - t0_mono
            while pending and pending[0].at <= now:
                live.append(self._place(pending.pop(0)))
            live = [p for p in live if not self._reaped(p)]
            wake = pending[0].at - (time.monotonic() - t0_mono) if pending else 0.05
            self._stop.wait(min(max(wake, 0.0), 0.05))

    def _place(self, call: PlannedCall) -> Placed:
        started = time.time()
        try:
            # -r 1000: SIPp opens its first call one rate period after start (100 ms at its default
            # 10/s); with -m 1 the rate matters for nothing else.
            run = SippRun(SCENARIO_NAME, [*sipp.endpoint(CARRIER_IP), "-m", "1", "-r", "1000", "-s", self.number],
                          inf_rows=[(call.name, call.number)], root=self.root,
                          text=scenario(call.patience_ms, call.talk_ms))
            placed = Placed(call, started, run)
        except (OSError, sipp.SippError) as exc:
            placed = Placed(call, started, None, error=str(exc))
        with self._lock:
            self.placed.append(placed)
        return placed

    def _reaped(self, p: Placed) -> bool:
        """Whether this call's SIPp has ended (its result noted); a stuck one is stopped."""
        if p.run is None:
            return True
        if p.run.running():
            limit = p.started + (p.call.patience_ms + p.call.talk_ms) / 1000 + self.overrun
            if time.time() < limit:
                return False
            p.overran = True
            p.run.abandon()  # keeps its directory; the failure is reported by whoever reads `placed`
        p.returncode = p.run.wait(5)
        return True

    def done(self) -> bool:
        """Every call placed and ended."""
        return not self._thread.is_alive()

    def wait(self, timeout: float) -> bool:
        """Wait for every call to be placed and to end; False on timeout."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def stop(self) -> None:
        """No more calls; every SIPp still running is stopped (its calls ended)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10)
        with self._lock:
            placed = list(self.placed)
        for p in placed:
            if p.run is not None and p.returncode is None:
                p.returncode = p.run.stop()

    def counts(self) -> tuple[int, int, int]:
        """(placed, running, ended with a non-zero exit or not started)."""
        with self._lock:
            placed = list(self.placed)
        running = sum(1 for p in placed if p.run is not None and p.returncode is None)
        bad = sum(1 for p in placed if p.run is None or (p.returncode not in (None, 0)))
        return len(placed), running, bad
