"""三方通话 (a department brought into the call) and transfers, driven over AMI.

The dialplan's half is [hotline-conf] in asterisk-conf/extensions.conf.in (with the quiet
profiles of confbridge.conf); the contract's names are in cti/dialplan.py.

How it works, and why this way:
- The first party added moves the caller and the answering agent out of their two-party Dial
  bridge into a ConfBridge named after the call, with one AMI Redirect with ExtraChannel (the
  dual redirect: neither leg is hung up when the other leaves the bridge). The party is then
  Originated (Async) into the same conference: a department's number through the carrier
  trunk (PJSIP/<digits>@carrier, as a forward to an outside number is dialled), a second
  agent through a Local channel (so that the agent's Dial events carry a caller, as the
  decoder expects). Asterisk's own transfers do not fit: BlindTransfer and Atxfer hand the
  call over and take the transferring agent out, with no three-way stage, and Atxfer needs
  the agent's DTMF features; the Bridge action makes two-party bridges only.
- The recording stays one file: the agent's leg recorded the talk so far; in the conference
  it closes the file and the caller's leg appends to it (see the dialplan), so it holds the
  whole conversation, the department included, whoever leaves.
- `leave`: one Redirect moves the caller to re-enter the conference (`on`) and the agent to
  hang up (`bye`). The routing core sees the agent's leg hang up while the caller stays, as
  when an agent hangs up first: the agent goes to wrap-up and is free for the next caller,
  the call stays answered by that agent, and its one record is written when the caller's
  channel hangs up. The caller talks on with the department; when the last other party
  leaves, the dialplan puts the caller out of the conference into the survey.
- Transfers: the second agent joins the conference. Attended: the three talk, then the first
  agent `leave`s (or `drop_party` calls the transfer off). Blind: the first agent is taken out
  as soon as the second one answers (the caller is never left alone with a phone that rings).
  The call record keeps the agent who answered (the core's answer and its KPIs); who joined
  and left when is in the `PartyChange` events.
- AMI write classes: Redirect, Getvar and Hangup need `call` (Hangup is registered as
  system|call, and one of an action's classes is enough: main/manager.c), Originate needs
  `originate`: all of them the engine's user has already. Events: UserEvent (`user`),
  OriginateResponse (`call`). The Originates run a dialplan context, never an application.

Every method answers with the `PartyChange` it made, or raises `ConferenceError` with a
message in Chinese first, then English. Only the agent who answered the call adds a party or
transfers it (`who`: the agent asking); an agent leaves only a call they are on.
`on_ami_event` takes the AMI events (the engine wires it next to the dispatcher's): the
parties' joins and hang-ups, and refused Originates, are reported through `on_change`.

One request at a time per call: each request holds the call's lock across its AMI actions, so
two clicks (or two desks) cannot both move the legs into the conference, or both ring the same
party; what Asterisk reports meanwhile (a hang-up) is read again after every action's reply.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import re
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import structlog

from acd.calls import Call, CallState
from cti import dialplan
from cti.ami import AmiClient, AmiError, Reply
from cti.ami_frame import AmiMessage
from cti.dispatcher import Dispatcher
from cti.logs import mask_number

log = structlog.get_logger("hotline.conference")

NUMBER = re.compile(r"[0-9]{3,20}")  # a department's number: digits only, as the trunk dials it
CALL_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")  # a Linkedid: it goes into a ConfBridge name and a ChannelId
TRUNK = "carrier"  # the PJSIP endpoint of the carrier (asterisk-conf/pjsip.conf.in)

Kind = Literal["dialing", "joined", "failed", "left"]
ErrorCode = Literal["unknown_call", "ended", "not_talking", "not_supported", "bad_target", "party_present",
                    "no_party", "not_on_call", "not_answering_agent", "ami_down", "refused", "timeout"]


@dataclass(frozen=True)
class PartyChange:
    """Who joined or left the call's conversation, and when (wall clock, epoch seconds).
    `party`: "caller", "agent:<id>" or "number:<digits>". `detail`: why a party failed or
    left (a Dial status, "leave", "drop", "transfer"), or who asked ("by:<agent id>")."""

    call_id: str
    kind: Kind
    party: str
    at: float
    detail: str = ""


class ConferenceError(Exception):
    """A request that was not carried out. `code` for the API's status; the message reads
    Chinese first, then English: "该通话已结束 (the call has ended)"."""

    def __init__(self, code: ErrorCode, zh: str, en: str) -> None:
        super().__init__(f"{zh} ({en})")
        self.code = code


@dataclass
class _Party:
    party_id: str  # the Originate's ChannelId: the leg's Uniqueid, and how it is hung up
    who: str  # "number:<digits>" or "agent:<id>"
    joined: bool = False
    gone: bool = False  # its leaving has been reported
    hand_over_from: str | None = None  # a blind transfer: this agent leaves once the party joins


@dataclass
class _Conf:
    call_id: str
    caller_channel: str
    agent_id: str  # the agent who answered
    agent_channel: str | None  # None once that agent has left
    parties: dict[str, _Party] = field(default_factory=dict)
    seen: set[str] = field(default_factory=set)  # roles whose join was reported ("caller", "agent")

    def joined(self) -> list[_Party]:
        return [p for p in self.parties.values() if p.joined and not p.gone]

    def live(self) -> list[_Party]:
        return [p for p in self.parties.values() if not p.gone]


@dataclass
class _Turn:
    """A call's lock, and how many requests hold or wait for it (it is dropped at none)."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


