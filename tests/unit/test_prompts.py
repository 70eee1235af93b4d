"""ivr.prompts and the shipped prompts: the catalogue, the rendered files, the pinyin, the
administrator's recordings (install_sounds, available), concat and a real build.

The shipped files are read with the stdlib's wave module: only the build and the espeak-ng
tone checks need espeak-ng and sox (.ci/packages.sh --tests installs them).
"""

from __future__ import annotations

import array
import datetime
import math
import os
import re
import shutil
import subprocess
import wave
from pathlib import Path

import pytest

from ivr import prompts, speech
from tickets.lifecycle import LABELS, State

TOOLS = prompts.missing_tools()
needs_tools = pytest.mark.skipif(
    bool(TOOLS), reason=f"{' and '.join(TOOLS)} not installed (apt-get install espeak-ng sox)")
CATALOGUE = prompts.load_catalogue()
REQUIRED = (
    "welcome", "intake-menu", "urgent-noted", "connecting", "invalid-key", "no-input", "goodbye", "agent-prefix",
    "agent-suffix", "survey-ask", "survey-thanks", "survey-none", "ticket-ask", "ticket-not-found",
    "ticket-retry-exhausted", "ticket-state-is", "ticket-due", "ticket-no-due", "callback-offer",
    "callback-own-number", "callback-enter-number", "callback-confirm", "callback-booked", "callback-greeting",
    "callback-agent-intro", "busy", "callback", "closed", "lang-en-chosen",
)


def samples_of(path: Path) -> tuple[wave._wave_params, array.array[int]]:
    with wave.open(str(path), "rb") as w:
        params = w.getparams()
        data = array.array("h")
        data.frombytes(w.readframes(w.getnframes()))
    return params, data


def rms(data: array.array[int]) -> float:
    return math.sqrt(sum(s * s for s in data) / len(data))


# ---- The catalogue ----------------------------------------------------------------------------


def test_catalogue_has_the_flows_prompts_in_both_languages() -> None:
    missing = [name for name in REQUIRED if name not in CATALOGUE]
    assert not missing
    for name, texts in CATALOGUE.items():
        assert re.fullmatch(r"[a-z0-9][a-z0-9-]*", name)
        assert texts["zh"] and texts["en"]
        assert not re.search(r"[\u4e00-\u9fff]", texts["en"]), f"{name}: Chinese in the en text"
    assert "12345政务服务便民热线" in CATALOGUE["welcome"]["zh"]
    assert "录音" in CATALOGUE["welcome"]["zh"]
    assert "{en:" in CATALOGUE["intake-menu"]["zh"]  # the English offer is said in English


def test_one_prompt_per_ticket_state_with_its_label() -> None:
    for state in State:
        name = speech.state_prompt(state.value)
        assert CATALOGUE[name]["zh"] == LABELS[state]
    states = {name for name in CATALOGUE if name.startswith("state-")}
    assert states == {speech.state_prompt(state.value) for state in State}


def test_every_fragment_speech_can_say_is_in_the_catalogue() -> None:
    assert speech.fragments() <= set(CATALOGUE)
    said: set[str] = set()
    for n in [*range(0, 100001, 7), 100000, *range(100000, speech.MAX_NUMBER + 1, 104729), speech.MAX_NUMBER]:
        for lang in speech.LANGS:
            said.update(speech.number(n, lang))
    for lang in speech.LANGS:
        day = datetime.date(2026, 1, 1)
        while day.year == 2026:
            said.update(speech.date(day, lang))
            day += datetime.timedelta(days=1)
        said.update(speech.digits("0123456789", lang))
        said.update(speech.clock(2, 0, lang) + speech.clock(21, 7, lang) + speech.clock(13, 45, lang))
        said.update(speech.agent_announcement("1001", lang))
    assert said <= set(CATALOGUE), sorted(said - set(CATALOGUE))


# ---- The shipped files --------------------------------------------------------------------------


