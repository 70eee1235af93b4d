"""The IVR's voice prompts: rendered from ivr/prompt_texts.yaml, installed for Asterisk.

* `build` renders the catalogue with espeak-ng and sox into the shipped folder,
  asterisk-conf/sounds/<lang>/<name>.wav (8 kHz mono 16-bit PCM, Asterisk's ``wav``) and
  <name>.alaw (raw G.711 A-law, Asterisk's ``alaw``: PCMA, what Chinese carriers send, so
  Asterisk plays it without transcoding). Mandarin: digits become Chinese words (speech.py's
  rules), pypinyin turns the text into TONE3 pinyin (corrected by ivr/pinyin_phrases.txt),
  ``espeak-ng -v cmn-latn-pinyin`` speaks the pinyin (Debian 12's ``-v cmn`` reads tone digits
  as English numbers). English: ``espeak-ng -v en-us``. Deterministic: no network, no dither,
  the same espeak-ng and sox give the same bytes. ``make prompts`` runs it; the result is
  committed, so neither a deployment nor the tests need espeak-ng to play prompts.
* `available` says which prompt names exist per language: shipped plus the administrator's
  own recordings (``<override_dir>/<lang>/<name>.<wav|alaw|ulaw|gsm|sln>``).
* `install_sounds` copies both into Asterisk's ``sounds/hotline/<lang>/``; an administrator's
  recording of a name replaces the shipped one in every format.
* `concat` joins fragments into one prompt (a per-agent 工号 announcement, ``agent-1001``):
  pure Python for wav, sln, alaw and ulaw sources; sox only for an administrator's gsm.

Run ``python -m ivr.prompts --help``.
"""

from __future__ import annotations

import argparse
import array
import functools
import math
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import wave
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import yaml

from ivr import announce, speech

HERE = Path(__file__).resolve().parent
SHIPPED = HERE.parent / "asterisk-conf" / "sounds"
CATALOGUE = HERE / "prompt_texts.yaml"
PHRASES = HERE / "pinyin_phrases.txt"
LANGS = speech.LANGS
SHIPPED_FORMATS = ("wav", "alaw")
# What an administrator may record a prompt as: formats Asterisk plays at 8 kHz without a codec
# module beyond the defaults (wav = 8 kHz mono 16-bit PCM; sln = raw 16-bit little-endian).
FORMATS = ("wav", "alaw", "ulaw", "gsm", "sln")
NAME = re.compile(r"[a-z0-9][a-z0-9-]*\Z")
RATE = 8000
VOICES = {"zh": "cmn-latn-pinyin", "en": "en-us"}
SPEED = {"zh": 180, "en": 165}  # words (zh: syllables) a minute; espeak's default is 175
APT_HINT = "apt-get install espeak-ng sox (as root; `make test-deps` does it)"
# Silence kept before and after a prompt (seconds); fragments are joined, so they keep less.
PAD_PROMPT = ("0.1", "0.2")
PAD_FRAGMENT = ("0.02", "0.03")
MIN_RMS = 300  # of 32767 (about -40 dBFS): below that a file counts as silent
_EN_PART = re.compile(r"\{en:(.*?)\}")
_PUNCT = {"，": ",", "、": ",", "；": ",", "：": ",", ",": ",", ";": ",", ":": ",",
          "。": ".", "！": ".", "？": ".", "…": ".", ".": ".", "!": ".", "?": "."}
_SYLLABLE = re.compile(r"[a-z]+[1-5]\Z")
_ALAW_SEGMENT_ENDS = (0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF)


class PromptError(Exception):
    """A catalogue, override folder or tool problem, said so that an administrator can fix it."""


# ---- The catalogue and the pinyin corrections ------------------------------------------------


