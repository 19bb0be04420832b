"""Separation through the real demucs code path with a tiny random HTDemucs in a local model folder."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.support.tiny_demucs import build_tiny_model_dir
from tools import demucs_models
from tools.separate import (
    ModelNotFoundError,
    OutputConflictError,
    SeparationOptions,
    UnsafeModelError,
    crossfade_stream,
    main,
    separate_file,
    separate_inputs,
    to_channels,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
SR = 44100


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return build_tiny_model_dir(tmp_path_factory.mktemp("models"), "tiny", legacy=True)


def music(seconds: float, sr: int = SR, channels: int = 2, seed: int = 0) -> np.ndarray:
    """(n, channels) float32: two tones plus noise, different per channel."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    cols = [
        0.3 * np.sin(2 * np.pi * (220 + 110 * c) * t) + 0.05 * rng.standard_normal(len(t))
        for c in range(channels)
    ]
    return np.stack(cols, axis=1).astype(np.float32)


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def reference_sum(model_dir: Path, mix: np.ndarray, name: str = "tiny") -> np.ndarray:
    """Sum of sources from demucs.apply.apply_model on the whole normalised file: (n, 2)."""
    import torch
    from demucs.apply import apply_model

    model = demucs_models.load_model(name, model_dir)
    x = mix.T.astype(np.float64)
    ref = x.mean(axis=0)
    mean, std = ref.mean(), ref.std(ddof=1) + 1e-8
    normalised = torch.from_numpy(((x - mean) / std).astype(np.float32))[None]  # [1, 2, n]
    est = apply_model(model, normalised, shifts=0, split=True, overlap=0.25)[0].numpy()  # [4, 2, n]
    return (est.sum(axis=0) * std + mean).T


def test_stereo_file_two_stems_match_model_sum(tmp_path, model_dir):
    mix = music(3.0)
    src = tmp_path / "song.wav"
    sf.write(src, mix, SR, subtype="FLOAT")
    before = sha(src)
    result = separate_file(src, tmp_path / "out", SeparationOptions(model="tiny", model_dir=model_dir))
    assert result.vocals == tmp_path / "out" / "song_vocals.wav"
    assert result.accompaniment == tmp_path / "out" / "song_accompaniment.wav"
    v, sr_v = sf.read(result.vocals, dtype="float32")
    a, sr_a = sf.read(result.accompaniment, dtype="float32")
    assert sr_v == sr_a == SR
    assert v.shape == a.shape == mix.shape
    assert sf.info(str(result.vocals)).subtype == "FLOAT"
    # One window covers the file, so the result is exactly demucs on the whole file.
    np.testing.assert_allclose(v + a, reference_sum(model_dir, mix), atol=2e-4)
    assert not np.allclose(v, 0) and not np.allclose(a, 0)
    assert sha(src) == before
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == ["song_accompaniment.wav", "song_vocals.wav"]


def test_mono_48k_input_is_resampled_and_duplicated(tmp_path, model_dir):
    src = tmp_path / "mono48.wav"
    sf.write(src, music(2.0, sr=48000, channels=1)[:, 0], 48000, subtype="PCM_16")
    before = sha(src)
    opts = SeparationOptions(model="tiny", model_dir=model_dir, subtype="PCM_16")
    result = separate_file(src, tmp_path / "out", opts)
    info = sf.info(str(result.vocals))
    assert (info.samplerate, info.channels, info.subtype) == (SR, 2, "PCM_16")
    assert abs(info.frames - 2 * SR) <= 2
    v, _ = sf.read(result.vocals)
    assert np.all(np.isfinite(v)) and v.std() > 0
    assert sha(src) == before
    assert not any(p.name.startswith(".") for p in (tmp_path / "out").iterdir())  # temp files cleaned


def test_long_file_in_windows_is_finite_and_full_length(tmp_path, model_dir):
    src = tmp_path / "long.wav"
    sf.write(src, music(5.0), SR)
    opts = SeparationOptions(model="tiny", model_dir=model_dir, window=1.5, crossfade=0.25)
    steps = []
    result = separate_file(src, tmp_path / "out", opts, progress=lambda d, t, m: steps.append((d, t)))
    v, _ = sf.read(result.vocals)
    a, _ = sf.read(result.accompaniment)
    assert v.shape == a.shape == (5 * SR, 2)
    assert np.all(np.isfinite(v)) and np.all(np.isfinite(a))
    assert steps[-1][0] == steps[-1][1] == 4  # windows of 1.5 s, stride 1.25 s over 5 s


def test_channel_conversion_duplicates_mono_and_keeps_first_two():
    mono = np.arange(4, dtype=np.float32)[None]
    np.testing.assert_array_equal(to_channels(mono, 2), np.stack([mono[0], mono[0]]))
    six = np.arange(12, dtype=np.float32).reshape(6, 2)
    np.testing.assert_array_equal(to_channels(six, 2), six[:2])


