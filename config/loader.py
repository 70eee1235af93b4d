"""YAML -> typed settings, with every error naming its file and line."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import BaseModel, ValidationError

from config.policy import review
from config.settings import AgentsFile, CalendarFile, EngineFile, QueuesFile, Settings
from config.ticket_settings import TicketsFile
from config.ticket_settings import review as review_tickets

if TYPE_CHECKING:
    from ivr.config import IvrConfig

DEFAULTS_DIR = Path(__file__).parent / "defaults"
FILES: dict[str, type[BaseModel]] = {
    "engine.yaml": EngineFile,
    "queues.yaml": QueuesFile,
    "agents.yaml": AgentsFile,
    "calendar.yaml": CalendarFile,
    "tickets.yaml": TicketsFile,
}
MAX_BYTES = 1024 * 1024

# A config folder must have these: the embedded agents are a demo with published passwords,
# and the embedded queue would quietly replace the admin's.
REQUIRED = {
    "agents.yaml": "a config folder must have its own agents.yaml (the embedded demo agents have published "
                   f"passwords); start from a copy of {DEFAULTS_DIR / 'agents.yaml'}",
    "queues.yaml": "a config folder must have its own queues.yaml; start from a copy of "
                   f"{DEFAULTS_DIR / 'queues.yaml'}",
}
TOP_KEYS = {"agents.yaml": "agents", "queues.yaml": "queues"}
EMPTY = {
    "agents.yaml": "list the agents under `agents:`, or write `agents: []` for none",
    "queues.yaml": "list at least one queue under `queues:`",
}

Path_ = tuple[str | int, ...]


@dataclass(frozen=True)
class Problem:
    file: str
    line: int  # 1-based; 0 when the problem is the file or folder itself
    message: str

    def __str__(self) -> str:
        # line 0: about the file or folder as a whole (missing, too large, ...)
        return f"{self.file}:{self.line}: {self.message}" if self.line else f"{self.file}: {self.message}"


class ConfigError(Exception):
    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


def _build(node: yaml.Node, path: Path_, lines: dict[Path_, int]) -> Any:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise _Refused(key_node.start_mark.line + 1, "a key must be a plain name, not a list or a mapping")
            key = key_node.value
            if key in out:
                # YAML would keep the last one and drop the first without a word.
                raise _Refused(key_node.start_mark.line + 1,
                               f"{key!r} is written twice here (first at line {lines[(*path, key)]}); keep one")
            lines[(*path, key)] = key_node.start_mark.line + 1
            out[key] = _build(value_node, (*path, key), lines)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_build(item, (*path, i), lines) for i, item in enumerate(node.value)]
    assert isinstance(node, yaml.ScalarNode)
    return _scalar(node)


class _Refused(Exception):
    """Something in a YAML file we will not read, at a 1-based line."""

    def __init__(self, line: int, reason: str) -> None:
        super().__init__(reason)
        self.line = line


ANCHORS = "anchors and aliases are not supported in hotline configuration; write the values out"


class _PlainLoader(yaml.SafeLoader):
    """SafeLoader without anchors and aliases.

    An alias is a reference: a few hundred bytes of nested aliases (a "billion laughs"
    file) expand to billions of nodes and hang whoever walks them. Refusing them while
    composing keeps reading linear in the file's size.
    """

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        event = self.peek_event()  # type: ignore[no-untyped-call]  # (untyped in types-PyYAML)
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            mark = event.start_mark
            raise _Refused(mark.line + 1 if mark else 1, ANCHORS)
        return super().compose_node(parent, index)


def _scalar(node: yaml.ScalarNode) -> Any:
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_object(node, deep=True)
    except (ValueError, yaml.YAMLError) as exc:  # e.g. 2026-13-01 looks like a date but is not one
        raise _Refused(node.start_mark.line + 1, f"{node.value!r}: {exc}") from None
    finally:
        loader.dispose()


def parse_yaml(text: str, name: str) -> tuple[Any, dict[Path_, int]]:
    try:
        node = yaml.compose(text, Loader=_PlainLoader)
        lines: dict[Path_, int] = {}
        data = _build(node, (), lines) if node is not None else None
        return ({} if data is None else data), lines or {(): 1}  # an empty document is an empty mapping
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        # A bare * (tickets.yaml's "any category") starts an alias in YAML.
        hint = '; a bare * starts a YAML alias: write "*" in quotes' if exc.context == "while scanning an alias" else ""
        raise ConfigError([Problem(name, line, f"not valid YAML: {exc.problem or exc}{hint}")]) from None
    except _Refused as exc:
        raise ConfigError([Problem(name, exc.line, str(exc))]) from None
    except yaml.reader.ReaderError as exc:  # a control character: no mark, a position in the text
        line = text.count("\n", 0, exc.position) + 1
        raise ConfigError([Problem(name, line, f"not valid YAML: character {exc.character!r} is not allowed "
                                               "(a control character: retype the line)")]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([Problem(name, 1, f"not valid YAML: {exc}")]) from None
    except RecursionError:  # thousands of nested [[[...]]]
        raise ConfigError([Problem(name, 1, "nested too deeply to be hotline configuration")]) from None


def _line_for(loc: Path_, lines: dict[Path_, int]) -> int:
    for end in range(len(loc), -1, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return 1


def validate(model: type[BaseModel], data: Any, name: str, lines: dict[Path_, int]) -> BaseModel:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = tuple(err["loc"])
            where = ".".join(str(p) for p in loc) or "(top level)"
            problems.append(Problem(name, _line_for(loc, lines), f"{where}: {err['msg']}"))
        raise ConfigError(problems) from None


def _check_folder(config_dir: Path) -> None:
    if not config_dir.exists():
        raise ConfigError([Problem(str(config_dir), 0, "no such folder; the config folder must exist and hold "
                                   "agents.yaml and queues.yaml")])
    if not config_dir.is_dir():
        raise ConfigError([Problem(str(config_dir), 0, "not a folder; name the folder that holds agents.yaml "
                                   "and queues.yaml, not a file")])


def _read(path: Path) -> str:
    if path.is_symlink() and not path.exists():
        raise ConfigError([Problem(str(path), 0, f"a symlink to {path.readlink()}, which does not exist")])
    if not path.is_file():
        raise ConfigError([Problem(str(path), 0, "not a regular file")])
    try:
        with path.open("rb") as fh:
            data = fh.read(MAX_BYTES + 1)  # never more, whatever the file claims to be
    except OSError as exc:
        raise ConfigError([Problem(str(path), 0, f"cannot read: {exc.strerror or exc}")]) from None
    if len(data) > MAX_BYTES:
        raise ConfigError([Problem(str(path), 0, "larger than 1 MB; hotline configuration files are small, "
                                   "is this the right file?")])
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError([Problem(str(path), 1, f"not UTF-8 text ({exc.reason} at byte {exc.start})")]) from None


# Files of a config folder that hold secrets: a warning when anyone on the host may read them.
SECRET_FILES = {"engine.yaml": "the AMI secret", "agents.yaml": "the agents' SIP passwords"}


def _source(config_dir: Path | None, fname: str) -> tuple[Path, bool]:
    """Where fname comes from, and whether that is the embedded default."""
    if config_dir is None:
        return DEFAULTS_DIR / fname, True
    path = config_dir / fname
    # A dangling symlink counts as present: reading it then fails loudly instead of
    # quietly falling back to the embedded file.
    if path.exists() or path.is_symlink() or fname in REQUIRED:
        return path, False
    return DEFAULTS_DIR / fname, True


def load(config_dir: Path | None = None) -> Settings:
    """Read the YAML of config_dir, or the embedded defaults when it is None.

    A config folder must exist and have its own agents.yaml and queues.yaml (the embedded
    ones are a demo with published passwords); engine.yaml, calendar.yaml and tickets.yaml
    may be left out and then take the embedded defaults.
    """
    if config_dir is not None:
        _check_folder(config_dir)
    parts: dict[str, Any] = {}
    where: dict[str, tuple[str, dict[Path_, int]]] = {}
    from_defaults: list[str] = []
    problems: list[Problem] = []
    for fname, model in FILES.items():
        path, default = _source(config_dir, fname)
        if not (path.exists() or path.is_symlink()):
            problems.append(Problem(str(path), 0, f"missing; {REQUIRED[fname]}"))
            continue
        if default:
            from_defaults.append(fname)
        try:
            data, lines = parse_yaml(_read(path), str(path))
            key = TOP_KEYS.get(fname)
            if key and isinstance(data, dict) and key not in data:
                raise ConfigError([Problem(str(path), 1, f"no `{key}:` in the file; {EMPTY[fname]}")])
            parts[fname] = validate(model, data, str(path), lines)
            where[fname] = (str(path), lines)
        except ConfigError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ConfigError(problems)
    engine = parts["engine.yaml"]
    queues = parts["queues.yaml"]
    agents = parts["agents.yaml"]
    calendar = parts["calendar.yaml"]
    tickets = parts["tickets.yaml"]
    assert isinstance(engine, EngineFile) and isinstance(queues, QueuesFile) and isinstance(agents, AgentsFile)
    assert isinstance(calendar, CalendarFile) and isinstance(tickets, TicketsFile)
    name, lines = where["tickets.yaml"]
    for loc, message in review_tickets(tickets, lambda loc: _line_for(loc, lines)):
        problems.append(Problem(name, _line_for(loc, lines), message))
    known = {q.name for q in queues.queues}
    name, lines = where["agents.yaml"]
    for i, agent in enumerate(agents.agents):
        for j, queue in enumerate(agent.queues or ()):
            if queue not in known:
                problems.append(Problem(name, _line_for(("agents", i, "queues", j), lines),
                                        f"agent {agent.id}: no queue named {queue!r} in queues.yaml "
                                        f"(known: {', '.join(sorted(known))})"))
    warnings: list[str] = []
    for finding in review(engine, agents.agents, queues.queues):
        name, lines = where[finding.file]
        problem = Problem(name, _line_for(finding.loc, lines), finding.message)
        if finding.refuse:
            problems.append(problem)
        else:
            warnings.append(str(problem))
    for fname, holds in SECRET_FILES.items():
        path, default = _source(config_dir, fname)
        with contextlib.suppress(OSError):
            if not default and path.stat().st_mode & 0o007:
                warnings.append(str(Problem(str(path), 0, f"readable by every user of this host, and it holds "
                                                          f"{holds}: chmod o-rwx {path}")))
    ivr = None
    try:
        ivr = _load_ivr(config_dir, known, {n.number for q in queues.queues for n in q.dialled()}, from_defaults)
    except ConfigError as exc:
        problems.extend(exc.problems)
    if problems:
        raise ConfigError(problems)
    return Settings(engine=engine, queues=queues.queues, agents=agents.agents, calendar=calendar, tickets=tickets,
                    ivr=ivr, warnings=tuple(warnings), from_defaults=tuple(from_defaults))


IVR_FILE = "ivr.yaml"


def _ivr_line(path: Path, number: str) -> int:
    """The line of `"<number>":` in ivr.yaml (0 when it cannot be found)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return 0
    return next((i for i, text in enumerate(lines, 1) if text.strip().startswith((f'"{number}"', f"{number}:",
                                                                                   f"'{number}'"))), 0)


