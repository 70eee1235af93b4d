"""The rendered Asterisk configuration: least privilege, loopback, agents from YAML."""

from __future__ import annotations

import configparser
import re

from config.loader import load
from cti.asterisk_conf import render


def manager_user() -> dict[str, str]:
    settings = load()
    text = render(settings)["manager.conf"]
    cp = configparser.ConfigParser(strict=False, inline_comment_prefixes=(";",), comment_prefixes=(";",))
    cp.read_string(text)
    assert cp.get("general", "bindaddr") == "127.0.0.1"
    return dict(cp[settings.engine.ami.username])


def test_the_ami_user_has_no_dangerous_write_class() -> None:
    user = manager_user()
    write = {c.strip() for c in user["write"].split(",")}
    assert not write & {"command", "system", "config", "all"}
    # `originate` is allowed for callbacks (an Originate into hotline-callback, agent first);
    # with it but without `system`, Asterisk refuses an Originate of System or Exec.
    assert write <= {"call", "reporting", "originate"}
    assert user["permit"].startswith("127.0.0.1/")
    assert user["deny"] == "0.0.0.0/0.0.0.0"


def test_every_agent_gets_endpoint_auth_and_aor_named_alike() -> None:
    settings = load()
    text = render(settings)["pjsip.conf"]
    for agent in settings.agents:
        name = f"agent{agent.id}"
        assert len(re.findall(rf"^\[{name}\]$", text, re.M)) == 3
        assert f"username = {name}" in text
        assert f"password = {agent.password}" in text
    assert "match = 127.0.0.2" in text


def test_dialplan_has_inbound_number_hold_connect_and_no_shell() -> None:
    text = render(load())["extensions.conf"]
    assert "exten => 12345,1," in text
    assert "UserEvent(HotlineJoin" in text
    assert "MixMonitor(" in text
    code = "\n".join(line.split(";", 1)[0] for line in text.splitlines())
    assert not re.search(r"System\(|SHELL\(", code)
    assert not re.search(r"@[A-Z_]+@", text)  # every placeholder filled
