"""Checks on recordings for tests and the demo: is there audio in a WAV, is a file
world-readable (the recording layout itself is described in recorder/)."""

from __future__ import annotations

import array
import math
import wave
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class AudioCheck:
    seconds: float
    rms: float

    @property
    def has_audio(self) -> bool:
        # 16-bit PCM: digital silence is 0; comfort noise stays well under 50.
        return self.seconds > 0.5 and self.rms > 50


def check_audio(path: Path) -> AudioCheck:
    """Length and loudness of a 16-bit PCM WAV, the format MixMonitor writes."""
    with wave.open(str(path), "rb") as w:
        if w.getsampwidth() != 2:
            raise ValueError(f"{path}: {w.getsampwidth() * 8}-bit samples, expected 16-bit")
        frames = w.readframes(w.getnframes())
        seconds = w.getnframes() / float(w.getframerate() or 1)
    samples = array.array("h")
    samples.frombytes(frames[: len(frames) // 2 * 2])
    if not samples:
        return AudioCheck(seconds, 0.0)
    rms = math.sqrt(sum(s * s for s in samples) / len(samples))
    return AudioCheck(seconds, rms)


def world_readable(path: Path) -> bool:
    return bool(path.stat().st_mode & 0o004)
