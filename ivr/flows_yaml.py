"""ivr.yaml -> Flows (ivr.flow) and IvrSettings, every error naming its file and line.

`load_flows` reads the text and checks its shape: keys, types, ranges and names. What
needs the whole picture (targets, loops, queues, prompts, DTMF keys) is `ivr.check.check`,
run by whoever also knows the queues and the prompts; `as_problems` turns its issues into
config.loader Problems for the same report.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, datetime, time
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from config.loader import DEFAULTS_DIR, ConfigError, Problem, parse_yaml
from config.settings import DAY_GROUPS, DAYS, AbsolutePath, Skills
from ivr import flow as f
from ivr.check import Issue

DEFAULT_FILE = DEFAULTS_DIR / "ivr.yaml"

Loc = tuple[str | int, ...]

FlowName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,31}$")]
NodeId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
VarName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")]
QueueName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")]
ListName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,31}$")]
DialledNumber = Annotated[str, Field(pattern=r"^[0-9]{3,15}$")]
PROMPT_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")


def _text(value: object) -> object:
    """A whole number written without quotes, where text is meant (a key, a value)."""
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


Key = Annotated[str, BeforeValidator(_text)]  # a phone key: 1 or "1"; check() says which are keys
Value = Annotated[str, BeforeValidator(_text)]
ListEntry = Annotated[str, Field(pattern=r"^[0-9]{1,20}\*?$")]  # a number, or a prefix ending in *
Seconds = Annotated[float, Field(gt=0, le=600)]
Tries = Annotated[int, Field(ge=1, le=9)]
DigitCount = Annotated[int, Field(ge=1, le=64)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# -- the settings the engine reads ------------------------------------------------------------

class PromptsSection(_Strict):
    # Recordings here replace the shipped ones of the same name (<dir>/<language>/<name>.wav).
    override_dir: AbsolutePath | None = Path("/var/lib/hotline/prompts")


class SurveySection(_Strict):
    flow: FlowName = "survey"  # run when the agent hangs up first
    enabled: bool = True


class CallbackSection(_Strict):
    retries: int = Field(3, ge=0, le=10)  # calls to the citizen after the first, if unanswered
    retry_interval: float = Field(300, ge=30, le=86400)  # seconds between them
    ring_timeout: float = Field(30, ge=5, le=300)  # seconds the citizen's phone rings each time


class IvrSettings(_Strict):
    prompts: PromptsSection = PromptsSection()
    numbers: dict[DialledNumber, FlowName] = Field(default_factory=dict)  # dialled number -> first flow
    survey: SurveySection = SurveySection()
    callback: CallbackSection = CallbackSection()
    # 工号播报: when an agent answers, the caller (and the agent) hear "<job number>号话务员为您服务"
    # (prompt agent-<id>, put together per agent by `hotline asterisk-conf install`).
    announce_agent: bool = True


class _Head(IvrSettings):
    lists: dict[ListName, list[ListEntry]] = Field(default_factory=dict)


class _FlowShape(_Strict):
    start: NodeId
    nodes: dict[NodeId, Any] = Field(min_length=1)


# -- prompt items -------------------------------------------------------------------------------

ITEM_FORMS = 'a prompt name (welcome), {digits: "12345"}, {number: 5}, {date: 2026-11-26} or {var: ticket, as: digits}'


def _item(value: object) -> f.Item:
    if isinstance(value, str):
        if not PROMPT_NAME.match(value):
            raise ValueError(f"{value!r} is not a prompt name: lower-case letters, digits and - (e.g. ticket-ask)")
        return f.Sound(value)
    if not isinstance(value, dict) or not value:
        raise ValueError(f"a prompt item is {ITEM_FORMS}")
    keys = set(value)
    if keys == {"digits"}:
        digits = value["digits"]
        if not isinstance(digits, str) or not re.fullmatch(r"[0-9*#]{1,64}", digits):
            raise ValueError('digits: write the digits in quotes, e.g. {digits: "12345"} (unquoted, YAML reads a '
                             "number and drops leading zeros)")
        return f.SayDigits(digits)
    if keys == {"number"}:
        number = value["number"]
        if not isinstance(number, int) or isinstance(number, bool) or not 0 <= number < 10**12:
            raise ValueError("number: a whole number from 0 to 999999999999")
        return f.SayNumber(number)
    if keys == {"date"}:
        day = value["date"]
        if isinstance(day, datetime):
            day = day.date()
        if isinstance(day, str):
            try:
                day = date.fromisoformat(day)
            except ValueError:
                raise ValueError(f"date: {day!r} is not YYYY-MM-DD") from None
        if not isinstance(day, date):
            raise ValueError("date: write it as YYYY-MM-DD")
        return f.SayDate(day)
    if keys in ({"var"}, {"var", "as"}):
        name, how = value["var"], value.get("as", "digits")
        if not isinstance(name, str) or not re.fullmatch(r"[a-z][a-z0-9_]{0,31}", name):
            raise ValueError("var: a variable name (lower-case letters, digits, _)")
        if how not in ("digits", "number"):
            raise ValueError(f"as: {how!r}: read a variable as digits or as number")
        return f.SayVar(name, how)
    raise ValueError(f"{', '.join(sorted(map(str, keys)))}: a prompt item is {ITEM_FORMS}")


def _one_or_many(value: object) -> object:
    return [value] if isinstance(value, str | dict) else value


PromptItem = Annotated[Any, BeforeValidator(_item)]
Prompts = Annotated[list[PromptItem], BeforeValidator(_one_or_many)]


# -- nodes --------------------------------------------------------------------------------------
# Each node type has a model of its YAML shape; a key left out takes the default of the
# node class in ivr.flow (one place for defaults). `limit` is the most seconds the node
# may take in all before it gives up along its failure path.

class _NodeY(_Strict):
    limit: float | None = Field(None, gt=0, le=3600)


class PlayY(_NodeY):
    prompts: Prompts = Field(min_length=1)
    next: NodeId


class MenuY(_NodeY):
    prompts: Prompts = Field(min_length=1)
    options: dict[Key, NodeId] = Field(min_length=1)
    on_fail: NodeId
    on_timeout: NodeId | None = None
    timeout: Seconds | None = None
    tries: Tries | None = None
    invalid: Prompts | None = None
    no_input: Prompts | None = None


class CollectY(_NodeY):
    prompts: Prompts = Field(min_length=1)
    var: VarName
    next: NodeId
    on_fail: NodeId
    min_digits: DigitCount | None = None
    max_digits: DigitCount | None = None
    terminator: Key | None = None
    timeout: Seconds | None = None
    digit_timeout: Seconds | None = None
    tries: Tries | None = None
    invalid: Prompts | None = None
    no_input: Prompts | None = None


def _span(text: str) -> f.TimeOfDay:
    if not re.fullmatch(r"\d\d:\d\d-\d\d:\d\d", text):
        raise ValueError(f'{text!r} is not HH:MM-HH:MM; write e.g. "08:00-20:00" (in quotes)')
    a, b = text.split("-")

    def at(hhmm: str, end: bool) -> time:
        hh, mm = int(hhmm[:2]), int(hhmm[3:])
        if end and (hh, mm) == (24, 0):
            return time.max
        if hh > 23 or mm > 59:
            raise ValueError(f"{hhmm} is not a time of day (00:00-23:59, or 24:00 as an end)")
        return time(hh, mm)

    start, stop = at(a, False), at(b, True)
    if start == stop:
        raise ValueError(f"{text} starts where it ends; for all day leave the test out")
    return f.TimeOfDay(start, stop)


def _days(value: list[str] | str) -> f.Weekday:
    days: set[int] = set()
    for item in [value] if isinstance(value, str) else value:
        if item not in DAY_GROUPS:
            raise ValueError(f"{item!r} is not a day; use {', '.join(DAY_GROUPS)}")
        days.update(DAYS.index(d) for d in DAY_GROUPS[item])
    return f.Weekday(frozenset(days))


def _valid_span(text: str) -> str:
    _span(text)
    return text


def _valid_days(value: list[str] | str) -> list[str] | str:
    _days(value)
    return value


class WaitOverY(_Strict):
    queue: QueueName
    seconds: float = Field(ge=0, le=86400)


TESTS = ("open", "time", "weekday", "caller_in", "var", "wait_over")


class ConditionY(_NodeY):
    open: QueueName | None = None
    time: Annotated[str, AfterValidator(_valid_span)] | None = None
    weekday: Annotated[list[str] | str, AfterValidator(_valid_days)] | None = None
    caller_in: ListName | None = None
    var: VarName | None = None
    equals: Value | None = None
    wait_over: WaitOverY | None = None
    then: NodeId
    else_: NodeId = Field(alias="else")

    @model_validator(mode="after")
    def _one_test(self) -> ConditionY:
        given = [t for t in TESTS if getattr(self, t) is not None]
        if len(given) != 1:
            raise ValueError(f"a condition needs exactly one test of {', '.join(TESTS)}"
                             + (f" (here: {', '.join(given)})" if given else ""))
        if (self.var is None) != (self.equals is None):
            raise ValueError("the var test needs both `var:` (the name) and `equals:` (the value)")
        return self


class SetY(_NodeY):
    next: NodeId
    priority: int | None = Field(None, ge=0, le=9)
    skills: Skills | None = None
    language: Literal["zh", "en"] | None = None
    queue: QueueName | None = None
    vars: dict[VarName, Value] | None = None


class EnqueueY(_NodeY):
    queue: QueueName | None = None
    skills: Skills | None = None
    priority: int | None = Field(None, ge=0, le=9)


class CallbackY(_NodeY):
    next: NodeId
    declined: NodeId
    prompts: Prompts | None = None
    accept: Key | None = None
    other: Key | None = None
    own_number: Prompts | None = None
    enter_number: Prompts | None = None
    confirm: Prompts | None = None
    min_digits: DigitCount | None = None
    max_digits: DigitCount | None = None
    timeout: Seconds | None = None
    enter_timeout: Seconds | None = None
    tries: Tries | None = None
    invalid: Prompts | None = None
    no_input: Prompts | None = None


class SurveyY(_NodeY):
    next: NodeId
    prompts: Prompts | None = None
    scale: int | None = Field(None, ge=1, le=9)
    timeout: Seconds | None = None
    tries: Tries | None = None
    invalid: Prompts | None = None
    no_input: Prompts | None = None
    thanks: Prompts | None = None
    no_rating: Prompts | None = None


class SayTicketY(_NodeY):
    ask: NodeId
    next: NodeId
    on_fail: NodeId
    var: VarName | None = None
    tries: Tries | None = None
    not_found: Prompts | None = None


class TransferY(_NodeY):
    number: str = Field(pattern=r"^[0-9]{3,20}$")  # sent to the carrier trunk


class HangupY(_NodeY):
    prompts: Prompts | None = None


class GotoY(_NodeY):
    flow: FlowName


def _test(y: ConditionY) -> f.Test:
    if y.open is not None:
        return f.IsOpen(y.open)
    if y.time is not None:
        return _span(y.time)
    if y.weekday is not None:
        return _days(y.weekday)
    if y.caller_in is not None:
        return f.CallerIn(y.caller_in)
    if y.var is not None and y.equals is not None:
        return f.VarEquals(y.var, y.equals)
    assert y.wait_over is not None
    return f.WaitOver(y.wait_over.queue, y.wait_over.seconds)


def _fields(y: _NodeY) -> dict[str, Any]:
    """The keys written in the YAML, as ivr.flow's node classes take them."""
    out: dict[str, Any] = {}
    for name in y.model_fields_set:
        value = getattr(y, name)
        if value is None:
            continue
        if isinstance(value, list):
            value = tuple(value)
        elif isinstance(value, dict):
            value = tuple(value.items())
        out[name] = value
    return out


