"""IVR flows as data, and the pure interpreter that walks them.

A flow is a graph of nodes keyed by id (not a nested tree), entered at its `start` node.
The interpreter is pure: no I/O, no clock. The adapter (the FastAGI server) calls
`start()`, performs the `Step` it gets back (play a prompt and maybe read keys, look a
ticket up, record an effect, or finish the IVR), and hands the outcome to `resume()`
with the time; `hangup()` says what must still be recorded when the caller hangs up.

Whatever goes wrong inside a flow (a node that does not exist, a result of the wrong
kind, a loop), the caller is never left in silence: the flow ends with
`Finish(action="enqueue", error=...)` and the caller goes to an agent.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import ClassVar, Literal

Language = Literal["zh", "en"]
LANGUAGES: tuple[Language, ...] = ("zh", "en")
DTMF_KEYS = frozenset("0123456789*#")
# Nodes a session may enter in all before the flow is taken for a loop and the caller
# goes to the queue: a short 12345 flow enters a dozen.
MAX_STEPS = 200


# -- what a prompt is made of ------------------------------------------------------------

@dataclass(frozen=True)
class Sound:
    """A recorded prompt, by name ([a-z0-9-]); the adapter picks the file for the language."""

    name: str


@dataclass(frozen=True)
class SayDigits:
    """Digits read one by one ("1 2 3 4 5")."""

    text: str


@dataclass(frozen=True)
class SayNumber:
    """A number read as a number ("一万二千三百四十五")."""

    value: int


@dataclass(frozen=True)
class SayDate:
    day: date


@dataclass(frozen=True)
class SayVar:
    """A session variable, read as digits or as a number; resolved when the prompt is played."""

    name: str
    how: Literal["digits", "number"] = "digits"


Spoken = Sound | SayDigits | SayNumber | SayDate  # what a Prompt step carries: SayVar is resolved
Item = Spoken | SayVar


def sounds(*names: str) -> tuple[Sound, ...]:
    return tuple(Sound(n) for n in names)


# -- condition tests -----------------------------------------------------------------------

@dataclass(frozen=True)
class IsOpen:
    """The queue's opening hours say open now (the adapter asks the engine)."""

    queue: str


@dataclass(frozen=True)
class TimeOfDay:
    """Local time of day in [start, end); start > end wraps past midnight; end time.max is 24:00."""

    start: time
    end: time


@dataclass(frozen=True)
class Weekday:
    days: frozenset[int]  # Monday 0 .. Sunday 6


@dataclass(frozen=True)
class CallerIn:
    """The caller's number is on a named list; an entry ending in * is a prefix."""

    name: str


@dataclass(frozen=True)
class VarEquals:
    name: str
    value: str


@dataclass(frozen=True)
class WaitOver:
    """The engine's estimated wait for the queue is more than `seconds`."""

    queue: str
    seconds: float


Test = IsOpen | TimeOfDay | Weekday | CallerIn | VarEquals | WaitOver


# -- nodes -----------------------------------------------------------------------------------
# Every node has its id, its YAML line (0 when built in code) and `limit`: the most seconds
# the node may take in all (its prompts, every try, a look-up) before it gives up along its
# failure path; 0 for nodes that take no time. `lines` maps a key inside the node
# ("next", "options.1", "prompts.0") to its YAML line, for messages.

@dataclass(frozen=True, kw_only=True)
class _Node:
    kind: ClassVar[str]
    id: str
    line: int = 0
    limit: float = 0.0
    lines: Mapping[str, int] = field(default_factory=dict, compare=False, repr=False)

    def at(self, key: str) -> int:
        """The YAML line of a key inside this node, else the node's own line."""
        return self.lines.get(key, self.line)


@dataclass(frozen=True, kw_only=True)
class Play(_Node):
    kind: ClassVar[str] = "play"
    prompts: tuple[Item, ...]
    next: str
    limit: float = 120.0


