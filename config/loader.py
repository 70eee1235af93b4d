"""YAML -> typed settings, with every error naming its file and line."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from config.settings import AgentsFile, CalendarFile, EngineFile, QueuesFile, Settings

DEFAULTS_DIR = Path(__file__).parent / "defaults"
FILES: dict[str, type[BaseModel]] = {
    "engine.yaml": EngineFile,
    "queues.yaml": QueuesFile,
    "agents.yaml": AgentsFile,
    "calendar.yaml": CalendarFile,
}

Path_ = tuple[str | int, ...]


@dataclass(frozen=True)
class Problem:
    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


class ConfigError(Exception):
    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


def _build(node: yaml.Node, path: Path_, lines: dict[Path_, int]) -> Any:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = key_node.value
            lines[(*path, key)] = key_node.start_mark.line + 1
            out[key] = _build(value_node, (*path, key), lines)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_build(item, (*path, i), lines) for i, item in enumerate(node.value)]
    assert isinstance(node, yaml.ScalarNode)
    return _scalar(node)


class _BadScalar(Exception):
    def __init__(self, line: int, reason: str) -> None:
        super().__init__(reason)
        self.line = line


def _scalar(node: yaml.ScalarNode) -> Any:
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_object(node, deep=True)
    except (ValueError, yaml.YAMLError) as exc:  # e.g. 2026-13-01 looks like a date but is not one
        raise _BadScalar(node.start_mark.line + 1, f"{node.value!r}: {exc}") from None
    finally:
        loader.dispose()


def parse_yaml(text: str, name: str) -> tuple[Any, dict[Path_, int]]:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        raise ConfigError([Problem(name, line, f"not valid YAML: {exc.problem or exc}")]) from None
    lines: dict[Path_, int] = {}
    if node is None:
        return {}, {(): 1}
    try:
        return _build(node, (), lines), lines
    except _BadScalar as exc:
        raise ConfigError([Problem(name, exc.line, str(exc))]) from None


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


def load(config_dir: Path | None = None) -> Settings:
    """Read engine.yaml, queues.yaml and agents.yaml; a missing file takes the default."""
    parts: dict[str, Any] = {}
    where: dict[str, tuple[str, dict[Path_, int]]] = {}
    problems: list[Problem] = []
    for fname, model in FILES.items():
        path = (config_dir / fname) if config_dir else DEFAULTS_DIR / fname
        if config_dir and not path.exists():
            path = DEFAULTS_DIR / fname
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(Problem(str(path), 1, f"cannot read: {exc}"))
            continue
        try:
            data, lines = parse_yaml(text, str(path))
            parts[fname] = validate(model, data, str(path), lines)
            where[fname] = (str(path), lines)
        except ConfigError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ConfigError(problems)
    engine = parts["engine.yaml"]
    queues = parts["queues.yaml"]
    agents = parts["agents.yaml"]
    assert isinstance(engine, EngineFile) and isinstance(queues, QueuesFile) and isinstance(agents, AgentsFile)
    known = {q.name for q in queues.queues}
    name, lines = where["agents.yaml"]
    for i, agent in enumerate(agents.agents):
        for j, queue in enumerate(agent.queues or ()):
            if queue not in known:
                problems.append(Problem(name, _line_for(("agents", i, "queues", j), lines),
                                        f"agent {agent.id}: no queue named {queue!r} in queues.yaml "
                                        f"(known: {', '.join(sorted(known))})"))
    if problems:
        raise ConfigError(problems)
    calendar = parts["calendar.yaml"]
    assert isinstance(calendar, CalendarFile)
    return Settings(engine=engine, queues=queues.queues, agents=agents.agents, calendar=calendar)