@pytest.mark.parametrize("total,window,fade", [(100, 100, 10), (101, 40, 10), (1000, 64, 16), (65, 64, 16)])
def test_crossfade_stream_reassembles_a_pointwise_process_exactly(total, window, fade):
    x = np.random.default_rng(1).standard_normal((2, total)).astype(np.float32)
    pieces: list[np.ndarray] = []
    crossfade_stream(
        total,
        window,
        fade,
        lambda s, n: x[:, s : s + n].copy(),
        lambda w: np.stack([2 * w, -w]),
        pieces.append,
    )
    y = np.concatenate(pieces, axis=-1)
    assert y.shape == (2, 2, total)
    np.testing.assert_allclose(y[0], 2 * x, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(y[1], -x, rtol=1e-5, atol=1e-6)


def test_legacy_th_model_loads_safely_and_matches_safetensors(tmp_path, model_dir):
    src = tmp_path / "s.wav"
    sf.write(src, music(1.5), SR)
    r1 = separate_file(src, tmp_path / "a", SeparationOptions(model="tiny", model_dir=model_dir))
    r2 = separate_file(src, tmp_path / "b", SeparationOptions(model="tiny_th", model_dir=model_dir))
    np.testing.assert_allclose(sf.read(r1.vocals)[0], sf.read(r2.vocals)[0], atol=1e-6)


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_th_with_disallowed_global_is_refused_and_nothing_runs(tmp_path, model_dir, monkeypatch):
    import torch

    folder = tmp_path / "models"
    folder.mkdir()
    marker = tmp_path / "pwned"
    torch.save(
        {"klass": _Evil(), "args": [], "kwargs": {}, "state": {}}, folder / "bad00000.th", pickle_protocol=2
    )
    (folder / "evil.yaml").write_text("models: ['bad00000']\n")
    src = tmp_path / "s.wav"
    sf.write(src, music(1.0), SR)
    monkeypatch.chdir(tmp_path)  # so a `touch pwned` that ran would land in tmp_path
    with pytest.raises(UnsafeModelError, match="refused"):
        separate_inputs([src], tmp_path / "out", SeparationOptions(model="evil", model_dir=folder))
    assert not marker.exists()
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_safetensors_naming_a_non_demucs_class_is_refused(tmp_path):
    from tests.support.tiny_demucs import save_safetensors, tiny_model

    folder = tmp_path / "models"
    folder.mkdir()
    save_safetensors(tiny_model(), folder / "bad11111.safetensors", klass="os.system")
    (folder / "evil.yaml").write_text("models: ['bad11111']\n")
    with pytest.raises(UnsafeModelError, match="not a demucs model"):
        demucs_models.load_model("evil", folder)


def use_hf_cache(monkeypatch, folder: Path) -> Path:
    """Point huggingface_hub at `folder` as its cache (read at call time from constants)."""
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(folder))
    return folder


def test_model_found_in_hugging_face_cache_without_network(tmp_path, monkeypatch):
    from tests.support.tiny_demucs import save_safetensors, tiny_model

    snapshot = (
        use_hf_cache(monkeypatch, tmp_path / "hf") / "models--adefossez--HTDemucs" / "snapshots" / "abc123"
    )
    snapshot.mkdir(parents=True)
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("abc123")
    (snapshot / "htdemucs.yaml").write_text("models: ['955717e8']\n")
    save_safetensors(tiny_model(), snapshot / "955717e8.safetensors")
    model = demucs_models.load_model("htdemucs", tmp_path / "empty-local-folder")
    assert list(model.sources) == ["drums", "bass", "other", "vocals"] and len(model.models) == 1


def test_missing_model_message_says_what_where_and_how(tmp_path, monkeypatch):
    use_hf_cache(monkeypatch, tmp_path / "hf-cache")  # an empty cache: nothing found
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    folder = tmp_path / "models" / "demucs"
    with pytest.raises(ModelNotFoundError) as info:
        demucs_models.load_model("htdemucs", folder)
    msg = str(info.value)
    for part in (
        "'htdemucs'",
        "htdemucs.yaml",
        "955717e8.safetensors",
        str(folder),
        "https://huggingface.co/adefossez/HTDemucs",
        f"pretrained download demucs-htdemucs --model-dir {folder.parent}",
    ):
        assert part in msg, part
    with pytest.raises(ModelNotFoundError, match="04573f0d.safetensors"):
        demucs_models.load_model("htdemucs_ft", folder)
    status = demucs_models.local_status("htdemucs", folder)
    assert status == (False, ["htdemucs.yaml", "955717e8.safetensors"])


def test_batch_reports_corrupt_file_and_goes_on(tmp_path, model_dir):
    good = tmp_path / "in" / "good.wav"
    good.parent.mkdir()
    sf.write(good, music(1.0), SR)
    bad = tmp_path / "in" / "bad.mp3"
    bad.write_bytes(b"this is not audio at all" * 100)
    opts = SeparationOptions(model="tiny", model_dir=model_dir)
    report = separate_inputs([tmp_path / "in"], tmp_path / "out", opts)
    assert [Path(f.path).name for f in report.failures] == ["bad.mp3"]
    assert report.failures[0].error.startswith(
        "not a readable audio file"
    )  # the name is said once, by the list
    assert sorted(Path(p).name for p in report.outputs) == ["good_accompaniment.wav", "good_vocals.wav"]