@dataclass(frozen=True, kw_only=True)
class Menu(_Node):
    """Play the prompt and wait `timeout` seconds for one key; `tries` plays in all."""

    kind: ClassVar[str] = "menu"
    prompts: tuple[Item, ...]
    options: tuple[tuple[str, str], ...]  # (key, target); keys 0-9 * #
    on_fail: str  # tries used up, by timeouts or wrong keys
    on_timeout: str | None = None  # set: no key goes there at once instead of trying again
    timeout: float = 5.0
    tries: int = 3
    invalid: tuple[Item, ...] = (Sound("invalid-key"),)  # played after a wrong key
    no_input: tuple[Item, ...] = ()  # played after no key, before the prompt again
    limit: float = 120.0


@dataclass(frozen=True, kw_only=True)
class Collect(_Node):
    """Read min_digits..max_digits digits ended by `terminator` into the variable `var`."""

    kind: ClassVar[str] = "collect"
    prompts: tuple[Item, ...]
    var: str
    next: str
    on_fail: str
    min_digits: int = 1
    max_digits: int = 20
    terminator: str = "#"
    timeout: float = 8.0  # for the first key after the prompt
    digit_timeout: float = 5.0  # between keys
    tries: int = 3
    invalid: tuple[Item, ...] = (Sound("invalid-key"),)
    no_input: tuple[Item, ...] = ()
    limit: float = 180.0


@dataclass(frozen=True, kw_only=True)
class Condition(_Node):
    kind: ClassVar[str] = "condition"
    test: Test
    then: str
    else_: str


@dataclass(frozen=True, kw_only=True)
class Set(_Node):
    """Assign what the call carries to the queue; None or empty: left as it is."""

    kind: ClassVar[str] = "set"
    next: str
    priority: int | None = None  # 0-9
    skills: tuple[tuple[str, int], ...] = ()  # added to (or replacing the level of) the call's skills
    language: Language | None = None
    queue: str | None = None
    vars: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, kw_only=True)
class Enqueue(_Node):
    """END: the caller goes to the queue (None: the session's, else the dialled number's)."""

    kind: ClassVar[str] = "enqueue"
    queue: str | None = None
    skills: tuple[tuple[str, int], ...] = ()
    priority: int | None = None


@dataclass(frozen=True, kw_only=True)
class Callback(_Node):
    """Offer a callback; on `accept`, use the calling number or key another, book it, confirm it.

    The offer: `accept` takes it, any other key or none declines. Then, with a usable
    calling number, `own_number` asks: `accept` for that number, `other` to key another;
    a restricted or absent number goes straight to keying one (`enter_number`, 5-20
    digits ended by #). The callback is booked (RequestCallback), `confirm` and the number
    are read back, and the flow goes to `next` (normally a goodbye and hang-up).
    Declined, tries used up, or not booked: `declined` (normally the queue).
    """

    kind: ClassVar[str] = "callback"
    next: str
    declined: str
    prompts: tuple[Item, ...] = (Sound("callback-offer"),)
    accept: str = "1"
    other: str = "2"
    own_number: tuple[Item, ...] = (Sound("callback-own-number"),)  # "1: this number, 2: another"
    enter_number: tuple[Item, ...] = (Sound("callback-enter-number"),)
    confirm: tuple[Item, ...] = (Sound("callback-confirm"),)  # "we will call you back on", then the number
    min_digits: int = 5
    max_digits: int = 20
    timeout: float = 5.0  # for a key after the offer or the own-number question, and between digits
    enter_timeout: float = 10.0  # for the first digit of a number
    tries: int = 3  # wrong keys, silences or bad numbers before it counts as declined
    invalid: tuple[Item, ...] = (Sound("invalid-key"),)
    no_input: tuple[Item, ...] = (Sound("no-input"),)
    limit: float = 180.0


