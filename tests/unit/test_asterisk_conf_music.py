"""What a waiting caller hears, as rendered for Asterisk: musiconhold.conf, the hold and wait
dialplan (music over early media, never an answer; the position announcement), and the
warnings of `hotline asterisk-conf install` when the music is not there."""

from __future__ import annotations

import configparser
import re
import stat
from pathlib import Path

from config.loader import load
from config.settings import Settings
from cti import dialplan as dp
from cti.asterisk_conf import MUSIC_PACKAGE, install, music_warnings, render
from tests.unit.test_config_loader import write

TWO_QUEUES = ("queues:\n  - name: main\n    number: '12345'\n    announce: {every: 30}\n"
              "  - name: night\n    number: '12346'\n    music: none\n"
              "  - name: vip\n    number: '12347'\n    music: gentle\n")


def settings_of(tmp: Path) -> Settings:
    tmp.mkdir(parents=True, exist_ok=True)
    return load(write(tmp, "queues.yaml", TWO_QUEUES))


def context(text: str, name: str) -> list[str]:
    """The dialplan lines of one context, comments dropped."""
    body = text.split(f"[{name}]\n", 1)[1].split("\n[", 1)[0]
    return [line.split(";", 1)[0] for line in body.splitlines() if line.split(";", 1)[0].strip()]


def extension(text: str, ctx: str, exten: str) -> list[str]:
    lines = context(text, ctx)
    start = next(i for i, line in enumerate(lines) if line.startswith(f"exten => {exten},1,"))
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("exten =>")), len(lines))
    return lines[start:end]


def test_musiconhold_conf_plays_the_packaged_files_in_the_default_class() -> None:
    text = render(load())["musiconhold.conf"]
    cp = configparser.ConfigParser(strict=False, inline_comment_prefixes=(";",), comment_prefixes=(";", "#"))
    cp.read_string(text)
    assert dict(cp["default"]) == {"mode": "files", "directory": "moh", "sort": "randstart"}
    assert cp.get("general", "preferchannelclass") == "yes"  # the queue's class beats the phone's hint
    assert "#tryinclude musiconhold_local.conf" in text
    assert MUSIC_PACKAGE in text and "CC-BY-SA 3.0" in text


def test_install_writes_musiconhold_conf_0640(tmp_path: Path) -> None:
    written = install(load(), tmp_path / "etc", tmp_path / "sounds")
    path = tmp_path / "etc" / "musiconhold.conf"
    assert path in written
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_a_queue_with_music_sends_early_media_and_music_never_an_answer_before_the_join(tmp_path: Path) -> None:
    text = render(settings_of(tmp_path))["extensions.conf"]
    hold = extension(text, dp.HOLD, "main")
    assert hold[0] == f"exten => main,1,MSet({dp.MUSIC}=default,{dp.MUSIC_FOR}=main)"
    assert [line.split(",", 1)[1] for line in hold[1:4]] == [
        "Set(CHANNEL(musicclass)=default)", "Progress()", "StartMusicOnHold()"]
    # The join event right before the Wait: the engine Redirects only a caller in the loop.
    assert hold[4].startswith(" same => n,UserEvent(HotlineJoin,Queue: main,") and hold[5] == " same => n,Wait(1)"
    assert not any("Ringing" in line or "Answer" in line for line in hold)
    assert "Set(CHANNEL(musicclass)=gentle)" in "\n".join(extension(text, dp.HOLD, "vip"))


def test_a_queue_with_music_none_rings_as_before(tmp_path: Path) -> None:
    text = render(settings_of(tmp_path))["extensions.conf"]
    hold = extension(text, dp.HOLD, "night")
    assert hold[0] == f"exten => night,1,MSet({dp.MUSIC}=,{dp.MUSIC_FOR}=night)"
    assert hold[1] == " same => n,Ringing()"
    assert not any("Progress" in line or "MusicOnHold" in line for line in hold)


def test_the_ringback_or_music_is_chosen_per_queue_not_at_the_number_or_after_the_ivr(tmp_path: Path) -> None:
    text = render(settings_of(tmp_path))["extensions.conf"]
    for ctx in (dp.INBOUND, dp.IVR):
        assert not any("Ringing" in line or "Progress" in line for line in context(text, ctx))


