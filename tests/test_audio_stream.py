"""core.audio block reads: the same samples as load_audio, in blocks, from any format; header-only info."""

from __future__ import annotations

import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from core import audio as core_audio
from core.audio import (
    AudioDecodeError,
    AudioTooLongError,
    StreamResampler,
    audio_info,
    check_duration,
    convert,
    load_audio,
    open_audio,
    resample,
)

REPO_ROOT = Path(__file__).resolve().parent.parent


def noise(seconds: float, sr: int, channels: int = 1, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (0.2 * rng.standard_normal((int(seconds * sr), channels))).astype(np.float32)


@pytest.mark.parametrize(("orig", "target"), [(16000, 32000), (44100, 32000), (8000, 44100), (48000, 16000)])
def test_stream_resampler_equals_resampling_the_whole_signal(orig, target):
    x = noise(2.3, orig, 2).T  # (2, n)
    r = StreamResampler(orig, target, 2)
    pieces, pos = [], 0
    for size in (1, 777, orig, 5, 3 * orig):  # odd sizes, one below the filter's context
        pieces.append(r.push(x[:, pos : pos + size]))
        pos += size
    pieces += [r.push(x[:, pos:]), r.flush()]
    np.testing.assert_allclose(np.concatenate(pieces, axis=1), resample(x, orig, target), atol=1e-6)


@pytest.mark.parametrize("ext", [".wav", ".flac", ".m4a"])
def test_blocks_are_load_audio_in_pieces(tmp_path, ext):
    wav = tmp_path / "a.wav"
    sf.write(wav, noise(3.2, 22050, 2), 22050, subtype="PCM_16")
    path = wav
    if ext != ".wav":
        path = tmp_path / f"a{ext}"
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(wav), str(path)], check=True)
    whole, _ = load_audio(path, 32000)
    stream = open_audio(path, 32000, block_seconds=0.5)
    blocks = list(stream.blocks())
    # a block (0.5 s at 32 kHz, plus at most one codec frame), not the file
    assert max(b.shape[0] for b in blocks) <= 16000 + 2048 and len(blocks) >= 6
    np.testing.assert_allclose(np.concatenate(blocks), whole, atol=1e-5)
    kept = np.concatenate(list(open_audio(path, None, mono=False, block_seconds=0.5).blocks()), axis=1)
    np.testing.assert_allclose(kept, load_audio(path, mono=False)[0], atol=1e-6)


def test_eight_channel_compressed_file_decodes(tmp_path):
    """PyAV's planar 8-channel frames crashed the process (SIGSEGV) when read as arrays."""
    wav = tmp_path / "eight.wav"
    sf.write(wav, noise(1.0, 32000, 8), 32000, subtype="PCM_16")
    m4a = tmp_path / "eight.m4a"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(wav), "-c:a", "aac", str(m4a)], check=True)
    code = f"from core.audio import load_audio; a, sr = load_audio({str(m4a)!r}, 44100, mono=False); print(a.shape[0], sr)"
    run = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr[-1000:]
    assert run.stdout.split() == ["8", "44100"]


def test_info_and_duration_check_read_only_the_header(tmp_path, monkeypatch):
    path = tmp_path / "long.wav"
    sf.write(path, np.zeros(16000 * 30, dtype=np.int16), 16000)  # 30 s
    m4a = tmp_path / "long.m4a"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(path), "-c:a", "aac", str(m4a)], check=True)

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded samples")

    monkeypatch.setattr(core_audio, "_sf_blocks", no_decoding)
    monkeypatch.setattr(core_audio, "_av_blocks", no_decoding)
    info = audio_info(path)
    assert (info.sample_rate, info.channels, info.frames) == (16000, 1, 480000)
    assert abs(audio_info(m4a).duration - 30.0) < 0.2
    with pytest.raises(AudioTooLongError, match=r"long\.m4a is 30\.\d s long; the limit is 10\.0 s") as e:
        check_duration(m4a, 10.0, "The clip")
    assert e.value.duration > 29
    assert check_duration(path, 60.0).frames == 480000


def test_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF not really a wav file at all")
    with pytest.raises(AudioDecodeError, match="bad.wav"):
        list(open_audio(bad).blocks())
    nan = tmp_path / "nan.wav"
    sf.write(nan, np.full(1000, np.nan, dtype=np.float32), 8000, subtype="FLOAT")
    with pytest.raises(AudioDecodeError, match="nan.wav.*NaN"):
        list(open_audio(nan).blocks())


def test_convert_streams_in_bounded_memory(tmp_path):
    """12 minutes at 8 kHz converted to 32 kHz: numpy's peak stays a small share of the output signal."""
    src = tmp_path / "long.wav"
    sr, seconds = 8000, 720
    with sf.SoundFile(src, "w", samplerate=sr, channels=1, subtype="PCM_16") as f:
        t = np.arange(60 * sr) / sr
        minute = (0.3 * np.sin(2 * np.pi * 220 * t) * (t % 10 < 2)).astype(np.float32)
        for _ in range(seconds // 60):
            f.write(minute)
    whole_bytes = seconds * 32000 * 4  # the float32 signal at 32 kHz: 92 MB
    resample(np.zeros((1, 800), dtype=np.float32), sr, 32000)  # imports (torchaudio) before measuring
    tracemalloc.start()
    try:
        out = convert(src, tmp_path / "out" / "long.wav", 32000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 0.05 * whole_bytes, f"peak {peak / 1e6:.1f} MB"
    info = sf.info(str(out))
    assert (info.samplerate, info.frames, info.subtype) == (32000, seconds * 32000, "PCM_16")
    check = sf.read(out, frames=32000 * 3, dtype="float32")[0]
    assert np.abs(check[: 32000 * 2 - 100]).max() > 0.25 and np.abs(check[32000 * 2 + 100 :]).max() < 1e-3


def test_convert_cli_writes_wavs(tmp_path):
    src = tmp_path / "a.flac"
    sf.write(src, noise(1.0, 16000), 16000, subtype="PCM_16")
    run = subprocess.run(
        [sys.executable, "-m", "core.audio", str(src), "--to", str(tmp_path / "out"), "--sr", "32000"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    info = sf.info(str(tmp_path / "out" / "a.wav"))
    assert (info.samplerate, info.frames) == (32000, 32000)