@dataclass(frozen=True, kw_only=True)
class Survey(_Node):
    """The satisfaction survey: one key 1..scale; emits Rate exactly once (None: no rating)."""

    kind: ClassVar[str] = "survey"
    next: str
    prompts: tuple[Item, ...] = (Sound("survey-ask"),)
    scale: int = 5  # 5 or 3
    timeout: float = 5.0
    tries: int = 2
    invalid: tuple[Item, ...] = (Sound("invalid-key"),)
    no_input: tuple[Item, ...] = ()
    thanks: tuple[Item, ...] = (Sound("survey-thanks"),)  # after a rating
    no_rating: tuple[Item, ...] = (Sound("survey-none"),)  # after no rating (not on a hang-up)
    limit: float = 60.0


FOUND_SOUNDS = ("ticket-state-is", "ticket-due", "ticket-no-due")


@dataclass(frozen=True, kw_only=True)
class SayTicket(_Node):
    """Look up the ticket number in `var` and read its state and due date.

    Not found: play `not_found` and go back to `ask` (the collect that asks for the
    number); the `tries`-th miss in the call goes to `on_fail` instead. A failed or
    too slow look-up sends the caller to an agent (Finish enqueue with an error).
    """

    kind: ClassVar[str] = "say_ticket"
    ask: str
    next: str
    on_fail: str
    var: str = "ticket"
    tries: int = 3
    not_found: tuple[Item, ...] = (Sound("ticket-not-found"),)
    limit: float = 60.0


@dataclass(frozen=True, kw_only=True)
class Transfer(_Node):
    """END: the caller goes to an outside number."""

    kind: ClassVar[str] = "transfer"
    number: str


@dataclass(frozen=True, kw_only=True)
class Hangup(_Node):
    """END: play the prompts, if any, and hang up."""

    kind: ClassVar[str] = "hangup"
    prompts: tuple[Item, ...] = ()
    limit: float = 60.0


@dataclass(frozen=True, kw_only=True)
class Goto(_Node):
    """Continue at the start of another flow."""

    kind: ClassVar[str] = "goto"
    flow: str


Node = Play | Menu | Collect | Condition | Set | Enqueue | Callback | Survey | SayTicket | Transfer | Hangup | Goto
NODE_TYPES: tuple[type[Node], ...] = (Play, Menu, Collect, Condition, Set, Enqueue, Callback, Survey, SayTicket,
                                      Transfer, Hangup, Goto)
END_NODES = (Enqueue, Transfer, Hangup)
INPUT_NODES = (Menu, Collect, Survey, Callback)  # they wait for the caller's keys


def targets(node: Node) -> tuple[tuple[str, str], ...]:
    """(key, node id) of every node this one may go to in its own flow; key as in node.lines."""
    match node:
        case Play() | Set():
            return (("next", node.next),)
        case Menu():
            out = [(f"options.{key}", target) for key, target in node.options]
            out.append(("on_fail", node.on_fail))
            if node.on_timeout is not None:
                out.append(("on_timeout", node.on_timeout))
            return tuple(out)
        case Collect():
            return (("next", node.next), ("on_fail", node.on_fail))
        case Condition():
            return (("then", node.then), ("else", node.else_))
        case Callback():
            return (("next", node.next), ("declined", node.declined))
        case Survey():
            return (("next", node.next),)
        case SayTicket():
            return (("next", node.next), ("ask", node.ask), ("on_fail", node.on_fail))
        case Enqueue() | Transfer() | Hangup() | Goto():
            return ()


# -- flows -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Flow:
    name: str
    start: str
    nodes: Mapping[str, Node]
    line: int = 0
    lines: Mapping[str, int] = field(default_factory=dict, compare=False, repr=False)  # "start" -> line

    @classmethod
    def of(cls, name: str, nodes: Iterable[Node], start: str | None = None) -> Flow:
        """A flow built in code; start defaults to the first node."""
        listed = list(nodes)
        return cls(name, start if start is not None else listed[0].id, {n.id: n for n in listed})