def test_existing_outputs_are_never_replaced(tmp_path, model_dir):
    src = tmp_path / "x.wav"
    sf.write(src, music(1.0), SR)
    out = tmp_path / "out"
    out.mkdir()
    (out / "x_vocals.wav").write_bytes(b"user file")
    r = separate_file(src, out, SeparationOptions(model="tiny", model_dir=model_dir))
    assert r.vocals == out / "x_vocals (1).wav"
    assert (out / "x_vocals.wav").read_bytes() == b"user file"
    opts = SeparationOptions(model="tiny", model_dir=model_dir, skip_existing=True)
    skipped = separate_file(src, out, opts)
    assert skipped.skipped and len(list(out.iterdir())) == 3


def test_output_equal_to_an_input_is_refused(tmp_path, model_dir):
    a = tmp_path / "a.wav"
    sf.write(a, music(1.0), SR)
    clash = tmp_path / "a_vocals.wav"
    sf.write(clash, music(1.0), SR)
    before = sha(clash)
    with pytest.raises(OutputConflictError):
        separate_inputs([a, clash], tmp_path, SeparationOptions(model="tiny", model_dir=model_dir))
    assert sha(clash) == before


def test_cli_help_and_run(tmp_path, model_dir):
    help_out = subprocess.run(
        [sys.executable, "-m", "tools.separate", "--help"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert help_out.returncode == 0 and "--model-dir" in help_out.stdout and "--download" in help_out.stdout
    src = tmp_path / "c.wav"
    sf.write(src, music(1.0), SR)
    events = tmp_path / "events.jsonl"
    rc = main(
        [
            str(src),
            "--out",
            str(tmp_path / "out"),
            "--model",
            "tiny",
            "--model-dir",
            str(model_dir),
            "--events",
            str(events),
        ]
    )
    assert rc == 0
    assert (tmp_path / "out" / "c_vocals.wav").is_file()
    assert '"type": "done"' in events.read_text()


def test_cli_missing_model_is_one_line_and_nonzero(tmp_path):
    src = tmp_path / "c.wav"
    sf.write(src, music(0.5), SR)
    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"}
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "tools.separate",
            str(src),
            "--out",
            str(tmp_path / "o"),
            "--model-dir",
            str(tmp_path / "none"),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert run.returncode == 2
    assert "Traceback" not in run.stderr
    assert "error: Demucs model 'htdemucs' was not found" in run.stderr


def test_should_stop_cancels_and_leaves_no_partial_files(tmp_path, model_dir):
    src = tmp_path / "long.wav"
    sf.write(src, music(4.0), SR)
    calls = []
    opts = SeparationOptions(model="tiny", model_dir=model_dir, window=1.0, crossfade=0.2)
    report = separate_inputs(
        [src],
        tmp_path / "out",
        opts,
        progress=lambda d, t, m: calls.append(d),
        should_stop=lambda: len(calls) >= 2,
    )
    assert report.cancelled and report.outputs == [] and report.failures == []
    assert list((tmp_path / "out").iterdir()) == []  # no temp wavs, no temp folder


def test_job_stop_terminates_cli_cleanly(tmp_path, model_dir):
    from core.jobs import Job

    src = tmp_path / "long.wav"
    sf.write(src, music(90.0), SR, subtype="PCM_16")
    out = tmp_path / "out"
    args = [str(src), "--out", str(out), "--model", "tiny", "--model-dir", str(model_dir), "--window", "2"]
    job = Job.start("tools.separate", args, tmp_path / "job")
    deadline = time.monotonic() + 60
    while not any(e["type"] == "progress" for e in job.poll()) and time.monotonic() < deadline:
        assert job.running(), job.log_tail()
        time.sleep(0.05)
    job.stop(grace=10)
    assert job.process.returncode == 130, job.log_tail()
    assert list(out.iterdir()) == []
    assert "Traceback" not in job.log_tail()


def test_hf_repo_id_matches_demucs_mapping():
    """tools.demucs_models restates demucs.hf.hf_repo_name (to keep torch out of UI start-up)."""
    from demucs.hf import hf_repo_name

    from tools.demucs_models import hf_repo_id

    for name in ("htdemucs", "htdemucs_ft", "htdemucs_6s", "mdx_extra", "mdx_extra_q"):
        assert hf_repo_id(name) == f"adefossez/{hf_repo_name(name)}"


def test_tab_status_reports_an_unreadable_cached_model(tmp_path, monkeypatch):
    """A broken yaml in the Hugging Face cache is named in the tab's status line, with the fix."""
    from ui.context import AppContext
    from ui.separate_tab import model_status

    snapshot = (
        use_hf_cache(monkeypatch, tmp_path / "hf") / "models--adefossez--HTDemucs" / "snapshots" / "abc123"
    )
    snapshot.mkdir(parents=True)
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("abc123")
    (snapshot / "htdemucs.yaml").write_text("models: []\n")
    line = model_status(AppContext.create(tmp_path / "ws", "en_US"), "htdemucs")
    assert "unreadable" in line and "empty" in line and "pretrained download demucs-htdemucs" in line