@pytest.mark.parametrize("lang", speech.LANGS)
def test_every_prompt_is_shipped_as_8khz_mono_wav_and_alaw_not_silent(lang: str) -> None:
    folder = prompts.SHIPPED / lang
    fragments = speech.fragments() - {"agent-prefix", "agent-suffix"}
    for name in CATALOGUE:
        params, data = samples_of(folder / f"{name}.wav")
        assert (params.framerate, params.nchannels, params.sampwidth, params.comptype) == (8000, 1, 2, "NONE"), name
        seconds = params.nframes / 8000
        assert (0.1 if name in fragments else 0.5) <= seconds <= (2.0 if name in fragments else 15.0), (name, seconds)
        assert rms(data) > 1000, f"{lang}/{name}.wav is silent"
        alaw = (folder / f"{name}.alaw").read_bytes()
        assert len(alaw) == params.nframes, name  # raw A-law: one byte a sample, no header
        assert prompts.alaw_encode(data) == alaw, name  # the same samples
    shipped = {path.name for path in folder.iterdir()}
    assert shipped == {f"{name}.{fmt}" for name in CATALOGUE for fmt in prompts.SHIPPED_FORMATS}


def test_shipped_prompts_pass_the_check_and_stay_small() -> None:
    assert prompts.verify() == []
    size = sum(path.stat().st_size for lang in speech.LANGS for path in (prompts.SHIPPED / lang).iterdir())
    assert size < 16 * 1024 * 1024


def test_prompts_are_louder_than_silence_between_words_but_never_clip() -> None:
    _, data = samples_of(prompts.SHIPPED / "zh" / "welcome.wav")
    assert max(abs(s) for s in data) <= 32767 * 0.75  # peak-normalized to -3 dBFS
    assert abs(data[0]) < 200 and abs(data[-1]) < 200  # starts and ends in (padded) silence


# ---- Pinyin -------------------------------------------------------------------------------------


def test_digits_in_zh_texts_become_words() -> None:
    assert prompts.zh_words("请按1，幺", CATALOGUE) == "请按一，幺"
    assert prompts.zh_words("欢迎致电12345", CATALOGUE) == "欢迎致电幺二三四五"


def test_pinyin_of_the_welcome_and_the_corrections() -> None:
    welcome = prompts.pinyin(CATALOGUE["welcome"]["zh"], CATALOGUE)
    assert welcome.startswith("nin2 hao3, huan1 ying2 zhi4 dian4 yao1 er4 san1 si4 wu3 zheng4 wu4 fu2 wu4 ")
    assert "wei4 le5 ti2 gao1 fu2 wu4 zhi4 liang4," in welcome
    assert ".\n" in welcome  # a sentence ends with a line break: espeak reads ". w" as an abbreviation
    assert prompts.pinyin("您的工单当前状态为", CATALOGUE).endswith("zhuang4 tai4 wei2")  # 为 wéi, not wèi
    assert prompts.pinyin("办理时限为", CATALOGUE) == "ban4 li3 shi2 xian4 wei2"
    assert prompts.pinyin("号话务员为您服务", CATALOGUE) == "hao4 hua4 wu4 yuan2 wei4 nin2 fu2 wu4"  # 为您 wèi
    assert prompts.pinyin("还款", CATALOGUE) == "huan2 kuan3"
    assert prompts.pinyin("重办", CATALOGUE) == "chong2 ban4"
    assert prompts.pinyin("一月", CATALOGUE) == "yi1 yue4"
    assert prompts.pinyin("重新输入", CATALOGUE) == "chong2 xin1 shu1 ru4"


def test_pinyin_refuses_latin_text() -> None:
    with pytest.raises(prompts.PromptError, match="neither Chinese nor punctuation"):
        prompts.pinyin("请按A键", CATALOGUE)


def test_english_parts_of_a_zh_text() -> None:
    assert prompts.segments("紧急事项请按1。{en:For English, press 9.}", "zh") == [
        ("zh", "紧急事项请按1。"), ("en", "For English, press 9.")]
    assert prompts.segments("{en:x} y", "en") == [("en", "{en:x} y")]


def test_every_zh_text_has_pinyin_and_the_corrections_parse() -> None:
    for name, texts in CATALOGUE.items():
        for voice, part in prompts.segments(texts["zh"], "zh"):
            if voice == "zh":
                assert re.fullmatch(r"([a-z]+[1-5][,.]?[ \n])*[a-z]+[1-5][,.]?", prompts.pinyin(part, CATALOGUE)), name
    phrases = prompts.load_phrases()
    assert phrases["状态为"] == ["zhuang4", "tai4", "wei2"]