def load_catalogue(path: Path = CATALOGUE) -> dict[str, dict[str, str]]:
    """name -> {"zh": text, "en": text}, in the file's order; checked."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise PromptError(f"{path}: a mapping of prompt names is expected")
    out: dict[str, dict[str, str]] = {}
    for name, texts in data.items():
        if not isinstance(name, str) or not NAME.match(name):
            raise PromptError(f"{path}: prompt name {name!r}: only a-z, 0-9 and '-' (not first)")
        if not isinstance(texts, dict) or set(texts) != set(LANGS):
            raise PromptError(f"{path}: {name}: give exactly the texts {', '.join(LANGS)}")
        for lang in LANGS:
            text = texts[lang]
            if not isinstance(text, str) or not text.strip():
                raise PromptError(f"{path}: {name}: the {lang} text is empty")
        out[name] = {lang: str(texts[lang]).strip() for lang in LANGS}
    return out


def load_phrases(path: Path = PHRASES) -> dict[str, list[str]]:
    """The pinyin corrections: phrase -> one TONE3 syllable per character."""
    out: dict[str, list[str]] = {}
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        phrase, *syllables = line.split()
        if len(syllables) != len(phrase) or not all(_SYLLABLE.match(s) for s in syllables):
            raise PromptError(f"{path}:{number}: {raw.strip()!r}: one TONE3 syllable (like wei2) per character")
        out[phrase] = syllables
    return out


# pypinyin is imported where it is used: only `build` needs it (it is in the `test` extra), while
# install_sounds, available and concat run on the Asterisk host without it.


@functools.cache
def _load_overrides() -> None:
    from pypinyin import load_phrases_dict  # noqa: PLC0415
    from pypinyin.contrib.tone_convert import tone3_to_tone  # noqa: PLC0415

    load_phrases_dict({phrase: [[tone3_to_tone(s)] for s in syllables] for phrase, syllables in load_phrases().items()})


def zh_words(text: str, catalogue: dict[str, dict[str, str]]) -> str:
    """Digits as Chinese words: a single digit is a key (请按1 → 请按一), a longer run an
    identifier read digit by digit with 幺 (12345 → 幺二三四五)."""

    def say(match: re.Match[str]) -> str:
        run = match.group()
        names = speech.number(int(run), "zh") if len(run) == 1 else speech.digits(run, "zh")
        return "".join(catalogue[name]["zh"] for name in names)

    return re.sub(r"[0-9]+", say, text)


def pinyin(text: str, catalogue: dict[str, dict[str, str]] | None = None) -> str:
    """What espeak-ng's cmn-latn-pinyin voice gets for a zh text: ``nin2 hao3, huan1 ying2 ...``.

    espeak-ng itself applies the third-tone sandhi (ni3 hao3 is said ni35 hao214) and the
    half-third tone, so the pinyin keeps the dictionary tones; 一 and 不 come from pypinyin
    as it segments the words (不满意 bu4, 一个 yi2)."""
    from pypinyin import Style, lazy_pinyin  # noqa: PLC0415

    _load_overrides()
    words = zh_words(text, load_catalogue() if catalogue is None else catalogue)
    out: list[str] = []
    for token in lazy_pinyin(words, style=Style.TONE3, neutral_tone_with_five=True):
        if _SYLLABLE.match(token):
            out.append(token)
            continue
        for ch in token:
            mark = _PUNCT.get(ch)
            if ch.isspace():
                continue
            if mark is None:
                raise PromptError(f"zh text {text!r}: {ch!r} is neither Chinese nor punctuation "
                                  "(spell it in characters, or mark English as {en:...})")
            if out and out[-1][-1] not in ",.":
                out[-1] += mark
            elif out and mark == ".":
                out[-1] = out[-1][:-1] + mark
    # A full stop before a lower-case word reads as an abbreviation to espeak: a sentence ends
    # with a line break (the longer pause), a clause with a comma.
    return " ".join(out).replace(". ", ".\n")


def segments(text: str, lang: str) -> list[tuple[str, str]]:
    """A prompt's text as (voice language, text) parts: zh texts may hold {en:...} parts."""
    if lang == "en":
        return [("en", text)]
    parts: list[tuple[str, str]] = []
    pos = 0
    for match in _EN_PART.finditer(text):
        if text[pos:match.start()].strip():
            parts.append(("zh", text[pos:match.start()]))
        parts.append(("en", match.group(1)))
        pos = match.end()
    if text[pos:].strip():
        parts.append(("zh", text[pos:]))
    return parts


# ---- Tools ------------------------------------------------------------------------------------