class Conference:
    def __init__(
        self,
        dispatcher: Dispatcher,
        *,
        caller_ids: Mapping[str, str] | None = None,
        ring_timeout: float = 30.0,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.dispatcher = dispatcher
        self.caller_ids = dict(caller_ids or {})  # queue -> the hotline's number the department sees
        self.ring_timeout = ring_timeout
        self.wall = wall
        self.on_change: Callable[[PartyChange], None] | None = None
        self._confs: dict[str, _Conf] = {}
        self._by_party: dict[str, str] = {}  # party id -> call id
        self._ids = itertools.count(1)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._turns: dict[str, _Turn] = {}  # call id -> its lock, while a request uses it or it has a conference

    # -- the requests ------------------------------------------------------------------------

    async def add_party(self, call_id: str, number: str, *, who: str) -> PartyChange:
        """Ring a department's `number` through the carrier and join it to the conversation
        (`who`: the agent asking, who must be the one who answered). Returns once Asterisk rings
        it ("dialing"); its answer comes as a "joined" change, a failure as "failed"."""
        if not NUMBER.fullmatch(number):
            raise ConferenceError("bad_target", "号码无效", f"not a phone number: {number[:24]!r}")
        self._check_id(call_id)
        async with self._turn(call_id):
            call = self._talking(call_id, who)
            party = f"number:{number}"
            conf = self._confs.get(call_id)
            if conf is not None and any(p.who == party for p in conf.live()):
                raise ConferenceError("party_present", "该号码已在通话中", "this number is already in the call")
            return await self._add(call, party, f"PJSIP/{number}@{TRUNK}", self._department_cli(call), who=who)

    async def transfer_attended(self, call_id: str, agent_id: str, *, who: str) -> PartyChange:
        """Consult `agent_id`: their phone rings and joins the conversation (the caller stays in
        it and hears the consultation). The answering agent (`who`) hands over with `leave`, or
        calls the transfer off with `drop_party(call_id, "agent:<id>")`."""
        self._check_id(call_id)
        async with self._turn(call_id):
            call = self._talking(call_id, who)
            self._check_agent(call, agent_id)
            return await self._add_agent(call, agent_id, hand_over=False)

    async def transfer_blind(self, call_id: str, target: str, *, who: str) -> PartyChange:
        """Hand the caller to `target` (an agent id, or a queue: its longest-free agent). The
        answering agent (`who`) is taken out as soon as the new agent answers; if they do not,
        the call stays as it was and a "failed" change says so."""
        self._check_id(call_id)
        async with self._turn(call_id):
            call = self._talking(call_id, who)
            agent_id = self._pick(call, target)
            return await self._add_agent(call, agent_id, hand_over=True)

    async def leave(self, call_id: str, agent_id: str) -> PartyChange:
        """`agent_id` leaves the conversation; the caller and the others talk on."""
        self._check_id(call_id)
        async with self._turn(call_id):
            self._live(call_id)
            conf = self._confs.get(call_id)
            if conf is None:
                raise ConferenceError("no_party", "该通话没有第三方", "no third party is in this call")
            if agent_id == conf.agent_id and conf.agent_channel is not None:
                if not conf.joined():
                    raise ConferenceError("no_party", "第三方尚未接通", "no other party has joined yet")
                await self._hand_over(conf, "leave")
                return self._report(call_id, "left", f"agent:{agent_id}", "leave")
            for p in conf.live():
                if p.who == f"agent:{agent_id}":
                    await self._hang_up(conf, p)
                    return self._report(call_id, "left", p.who, "leave")
            raise ConferenceError("not_on_call", "该坐席不在这个通话中", f"agent {agent_id} is not in this call")

    async def drop_party(self, call_id: str, party: str | None = None) -> list[PartyChange]:
        """Hang up the parties added to the call (all of them, or the one named
        "number:<digits>" / "agent:<id>"); the caller and the agent go on."""
        self._check_id(call_id)
        async with self._turn(call_id):
            self._live(call_id)
            conf = self._confs.get(call_id)
            targets = [p for p in conf.live() if party in (None, p.who)] if conf is not None else []
            if conf is None or not targets:
                raise ConferenceError("no_party", "该通话没有可挂断的第三方", "no such party in this call")
            out = []
            for p in targets:
                if self._confs.get(call_id) is not conf:
                    break  # the caller hung up meanwhile: the conference is over, and its parties with it
                if p.gone:
                    continue  # it hung up on its own while the one before was being dropped
                await self._hang_up(conf, p)
                out.append(self._report(call_id, "left", p.who, "drop"))
            return out

    def parties(self, call_id: str) -> list[str]:
        """Who is in the call's conference now (for the desk)."""
        conf = self._confs.get(call_id)
        if conf is None:
            return []
        who = ["caller"] + ([f"agent:{conf.agent_id}"] if conf.agent_channel is not None else [])
        return who + [p.who for p in conf.joined()]

    # -- the steps ---------------------------------------------------------------------------

    @staticmethod
    def _check_id(call_id: str) -> None:
        """Before anything else: the call id names the ConfBridge and the parties' ChannelIds
        in AMI fields, so a comma or a line break in it would write fields of its own."""
        if not CALL_ID.fullmatch(call_id):
            raise ConferenceError("not_supported", "通话编号无法用于会议",
                                  f"call id {call_id[:64]!r} cannot name a conference")

    @contextlib.asynccontextmanager
    async def _turn(self, call_id: str) -> AsyncIterator[None]:
        """Hold the call's lock: the state checked at the start of a request stays true across
        its actions, except for what Asterisk reports (read again after each reply)."""
        turn = self._turns.setdefault(call_id, _Turn())
        turn.users += 1
        try:
            async with turn.lock:
                yield
        finally:
            turn.users -= 1
            if turn.users == 0 and call_id not in self._confs and self._turns.get(call_id) is turn:
                del self._turns[call_id]  # kept only while a request uses it or the call has a conference

    def _live(self, call_id: str) -> Call:
        call = self.dispatcher.state.calls.get(call_id)
        if call is None:
            self._forget(call_id)
            if self.dispatcher.unknown(call_id):
                raise ConferenceError("unknown_call", "没有这个通话", f"no such call: {call_id[:64]!r}")
            raise ConferenceError("ended", "该通话已结束", "the call has ended")
        if call.callback is not None:
            raise ConferenceError("not_supported", "回拨通话不支持三方通话", "not for a callback's call")
        return call

    def _talking(self, call_id: str, who: str) -> Call:
        """The call, in talk with its answering agent, who is `who` (a consulted agent neither
        adds parties nor hands the caller on: the answering agent would be taken out)."""
        call = self._live(call_id)
        if call.state is not CallState.CONNECTED or call.agent_id is None:
            raise ConferenceError("not_talking", "该通话不在坐席通话中",
                                  f"the call is not in talk (it is {call.state.value})")
        conf = self._confs.get(call_id)
        if conf is not None and conf.agent_channel is None:
            raise ConferenceError("not_talking", "接听坐席已离开该通话", "the answering agent has left this call")
        if who != call.agent_id:
            raise ConferenceError("not_answering_agent", "只有接听该通话的坐席可以邀请第三方或转接",
                                  f"only the answering agent {call.agent_id} can add a party or transfer")
        return call

    def _check_agent(self, call: Call, agent_id: str) -> None:
        agent = self.dispatcher.state.agents.get(agent_id)
        if not dialplan.AGENT_ENDPOINT_ID.fullmatch(agent_id) or agent is None or not agent.configured:
            raise ConferenceError("bad_target", "没有这个坐席", f"no such agent: {agent_id[:16]!r}")
        if agent_id == call.agent_id:
            raise ConferenceError("party_present", "该坐席已在通话中", f"agent {agent_id} is already in the call")
        conf = self._confs.get(call.call_id)
        if conf is not None and any(p.who == f"agent:{agent_id}" for p in conf.live()):
            raise ConferenceError("party_present", "该坐席已在通话中", f"agent {agent_id} is already in the call")
        if not agent.available():
            raise ConferenceError("bad_target", "该坐席现在不空闲", f"agent {agent_id} is not free")

    def _pick(self, call: Call, target: str) -> str:
        """An agent id as it is; a queue's free agent who has been free longest (the core's
        own order is not consulted: the new agent's phone turning busy keeps the core off it)."""
        state = self.dispatcher.state
        if target in state.agents:
            self._check_agent(call, target)
            return target
        if target not in state.queues:
            raise ConferenceError("bad_target", "没有这个坐席或队列", f"no agent or queue {target[:32]!r}")
        free = [a for a in state.agents.values()
                if target in a.queues and a.available() and a.agent_id != call.agent_id]
        if not free:
            raise ConferenceError("bad_target", "该队列没有空闲坐席", f"no free agent in queue {target}")
        best = min(free, key=lambda a: (a.idle_since, a.agent_id))
        return best.agent_id

    async def _add_agent(self, call: Call, agent_id: str, hand_over: bool) -> PartyChange:
        conf = self._confs.get(call.call_id)
        if conf is not None and any(p.who.startswith("agent:") for p in conf.live()):
            # One transfer at a time: a second would ring another phone for the same hand-over.
            raise ConferenceError("party_present", "已有坐席正在被咨询或转接",
                                  "another agent is already being consulted or transferred to")
        secs = max(1, round(self.ring_timeout))
        number = "" if call.restricted else re.sub(r"[^0-9]", "", call.caller_num)
        cli = f'"转接 {call.agent_id}" <{number}>' if number else f'"转接 {call.agent_id}"'
        return await self._add(call, f"agent:{agent_id}", f"Local/{agent_id}*{secs}@{dialplan.CONF_DIAL}/n", cli,
                               who=call.agent_id or "", hand_over=hand_over)

    async def _add(self, call: Call, party: str, channel: str, cli: str, *, who: str,
                   hand_over: bool = False) -> PartyChange:
        ami = self._link()
        conf = self._confs.get(call.call_id)
        if conf is None:
            conf = await self._open(ami, call)
        party_id = f"conf-{call.call_id}-{next(self._ids)}"
        fields = {
            "Action": "Originate",
            "Channel": channel,
            "Context": dialplan.CONF,
            "Exten": dialplan.CONF_PARTY_EXTEN,
            "Priority": "1",
            "Timeout": str(max(1000, round(self.ring_timeout * 1000))),
            "ChannelId": party_id,
            "CallerID": cli,
            "Async": "true",
            "Variable": f"{dialplan.CONF_CALL}={call.call_id},{dialplan.CONF_PARTY}={party_id}",
        }
        # Known before the answer: a refusal (OriginateResponse) may come before the reply is read.
        p = _Party(party_id, party, hand_over_from=call.agent_id if hand_over else None)
        conf.parties[party_id] = p
        self._by_party[party_id] = call.call_id
        try:
            await self._act(ami, fields, call.call_id)
        except ConferenceError:
            conf.parties.pop(party_id, None)
            self._by_party.pop(party_id, None)
            raise
        log.info("conference_party_dialing", call_id=call.call_id, party=_shown(party), party_id=party_id,
                 by=who or None, transfer="blind" if hand_over else None)
        return self._report(call.call_id, "dialing", party, f"by:{who}" if who else "")

    async def _open(self, ami: AmiClient, call: Call) -> _Conf:
        """Move the caller and the answering agent into the call's conference."""
        reply = await self._act(ami, {"Action": "Getvar", "Channel": call.channel, "Variable": "BRIDGEPEER"},
                                call.call_id)
        peer = reply.response.get("Value", "").strip()
        self._talking(call.call_id, call.agent_id or "")  # again after the reply: a hang-up meanwhile
        if dialplan.agent_of_channel(peer) != call.agent_id:
            # The job number announcement still plays (no bridge yet), or the picture is stale.
            raise ConferenceError("not_talking", "坐席与来电尚未接通", "the agent and the caller are not bridged yet")
        # Kept before the Redirect is sent: the legs' "joined" events can be read before its reply.
        conf = self._confs[call.call_id] = _Conf(call.call_id, call.channel, call.agent_id or "", peer)
        try:
            await self._act(ami, {
                "Action": "Redirect", "Channel": call.channel, "Context": dialplan.CONF,
                "Exten": dialplan.CONF_CALLER, "Priority": str(dialplan.REDIRECT_PRIORITY), "ExtraChannel": peer,
                "ExtraContext": dialplan.CONF, "ExtraExten": dialplan.CONF_AGENT,
                "ExtraPriority": str(dialplan.REDIRECT_PRIORITY)}, call.call_id)
        except ConferenceError:
            if self._confs.get(call.call_id) is conf:
                self._forget(call.call_id)
            raise
        if self._confs.get(call.call_id) is not conf:  # the caller hung up as the legs moved
            raise ConferenceError("ended", "该通话已结束", "the call has ended")
        log.info("conference_opened", call_id=call.call_id, agent_id=call.agent_id,
                 conference=dialplan.conference_name(call.call_id))
        return conf

    async def _hand_over(self, conf: _Conf, why: str) -> None:
        """The answering agent leaves: their leg hangs up, the caller re-enters the conference."""
        channel = conf.agent_channel
        if channel is None:
            return
        # Gone before the Redirect is sent: the agent's leg hangs up at once (`bye`), and its own
        # "left" event can be read before the reply; it must be neither a hang-up reported beside
        # this leaving nor a reason to move the caller a second time (Asterisk 22 does so).
        conf.agent_channel = None
        conf.seen.add("agent-left")
        try:
            await self._act(self._link(), {
                "Action": "Redirect", "Channel": conf.caller_channel, "Context": dialplan.CONF,
                "Exten": dialplan.CONF_ON, "Priority": str(dialplan.REDIRECT_PRIORITY), "ExtraChannel": channel,
                "ExtraContext": dialplan.CONF, "ExtraExten": dialplan.CONF_BYE,
                "ExtraPriority": str(dialplan.REDIRECT_PRIORITY)}, conf.call_id)
        except ConferenceError:
            if "agent-gone" in conf.seen:
                self._agent_hung_up(conf)  # they hung up meanwhile: said as their event would have
            else:
                conf.agent_channel = channel  # not moved: the agent is still on the call
                conf.seen.discard("agent-left")
            raise
        log.info("conference_agent_left", call_id=conf.call_id, agent_id=conf.agent_id, why=why)

    async def _hang_up(self, conf: _Conf, p: _Party) -> None:
        # Gone before the Hangup is sent: the party's own "left" event can be read before the
        # reply, and must not be reported as a hang-up of its own beside the caller's drop.
        p.gone = True
        try:
            await self._act(self._link(), {"Action": "Hangup", "Channel": p.party_id, "Cause": "16"}, conf.call_id)
        except ConferenceError as exc:
            if exc.code != "refused":
                p.gone = False  # the link failed: the party may still be on the line
                raise
            # "No such channel": it has hung up already; its event may still be on the way.
        log.info("conference_party_dropped", call_id=conf.call_id, party=_shown(p.who), party_id=p.party_id)

    def _department_cli(self, call: Call) -> str:
        number = self.caller_ids.get(call.queue, "")
        return f'"12345" <{number}>' if number else '"12345"'

    def _link(self) -> AmiClient:
        ami = self.dispatcher.ami
        if ami is None or not ami.connected:
            raise ConferenceError("ami_down", "与 Asterisk 的连接已断开", "the AMI link to Asterisk is down")
        return ami

    async def _act(self, ami: AmiClient, fields: dict[str, str], call_id: str) -> Reply:
        try:
            return await ami.action(fields)
        except AmiError as exc:
            name = fields.get("Action", "?")
            log.warning("conference_action_failed", call_id=call_id, action=name, error=str(exc), refused=exc.refused)
            if exc.refused:
                raise ConferenceError("refused", "Asterisk 拒绝了该操作", str(exc)) from None
            if not ami.connected:
                raise ConferenceError("ami_down", "与 Asterisk 的连接已断开",
                                      "the AMI link to Asterisk is down") from None
            raise ConferenceError("timeout", "Asterisk 未及时应答, 结果未知",
                                  f"no answer from Asterisk to {name}: it may or may not have happened") from None

    # -- what Asterisk says -------------------------------------------------------------------

    def on_ami_event(self, message: AmiMessage) -> None:
        """Every AMI event (wired by the engine beside the dispatcher's); only ours are read."""
        name = message.event
        if name == "UserEvent" and message.get("UserEvent") == dialplan.CONF_EVENT:
            self._conf_event(message)
        elif name == "OriginateResponse" and message.get("Uniqueid", "") in self._by_party:
            self._originated(message)

    def _conf_event(self, message: AmiMessage) -> None:
        call_id, role = message.get("Call", ""), message.get("Role", "")
        action, party_id = message.get("Action", ""), message.get("Party", "")
        conf = self._confs.get(call_id)
        if conf is None:
            return
        if role == "caller" and action == "left":
            if "caller" in conf.seen:
                self._report(call_id, "left", "caller", "hangup")
            self._forget(call_id)
            return
        if role in ("caller", "agent") and action == "joined":
            if role not in conf.seen:
                conf.seen.add(role)
                self._report(call_id, "joined", "caller" if role == "caller" else f"agent:{conf.agent_id}")
            return
        if role == "agent" and action == "left":
            if "agent-left" in conf.seen:
                conf.seen.add("agent-gone")  # `leave` or the blind hand-over took them out, and reports it
                return
            conf.seen.add("agent-left")
            conf.agent_channel = None
            self._agent_hung_up(conf)
            return
        p = conf.parties.get(party_id)
        if role != "party" or p is None:
            return
        if action == "joined" and not p.joined:
            p.joined = True
            self._report(call_id, "joined", p.who)
            if p.hand_over_from is not None and conf.agent_channel is not None:
                self._spawn(self._blind_done(conf))
        elif action == "left" and not p.gone:
            p.gone = True
            self._report(call_id, "left", p.who, "hangup")

    def _originated(self, message: AmiMessage) -> None:
        party_id = message.get("Uniqueid", "")
        call_id = self._by_party.get(party_id, "")
        conf = self._confs.get(call_id)
        p = conf.parties.get(party_id) if conf is not None else None
        if p is None or message.get("Response") == "Success" or p.gone:
            return
        p.gone = True
        status = dialplan.originate_status(message.get("Reason", ""))
        log.info("conference_party_failed", call_id=call_id, party=_shown(p.who), status=status)
        self._report(call_id, "failed", p.who, status)

    def _agent_hung_up(self, conf: _Conf) -> None:
        self._report(conf.call_id, "left", f"agent:{conf.agent_id}", "hangup")
        if conf.joined():
            # The agent hung up their phone: the caller re-enters, as after `leave`.
            self._spawn(self._caller_on(conf))

    async def _blind_done(self, conf: _Conf) -> None:
        async with self._turn(conf.call_id):
            if self._confs.get(conf.call_id) is not conf or conf.agent_channel is None:
                return  # the agent left meanwhile (`leave`, their phone hung up), or the call ended
            try:
                await self._hand_over(conf, "transfer")
            except ConferenceError as exc:
                log.warning("conference_transfer_not_completed", call_id=conf.call_id, error=str(exc))
                return
            self._report(conf.call_id, "left", f"agent:{conf.agent_id}", "transfer")

    async def _caller_on(self, conf: _Conf) -> None:
        async with self._turn(conf.call_id):
            if self._confs.get(conf.call_id) is not conf:
                return  # the caller hung up meanwhile
            try:
                await self._act(self._link(), {"Action": "Redirect", "Channel": conf.caller_channel,
                                               "Context": dialplan.CONF, "Exten": dialplan.CONF_ON,
                                               "Priority": str(dialplan.REDIRECT_PRIORITY)}, conf.call_id)
            except ConferenceError as exc:  # only a restarted engine's picture is affected
                log.warning("conference_caller_not_moved", call_id=conf.call_id, error=str(exc))

    # -- bookkeeping --------------------------------------------------------------------------

    def _report(self, call_id: str, kind: Kind, party: str, detail: str = "") -> PartyChange:
        change = PartyChange(call_id, kind, party, self.wall(), detail)
        log.info("conference_change", call_id=call_id, kind=kind, party=_shown(party), detail=detail or None)
        if self.on_change is not None:
            try:
                self.on_change(change)
            except Exception:  # the history is also in the logs: the call goes on
                log.exception("conference_on_change_failed", call_id=call_id)
        return change

    def _forget(self, call_id: str) -> None:
        conf = self._confs.pop(call_id, None)
        if conf is not None:
            for party_id in conf.parties:
                self._by_party.pop(party_id, None)
        turn = self._turns.get(call_id)
        if turn is not None and turn.users == 0:  # a request holding it drops it as it ends
            del self._turns[call_id]

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _shown(party: str) -> str:
    """A party as logged: a number (it may be a citizen's) keeps its last four digits."""
    kind, _, value = party.partition(":")
    return f"number:{mask_number(value, True)}" if kind == "number" else party
