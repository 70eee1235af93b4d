"""The baresip softphone harness without baresip: its netstring codec and what it writes."""

from __future__ import annotations

import json
import wave
from pathlib import Path

import pytest
import yaml

from testbed.audio import check_audio
from testbed.baresip import (
    DEFAULT_AGENTS,
    BaresipError,
    NetstringReader,
    account_line,
    default_password,
    netstring,
    render_config,
    write_tone,
)


def test_a_command_is_framed_as_length_colon_payload_comma() -> None:
    body = json.dumps({"command": "dial", "params": "sip:*2305@127.0.0.1:5060", "token": "t1"}).encode()
    framed = netstring(body)
    assert framed == str(len(body)).encode() + b":" + body + b","
    assert netstring(b"") == b"0:,"


def test_the_reader_returns_whole_netstrings_however_the_stream_is_cut() -> None:
    events = [json.dumps({"event": True, "type": t}).encode() for t in ("REGISTER_OK", "CALL_INCOMING", "中文")]
    stream = b"".join(netstring(e) for e in events)
    for size in (1, 2, 7, len(stream)):
        reader = NetstringReader()
        got: list[bytes] = []
        for i in range(0, len(stream), size):
            got += reader.feed(stream[i:i + size])
        assert got == events


def test_the_reader_waits_for_the_comma_before_returning_a_netstring() -> None:
    reader = NetstringReader()
    assert reader.feed(b"5:hello") == []
    assert reader.feed(b",") == [b"hello"]


@pytest.mark.parametrize(("data", "says"), [
    (b"x5:hello,", "not a number"),
    (b"05:hello,", "leading zero"),
    (b":hello,", "no length"),
    (b"5:hello;", "no ','"),
    (b"99999999:", "more than"),
    (b"1234567890123", "no ':'"),
])
def test_a_broken_netstring_is_an_error_that_says_what_is_wrong(data: bytes, says: str) -> None:
    with pytest.raises(BaresipError, match=says):
        NetstringReader(limit=1000).feed(data)


def test_the_phone_config_binds_loopback_by_address_and_loads_accounts_and_ctrl_tcp(tmp_path: Path) -> None:
    text = render_config(tmp_path, sip_port=7003, ctrl_port=40001, voice=tmp_path / "voice.wav")
    lines = {line.split(" ", 1)[0]: line.split(" ", 1)[1] for line in text.splitlines()
             if line and not line.startswith("#") and not line.startswith("module")}
    assert lines["sip_listen"] == "127.0.0.1:7003"
    assert lines["net_interface"] == "127.0.0.1"  # "lo" fails in baresip 1.0.0
    assert lines["ctrl_tcp_listen"] == "127.0.0.1:40001"
    assert lines["audio_source"] == f"aufile,{tmp_path / 'voice.wav'}"
    assert lines["audio_player"] == "alsa,null"
    low, high = (int(p) for p in lines["rtp_ports"].split("-"))
    assert 20000 < low < high < 30000  # between Asterisk's RTP range and SIPp's media ports
    modules = [line.split()[1] for line in text.splitlines() if line.startswith("module_app")]
    assert modules == ["account.so", "menu.so", "ctrl_tcp.so"]


def test_the_account_registers_as_agent_nnnn_with_its_password_and_answer_mode() -> None:
    assert account_line("1001", "pw-1001-test") == (
        "<sip:agent1001@127.0.0.1:5060;transport=udp>;auth_pass=pw-1001-test;answermode=auto")
    assert account_line("1002", "pw", answermode="manual", regint=60).endswith(";answermode=manual;regint=60")


@pytest.mark.parametrize("password", ["a;answermode=manual", "a b", "", "a>b"])
def test_a_password_that_would_change_the_account_line_is_refused(password: str) -> None:
    with pytest.raises(BaresipError, match="cannot go into a baresip account line"):
        account_line("1001", password)


def test_the_default_password_is_the_one_in_the_shipped_agents_yaml() -> None:
    roster = yaml.safe_load(DEFAULT_AGENTS.read_text(encoding="utf-8"))["agents"]
    first = roster[0]
    assert default_password(str(first["id"])) == first["password"]
    with pytest.raises(BaresipError, match="no agent 9999"):
        default_password("9999")


def test_the_phones_voice_is_an_audible_8_khz_mono_16_bit_wav(tmp_path: Path) -> None:
    path = tmp_path / "voice.wav"
    write_tone(path, seconds=3)
    with wave.open(str(path), "rb") as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (8000, 1, 2)
    audio = check_audio(path)
    assert audio.has_audio and round(audio.seconds) == 3
