"""The engine's side of the IVR without Asterisk: a flow change applies on reload like the
queues, a broken ivr.yaml is refused with file:line and the running flows keep serving,
`hotline config check` names every flow problem, and the listener starts only when the
dialplan calls it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import yaml

from acd.events import SurveyRated, SurveyStarted
from config.loader import load
from cti.cli import main
from cti.engine import build
from ivr import flow as f
from testbed.configs import write_config

IVR_ON = {"numbers": {"12345": "intake"}, "survey": {"enabled": True}}


def ivr_yaml(folder: Path) -> dict:  # type: ignore[type-arg]
    return yaml.safe_load((folder / "ivr.yaml").read_text(encoding="utf-8"))  # type: ignore[no-any-return]


async def test_a_flow_change_applies_on_reload_and_a_broken_one_is_refused_with_file_and_line(tmp_path: Path) -> None:
    folder = write_config(tmp_path / "config", ami_port=1, account=False, ivr=IVR_ON)
    engine = build(load(folder), folder)
    assert engine.ivr is not None
    menu = engine.ivr.flows().flows["intake"].nodes["menu"]
    assert isinstance(menu, f.Menu) and menu.timeout == 3

    data = ivr_yaml(folder)
    data["flows"]["intake"]["nodes"]["menu"]["timeout"] = 6
    (folder / "ivr.yaml").write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    assert await engine.reload() == []
    menu = engine.ivr.flows().flows["intake"].nodes["menu"]
    assert isinstance(menu, f.Menu) and menu.timeout == 6

    data["flows"]["intake"]["nodes"]["menu"]["options"][3] = "nowhere"
    (folder / "ivr.yaml").write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    errors = await engine.reload()
    assert len(errors) == 1 and f"{folder / 'ivr.yaml'}:" in errors[0] and "nowhere" in errors[0]
    menu = engine.ivr.flows().flows["intake"].nodes["menu"]
    assert isinstance(menu, f.Menu) and menu.timeout == 6  # the running flows keep serving


def test_config_check_names_every_flow_problem_with_its_file_and_line(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    folder = write_config(tmp_path / "config", ivr=IVR_ON)
    text = (folder / "ivr.yaml").read_text(encoding="utf-8")
    data = ivr_yaml(folder)
    nodes = data["flows"]["survey"]["nodes"]
    nodes["orphan"] = {"type": "hangup"}  # unreachable
    nodes["ask"]["prompts"] = ["no-such-prompt"]  # a missing prompt
    nodes["ask"]["next"] = "nowhere"  # an undefined target
    nodes["spin_a"] = {"type": "play", "prompts": ["goodbye"], "next": "spin_b"}
    nodes["spin_b"] = {"type": "play", "prompts": ["goodbye"], "next": "spin_a"}  # a loop with no exit
    (folder / "ivr.yaml").write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    assert text != (folder / "ivr.yaml").read_text(encoding="utf-8")
    with pytest.raises(SystemExit) as exit_:
        main(["config", "check", "--config", str(folder)])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    lines = [ln.strip() for ln in err.splitlines() if ln.strip().startswith(str(folder / "ivr.yaml") + ":")]
    joined = "\n".join(lines)
    for needle in ("nowhere", "orphan", "no-such-prompt", "spin_"):
        assert needle in joined, (needle, err)
    assert all(ln.split(":")[1].isdigit() and int(ln.split(":")[1]) > 0 for ln in lines)


def test_no_listener_when_no_number_runs_a_flow_and_the_survey_is_off(tmp_path: Path) -> None:
    folder = write_config(tmp_path / "config", ami_port=1, account=False)
    assert build(load(folder), folder).ivr is None
    folder = write_config(tmp_path / "survey", ami_port=1, account=False, ivr={"survey": {"enabled": True}})
    assert build(load(folder), folder).ivr is not None


async def test_a_rating_reaches_the_dispatcher_as_an_event_in_order(tmp_path: Path) -> None:
    folder = write_config(tmp_path / "config", ami_port=1, account=False, ivr=IVR_ON)
    engine = build(load(folder), folder)
    assert engine.ivr is not None
    seen: list[object] = []
    engine.dispatcher.submit = seen.append  # type: ignore[method-assign]
    engine.ivr.survey_started("c1")
    engine.ivr.rated("c1", 3)
    await asyncio.sleep(0)
    assert seen == [SurveyStarted("c1"), SurveyRated("c1", 3)]


def test_a_number_in_ivr_yaml_that_no_queue_answers_is_refused_with_its_line(tmp_path: Path) -> None:
    from config.loader import ConfigError

    folder = write_config(tmp_path / "config", ivr={"numbers": {"12345": "intake", "99999": "intake"}})
    with pytest.raises(ConfigError) as refused:
        load(folder)
    (problem,) = refused.value.problems
    assert problem.file == str(folder / "ivr.yaml") and problem.line > 0 and "99999" in problem.message
