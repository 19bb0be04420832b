"""ASR memory follows a window: long clips are read in blocks and transcribed window by window."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from core.audio import load_audio
from tests.support.tiny_whisper import build_tiny_whisper
from tools import asr


def bursts(path: Path, minutes: int, sr: int = 8000) -> Path:
    """`minutes` of 2 s tone bursts every 10 s, written a minute at a time (int16 wav)."""
    t = np.arange(60 * sr) / sr
    minute = (0.3 * np.sin(2 * np.pi * 220 * t) * (t % 10 < 2)).astype(np.float32)
    with sf.SoundFile(path, "w", samplerate=sr, channels=1, subtype="PCM_16") as f:
        for _ in range(minutes):
            f.write(minute)
    return path


def test_windows_cover_the_file_in_bounded_pieces_cut_at_quiet_places(tmp_path):
    path = bursts(tmp_path / "long.wav", 12)
    whole_bytes = 12 * 60 * asr.SAMPLE_RATE * 4  # the float32 clip at 16 kHz: 46 MB
    load_audio(bursts(tmp_path / "warm.wav", 1), asr.SAMPLE_RATE)  # imports (torchaudio) before measuring
    tracemalloc.start()
    try:
        sizes, cuts_quiet, total = [], [], 0
        for piece in asr.audio_windows(path, asr.SAMPLE_RATE, window_s=30.0):
            sizes.append(piece.shape[0])
            cuts_quiet.append(float(np.abs(piece[-800:]).max()))  # the last 50 ms before each cut
            total += piece.shape[0]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert total == 12 * 60 * asr.SAMPLE_RATE and len(sizes) >= 24
    assert max(sizes) <= 30 * asr.SAMPLE_RATE
    assert max(cuts_quiet[:-1]) < 1e-3  # every window ends in a pause, not inside a tone
    assert peak < 0.25 * whole_bytes, f"peak {peak / 1e6:.1f} MB"


def test_windows_join_to_the_decoded_clip(tmp_path):
    path = bursts(tmp_path / "short.wav", 1)
    pieces = list(asr.audio_windows(path, asr.SAMPLE_RATE, window_s=15.0))
    np.testing.assert_array_equal(np.concatenate(pieces), load_audio(path, asr.SAMPLE_RATE)[0])


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    return build_tiny_whisper(
        tmp_path_factory.mktemp("models") / "faster-whisper-tiny-test", quantization="int8"
    )


@pytest.fixture(scope="module")
def tiny_model(tiny_dir):
    return asr.load_whisper(str(tiny_dir), device="cpu", compute_type="int8")


def test_a_clip_longer_than_the_window_is_transcribed_piece_by_piece(tmp_path, tiny_model):
    path = bursts(tmp_path / "long.wav", 1, sr=16000)
    options = asr.AsrOptions(language="en", vad_filter=False)  # a tone is not speech: no VAD
    whole = asr.transcribe_clip(tiny_model, path, options)
    windowed = asr.transcribe_clip(tiny_model, path, options, window_s=20.0)
    assert "hello world" in whole.text and "hello world" in windowed.text
    assert windowed.language == whole.language == "en"
    assert windowed.duration == pytest.approx(60.0, abs=0.05) and whole.duration == pytest.approx(
        60.0, abs=0.05
    )


def test_a_clip_that_crashes_its_worker_fails_alone(tmp_path, tiny_dir):
    from tests.support.crashing_asr import worker as crashing_worker

    folder = tmp_path / "alice"
    folder.mkdir()
    for name in ("a.wav", "crash.wav", "c.wav"):
        sf.write(folder / name, np.full(16000, 0.1, np.float32), 16000)
    options = asr.AsrOptions(
        model=str(tiny_dir), device="cpu", compute_type="int8", language="en", vad_filter=False
    )
    result = asr.transcribe_folder(
        folder, tmp_path / "out.list", options, isolate=True, worker=crashing_worker
    )
    assert [Path(f.path).name for f in result.failures] == ["crash.wav"]
    assert "SIGSEGV" in result.failures[0].error
    assert sorted(Path(e.path).name for e in result.entries) == ["a.wav", "c.wav"]
    assert all("hello world" in e.text for e in result.entries)
