"""A citizen who talks to the IVR: a SIPp UAC scenario written for one test's key presses.

SIPp takes the keys of `play_dtmf` from the scenario file itself (its action attributes are
not per-call values), so each script of waits and keys becomes a scenario of its own:

    [("pause", 1500), ("keys", "2"), ("pause", 800), ("keys", "2026112600001#")]

The hotline's BYE is answered wherever it comes (a global optional recv), so a script may
go on pressing keys while the call could end. The keys go as RFC 2833 telephone-events:
SIPp 3.8's play_dtmf sends them with payload type 96 whatever the SDP says, so the offer
names 96 as telephone-event. The call ends from either side: after the script the caller
waits up to `stay_ms` for the hotline's BYE (the flow hung up, the survey ended) and
answers it; if none comes it sends its own BYE.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from xml.sax.saxutils import quoteattr

from testbed import sipp
from testbed.sipp import CARRIER_IP, SippRun

Step = tuple[str, int | str]
KEYS = set("0123456789*#")

HEAD = """<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="hotline IVR caller">
  <send retrans="500">
    <![CDATA[

      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
      Max-Forwards: 70
      From: "[field0]" <sip:[field1]@[local_ip]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: <sip:[field1]@[local_ip]:[local_port];transport=[transport]>
      Allow: INVITE, ACK, BYE, CANCEL, OPTIONS
      User-Agent: hotline-sipp-ivr
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=caller 53655765 2353687637 IN IP[local_ip_type] [local_ip]
      s=hotline caller
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 8 0 96
      a=rtpmap:8 PCMA/8000
      a=rtpmap:0 PCMU/8000
      a=rtpmap:96 telephone-event/8000
      a=fmtp:96 0-16
      a=ptime:20
      a=sendrecv

    ]]>
  </send>
  <recv response="100" optional="true" timeout="{wait_ms}"/>
  <recv response="180" optional="true" timeout="{wait_ms}"/>
  <recv response="183" optional="true" timeout="{wait_ms}"/>
  <!-- The hotline may hang up at any point after the answer (the flow's goodbye, the end of
       the survey), even while this caller pauses between keys: a global optional recv that
       SIPp matches at any later point (it must stand before a mandatory recv: here). -->
  <recv request="BYE" optional="global" next="bye"/>
  <recv response="200" rrs="true" timeout="{wait_ms}"/>
  <send>
    <![CDATA[

      ACK [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
      Max-Forwards: 70
      From: "[field0]" <sip:[field1]@[local_ip]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 1 ACK
      [routes]
      Contact: <sip:[field1]@[local_ip]:[local_port];transport=[transport]>
      Content-Length: 0

    ]]>
  </send>
"""

TAIL = """  <recv request="BYE" timeout="{stay_ms}" ontimeout="self"/>
  <label id="bye"/>
  <send next="done">
    <![CDATA[

      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:[field1]@[local_ip]:[local_port];transport=[transport]>
      Content-Length: 0

    ]]>
  </send>
  <label id="self"/>
  <send retrans="500">
    <![CDATA[

      BYE [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
      Max-Forwards: 70
      From: "[field0]" <sip:[field1]@[local_ip]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 2 BYE
      [routes]
      Contact: <sip:[field1]@[local_ip]:[local_port];transport=[transport]>
      Content-Length: 0

    ]]>
  </send>
  <recv response="200" crlf="true"/>
  <label id="done"/>
</scenario>
"""


def scenario(steps: Sequence[Step], stay_ms: int, wait_ms: int = 60_000) -> str:
    """The scenario XML for this script of pauses (ms) and keys."""
    body = []
    for kind, value in steps:
        if kind == "pause":
            body.append(f'  <pause milliseconds="{int(value)}"/>\n')
        elif kind == "keys":
            keys = str(value)
            if not keys or set(keys) - KEYS:
                raise ValueError(f"keys {keys!r}: only 0-9 * # and at least one")
            body.append(f"  <nop><action><exec play_dtmf={quoteattr(keys)}/></action></nop>\n")
        else:
            raise ValueError(f"step {kind!r}: pause or keys")
    return HEAD.format(wait_ms=wait_ms) + "".join(body) + TAIL.format(stay_ms=stay_ms)


def ivr_caller(steps: Sequence[Step], *, stay_ms: int = 30_000, caller: tuple[str, str] = ("测试来电", "13900000001"),
               number: str = "12345", media: int | None = None, root: Path | None = None,
               trace_msg: bool = False, calls: Sequence[tuple[str, str]] = (), rate: float = 1.0) -> SippRun:
    """A citizen's call to `number` that follows `steps`, then stays up to stay_ms for the
    hotline's BYE (else hangs up); with `calls` ((name, number) each), one such call per entry
    at `rate` calls/s. Returns the running SippRun (wait()/check())."""
    text = scenario(steps, stay_ms)
    rows = list(calls) or [caller]
    args = [*sipp.endpoint(CARRIER_IP, media=media), "-m", str(len(rows)), "-r", f"{rate:g}", "-s", number]
    return SippRun("caller.xml", args, inf_rows=rows, root=root, trace_msg=trace_msg, text=text)
