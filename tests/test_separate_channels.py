"""Separation of any channel count and rate, and a batch that survives a file crashing its process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.support.crashing_worker import worker as crashing_worker
from tests.support.tiny_demucs import build_tiny_model_dir
from tools.separate import SeparationOptions, separate_file, separate_inputs

REPO_ROOT = Path(__file__).resolve().parent.parent
MODEL_SR = 44100


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return build_tiny_model_dir(tmp_path_factory.mktemp("models"), "tiny")


def noise(seconds: float, sr: int, channels: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (0.1 * rng.standard_normal((int(seconds * sr), channels))).astype(np.float32)  # (n, c)


@pytest.mark.parametrize("channels", [1, 2, 6, 8])
@pytest.mark.parametrize("sr", [8000, 32000, 48000])
def test_any_channel_count_and_rate_separates_to_stereo_at_the_model_rate(tmp_path, model_dir, channels, sr):
    src = tmp_path / f"in_{channels}_{sr}.wav"
    sf.write(src, noise(0.5, sr, channels), sr, subtype="PCM_16")
    result = separate_file(src, tmp_path / "out", SeparationOptions(model="tiny", model_dir=model_dir))
    for out in (result.vocals, result.accompaniment):
        info = sf.info(str(out))
        assert (info.samplerate, info.channels) == (MODEL_SR, 2)
        assert abs(info.frames - MODEL_SR // 2) <= 2
        data, _ = sf.read(out)
        assert np.all(np.isfinite(data)) and data.std() > 0


def test_eight_channels_at_32k_through_the_cli_and_compressed(tmp_path, model_dir):
    """The reported crash: an 8-channel 32 kHz wav (rc 139 before), here next to an 8-channel AAC file."""
    wav = tmp_path / "eight.wav"
    sf.write(wav, noise(1.0, 32000, 8), 32000, subtype="PCM_16")
    m4a = tmp_path / "eight.m4a"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(wav), "-c:a", "aac", str(m4a)], check=True)
    out = tmp_path / "out"
    run = subprocess.run(
        [sys.executable, "-m", "tools.separate", str(wav), str(m4a), "--out", str(out)]
        + ["--model", "tiny", "--model-dir", str(model_dir)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    names = sorted(p.name for p in out.iterdir())
    assert names == [
        "eight_accompaniment (1).wav",
        "eight_accompaniment.wav",
        "eight_vocals (1).wav",
        "eight_vocals.wav",
    ]
    assert "Done." in run.stderr


def test_a_file_that_crashes_its_worker_fails_alone_and_the_batch_goes_on(tmp_path, model_dir):
    inputs = tmp_path / "in"
    inputs.mkdir()
    for name in ("a.wav", "crash.wav", "c.wav"):
        sf.write(inputs / name, noise(0.5, MODEL_SR, 2), MODEL_SR)
    opts = SeparationOptions(model="tiny", model_dir=model_dir)
    report = separate_inputs([inputs], tmp_path / "out", opts, isolate=True, worker=crashing_worker)
    assert [Path(f.path).name for f in report.failures] == ["crash.wav"]
    assert "SIGSEGV" in report.failures[0].error and "crashed" in report.failures[0].error
    written = sorted(Path(p).name for p in report.outputs)
    assert written == ["a_accompaniment.wav", "a_vocals.wav", "c_accompaniment.wav", "c_vocals.wav"]
    assert not report.cancelled
    assert not any(p.name.startswith(".") for p in (tmp_path / "out").iterdir())  # crash's temps cleaned?


def test_a_batch_whose_only_file_failed_says_failed(tmp_path, model_dir, capsys):
    from core.jobs import EXIT_ALL_FAILED
    from tools.separate import main

    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF not really a wav file")
    rc = main(
        [
            str(bad),
            "--out",
            str(tmp_path / "out"),
            "--model",
            "tiny",
            "--model-dir",
            str(model_dir),
            "--in-process",
        ]
    )
    err = capsys.readouterr().err
    assert rc == EXIT_ALL_FAILED
    assert "failed: " in err and "bad.wav" in err and err.strip().endswith("Failed.")