def missing_tools() -> list[str]:
    return [tool for tool in ("espeak-ng", "sox") if shutil.which(tool) is None]


def _require_tools(tools: Sequence[str] = ("espeak-ng", "sox")) -> None:
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        raise PromptError(f"{' and '.join(missing)} not installed: {APT_HINT}")


def _run(argv: list[str], stdin: bytes | None = None, runtime_dir: Path | None = None) -> bytes:
    """Run a tool (argv list, never a shell); the text to speak comes on stdin. Its output.

    espeak-ng opens an audio client (libpulse) even when it writes a file, and that makes
    /tmp/pulse-* unless XDG_RUNTIME_DIR names a folder: `runtime_dir`, a temporary one."""
    env = None if runtime_dir is None else {**os.environ, "XDG_RUNTIME_DIR": str(runtime_dir)}
    try:
        return subprocess.run(argv, input=stdin, check=True, capture_output=True, timeout=300, env=env).stdout
    except FileNotFoundError as exc:
        raise PromptError(f"{argv[0]} not installed: {APT_HINT}") from exc
    except subprocess.CalledProcessError as exc:
        err = exc.stderr.decode("utf-8", "replace").strip()
        raise PromptError(f"{argv[0]} failed (exit {exc.returncode}): {err}") from exc


def _replace(src: Path, dst: Path) -> None:
    """Copy src to dst through a temporary name beside it: a reader never sees half a file."""
    tmp = dst.with_name(f".{dst.name}.tmp")
    try:
        shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)


# ---- G.711 and wav, in pure Python (concat and the checks need no sox) -----------------------


def _alaw_to_linear(code: int) -> int:
    code ^= 0x55
    value = (code & 0x0F) << 4
    seg = (code & 0x70) >> 4
    value += 8 if seg == 0 else 0x108
    if seg > 1:
        value <<= seg - 1
    return value if code & 0x80 else -value


def _ulaw_to_linear(code: int) -> int:
    code = ~code & 0xFF
    value = (((code & 0x0F) << 3) + 0x84) << ((code & 0x70) >> 4)
    return 0x84 - value if code & 0x80 else value - 0x84


def _linear_to_alaw(sample: int) -> int:
    pcm = min((sample + 4) >> 3, 0xFFF)  # rounded to 13 bits, as sox does
    if pcm >= 0:
        mask = 0xD5
    else:
        mask = 0x55
        pcm = -pcm - 1
    seg = next((i for i, end in enumerate(_ALAW_SEGMENT_ENDS) if pcm <= end), 8)
    if seg >= 8:
        return 0x7F ^ mask
    shift = 1 if seg < 2 else seg
    return ((seg << 4) | ((pcm >> shift) & 0x0F)) ^ mask


@functools.cache
def _alaw_table() -> bytes:
    """16-bit sample (as unsigned) -> A-law byte."""
    return bytes(_linear_to_alaw(v - 65536 if v >= 32768 else v) for v in range(65536))


def alaw_encode(samples: array.array[int]) -> bytes:
    table = _alaw_table()
    return bytes(table[s & 0xFFFF] for s in samples)


def alaw_decode(data: bytes) -> array.array[int]:
    return array.array("h", (_alaw_to_linear(b) for b in data))


def read_wav(path: Path) -> array.array[int]:
    """The samples of an 8 kHz mono 16-bit PCM wav; PromptError for any other wav."""
    try:
        with wave.open(str(path), "rb") as w:
            if (w.getframerate(), w.getnchannels(), w.getsampwidth()) != (RATE, 1, 2):
                raise PromptError(f"{path}: {w.getframerate()} Hz, {w.getnchannels()} channel(s), "
                                  f"{8 * w.getsampwidth()}-bit: Asterisk's wav must be 8000 Hz mono 16-bit "
                                  f"(sox IN -r 8000 -c 1 -b 16 OUT.wav)")
            frames = w.readframes(w.getnframes())
    except (wave.Error, EOFError) as exc:
        raise PromptError(f"{path}: not a PCM wav file ({exc})") from exc
    samples = array.array("h")
    samples.frombytes(frames)
    if sys.byteorder == "big":
        samples.byteswap()
    return samples