def _condition(y: ConditionY) -> dict[str, Any]:
    return {"test": _test(y), "then": y.then, "else_": y.else_, **({"limit": y.limit} if y.limit else {})}


NODE_TYPES: dict[str, tuple[type[_NodeY], type[f.Node], Callable[[Any], dict[str, Any]]]] = {
    "play": (PlayY, f.Play, _fields),
    "menu": (MenuY, f.Menu, _fields),
    "collect": (CollectY, f.Collect, _fields),
    "condition": (ConditionY, f.Condition, _condition),
    "set": (SetY, f.Set, _fields),
    "enqueue": (EnqueueY, f.Enqueue, _fields),
    "callback": (CallbackY, f.Callback, _fields),
    "survey": (SurveyY, f.Survey, _fields),
    "say_ticket": (SayTicketY, f.SayTicket, _fields),
    "transfer": (TransferY, f.Transfer, _fields),
    "hangup": (HangupY, f.Hangup, _fields),
    "goto": (GotoY, f.Goto, _fields),
}


# -- reading ------------------------------------------------------------------------------------

def _line(loc: Loc, lines: dict[Loc, int]) -> int:
    for end in range(len(loc), -1, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return 1


def _keys(model: type[BaseModel]) -> str:
    keys = [info.alias or name for name, info in model.model_fields.items()]
    return ", ".join([*keys, "flows"] if model is _Head else keys)


M = TypeVar("M", bound=BaseModel)


def _validate(model: type[M], data: Any, name: str, lines: dict[Loc, int], prefix: Loc, what: str) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = prefix + tuple(err["loc"])
            where = ".".join(str(p) for p in loc) or "(top level)"
            kind, msg = err["type"], err["msg"].removeprefix("Value error, ")
            if kind == "extra_forbidden":
                msg = f"not a key of {what} (keys: {_keys(model)})"
            elif kind == "missing":
                msg = f"missing: {what} needs it"
            elif kind == "string_type" and isinstance(err.get("input"), int):
                msg = ("write it in quotes: unquoted, YAML reads digits as a number (and a leading 0 changes it)")
            problems.append(Problem(name, _line(loc, lines), f"{where}: {msg}"))
        raise ConfigError(problems) from None


def load_flows(text: str, name: str) -> tuple[f.Flows, IvrSettings]:
    """Read ivr.yaml. Raises ConfigError with every problem found, each with file and line."""
    data, lines = parse_yaml(text, name)
    lines = {**lines, **_key_lines(text)}
    if not isinstance(data, dict):
        raise ConfigError([Problem(name, 1, "ivr.yaml is a mapping: prompts, lists, numbers, survey, callback "
                                            "and flows")])
    problems: list[Problem] = []
    head: _Head | None = None
    try:
        head = _validate(_Head, {k: v for k, v in data.items() if k != "flows"}, name, lines, (), "ivr.yaml")
    except ConfigError as exc:
        problems += exc.problems
    flows: dict[str, f.Flow] = {}
    raw_flows = data.get("flows", {})
    if not isinstance(raw_flows, dict):
        problems.append(Problem(name, _line(("flows",), lines), "flows: a mapping of flow name -> {start, nodes}"))
        raw_flows = {}
    for flow_name, raw in raw_flows.items():
        try:
            flows[flow_name] = _flow(flow_name, raw, name, lines)
        except ConfigError as exc:
            problems += exc.problems
    if head is not None:
        for number, target in head.numbers.items():
            if target not in raw_flows:
                problems.append(Problem(name, _line(("numbers", number), lines),
                                        f"numbers.{number}: there is no flow named {target!r} (flows: "
                                        f"{', '.join(raw_flows) or 'none'}); add it or correct the name"))
        if head.survey.enabled and head.survey.flow not in raw_flows:
            problems.append(Problem(name, _line(("survey", "flow"), lines),
                                    f"survey.flow: there is no flow named {head.survey.flow!r}; add it under "
                                    "`flows:` or set `survey: {enabled: false}`"))
    if problems:
        raise ConfigError(problems)
    assert head is not None
    settings = IvrSettings(prompts=head.prompts, numbers=head.numbers, survey=head.survey, callback=head.callback,
                           announce_agent=head.announce_agent)
    lists = {k: tuple(v) for k, v in head.lists.items()}
    survey = head.survey.flow if head.survey.flow in flows else None
    return f.Flows(flows, lists, survey), settings


def _key_lines(text: str) -> dict[Loc, int]:
    """The line of every mapping key. parse_yaml's map has where each value starts, which for
    a block mapping (a node, a flow) is the line after its key; messages point at the key."""
    out: dict[Loc, int] = {}

    def walk(node: yaml.Node, path: Loc) -> None:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                here = (*path, key.value)
                out[here] = key.start_mark.line + 1
                walk(value, here)
        elif isinstance(node, yaml.SequenceNode):
            for i, value in enumerate(node.value):
                walk(value, (*path, i))

    # parse_yaml has read this text already: no anchors or aliases, not nested too deeply.
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    if root is not None:
        walk(root, ())
    return out


def _flow(flow_name: str, raw: Any, name: str, lines: dict[Loc, int]) -> f.Flow:
    where: Loc = ("flows", flow_name)
    problems: list[Problem] = []
    if not re.fullmatch(r"[a-z][a-z0-9_-]{0,31}", flow_name):
        problems.append(Problem(name, _line(where, lines), f"flows.{flow_name}: a flow name is lower-case letters, "
                                                           "digits, _ and -, starting with a letter"))
    shape = _validate(_FlowShape, raw, name, lines, where, "a flow")
    nodes: dict[str, f.Node] = {}
    for node_id, node_raw in shape.nodes.items():
        try:
            nodes[node_id] = _node(node_id, node_raw, name, lines, (*where, "nodes", node_id))
        except ConfigError as exc:
            problems += exc.problems
    if problems:
        raise ConfigError(problems)
    return f.Flow(flow_name, shape.start, nodes, _line(where, lines), {"start": _line((*where, "start"), lines)})


def _node(node_id: str, raw: Any, name: str, lines: dict[Loc, int], where: Loc) -> f.Node:
    label = ".".join(map(str, where))
    if not isinstance(raw, dict):
        raise ConfigError([Problem(name, _line(where, lines), f"{label}: a node is a mapping with a `type:`")])
    kind = raw.get("type")
    if kind not in NODE_TYPES:
        said = f"type {kind!r} is not a node type" if "type" in raw else "`type:` is missing"
        raise ConfigError([Problem(name, _line((*where, "type"), lines),
                                   f"{label}: {said}; use one of {', '.join(NODE_TYPES)}")])
    model, cls, convert = NODE_TYPES[kind]
    shape = _validate(model, {k: v for k, v in raw.items() if k != "type"}, name, lines, where, f"a {kind} node")
    return cls(id=node_id, line=_line(where, lines), lines=_inner(where, lines), **convert(shape))


def _inner(where: Loc, lines: dict[Loc, int]) -> dict[str, int]:
    n = len(where)
    return {".".join(map(str, loc[n:])): line for loc, line in lines.items() if len(loc) > n and loc[:n] == where}


def as_problems(issues: list[Issue], name: str) -> list[Problem]:
    """check()'s issues as config Problems of the file they came from."""
    return [Problem(name, i.line, f"flows.{i.flow}" + (f".nodes.{i.node}" if i.node else "") + f": {i.message}")
            for i in issues]