def test_each_queues_class_is_a_global_for_a_caller_moved_between_queues(tmp_path: Path) -> None:
    text = render(settings_of(tmp_path))["extensions.conf"]
    globals_ = context(text, "globals")
    assert f"{dp.QUEUE_MUSIC_PREFIX}main=default" in globals_
    assert f"{dp.QUEUE_MUSIC_PREFIX}night=" in globals_
    assert f"{dp.QUEUE_MUSIC_PREFIX}vip=gentle" in globals_
    wait = "\n".join(context(text, dp.WAIT))
    assert f"Set({dp.MUSIC_FOR}=${{{dp.QUEUE}}})" in wait
    assert f"${{{dp.QUEUE_MUSIC_PREFIX}${{{dp.QUEUE}}}}}" in wait


def test_the_wait_loop_plays_the_engines_announcement_without_answering_then_the_music_again() -> None:
    text = render(load())["extensions.conf"]
    wait = context(text, dp.WAIT)
    joined = "\n".join(wait)
    # Checked on every pass, before the Wait (one GotoIf, with the queue check).
    park = next(i for i, line in enumerate(wait) if "(park),Wait(1)" in line)
    assert f'"${{{dp.ANNOUNCE}}}" != ""' in wait[park - 1]
    # Taken, cleared and filtered: the value comes over AMI.
    assert f"Set(HOTLINE_ANNOUNCING=${{FILTER(-&0-9a-z,${{{dp.ANNOUNCE}}})}})" in joined
    assert f"Set({dp.ANNOUNCE}=)" in joined
    play = next(i for i, line in enumerate(wait) if "Playback(" in line)
    assert wait[play].endswith(",noanswer)")
    assert "STRREPLACE(HOTLINE_ANNOUNCING,&,&${HOTLINE_ANNOUNCE_DIR})" in wait[play]
    assert wait[play + 1] == " same => n,StartMusicOnHold()"
    assert 'hotline/${IF($["${HOTLINE_LANG}" = "en"]?en:zh)}/' in joined


def test_nothing_in_the_wait_path_answers_the_caller() -> None:
    text = render(load())["extensions.conf"]
    for ctx in (dp.HOLD, dp.WAIT):
        lines = context(text, ctx)
        assert not any(re.search(r"\bAnswer\(", line) for line in lines)
        for line in lines:
            if "Playback(" in line:
                assert line.endswith(",noanswer)"), line


def test_the_caller_hears_their_music_while_an_agent_rings_and_again_after_an_unanswered_ring() -> None:
    text = render(load())["extensions.conf"]
    music = f'${{IF($["${{{dp.MUSIC}}}" != ""]?m)}}'
    dials = [line for line in context(text, dp.CONNECT) + context(text, dp.WAIT) if "Dial(" in line]
    assert len(dials) == 3  # one agent, ring_all, the fallback
    assert all(music in line for line in dials)
    wait = context(text, dp.WAIT)
    back = next(i for i, line in enumerate(wait) if "(back)" in line)
    assert wait[back] == f' same => n(back),ExecIf($["${{{dp.MUSIC}}}" != ""]?StartMusicOnHold())'
    # A stale announcement (set before the ring) is dropped before the engine hears the caller is back.
    rest = [line for line in wait[back + 1:back + 5] if not line.startswith(";")]
    assert rest[0] == f" same => n,Set({dp.ANNOUNCE}=)"
    assert rest[1].startswith(" same => n,UserEvent(HotlineParked") and rest[2] == " same => n,Wait(1)"


def test_install_warns_when_the_music_folder_is_empty_naming_the_package(tmp_path: Path) -> None:
    settings = load()
    (tmp_path / "moh").mkdir()
    (warning,) = music_warnings(settings, tmp_path / "etc", tmp_path / "sounds")
    assert str(tmp_path / "moh") in warning and f"apt-get install {MUSIC_PACKAGE}" in warning
    (tmp_path / "moh" / "tune.wav").write_bytes(b"RIFF")
    assert music_warnings(settings, tmp_path / "etc", tmp_path / "sounds") == []


def test_install_warns_of_a_class_no_musiconhold_file_defines(tmp_path: Path) -> None:
    settings = settings_of(tmp_path / "config")
    (tmp_path / "moh").mkdir()
    (tmp_path / "moh" / "tune.wav").write_bytes(b"RIFF")
    (tmp_path / "etc").mkdir()
    (warning,) = music_warnings(settings, tmp_path / "etc", tmp_path / "sounds")
    assert "queue vip" in warning and "'gentle'" in warning and "musiconhold_local.conf" in warning
    (tmp_path / "etc" / "musiconhold_local.conf").write_text("[gentle]\nmode = files\ndirectory = gentle\n")
    assert music_warnings(settings, tmp_path / "etc", tmp_path / "sounds") == []