@dataclass(frozen=True)
class Flows:
    flows: Mapping[str, Flow]
    lists: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # caller lists (caller_in)
    survey: str | None = None  # the flow run after the agent hangs up first

    @classmethod
    def of(cls, *flows: Flow, lists: Mapping[str, tuple[str, ...]] | None = None,
           survey: str | None = None) -> Flows:
        return cls({f.name: f for f in flows}, dict(lists or {}), survey)

    def node(self, flow: str, node: str) -> Node | None:
        f = self.flows.get(flow)
        return f.nodes.get(node) if f is not None else None

    @staticmethod
    def fallback(error: str | None = None) -> Finish:
        """What a caller gets when there is no flow to run: the queue."""
        return Finish(action="enqueue", error=error)


# -- what the adapter knows, and the session it keeps ----------------------------------------

@dataclass(frozen=True)
class Context:
    """What the adapter knows about the call; read-only."""

    caller: str  # digits as the adapter normalised them; "" when absent
    restricted: bool  # the caller withheld the number
    now_local: datetime  # naive local time (Asia/Shanghai) for the time and weekday tests
    is_open: Callable[[str], bool] = lambda _queue: True
    estimated_wait: Callable[[str], float] = lambda _queue: 0.0
    lists: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # before the flows' own lists


# -- steps the adapter performs, and what it hands back --------------------------------------

@dataclass(frozen=True)
class Keys:
    """Read keys while (and after) the prompt plays: up to max_digits, ended early by the terminator."""

    max_digits: int
    terminator: str  # "" for none
    timeout: float  # between keys
    first_timeout: float  # for the first key after the prompt ends


@dataclass(frozen=True)
class Prompt:
    items: tuple[Spoken, ...]
    language: Language
    collect: Keys | None = None  # None: play to the end, no keys; the result is Digits("")


@dataclass(frozen=True)
class Lookup:
    number: str  # the ticket number the caller keyed


@dataclass(frozen=True)
class Rate:
    """Record the satisfaction rating: the key pressed, 1..scale; None: no rating (未评价)."""

    kind: ClassVar[str] = "rate"
    score: int | None
    scale: int


@dataclass(frozen=True)
class RequestCallback:
    """Book a callback to this number, for the queue the caller would have waited in."""

    kind: ClassVar[str] = "callback"
    number: str
    queue: str | None
    priority: int | None
    skills: tuple[tuple[str, int], ...]
    language: Language


Effect = Rate | RequestCallback


@dataclass(frozen=True)
class Finish:
    """The IVR is over. queue None: the dialled number's; priority None: not set by the flow."""

    action: Literal["enqueue", "transfer", "hangup"]
    queue: str | None = None
    priority: int | None = None
    skills: tuple[tuple[str, int], ...] = ()
    language: Language = "zh"
    number: str = ""  # transfer only
    vars: tuple[tuple[str, str], ...] = ()  # what the caller keyed, for the agent's screen
    error: str | None = None  # set when a flow error sent the caller to the queue


Step = Prompt | Lookup | Rate | RequestCallback | Finish


@dataclass(frozen=True)
class Digits:
    """The keys read ("" when none came in time); for a Prompt without keys, any Digits."""

    text: str


@dataclass(frozen=True)
class TicketFound:
    state: str  # the ticket's state value, e.g. "in_progress" (prompt "state-in-progress")
    due: date | None


@dataclass(frozen=True)
class TicketNotFound:
    pass


@dataclass(frozen=True)
class Done:
    """An effect was performed (ok) or could not be (not ok)."""

    ok: bool


Result = Digits | TicketFound | TicketNotFound | Done