def write_wav(path: Path, samples: array.array[int]) -> None:
    data = array.array("h", samples)
    if sys.byteorder == "big":
        data.byteswap()
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(data.tobytes())


def rms(samples: Sequence[int]) -> float:
    return math.sqrt(sum(s * s for s in samples) / len(samples)) if samples else 0.0


def _read_any(path: Path, fmt: str) -> array.array[int]:
    """An 8 kHz prompt file of any of FORMATS as 16-bit samples."""
    if fmt == "wav":
        return read_wav(path)
    if fmt == "alaw":
        return alaw_decode(path.read_bytes())
    if fmt == "ulaw":
        return array.array("h", (_ulaw_to_linear(b) for b in path.read_bytes()))
    if fmt == "sln":
        samples = array.array("h")
        data = path.read_bytes()
        samples.frombytes(data[: len(data) // 2 * 2])
        if sys.byteorder == "big":
            samples.byteswap()
        return samples
    _require_tools(("sox",))
    with tempfile.TemporaryDirectory(prefix="hotline-prompt-") as tmp:
        out = Path(tmp) / "gsm.wav"
        _run(["sox", "-D", "-R", "-t", "gsm", "-r", str(RATE), "-c", "1", str(path),
              "-r", str(RATE), "-c", "1", "-b", "16", "-e", "signed-integer", str(out)])
        return read_wav(out)


def phonemes(spoken: str, voice: str = "zh") -> str:
    """espeak-ng's phonemes for what it is given (zh: pinyin), tones as pitch contours:
    ``nin2 hao3`` -> ``n'i35n_| X'Au214_|``. To check that the voice says the tones."""
    _require_tools(("espeak-ng",))
    with tempfile.TemporaryDirectory(prefix="hotline-prompt-") as tmp:
        out = _run(["espeak-ng", "-v", VOICES[voice], "-q", "-x", "-b", "1", "--stdin"], spoken.encode("utf-8"),
                   runtime_dir=Path(tmp))
    return out.decode("utf-8", "replace")


# ---- Build -----------------------------------------------------------------------------------


def _render(text: str, lang: str, fragment: bool, dest: Path, work: Path,
            catalogue: dict[str, dict[str, str]]) -> list[Path]:
    """One prompt's text -> dest.wav and dest.alaw (dest without a suffix)."""
    raw: list[Path] = []
    for i, (voice, part) in enumerate(segments(text, lang)):
        spoken = pinyin(part, catalogue) if voice == "zh" else part
        out = work / f"part{i}.wav"
        _run(["espeak-ng", "-v", VOICES[voice], "-s", str(SPEED[voice]), "-b", "1", "-w", str(out), "--stdin"],
             spoken.encode("utf-8"), runtime_dir=work)
        raw.append(out)
    wav, alaw = work / "out.wav", work / "out.alaw"
    lead, trail = PAD_FRAGMENT if fragment else PAD_PROMPT
    # -D: no dither (deterministic bytes); trim espeak's silences, telephone rate, peak -3 dBFS
    _run(["sox", "-D", "-R", *map(str, raw), "-r", str(RATE), "-c", "1", "-b", "16", "-e", "signed-integer", str(wav),
          "silence", "1", "0.01", "0.1%", "reverse", "silence", "1", "0.01", "0.1%", "reverse",
          "rate", "-v", str(RATE), "gain", "-n", "-3", "pad", lead, trail])
    _run(["sox", "-D", "-R", str(wav), "-t", "raw", "-e", "a-law", "-b", "8", "-c", "1", "-r", str(RATE), str(alaw)])
    written = []
    for src, suffix in ((wav, ".wav"), (alaw, ".alaw")):
        target = dest.with_name(dest.name + suffix)
        _replace(src, target)
        written.append(target)
    return written


def build(names: Iterable[str] | None = None, out_dir: Path = SHIPPED, langs: Sequence[str] = LANGS,
          progress: Callable[[str], object] = print) -> list[Path]:
    """Render the catalogue (or only `names`) into out_dir/<lang>/<name>.wav and .alaw.

    A full build (names=None) also removes the .wav/.alaw files of names the catalogue no
    longer has. Needs espeak-ng and sox (PromptError naming the apt packages otherwise).
    """
    _require_tools()
    catalogue = load_catalogue()
    chosen = list(catalogue) if names is None else list(dict.fromkeys(names))
    unknown = [name for name in chosen if name not in catalogue]
    if unknown:
        raise PromptError(f"not in {CATALOGUE.name}: {', '.join(unknown)}")
    bad = [lang for lang in langs if lang not in LANGS]
    if bad:
        raise PromptError(f"unknown language(s) {', '.join(bad)}: {', '.join(LANGS)}")
    # Parts said inside a sentence get a fragment's short silences (the queue announcement's
    # "您前面还有" + 三 + "位来电者" too).
    fragments = (speech.fragments() - {"agent-prefix", "agent-suffix"}) | announce.JOINING
    jobs = [(lang, name) for lang in langs for name in chosen]
    written: list[Path] = []
    with tempfile.TemporaryDirectory(prefix="hotline-prompts-") as tmp:
        for i, (lang, name) in enumerate(jobs, 1):
            progress(f"[prompts] {i}/{len(jobs)} {lang} {name}")
            folder = out_dir / lang
            folder.mkdir(parents=True, exist_ok=True)
            work = Path(tmp) / f"{i}"
            work.mkdir()
            written += _render(catalogue[name][lang], lang, name in fragments, folder / name, work, catalogue)
            shutil.rmtree(work)
    if names is None:
        for lang in langs:
            for path in sorted((out_dir / lang).iterdir()):
                if path.suffix[1:] in SHIPPED_FORMATS and path.stem not in catalogue:
                    progress(f"[prompts] removed {path} (not in the catalogue)")
                    path.unlink()
    return written


def verify(folder: Path = SHIPPED, names: Iterable[str] | None = None) -> list[str]:
    """Problems of the rendered prompts: missing, not 8 kHz mono 16-bit, silent, too short or
    too long, or an .alaw whose length differs from its .wav. Empty when all is well."""
    problems: list[str] = []
    catalogue = load_catalogue()
    fragments = speech.fragments() | announce.JOINING
    for lang in LANGS:
        for name in catalogue if names is None else names:
            wav, alaw = folder / lang / f"{name}.wav", folder / lang / f"{name}.alaw"
            if not wav.is_file() or not alaw.is_file():
                problems.append(f"{lang}/{name}: .wav or .alaw missing")
                continue
            try:
                samples = read_wav(wav)
            except PromptError as exc:
                problems.append(str(exc))
                continue
            seconds = len(samples) / RATE
            shortest = 0.1 if name in fragments else 0.4
            if not shortest <= seconds <= 30:
                problems.append(f"{lang}/{name}.wav: {seconds:.2f} s")
            if rms(samples) < MIN_RMS:
                problems.append(f"{lang}/{name}.wav: silent (RMS {rms(samples):.0f})")
            coded = alaw.read_bytes()
            if len(coded) != len(samples) or rms(alaw_decode(coded)) < MIN_RMS:
                problems.append(f"{lang}/{name}.alaw: {len(coded)} samples, RMS {rms(alaw_decode(coded)):.0f}")
    return problems


# ---- Administrator's recordings, install, concat ---------------------------------------------


def _override_files(override_dir: Path | None) -> dict[str, dict[str, dict[str, Path]]]:
    """lang -> name -> format -> file of the administrator's folder; PromptError naming the
    first file that is not <lang>/<name>.<format> with a regular file and a valid name."""
    found: dict[str, dict[str, dict[str, Path]]] = {lang: {} for lang in LANGS}
    if override_dir is None or not override_dir.exists():
        return found
    for entry in sorted(override_dir.iterdir()):
        if entry.name not in LANGS or entry.is_symlink() or not entry.is_dir():
            raise PromptError(f"{entry}: the prompt folder holds only the language folders {', '.join(LANGS)}")
        for path in sorted(entry.iterdir()):
            name, dot, fmt = path.name.partition(".")
            mode = path.lstat().st_mode
            if not stat.S_ISREG(mode):
                raise PromptError(f"{path}: not a regular file (a link, folder or device is refused)")
            if not dot or not NAME.match(name):
                raise PromptError(f"{path}: a prompt name has only a-z, 0-9 and '-' (not first): "
                                  f"rename it <name>.<{'|'.join(FORMATS)}>")
            if fmt not in FORMATS:
                raise PromptError(f"{path}: format {fmt!r} is not one Asterisk plays here ({', '.join(FORMATS)})")
            if fmt == "wav":
                read_wav(path)  # 8 kHz mono 16-bit or a clear error
            found[entry.name].setdefault(name, {})[fmt] = path
    return found


def _shipped_files(shipped: Path) -> dict[str, dict[str, dict[str, Path]]]:
    found: dict[str, dict[str, dict[str, Path]]] = {lang: {} for lang in LANGS}
    for lang in LANGS:
        folder = shipped / lang
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            name, _, fmt = path.name.partition(".")
            if fmt in SHIPPED_FORMATS and NAME.match(name) and path.is_file():
                found[lang].setdefault(name, {})[fmt] = path
    return found


def available(override_dir: Path | None, *, shipped: Path = SHIPPED) -> dict[str, frozenset[str]]:
    """Per language, the prompt names that can be played: shipped plus the administrator's."""
    own, ours = _override_files(override_dir), _shipped_files(shipped)
    return {lang: frozenset(ours[lang]) | frozenset(own[lang]) for lang in LANGS}


def install_sounds(target: Path, override_dir: Path | None, *, shipped: Path = SHIPPED) -> list[Path]:
    """Copy the shipped prompts into target/<lang>/, then the administrator's over them.

    `target` is Asterisk's sounds/hotline. An administrator's recording of a name, in any of
    FORMATS, replaces the shipped prompt of that name in every format: the shipped formats are
    not copied and are removed from target, so Asterisk cannot pick the old one by codec.
    Likewise the formats of an earlier install that this one does not write are removed for
    every name it writes; files of other names (agent-1001 built by concat) are left alone.
    The administrator's folder is checked whole before anything is copied.
    """
    own, ours = _override_files(override_dir), _shipped_files(shipped)
    written: list[Path] = []
    for lang in LANGS:
        dest = target / lang
        dest.mkdir(parents=True, exist_ok=True)
        plan = {name: files for name, files in ours[lang].items() if name not in own[lang]}
        plan.update(own[lang])
        for name, files in sorted(plan.items()):
            for fmt in FORMATS:
                old = dest / f"{name}.{fmt}"
                if fmt not in files and (old.is_file() or old.is_symlink()):
                    old.unlink()
            for fmt, src in sorted(files.items()):
                out = dest / f"{name}.{fmt}"
                _replace(src, out)
                written.append(out)
    return written


def _source(name: str, lang: str, override_dir: Path | None, shipped: Path) -> tuple[Path, str]:
    own = _override_files(override_dir)[lang].get(name, {})
    for fmt in FORMATS:
        if fmt in own:
            return own[fmt], fmt
    wav = shipped / lang / f"{name}.wav"
    if wav.is_file():
        return wav, "wav"
    raise PromptError(f"prompt {lang}/{name}: neither shipped nor recorded by the administrator")


def concat(names: Sequence[str], lang: str, out: Path, override_dir: Path | None = None, *,
           shipped: Path = SHIPPED) -> list[Path]:
    """Join prompts (the administrator's recording of a name wins) into out.wav and out.alaw
    (`out`'s suffix is replaced): ``concat(speech.agent_announcement("1001", "zh"), "zh",
    target / "zh" / "agent-1001")``. The result is exactly the fragments' samples in order."""
    if lang not in LANGS:
        raise PromptError(f"unknown language {lang!r}: {', '.join(LANGS)}")
    if not names:
        raise PromptError("concat needs at least one prompt name")
    joined = array.array("h")
    for name in names:
        path, fmt = _source(name, lang, override_dir, shipped)
        joined += _read_any(path, fmt)
    out.parent.mkdir(parents=True, exist_ok=True)
    wav, alaw = out.with_suffix(".wav"), out.with_suffix(".alaw")
    with tempfile.TemporaryDirectory(prefix="hotline-prompt-") as tmp:
        tmp_wav, tmp_alaw = Path(tmp) / "out.wav", Path(tmp) / "out.alaw"
        write_wav(tmp_wav, joined)
        tmp_alaw.write_bytes(alaw_encode(joined))
        _replace(tmp_wav, wav)
        _replace(tmp_alaw, alaw)
    return [wav, alaw]


# ---- Command line ----------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ivr.prompts",
        description="The hotline IVR's voice prompts (catalogue: ivr/prompt_texts.yaml).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    b = sub.add_parser("build", help="render the catalogue with espeak-ng and sox (apt-get install espeak-ng sox)",
                       description="Render prompts into DIR/<lang>/<name>.wav (8 kHz mono 16-bit) and .alaw "
                                   "(raw A-law). Without --only: every prompt, and files of names no longer in "
                                   "the catalogue are removed.")
    b.add_argument("--only", nargs="+", metavar="NAME", help="render only these prompt names")
    b.add_argument("--lang", action="append", choices=LANGS, help="only this language (repeatable; default: all)")
    b.add_argument("--out", type=Path, default=SHIPPED, metavar="DIR", help=f"output folder (default: {SHIPPED})")
    p = sub.add_parser("pinyin", help="show the pinyin espeak-ng gets for a zh text (to check tones)",
                       description="Print the TONE3 pinyin of a Mandarin text after digit normalization and the "
                                   "corrections of ivr/pinyin_phrases.txt; with a prompt name, its zh text.")
    p.add_argument("text", nargs="+", help="Chinese text, or a prompt name of the catalogue")
    p.add_argument("--phonemes", action="store_true", help="also print espeak-ng's phonemes (tones as contours)")
    c = sub.add_parser("check", help="check the rendered prompts (8 kHz mono, not silent, lengths)",
                       description="Check that every catalogue prompt exists in DIR/<lang>/ as .wav and .alaw, "
                                   "8000 Hz mono 16-bit, not silent, of a plausible length. Exit 1 on a problem.")
    c.add_argument("--dir", type=Path, default=SHIPPED, help=f"folder to check (default: {SHIPPED})")
    j = sub.add_parser("concat", help="join prompts into one (like a per-agent 工号 announcement)",
                       description="Join prompts into OUT.wav and OUT.alaw; --agent JOB joins the job-number "
                                   "announcement (agent-prefix, the digits, agent-suffix).")
    j.add_argument("--lang", choices=LANGS, required=True)
    j.add_argument("--out", type=Path, required=True, help="output path (suffix replaced by .wav and .alaw)")
    j.add_argument("--override", type=Path, help="the administrator's prompt folder (<dir>/<lang>/<name>.<fmt>)")
    group = j.add_mutually_exclusive_group(required=True)
    group.add_argument("--agent", metavar="JOB", help="an agent's job number, e.g. 1001")
    group.add_argument("--names", nargs="+", metavar="NAME", help="prompt names to join, in order")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "build":
            written = build(args.only, args.out, tuple(args.lang or LANGS))
            size = sum(path.stat().st_size for path in written)
            print(f"[prompts] wrote {len(written)} files, {size / 1024:.0f} KiB, into {args.out}")
        elif args.command == "pinyin":
            catalogue = load_catalogue()
            for text in args.text:
                zh = catalogue[text]["zh"] if text in catalogue else text
                for voice, part in segments(zh, "zh"):
                    spoken = pinyin(part, catalogue) if voice == "zh" else part
                    print(spoken if voice == "zh" else f"[en] {part}")
                    if args.phonemes:
                        print(phonemes(spoken, voice).strip())
        elif args.command == "check":
            problems = verify(args.dir)
            for problem in problems:
                print(problem, file=sys.stderr)
            if problems:
                return 1
            print(f"[prompts] {len(load_catalogue())} prompts in {', '.join(LANGS)}: all fine")
        else:
            names = speech.agent_announcement(args.agent, args.lang) if args.agent else tuple(args.names)
            for path in concat(names, args.lang, args.out, args.override):
                print(path)
    except (PromptError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
