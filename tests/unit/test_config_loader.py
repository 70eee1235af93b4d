"""Configuration errors name the file, the line and the reason."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from config.loader import ConfigError, load
from tests.unit.test_cli import config_folder

QUEUES = "queues:\n  - name: main\n    number: '12345'\n"
AGENTS = 'agents:\n  - id: "2001"\n    password: secret-2001\n'


def write(tmp: Path, name: str, text: str) -> Path:
    """Write one file into a config folder that has the two files every folder needs."""
    for required, minimal in (("queues.yaml", QUEUES), ("agents.yaml", AGENTS)):
        if not (tmp / required).exists():
            (tmp / required).write_text(minimal, encoding="utf-8")
    (tmp / name).write_text(text, encoding="utf-8")
    for secret in ("agents.yaml", "engine.yaml"):  # kept private, as an operator should
        if (tmp / secret).exists():
            (tmp / secret).chmod(0o640)
    return tmp


def test_the_embedded_defaults_load() -> None:
    settings = load()
    assert settings.queue.name == "main"
    assert len(settings.agents) == 5


def test_engine_calendar_and_tickets_yaml_take_the_defaults_and_no_ivr_yaml_means_no_ivr(tmp_path: Path) -> None:
    write(tmp_path, "agents.yaml", AGENTS)
    settings = load(tmp_path)
    assert [a.id for a in settings.agents] == ["2001"]
    assert settings.engine.ami.port == 5038
    assert settings.from_defaults == ("engine.yaml", "calendar.yaml", "tickets.yaml")
    assert settings.ivr is None  # no ivr.yaml in the folder: no IVR, survey or job number


def test_a_wrong_value_names_file_line_and_field(tmp_path: Path) -> None:
    write(tmp_path, "queues.yaml", "queues:\n  - name: main\n    ring_timeout: -3\n")
    with pytest.raises(ConfigError) as err:
        load(tmp_path)
    (problem,) = err.value.problems
    assert problem.file.endswith("queues.yaml")
    assert problem.line == 3
    assert "queues.0.ring_timeout" in problem.message
    assert "greater than 0" in problem.message


def test_broken_yaml_names_the_line(tmp_path: Path) -> None:
    write(tmp_path, "engine.yaml", "ami:\n  host: 127.0.0.1\n  port: [5038\nhttp:\n  port: 1\n")
    with pytest.raises(ConfigError) as err:
        load(tmp_path)
    (problem,) = err.value.problems
    assert problem.file.endswith("engine.yaml")
    assert problem.line in (4, 5)
    assert "not valid YAML" in problem.message


def test_an_unknown_key_is_an_error_not_ignored(tmp_path: Path) -> None:
    write(tmp_path, "engine.yaml", "ami:\n  hots: 127.0.0.1\n")
    with pytest.raises(ConfigError) as err:
        load(tmp_path)
    assert err.value.problems[0].line == 2
    assert "ami.hots" in err.value.problems[0].message


def test_every_error_of_every_file_is_reported(tmp_path: Path) -> None:
    write(tmp_path, "agents.yaml", 'agents:\n  - id: "1001; Dial"\n    password: short\n')
    write(tmp_path, "engine.yaml", "http:\n  port: 99999\n")
    with pytest.raises(ConfigError) as err:
        load(tmp_path)
    where = sorted((Path(p.file).name, p.line) for p in err.value.problems)
    assert where == [("agents.yaml", 2), ("agents.yaml", 3), ("engine.yaml", 2)]


def test_duplicate_agent_ids_are_refused(tmp_path: Path) -> None:
    write(tmp_path, "agents.yaml", (
        'agents:\n  - {id: "1001", password: pw-aaaaaaa}\n  - {id: "1001", password: pw-bbbbbbb}\n'
    ))
    with pytest.raises(ConfigError, match="appears twice"):
        load(tmp_path)


def test_widening_and_overflow_are_read_and_checked(tmp_path: Path) -> None:
    write(tmp_path, "queues.yaml", (
        "queues:\n"
        "  - name: main\n    number: '12345'\n"
        "  - name: tax\n    number: '12366'\n    skills: {tax: 60}\n"
        "    widen:\n      - {after: 60, add_queues: [main]}\n      - {after: 20, min_level: 30}\n"
        "    overflow: {after: 120, to: queue, queue: main}\n    max_length: 5\n"
    ))
    tax = load(tmp_path).queues[1].to_core()
    assert [(w.after, w.min_level, w.add_queues) for w in tax.widen] == [(20, 30, ()), (60, None, ("main",))]
    assert (tax.overflow.after, tax.overflow.to, tax.overflow.target) == (120, "queue", "main")  # type: ignore[union-attr]


def test_a_rule_pointing_at_an_unknown_queue_is_refused(tmp_path: Path) -> None:
    write(tmp_path, "queues.yaml", "queues:\n  - name: main\n    overflow: {after: 9, to: queue, queue: nowhere}\n")
    with pytest.raises(ConfigError, match="unknown queue 'nowhere'"):
        load(tmp_path)


# --- a config folder means what it says -------------------------------------------------

def test_a_config_folder_that_does_not_exist_is_an_error_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "nonexistent-dir"
    with pytest.raises(ConfigError) as err:
        load(missing)
    assert str(err.value) == f"{missing}: no such folder; the config folder must exist and hold agents.yaml " \
                             "and queues.yaml"


def test_a_config_path_that_is_a_file_is_an_error_naming_it(tmp_path: Path) -> None:
    a_file = write(tmp_path, "engine.yaml", "{}\n") / "engine.yaml"
    with pytest.raises(ConfigError, match=rf"^{a_file}: not a folder"):
        load(a_file)


@pytest.mark.parametrize("name", ["agents.yaml", "queues.yaml"])
def test_a_config_folder_without_agents_or_queues_yaml_is_refused(tmp_path: Path, name: str) -> None:
    write(tmp_path, "engine.yaml", "{}\n")
    (tmp_path / name).unlink()
    with pytest.raises(ConfigError) as err:
        load(tmp_path)
    (problem,) = err.value.problems
    assert (problem.file, problem.line) == (str(tmp_path / name), 0)
    assert problem.message.startswith(f"missing; a config folder must have its own {name}")


@pytest.mark.parametrize("text", ["", "# all agents moved to the new system\n", "---\n"])
@pytest.mark.parametrize("name", ["agents.yaml", "queues.yaml"])
def test_an_empty_agents_or_queues_yaml_is_an_error_at_line_1(tmp_path: Path, name: str, text: str) -> None:
    write(tmp_path, name, text)
    with pytest.raises(ConfigError) as err:
        load(tmp_path)
    (problem,) = err.value.problems
    key = name.removesuffix(".yaml")
    assert str(problem).startswith(f"{tmp_path / name}:1: no `{key}:` in the file")


def test_agents_written_out_as_an_empty_list_are_allowed(tmp_path: Path) -> None:
    write(tmp_path, "agents.yaml", "agents: []\n")
    assert load(tmp_path).agents == []


# --- YAML that cannot hang us -----------------------------------------------------------

BOMB = "\n".join(
    [f'a0: &a0 [{", ".join(["lol"] * 9)}]']
    + [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 8)]
) + "\n"


@pytest.mark.parametrize(("text", "line"), [
    ("queues:\n  - &q {name: main}\n", 2),
    ("defaults: &d {ring_timeout: 9}\nqueues:\n  - {name: main}\n", 1),
    ("queues:\n  - name: main\n    skills: {}\n  - name: tax\n    skills: *s\n", 5),
    ("queues:\n  - name: main\n    <<: *base\n", 3),
])
def test_yaml_anchors_and_aliases_are_refused_with_file_and_line(tmp_path: Path, text: str, line: int) -> None:
    write(tmp_path, "queues.yaml", text)
    with pytest.raises(ConfigError) as err:
        load(tmp_path)
    (problem,) = err.value.problems
    assert str(problem) == (f"{tmp_path / 'queues.yaml'}:{line}: anchors and aliases are not supported in "
                            "hotline configuration; write the values out")


def test_a_seven_level_alias_bomb_is_refused_in_well_under_a_second(tmp_path: Path) -> None:
    assert len(BOMB) < 700
    write(tmp_path, "queues.yaml", BOMB)
    started = time.perf_counter()
    with pytest.raises(ConfigError, match=r"queues\.yaml:1: anchors and aliases"):
        load(tmp_path)
    assert time.perf_counter() - started < 0.5


def test_a_config_file_over_1_mb_is_refused_unread(tmp_path: Path) -> None:
    write(tmp_path, "engine.yaml", "# padding\n" * 110_000)
    with pytest.raises(ConfigError) as err:
        load(tmp_path)
    assert str(err.value) == (f"{tmp_path / 'engine.yaml'}: larger than 1 MB; hotline configuration files are "
                              "small, is this the right file?")


def test_yaml_nested_thousands_deep_is_an_error_not_a_crash(tmp_path: Path) -> None:
    write(tmp_path, "engine.yaml", "[" * 50_000 + "]" * 50_000 + "\n")
    with pytest.raises(ConfigError, match=r"engine\.yaml:1: nested too deeply"):
        load(tmp_path)


# --- values that end up in Asterisk's configuration --------------------------------------

@pytest.mark.parametrize(("section", "key"), [
    ("ami", "host"), ("sip", "bind"), ("sip", "trunk_address"), ("http", "listen"), ("metrics", "listen"),
])
@pytest.mark.parametrize("value", ["localhost", "127.0.0.1\\n[evil]", "10.0.0.256", "0.0.0.0;x"])
def test_listen_and_peer_addresses_must_be_ip_addresses(tmp_path: Path, section: str, key: str, value: str) -> None:
    write(tmp_path, "engine.yaml", f'log: {{level: info}}\n{section}:\n  {key}: "{value}"\n')
    with pytest.raises(ConfigError) as err:
        load(tmp_path)
    (problem,) = err.value.problems
    assert (Path(problem.file).name, problem.line) == ("engine.yaml", 3)
    assert f"{section}.{key}" in problem.message and "is not an IP address" in problem.message


@pytest.mark.parametrize("address", ["::1", "2001:db8::5", "10.1.2.3", "0.0.0.0"])
def test_v4_and_v6_addresses_are_accepted(tmp_path: Path, address: str) -> None:
    write(tmp_path, "engine.yaml", f'http:\n  listen: "{address}"\n')
    assert load(tmp_path).engine.http.listen == address


@pytest.mark.parametrize("secret", ["s3cret;x", "s3cret-with\\nwrite=all", "short", "x" * 129, "with space1"])
def test_an_ami_secret_that_could_break_manager_conf_is_refused(tmp_path: Path, secret: str) -> None:
    write(tmp_path, "engine.yaml", f'ami:\n  host: 127.0.0.1\n  secret: "{secret}"\n')
    with pytest.raises(ConfigError) as err:
        load(tmp_path)
    (problem,) = err.value.problems
    assert problem.line == 3
    assert problem.message.startswith("ami.secret: Value error, must be 8-128 characters from A-Z a-z 0-9")


def test_an_ami_secret_of_the_allowed_characters_is_accepted(tmp_path: Path) -> None:
    secret = "Abc_.~!@#%^*+=-123"
    write(tmp_path, "engine.yaml", f'ami:\n  secret: "{secret}"\n')
    settings = load(tmp_path)
    assert settings.engine.ami.secret == secret
    assert settings.warnings == ()


# --- no default secrets off loopback -----------------------------------------------------

def test_the_default_ami_secret_is_refused_when_ami_is_off_loopback(tmp_path: Path) -> None:
    write(tmp_path, "engine.yaml", "ami:\n  host: 10.0.0.5\n")
    with pytest.raises(ConfigError) as err:
        load(tmp_path)
    (problem,) = err.value.problems
    assert (Path(problem.file).name, problem.line) == ("engine.yaml", 2)  # no secret line: the host's
    assert "published default 'change-me-hotline' and ami.host 10.0.0.5 is not loopback" in problem.message


def test_the_default_ami_secret_on_loopback_is_a_warning(tmp_path: Path) -> None:
    write(tmp_path, "engine.yaml", "ami:\n  host: ::1\n  secret: change-me-hotline\n")
    (warning,) = load(tmp_path).warnings
    assert warning.startswith(f"{tmp_path / 'engine.yaml'}:3: ami.secret is the published default")
    assert "loopback (::1)" in warning


DEMO_AGENTS = 'agents:\n  - {id: "1001", password: pw-1001-hotline}\n  - {id: "2002", password: own-secret}\n' \
              '  - {id: "1003", password: pw-1003-hotline}\n'


def test_published_demo_passwords_are_refused_when_sip_is_off_loopback(tmp_path: Path) -> None:
    write(tmp_path, "agents.yaml", DEMO_AGENTS)
    write(tmp_path, "engine.yaml", "ami: {secret: own-ami-secret}\nsip:\n  bind: 0.0.0.0\n")
    with pytest.raises(ConfigError) as err:
        load(tmp_path)
    assert [(Path(p.file).name, p.line) for p in err.value.problems] == [("agents.yaml", 2), ("agents.yaml", 4)]
    assert err.value.problems[0].message.startswith(
        "agent 1001 uses a published demo password (pw-NNNN-hotline) and sip.bind 0.0.0.0 is not loopback")


def test_published_demo_passwords_on_loopback_are_one_warning(tmp_path: Path) -> None:
    write(tmp_path, "agents.yaml", DEMO_AGENTS)
    write(tmp_path, "engine.yaml", "ami: {secret: own-ami-secret}\n")
    (warning,) = load(tmp_path).warnings
    assert warning.startswith(f"{tmp_path / 'agents.yaml'}:2: agent(s) 1001, 1003 use a published demo password")


def test_the_embedded_defaults_warn_about_their_published_secrets() -> None:
    warnings = load().warnings
    assert [w.split(": ", 1)[1].split(" ", 1)[0] for w in warnings] == ["ami.secret", "agent(s)"]


# --- listeners ---------------------------------------------------------------------------

def test_control_api_and_metrics_have_separate_listeners_by_default() -> None:
    e = load().engine
    assert (e.http.listen, e.http.port, e.metrics.listen, e.metrics.port) == ("127.0.0.1", 9109, "127.0.0.1", 9108)
    assert e.http.token_file == Path("/var/lib/hotline/control.token")


@pytest.mark.parametrize(("http", "metrics"), [("127.0.0.1", "127.0.0.1"), ("0.0.0.0", "127.0.0.1"),
                                               ("::1", "::")])
def test_control_api_and_metrics_on_one_port_are_refused(tmp_path: Path, http: str, metrics: str) -> None:
    write(tmp_path, "engine.yaml", f'http: {{listen: "{http}", port: 9000}}\nmetrics:\n  listen: "{metrics}"\n'
                                   "  port: 9000\n")
    with pytest.raises(ConfigError) as err:
        load(tmp_path)
    (problem,) = err.value.problems
    assert problem.line == 4 and "give metrics.port and http.port different ports" in problem.message


def test_a_relative_token_file_is_refused(tmp_path: Path) -> None:
    write(tmp_path, "engine.yaml", "http:\n  token_file: control.token\n")
    with pytest.raises(ConfigError, match=r"engine\.yaml:2: http\.token_file: Value error, must be an absolute"):
        load(tmp_path)


def test_a_dangling_engine_yaml_symlink_is_an_error_not_the_defaults(tmp_path: Path) -> None:
    write(tmp_path, "agents.yaml", AGENTS)
    (tmp_path / "engine.yaml").symlink_to(tmp_path / "moved-away.yaml")
    with pytest.raises(ConfigError) as err:
        load(tmp_path)
    assert str(err.value) == f"{tmp_path / 'engine.yaml'}: a symlink to {tmp_path / 'moved-away.yaml'}, which does " \
                             "not exist"


@pytest.mark.parametrize("tail", ["? [a, b]\n: 1\n", "{[a]: 1}: 2\n", "? {a: 1}\n: 1\n"])
def test_a_yaml_mapping_key_that_is_not_a_scalar_is_refused_with_file_and_line(tmp_path: Path, tail: str) -> None:
    # Today _build() does `key in out` with a list of nodes as the key: TypeError, so
    # `hotline config check` prints a traceback (exit 1), POST /reload answers a bare 500 and
    # SIGHUP logs "Task exception was never retrieved".
    from config.loader import ConfigError, load

    folder = config_folder(tmp_path / "cfg")
    (folder / "queues.yaml").write_text("queues:\n  - {name: main, number: '12345'}\n" + tail, encoding="utf-8")
    with pytest.raises(ConfigError) as refused:
        load(folder)
    assert str(refused.value).startswith(f"{folder / 'queues.yaml'}:3:")


@pytest.mark.parametrize("char", ["\x00", "\x01", "\x1b", "\ufffe"])
def test_a_control_character_in_a_yaml_file_is_refused_with_file_and_line(tmp_path: Path, char: str) -> None:
    # yaml.ReaderError is a YAMLError but not a MarkedYAMLError: parse_yaml lets it through.
    from config.loader import ConfigError, load

    folder = config_folder(tmp_path / "cfg")
    (folder / "agents.yaml").write_text(f'agents:\n  - {{id: "2001", password: own-secret-2001{char}}}\n',
                                        encoding="utf-8")
    with pytest.raises(ConfigError) as refused:
        load(folder)
    assert str(refused.value).startswith(f"{folder / 'agents.yaml'}")


def test_a_config_file_holding_secrets_readable_by_everyone_is_a_warning(tmp_path: Path) -> None:
    """Review 3: engine.yaml (the AMI secret) and agents.yaml (SIP passwords) left 0644."""
    folder = config_folder(tmp_path / "cfg")
    assert not [w for w in load(folder).warnings if "every user" in w]
    (folder / "agents.yaml").chmod(0o644)
    (warning,) = [w for w in load(folder).warnings if "every user" in w]
    assert warning.startswith(f"{folder / 'agents.yaml'}: readable by every user") and "chmod o-rwx" in warning