@dataclass
class Session:
    flow: str
    node: str = ""
    vars: dict[str, str] = field(default_factory=dict)
    language: Language = "zh"
    priority: int | None = None
    skills: dict[str, int] = field(default_factory=dict)
    queue: str | None = None  # None: the dialled number's queue
    tries: int = 0  # prompts played at this node (menu, collect, survey) or failures (callback)
    phase: str = ""  # where a node of several steps is
    pending: str = ""  # the callback number awaiting confirmation
    node_entered: float = 0.0
    steps: int = 0  # nodes entered in all (the loop guard)
    misses: dict[str, int] = field(default_factory=dict)  # tickets not found, per say_ticket node
    rated: bool = False  # the survey at this node has emitted its Rate
    waiting: Step | None = None  # the step the adapter is performing
    finished: Finish | None = None


# -- the interpreter -------------------------------------------------------------------------

@dataclass(frozen=True)
class _Go:
    target: str


_Out = Step | _Go


def start(flows: Flows, name: str, ctx: Context, now: float, language: Language = "zh") -> tuple[Session, Step]:
    """Begin `name`, in `language` (the survey continues in the language the caller chose)."""
    session = Session(flow=name, language=language)
    flow = flows.flows.get(name)
    if flow is None:
        return session, _fail(session, f"no flow named {name!r}")
    return session, _run(flows, session, ctx, now, _Go(flow.start))


def resume(flows: Flows, session: Session, result: Result, ctx: Context, now: float) -> Step:
    s = session
    if s.finished is not None:
        return s.finished
    node = flows.node(s.flow, s.node)
    if node is None:
        return _fail(s, f"flow {s.flow}: no node {s.node!r} to resume")
    waiting = s.waiting
    if waiting is None or not _fits(waiting, result):
        return _fail(s, f"flow {s.flow}, node {s.node}: unexpected {type(result).__name__} "
                        f"while {'nothing' if waiting is None else type(waiting).__name__} was pending")
    s.waiting = None
    # An effect's outcome is taken as it is: it was recorded (or not) whatever the time.
    if node.limit and now - s.node_entered > node.limit and not isinstance(waiting, Rate | RequestCallback):
        out = _give_up(node, s)
    else:
        out = _on_result(node, s, result, ctx)
    return _run(flows, s, ctx, now, out)


def hangup(flows: Flows, session: Session, now: float) -> tuple[Effect, ...]:
    """The caller hung up mid-flow: what must still be recorded. The session ends."""
    s = session
    if s.finished is not None:
        return ()
    node = flows.node(s.flow, s.node)
    effects: tuple[Effect, ...] = ()
    if isinstance(node, Survey) and not s.rated:
        s.rated = True
        effects = (Rate(None, node.scale),)
    s.waiting = None
    s.finished = _finish(s, "hangup")
    return effects


def deadline(flows: Flows, session: Session) -> float | None:
    """When the current node gives up (for the adapter's own timers); None: no limit."""
    node = flows.node(session.flow, session.node)
    if node is None or not node.limit or session.finished is not None:
        return None
    return session.node_entered + node.limit


def _fits(waiting: Step, result: Result) -> bool:
    match waiting:
        case Prompt():
            return isinstance(result, Digits)
        case Lookup():
            return isinstance(result, TicketFound | TicketNotFound)
        case Rate() | RequestCallback():
            return isinstance(result, Done)
        case Finish():
            return False


def _run(flows: Flows, s: Session, ctx: Context, now: float, out: _Out) -> Step:
    """Enter nodes until one hands the adapter a step."""
    while isinstance(out, _Go):
        s.steps += 1
        if s.steps > MAX_STEPS:
            return _fail(s, f"loop: more than {MAX_STEPS} nodes entered (last {s.flow}.{out.target})")
        node = flows.node(s.flow, out.target)
        if node is None:
            return _fail(s, f"flow {s.flow}: no node {out.target!r}")
        s.node, s.node_entered, s.tries, s.phase, s.pending = node.id, now, 0, "", ""
        if isinstance(node, Goto):
            target = flows.flows.get(node.flow)
            if target is None:
                return _fail(s, f"flow {s.flow}, node {node.id}: no flow named {node.flow!r}")
            s.flow = target.name
            out = _Go(target.start)
            continue
        try:
            out = _enter(node, s, ctx, flows)
        except _Broken as exc:
            return _fail(s, f"flow {s.flow}, node {node.id}: {exc}")
    if isinstance(out, Finish):
        s.finished = out
    else:
        s.waiting = out
    return out