def test_bad_correction_lines_are_refused(tmp_path: Path) -> None:
    bad = tmp_path / "phrases.txt"
    bad.write_text("# ok\n状态为 zhuang4 tai4\n", encoding="utf-8")
    with pytest.raises(prompts.PromptError, match=r"phrases\.txt:2"):
        prompts.load_phrases(bad)


@needs_tools
def test_espeak_says_the_tones_of_the_pinyin() -> None:
    """The voice speaks every syllable with its tone (Debian 12's `-v cmn` read the tone digits
    as English numbers): espeak-ng's phonemes carry one contour per syllable, and it is the
    dictionary tone, a third tone said as the half-third (21) or, before another third tone,
    as a second tone (35), the neutral tone low or mid."""
    contours = {"1": {"55"}, "2": {"35"}, "3": {"214", "21", "35"}, "4": {"51"}, "5": {"11", "22", "33", "44"}}
    for name in ("welcome", "agent-suffix", "callback-booked", "ticket-state-is", "survey-ask", "state-in-progress"):
        spoken = prompts.pinyin(prompts.segments(CATALOGUE[name]["zh"], "zh")[0][1], CATALOGUE)
        tones = re.findall(r"[1-5](?=[,.]?(?:\s|$))", spoken)
        phonemes = prompts.phonemes(spoken)
        said = re.findall(r"\d+", phonemes)
        assert len(said) == len(tones), (name, phonemes)
        for tone, contour in zip(tones, said, strict=True):
            assert contour in contours[tone], (name, tone, contour, phonemes)


# ---- install_sounds and available ---------------------------------------------------------------


