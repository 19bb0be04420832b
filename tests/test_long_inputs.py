"""Length limits are checked from the header: a long file is refused before a sample is decoded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import core.audio
from gpt_sovits.data import prepare
from gpt_sovits.infer.reference import READ_MAX_S, read_reference, trim_reference
from gpt_sovits.infer.request import ReferenceLengthError


@pytest.fixture(scope="module")
def eleven_minutes(tmp_path_factory) -> Path:
    """11 min at 8 kHz: a tone in the first seconds, then silence (10 MB of int16)."""
    path = tmp_path_factory.mktemp("long") / "recording.wav"
    sr = 8000
    with sf.SoundFile(path, "w", samplerate=sr, channels=1, subtype="PCM_16") as f:
        t = np.arange(5 * sr) / sr
        f.write((0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32))
        for _ in range(11 * 12 - 1):
            f.write(np.zeros(5 * sr, dtype=np.float32))
    return path


@pytest.fixture
def no_decoding(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the file was decoded")

    monkeypatch.setattr(core.audio, "load_audio", refuse)
    monkeypatch.setattr(core.audio, "_sf_blocks", refuse)
    monkeypatch.setattr(core.audio, "_av_blocks", refuse)


def test_a_long_reference_is_refused_from_its_header(eleven_minutes, no_decoding, tmp_path):
    assert READ_MAX_S < 11 * 60
    with pytest.raises(ReferenceLengthError, match=r"recording\.wav is 11 min 00 s long.*Slicing tab") as e:
        read_reference(str(eleven_minutes))
    assert e.value.duration == pytest.approx(660.0)
    with pytest.raises(ReferenceLengthError, match="11 min 00 s"):
        trim_reference(str(eleven_minutes), tmp_path / "trimmed.wav")
    assert not list(tmp_path.iterdir())


def test_formatting_skips_a_long_clip_from_its_header(eleven_minutes, no_decoding):
    skip = prepare._load_clip(eleven_minutes)
    assert isinstance(skip, prepare._Skip) and skip.reason == "too_long" and skip.detail == "660 s"
    assert "longer than 600 s" in prepare.SKIP_REASONS["too_long"]


def test_a_short_reference_is_still_read(tmp_path):
    path = tmp_path / "ref.wav"
    sf.write(path, (0.3 * np.sin(np.arange(5 * 16000) / 10)).astype(np.float32), 16000)
    samples, sr = read_reference(str(path))
    assert sr == 16000 and samples.shape == (5 * 16000,)