class _Broken(Exception):
    """The flow cannot go on at this node (e.g. a list that does not exist)."""


def _fail(s: Session, error: str) -> Finish:
    s.waiting = None
    s.finished = _finish(s, "enqueue", error=error)
    return s.finished


def _finish(s: Session, action: Literal["enqueue", "transfer", "hangup"], *, queue: str | None = None,
            priority: int | None = None, skills: tuple[tuple[str, int], ...] = (), number: str = "",
            error: str | None = None) -> Finish:
    merged = dict(s.skills)
    merged.update(skills)
    return Finish(action=action, queue=queue or s.queue, priority=s.priority if priority is None else priority,
                  skills=tuple(sorted(merged.items())), language=s.language, number=number,
                  vars=tuple(sorted(s.vars.items())), error=error)


def _prompt(s: Session, items: Iterable[Item], keys: Keys | None = None) -> Prompt:
    spoken: list[Spoken] = []
    for item in items:
        if isinstance(item, SayVar):
            value = s.vars.get(item.name, "")
            if not value:
                continue  # nothing to say
            if item.how == "number" and value.isdigit():
                spoken.append(SayNumber(int(value)))
            else:
                spoken.append(SayDigits(value))
        else:
            spoken.append(item)
    return Prompt(tuple(spoken), s.language, keys)


def _one_key(timeout: float) -> Keys:
    return Keys(max_digits=1, terminator="", timeout=timeout, first_timeout=timeout)


def _enter(node: Node, s: Session, ctx: Context, flows: Flows) -> _Out:
    match node:
        case Play():
            return _prompt(s, node.prompts) if node.prompts else _Go(node.next)
        case Menu():
            s.tries = 1
            return _prompt(s, node.prompts, _one_key(node.timeout))
        case Collect():
            s.tries = 1
            return _prompt(s, node.prompts, _collect_keys(node))
        case Condition():
            return _Go(node.then if _holds(node.test, s, ctx, flows) else node.else_)
        case Set():
            if node.priority is not None:
                s.priority = node.priority
            s.skills.update(node.skills)
            if node.language is not None:
                s.language = node.language
            if node.queue is not None:
                s.queue = node.queue
            s.vars.update(node.vars)
            return _Go(node.next)
        case Enqueue():
            return _finish(s, "enqueue", queue=node.queue, priority=node.priority, skills=node.skills)
        case Callback():
            s.phase = "offer"
            return _prompt(s, node.prompts, _one_key(node.timeout))
        case Survey():
            s.phase, s.tries, s.rated = "ask", 1, False
            return _prompt(s, node.prompts, _one_key(node.timeout))
        case SayTicket():
            number = s.vars.get(node.var, "")
            if not number:
                return _missed(node, s)
            s.phase = "lookup"
            return Lookup(number)
        case Transfer():
            return _finish(s, "transfer", number=node.number)
        case Hangup():
            if node.prompts:
                s.phase = "bye"
                return _prompt(s, node.prompts)
            return _finish(s, "hangup")
        case Goto():  # handled by _run
            raise _Broken("goto entered as a node")


def _collect_keys(node: Collect) -> Keys:
    return Keys(node.max_digits, node.terminator, node.digit_timeout, node.timeout)