def write_wav(path: Path, n: int, value: int = 3000, rate: int = 8000, channels: int = 1) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(array.array("h", [value, -value] * (n // 2) * channels).tobytes())


@pytest.fixture
def shipped(tmp_path: Path) -> Path:
    root = tmp_path / "shipped"
    for lang in speech.LANGS:
        for name, n in (("welcome", 800), ("goodbye", 400), ("d-1", 160)):
            write_wav(root / lang / f"{name}.wav", n)
            (root / lang / f"{name}.alaw").write_bytes(b"\xd5" * n)
    return root


def test_install_copies_shipped_then_the_admins_recordings_over_them(tmp_path: Path, shipped: Path) -> None:
    target, own = tmp_path / "sounds" / "hotline", tmp_path / "own"
    (target / "zh").mkdir(parents=True)
    (target / "zh" / "welcome.ulaw").write_bytes(b"old")  # an earlier install's recording
    (target / "zh" / "agent-1001.wav").write_bytes(b"x")  # built by concat: not ours to remove
    (own / "zh").mkdir(parents=True)
    (own / "zh" / "welcome.gsm").write_bytes(b"\x00" * 33)
    (own / "zh" / "holiday-notice.alaw").write_bytes(b"\xd5" * 80)
    written = prompts.install_sounds(target, own, shipped=shipped)
    zh = {path.name for path in (target / "zh").iterdir()}
    assert zh == {"welcome.gsm", "goodbye.wav", "goodbye.alaw", "d-1.wav", "d-1.alaw", "holiday-notice.alaw",
                  "agent-1001.wav"}
    assert (target / "zh" / "welcome.gsm").read_bytes() == b"\x00" * 33
    assert {path.name for path in (target / "en").iterdir()} == {path.name for path in (shipped / "en").iterdir()}
    assert set(written) == {p for lang in speech.LANGS for p in (target / lang).iterdir()} - {
        target / "zh" / "agent-1001.wav"}
    assert not [p for p in target.rglob(".*")]  # no temporary file left behind
    assert prompts.available(own, shipped=shipped) == {
        "zh": frozenset({"welcome", "goodbye", "d-1", "holiday-notice"}),
        "en": frozenset({"welcome", "goodbye", "d-1"}),
    }

    # The administrator takes the recording away: the shipped prompt is back, the gsm gone.
    (own / "zh" / "welcome.gsm").unlink()
    prompts.install_sounds(target, own, shipped=shipped)
    assert {p.name for p in (target / "zh").glob("welcome.*")} == {"welcome.wav", "welcome.alaw"}


@pytest.mark.parametrize(("make", "message"), [
    (lambda d: (d / "zh" / "Welcome.wav").write_bytes(b""), "Welcome.wav: a prompt name has only"),
    (lambda d: (d / "zh" / "wel come.alaw").write_bytes(b""), "wel come.alaw: a prompt name"),
    (lambda d: (d / "zh" / "-x.alaw").write_bytes(b""), "-x.alaw: a prompt name"),
    (lambda d: (d / "zh" / "welcome").write_bytes(b""), "welcome: a prompt name"),
    (lambda d: (d / "zh" / "welcome.mp3").write_bytes(b""), "welcome.mp3: format 'mp3'"),
    (lambda d: (d / "zh" / "welcome.alaw").symlink_to("/etc/passwd"), "welcome.alaw: not a regular file"),
    (lambda d: (d / "zh" / "welcome.wav").mkdir(), "welcome.wav: not a regular file"),
    (lambda d: os.mkfifo(d / "zh" / "welcome.sln"), "welcome.sln: not a regular file"),
    (lambda d: write_wav(d / "zh" / "welcome.wav", 160, rate=16000), "welcome.wav: 16000 Hz"),
    (lambda d: write_wav(d / "zh" / "welcome.wav", 160, channels=2), "2 channel"),
    (lambda d: (d / "zh" / "welcome.wav").write_bytes(b"RIFF...."), "welcome.wav: not a PCM wav"),
    (lambda d: (d / "fr").mkdir(), "fr: the prompt folder holds only"),
])
def test_install_refuses_a_bad_admin_file_and_copies_nothing(tmp_path: Path, shipped: Path, make: object,
                                                             message: str) -> None:
    own, target = tmp_path / "own", tmp_path / "target"
    (own / "zh").mkdir(parents=True)
    (own / "zh" / "goodbye.alaw").write_bytes(b"\xd5" * 80)  # fine, but the folder is refused whole
    make(own)  # type: ignore[operator]
    with pytest.raises(prompts.PromptError, match=re.escape(message)):
        prompts.install_sounds(target, own, shipped=shipped)
    assert not target.exists()
    with pytest.raises(prompts.PromptError):
        prompts.available(own, shipped=shipped)


def test_available_without_an_admin_folder_is_the_shipped_catalogue(tmp_path: Path) -> None:
    assert prompts.available(None) == {lang: frozenset(CATALOGUE) for lang in speech.LANGS}
    assert prompts.available(tmp_path / "none") == prompts.available(None)


# ---- concat and G.711 ---------------------------------------------------------------------------


def test_concat_is_the_fragments_in_order(tmp_path: Path) -> None:
    names = speech.agent_announcement("1001", "zh")
    parts = [samples_of(prompts.SHIPPED / "zh" / f"{name}.wav")[1] for name in names]
    out = prompts.concat(names, "zh", tmp_path / "agent-1001")
    assert out == [tmp_path / "agent-1001.wav", tmp_path / "agent-1001.alaw"]
    params, joined = samples_of(out[0])
    assert (params.framerate, params.nchannels, params.sampwidth) == (8000, 1, 2)
    assert params.nframes == sum(len(p) for p in parts)
    assert joined == array.array("h", [s for p in parts for s in p])
    assert out[1].read_bytes() == prompts.alaw_encode(joined)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["agent-1001.alaw", "agent-1001.wav"]


def test_concat_takes_the_admins_recording_in_any_format(tmp_path: Path) -> None:
    own = tmp_path / "own"
    (own / "zh").mkdir(parents=True)
    sln = array.array("h", [1000, -1000] * 40)
    (own / "zh" / "agent-prefix.sln").write_bytes(sln.tobytes())
    (own / "zh" / "agent-suffix.alaw").write_bytes(prompts.alaw_encode(sln))
    ulaw = bytes([0xCE, 0x4E] * 40)  # µ-law +988, -988
    (own / "zh" / "d-0.ulaw").write_bytes(ulaw)
    wav, _ = prompts.concat(["agent-prefix", "d-0", "d-1y", "agent-suffix"], "zh", tmp_path / "out.wav", own)
    _, joined = samples_of(wav)
    d1y = samples_of(prompts.SHIPPED / "zh" / "d-1y.wav")[1]
    assert len(joined) == 80 + 80 + len(d1y) + 80
    assert joined[:80] == sln
    assert joined[80:160] == array.array("h", [988, -988] * 40)
    with pytest.raises(prompts.PromptError, match="zh/nothing: neither shipped"):
        prompts.concat(["nothing"], "zh", tmp_path / "x")
    with pytest.raises(prompts.PromptError):
        prompts.concat([], "zh", tmp_path / "x")


def test_alaw_round_trip() -> None:
    every = array.array("h", range(-32768, 32768, 7))
    back = prompts.alaw_decode(prompts.alaw_encode(every))
    for s, d in zip(every, back, strict=True):
        assert abs(s - d) <= max(16, abs(s) // 16)  # G.711's segment step
    assert prompts.alaw_encode(prompts.alaw_decode(bytes(range(256)))) == bytes(range(256))


@needs_tools
def test_alaw_encoding_is_soxs(tmp_path: Path) -> None:
    ramp = array.array("h", range(-32768, 32768))
    prompts.write_wav(tmp_path / "ramp.wav", ramp)
    subprocess.run(["sox", "-D", str(tmp_path / "ramp.wav"), "-t", "raw", "-e", "a-law", "-b", "8",
                    str(tmp_path / "ramp.alaw")], check=True, capture_output=True)
    assert (tmp_path / "ramp.alaw").read_bytes() == prompts.alaw_encode(ramp)


# ---- build --------------------------------------------------------------------------------------


@needs_tools
def test_build_renders_a_prompt_in_both_languages(tmp_path: Path) -> None:
    lines: list[str] = []
    written = prompts.build(["goodbye", "d-1y"], out_dir=tmp_path, progress=lines.append)
    assert lines == ["[prompts] 1/4 zh goodbye", "[prompts] 2/4 zh d-1y", "[prompts] 3/4 en goodbye",
                     "[prompts] 4/4 en d-1y"]
    assert sorted(p.relative_to(tmp_path).as_posix() for p in written) == [
        "en/d-1y.alaw", "en/d-1y.wav", "en/goodbye.alaw", "en/goodbye.wav",
        "zh/d-1y.alaw", "zh/d-1y.wav", "zh/goodbye.alaw", "zh/goodbye.wav"]
    assert prompts.verify(tmp_path, ["goodbye", "d-1y"]) == []
    # deterministic: the same tools give the shipped bytes
    for path in written:
        assert path.read_bytes() == (prompts.SHIPPED / path.relative_to(tmp_path)).read_bytes(), path


@needs_tools
def test_build_a_mixed_zh_and_english_prompt(tmp_path: Path) -> None:
    prompts.build(["intake-menu"], out_dir=tmp_path, langs=("zh",), progress=lambda _: None)
    _, menu = samples_of(tmp_path / "zh" / "intake-menu.wav")
    assert 5 * 8000 < len(menu) < 15 * 8000 and rms(menu) > 1000


def test_build_refuses_unknown_names_and_languages(tmp_path: Path) -> None:
    if TOOLS:
        with pytest.raises(prompts.PromptError, match="apt-get install espeak-ng sox"):
            prompts.build(["welcome"], out_dir=tmp_path)
        return
    with pytest.raises(prompts.PromptError, match=r"not in prompt_texts\.yaml: no-such"):
        prompts.build(["no-such"], out_dir=tmp_path)
    with pytest.raises(prompts.PromptError, match="unknown language"):
        prompts.build(["welcome"], out_dir=tmp_path, langs=("fr",))
    assert list(tmp_path.iterdir()) == []


def test_missing_tools_are_named_with_their_apt_packages(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(shutil, "which", lambda tool: None)
    with pytest.raises(prompts.PromptError, match=r"espeak-ng and sox not installed: apt-get install espeak-ng sox"):
        prompts.build(["welcome"], out_dir=tmp_path)


# ---- Command line -------------------------------------------------------------------------------


def test_cli_help_and_check(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        prompts.main(["build", "--help"])
    assert exit_.value.code == 0
    assert "--only" in capsys.readouterr().out
    assert prompts.main(["check"]) == 0
    assert prompts.main(["pinyin", "ticket-due"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "ban4 li3 shi2 xian4 wei2"
    assert prompts.main(["concat", "--lang", "zh", "--out", "/nonexistent-dir/x", "--names", "no-such"]) == 2
    assert "neither shipped nor recorded" in capsys.readouterr().err
