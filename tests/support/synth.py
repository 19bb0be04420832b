"""Synthetic test audio: voiced tones separated by silences at known places, and espeak-ng speech.

`voiced_segments` makes a signal whose silences are known exactly, so slicer cut points can be
checked against them; `espeak_speech` makes real speech when espeak-ng is installed.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np


def voiced_tone(seconds: float, sr: int, f0: float = 140.0, amp: float = 0.5, seed: int = 0) -> np.ndarray:
    """A speech-like voiced sound: harmonics of a slowly wobbling f0 with a syllable envelope."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * sr))
    t = np.arange(n) / sr
    f = f0 * (1 + 0.05 * np.sin(2 * np.pi * 3 * t))
    phase = 2 * np.pi * np.cumsum(f) / sr
    x = sum(np.sin(k * phase) / k for k in range(1, 8))
    envelope = 0.6 + 0.4 * np.abs(np.sin(np.pi * 4 * t))  # syllables, never fully silent
    x = x * envelope + 0.01 * rng.standard_normal(n)
    return (amp * x / np.abs(x).max()).astype(np.float32)


def voiced_segments(
    pattern: list[tuple[str, float]], sr: int = 32000, amp: float = 0.5, seed: int = 0
) -> np.ndarray:
    """Concatenate ("voice", seconds) and ("silence", seconds) parts into one mono float32 signal."""
    parts = []
    for i, (kind, seconds) in enumerate(pattern):
        if kind == "voice":
            parts.append(voiced_tone(seconds, sr, f0=120 + 15 * (i % 5), amp=amp, seed=seed + i))
        elif kind == "silence":
            parts.append(np.zeros(int(round(seconds * sr)), dtype=np.float32))
        else:
            raise ValueError(kind)
    return np.concatenate(parts)


def has_espeak() -> bool:
    return shutil.which("espeak-ng") is not None


def espeak_speech(text: str, path: Path, voice: str = "en") -> Path:
    """Speak `text` into a wav at `path` with espeak-ng (22.05 kHz mono int16)."""
    subprocess.run(["espeak-ng", "-v", voice, "-w", str(path), text], check=True, capture_output=True)
    return path