def _load_ivr(config_dir: Path | None, queues: set[str], dialled: set[str],
              from_defaults: list[str]) -> IvrConfig | None:
    """ivr.yaml, checked against the queues and the prompts Asterisk will have: the shipped
    ones and the admin's own recordings. The embedded defaults run the shipped flows; a config
    folder without ivr.yaml has no IVR at all (no flows, no survey, no job number), as before
    there was one: an upgrade never starts answering and billing callers on its own."""
    # Here, not at the top: ivr.flows_yaml reads its YAML through this module.
    from ivr.check import check  # noqa: PLC0415
    from ivr.config import IvrConfig  # noqa: PLC0415
    from ivr.flows_yaml import as_problems, load_flows  # noqa: PLC0415
    from ivr.prompts import PromptError, available  # noqa: PLC0415

    path, default = _source(config_dir, IVR_FILE)
    if default and config_dir is not None:
        return None
    flows, ivr_settings = load_flows(_read(path), str(path))
    override = ivr_settings.prompts.override_dir
    try:
        prompts = available(override if override is not None and override.is_dir() else None)
    except (PromptError, OSError) as exc:
        raise ConfigError([Problem(str(path), 0, f"prompts.override_dir: {exc}")]) from None
    problems = as_problems(check(flows, prompts, queues), str(path))
    for number in ivr_settings.numbers:
        if number not in dialled:
            problems.append(Problem(str(path), _ivr_line(path, number),
                                    f"numbers: {number} is not a number any queue answers (queues.yaml: "
                                    f"{', '.join(sorted(dialled)) or 'none'}); correct it or add it to a queue"))
    if problems:
        raise ConfigError(problems)
    return IvrConfig(flows=flows, settings=ivr_settings, file=str(path))