def _on_result(node: Node, s: Session, result: Result, ctx: Context) -> _Out:
    match node:
        case Play():
            return _Go(node.next)
        case Menu():
            assert isinstance(result, Digits)
            key = result.text
            for option, target in node.options:
                if key == option:
                    return _Go(target)
            if not key and node.on_timeout is not None:
                return _Go(node.on_timeout)
            if s.tries >= node.tries:
                return _Go(node.on_fail)
            s.tries += 1
            return _prompt(s, (*(node.invalid if key else node.no_input), *node.prompts), _one_key(node.timeout))
        case Collect():
            assert isinstance(result, Digits)
            text = result.text
            if node.terminator and text.endswith(node.terminator):
                text = text[: -len(node.terminator)]
            if text.isdigit() and node.min_digits <= len(text) <= node.max_digits:
                s.vars[node.var] = text
                return _Go(node.next)
            if s.tries >= node.tries:
                return _Go(node.on_fail)
            s.tries += 1
            return _prompt(s, (*(node.invalid if result.text else node.no_input), *node.prompts), _collect_keys(node))
        case Callback():
            return _callback(node, s, result, ctx)
        case Survey():
            return _survey(node, s, result)
        case SayTicket():
            return _say_ticket(node, s, result)
        case Hangup():
            return _finish(s, "hangup")
        case Condition() | Set() | Enqueue() | Transfer() | Goto():
            raise AssertionError("these nodes hand the adapter no step")  # _fits stops a stray result


def _give_up(node: Node, s: Session) -> _Out:
    """The node's limit passed: its failure path."""
    match node:
        case Play():
            return _Go(node.next)
        case Menu() | Collect():
            return _Go(node.on_fail)
        case Callback():
            return _Go(node.next if s.phase == "booked" else node.declined)
        case Survey():
            if not s.rated:
                s.rated = True
                s.phase = "no_rating"
                return Rate(None, node.scale)
            return _Go(node.next)
        case SayTicket():
            if s.phase == "lookup":
                return _fail(s, f"flow {s.flow}, node {node.id}: the ticket look-up took longer than {node.limit:g} s")
            return _Go(node.next if s.phase == "found" else node.ask)
        case Hangup():
            return _finish(s, "hangup")
        case Condition() | Set() | Enqueue() | Transfer() | Goto():
            raise AssertionError("these nodes take no time")


def _caller_number(node: Callback, ctx: Context) -> str | None:
    number = ctx.caller
    if ctx.restricted or not number.isdigit() or not node.min_digits <= len(number) <= node.max_digits:
        return None
    return number


def _callback(node: Callback, s: Session, result: Result, ctx: Context) -> _Out:
    if s.phase == "book":
        assert isinstance(result, Done)
        if not result.ok:
            return _Go(node.declined)
        if not node.confirm:
            return _Go(node.next)
        s.phase = "booked"
        return _prompt(s, (*node.confirm, SayDigits(s.pending)))
    assert isinstance(result, Digits)
    key = result.text
    enter_keys = Keys(node.max_digits, "#", node.timeout, node.enter_timeout)

    def book(number: str) -> _Out:
        s.phase, s.pending = "book", number
        return RequestCallback(number, s.queue, s.priority, tuple(sorted(s.skills.items())), s.language)

    def again(items: tuple[Item, ...], keys: Keys) -> _Out:
        s.tries += 1  # one more failure
        if s.tries >= node.tries:
            return _Go(node.declined)
        return _prompt(s, (*(node.invalid if key else node.no_input), *items), keys)

    match s.phase:
        case "offer":
            if key != node.accept:
                return _Go(node.declined)  # no key or another key: the caller keeps waiting
            if _caller_number(node, ctx) is None:
                s.phase = "key"
                return _prompt(s, node.enter_number, enter_keys)
            s.phase = "own"
            return _prompt(s, node.own_number, _one_key(node.timeout))
        case "own":
            own = _caller_number(node, ctx)
            if key == node.accept and own is not None:
                return book(own)
            if key == node.other:
                s.phase = "key"
                return _prompt(s, node.enter_number, enter_keys)
            return again(node.own_number, _one_key(node.timeout))
        case "key":
            text = key.removesuffix("#")
            if text.isdigit() and node.min_digits <= len(text) <= node.max_digits:
                return book(text)
            return again(node.enter_number, enter_keys)
        case "booked":
            return _Go(node.next)
        case _:
            raise _Broken(f"callback in an unknown phase {s.phase!r}")


