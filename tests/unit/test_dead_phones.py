"""The Asterisk side of finding dead phones: agents' AORs are pinged (qualify) and their
registrations capped, from engine.yaml's sip: section; the AMI user gets ContactStatus."""

from __future__ import annotations

import configparser
from pathlib import Path

import pytest

from config.loader import ConfigError, load
from cti.asterisk_conf import render
from tests.unit.test_config_loader import write


def aor(text: str, name: str) -> dict[str, str]:
    """The `type = aor` section called `name` in a rendered pjsip.conf."""
    for block in text.split(f"[{name}]\n")[1:]:
        lines = dict(line.split(" = ", 1) for line in block.split("\n\n")[0].splitlines() if " = " in line)
        if lines.get("type") == "aor":
            return lines
    raise AssertionError(f"no aor {name}")


def test_agents_aors_are_pinged_every_ten_seconds_and_registrations_capped_at_five_minutes_by_default() -> None:
    settings = load()
    text = render(settings)["pjsip.conf"]
    for agent in settings.agents:
        section = aor(text, f"agent{agent.id}")
        assert section["qualify_frequency"] == "10"
        assert section["qualify_timeout"] == "3"
        assert (section["maximum_expiration"], section["default_expiration"]) == ("300", "300")
    carrier = aor(text, "carrier")
    assert "qualify_frequency" not in carrier  # the carrier is not an agent's phone


def test_the_ping_interval_and_expiry_come_from_engine_yaml(tmp_path: Path) -> None:
    write(tmp_path, "engine.yaml", "sip:\n  qualify: 4\n  max_expiry: 120\n")
    section = aor(render(load(tmp_path))["pjsip.conf"], "agent2001")
    assert section["qualify_frequency"] == "4"
    assert section["qualify_timeout"] == "2"  # half a short interval: a reply is awaited before the next ping
    assert (section["maximum_expiration"], section["default_expiration"]) == ("120", "120")


def test_qualify_zero_turns_the_pings_off(tmp_path: Path) -> None:
    write(tmp_path, "engine.yaml", "sip:\n  qualify: 0\n")
    section = aor(render(load(tmp_path))["pjsip.conf"], "agent2001")
    assert section["qualify_frequency"] == "0"
    assert section["qualify_timeout"] == "3"


@pytest.mark.parametrize(("key", "value", "says"), [
    ("qualify", "-1", "greater than or equal to 0"),
    ("qualify", "ten", "valid integer"),
    ("max_expiry", "30", "greater than or equal to 60"),
    ("max_expiry", "86400", "less than or equal to 7200"),
])
def test_a_bad_ping_interval_or_expiry_names_file_line_and_key(tmp_path: Path, key: str, value: str,
                                                               says: str) -> None:
    write(tmp_path, "engine.yaml", f"log:\n  level: info\nsip:\n  {key}: {value}\n")
    with pytest.raises(ConfigError) as err:
        load(tmp_path)
    (problem,) = err.value.problems
    assert problem.file.endswith("engine.yaml")
    assert problem.line == 4
    assert f"sip.{key}" in problem.message and says in problem.message


def test_the_ami_user_receives_contact_status_of_agents_through_its_system_class() -> None:
    settings = load()
    text = render(settings)["manager.conf"]
    # ContactStatus is an EVENT_FLAG_SYSTEM event (main/stasis_endpoints.c): no new class needed.
    cp = configparser.ConfigParser(strict=False, inline_comment_prefixes=(";",), comment_prefixes=(";",))
    cp.read_string(text)
    assert "system" in {c.strip() for c in cp[settings.engine.ami.username]["read"].split(",")}
    assert "eventfilter(action(include),name(ContactStatus),header(AOR),method(starts_with)) = agent" in text


def test_a_ring_time_out_sends_no_cause_0_reason_to_the_agents_phone() -> None:
    # Dial's time-out hangs the agent's leg up with no cause: without this the CANCEL would carry
    # "Reason: Q.850;cause=0" (seen with baresip); the carrier keeps its Q.850 reasons.
    text = render(load())["pjsip.conf"]
    sections = (part.split("]\n", 1) for part in text.split("\n[")[1:])
    endpoints = {name: block.split("\n\n")[0] for name, block in sections
                 if "type = endpoint" in block.split("\n\n")[0]}
    assert all("suppress_q850_reason_headers = yes" in body for name, body in endpoints.items()
               if name.startswith("agent"))
    assert "suppress_q850_reason_headers" not in endpoints["carrier"]
    assert any(name.startswith("agent") for name in endpoints)
