"""engine.yaml values that end up in Asterisk's configuration (recordings.dir in
extensions.conf's [globals], account.cel_db as a section name of cel_sqlite3_custom.conf) are
refused when they could inject a line or a section; a key written twice, a relative store
path and a control API off loopback are refused or warned about at load time."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from config.loader import ConfigError, load
from cti.asterisk_conf import render
from tests.integration.harness import write_config


def _with(tmp_path: Path, key: str, value: str) -> Path:
    cfg = write_config(tmp_path / "config")
    text = (cfg / "engine.yaml").read_text()
    section, field = key.split(".")
    assert f"\n{section}:\n" in f"\n{text}"
    text = text.replace(f"{section}:\n", f"{section}:\n  {field}: {value}\n", 1)
    lines, seen = [], set()
    for line in text.splitlines():  # keep the first (ours) of a repeated key
        k = (section, line.strip().split(":")[0]) if line.startswith("  ") else None
        if k and k[1] == field and k in seen:
            continue
        if k:
            seen.add(k)
        lines.append(line)
    (cfg / "engine.yaml").write_text("\n".join(lines) + "\n")
    return cfg


@pytest.mark.parametrize(("key", "value", "rendered", "injected"), [
    ("recordings.dir", '"/var/lib/hotline/rec\\nexten => 999,1,Hangup()"', "extensions.conf", "exten => 999,1"),
    ("account.cel_db", '"/var/lib/hotline/cel.db]\\n[/tmp/other.db"', "cel_sqlite3_custom.conf", "[/tmp/other.db"),
])
def test_a_path_with_a_line_break_is_refused_before_it_reaches_asterisk(
    tmp_path: Path, key: str, value: str, rendered: str, injected: str
) -> None:
    cfg = _with(tmp_path, key, value)
    try:
        settings = load(cfg)
    except ConfigError:
        return  # refused: what we want
    text = render(settings)[rendered]
    assert not any(line.startswith(injected) for line in text.splitlines()), \
        f"{key} = {value} added a line of its own to {rendered}"


@pytest.mark.parametrize("folder", ["/var/rec,x", "/var/${EVIL}", "/var/rec(1)", '/var/"rec"', "/var/a|b"])
def test_a_recordings_folder_that_would_split_or_expand_a_dialplan_argument_is_refused(
        tmp_path: Path, folder: str) -> None:
    """Review 3: the folder reaches MixMonitor(${HOTLINE_REC}): a comma splits its arguments,
    `$` expands a variable, parentheses and quotes end or open one."""
    with pytest.raises(ConfigError, match="recordings"):
        load(_with(tmp_path, "recordings.dir", json.dumps(folder)))


def test_a_key_written_twice_is_refused_not_silently_overridden(tmp_path: Path) -> None:
    # An admin appends a second `ami:` block (or pastes `ring_timeout:` twice): PyYAML keeps
    # the last one and the loader builds its dict the same way, so the first is dropped
    # without a word, although the loader refuses anchors as "not hotline configuration".
    cfg = write_config(tmp_path / "config")
    text = (cfg / "engine.yaml").read_text()
    (cfg / "engine.yaml").write_text(text + "ami:\n  port: 5039\n")
    with pytest.raises(ConfigError, match="ami"):
        load(cfg)


@pytest.mark.parametrize(("key", "value"), [("store.spool", "spool"), ("store.url", "sqlite:///hotline.db")])
def test_a_relative_store_path_is_refused_like_the_other_paths(tmp_path: Path, key: str, value: str) -> None:
    # token_file, recordings.dir and account.cel_db must be absolute; the spool and the SQLite
    # file may be relative, i.e. wherever the engine's working directory is (/ under systemd),
    # while `hotline quarantine list|retry`, run from a shell elsewhere, looks somewhere else.
    cfg = _with(tmp_path, key, value)
    with pytest.raises(ConfigError, match=key.split(".")[1]):
        load(cfg)


def test_a_control_api_off_loopback_is_at_least_a_warning(tmp_path: Path) -> None:
    # The control API speaks plain HTTP: off loopback its bearer token (which pauses agents and
    # reloads the engine) crosses the network in clear on every request. `http.listen: 0.0.0.0`
    # passes `config check` without a word, as in the field test (defect 6).
    cfg = _with(tmp_path, "http.listen", "0.0.0.0")
    settings = load(cfg)
    assert settings.engine.http.listen == "0.0.0.0"
    assert any("http.listen" in w for w in settings.warnings), settings.warnings