def _survey(node: Survey, s: Session, result: Result) -> _Out:
    match s.phase:
        case "ask":
            assert isinstance(result, Digits)
            key = result.text
            if len(key) == 1 and key.isdigit() and 1 <= int(key) <= node.scale:
                s.rated, s.phase = True, "rated"
                return Rate(int(key), node.scale)
            if s.tries >= node.tries:
                s.rated, s.phase = True, "no_rating"
                return Rate(None, node.scale)
            s.tries += 1
            return _prompt(s, (*(node.invalid if key else node.no_input), *node.prompts), _one_key(node.timeout))
        case "rated":
            if node.thanks:
                s.phase = "thanks"
                return _prompt(s, node.thanks)
            return _Go(node.next)
        case "no_rating":
            if node.no_rating:
                s.phase = "unrated"
                return _prompt(s, node.no_rating)
            return _Go(node.next)
        case "thanks" | "unrated":
            return _Go(node.next)
        case _:
            raise _Broken(f"survey in an unknown phase {s.phase!r}")


def state_sound(state: str) -> Sound | None:
    """The prompt naming a ticket state: "in_progress" -> state-in-progress."""
    name = "".join(ch if ch.isascii() and ch.isalnum() else "-" for ch in state.strip().lower()).strip("-")
    return Sound(f"state-{name}") if name else None


def _missed(node: SayTicket, s: Session) -> _Out:
    s.misses[node.id] = misses = s.misses.get(node.id, 0) + 1
    if misses >= node.tries:
        return _Go(node.on_fail)
    if node.not_found:
        s.phase = "missed"
        return _prompt(s, node.not_found)
    return _Go(node.ask)


def _say_ticket(node: SayTicket, s: Session, result: Result) -> _Out:
    match s.phase:
        case "lookup":
            if isinstance(result, TicketNotFound):
                return _missed(node, s)
            assert isinstance(result, TicketFound)
            s.misses[node.id] = 0
            items: list[Item] = [Sound("ticket-state-is")]
            state = state_sound(result.state)
            if state is not None:
                items.append(state)
            items += [Sound("ticket-due"), SayDate(result.due)] if result.due else [Sound("ticket-no-due")]
            s.phase = "found"
            return _prompt(s, items)
        case "found":
            return _Go(node.next)
        case "missed":
            return _Go(node.ask)
        case _:
            raise _Broken(f"say_ticket in an unknown phase {s.phase!r}")


def _holds(test: Test, s: Session, ctx: Context, flows: Flows) -> bool:
    match test:
        case IsOpen():
            return ctx.is_open(test.queue)
        case TimeOfDay():
            t = ctx.now_local.time()
            if test.end == time.max:
                return t >= test.start
            if test.start < test.end:
                return test.start <= t < test.end
            return t >= test.start or t < test.end  # past midnight
        case Weekday():
            return ctx.now_local.weekday() in test.days
        case CallerIn():
            entries = ctx.lists.get(test.name, flows.lists.get(test.name))
            if entries is None:
                raise _Broken(f"no caller list named {test.name!r}")
            return on_list(ctx.caller, ctx.restricted, entries)
        case VarEquals():
            return s.vars.get(test.name) == test.value
        case WaitOver():
            return ctx.estimated_wait(test.queue) > test.seconds


def on_list(caller: str, restricted: bool, entries: Iterable[str]) -> bool:
    if restricted or not caller:
        return False
    return any(caller.startswith(e[:-1]) if e.endswith("*") else caller == e for e in entries)
