"""Slicing explains itself: why a file gave no clip (its peak and RMS against the threshold), a plot
scaled to the signal with the threshold drawn, and playback of a proposed clip before writing."""

from __future__ import annotations

import math

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import write_wav
from tests.support.synth import voiced_segments
from tools.slice import Levels, SliceParams, main, scan_file, slice_file
from ui import slice_tab
from ui.context import AppContext

SR = 32000
PARAMS = dict(
    threshold=-34, min_length=4000, min_interval=300, hop=10, max_sil_kept=500, max_peak=0.9, alpha=0.25
)
PEAK_DB = -38.2


def quiet_sine(seconds: float = 3.0, silence: float = 3.0, peak_db: float = PEAK_DB) -> np.ndarray:
    """A 440 Hz sine at `peak_db` dBFS for `seconds`, then `silence` seconds of zeros (float32)."""
    t = np.arange(int(seconds * SR)) / SR
    tone = 10 ** (peak_db / 20) * np.sin(2 * np.pi * 440 * t)
    return np.concatenate([tone, np.zeros(int(silence * SR))]).astype(np.float32)


@pytest.fixture
def ctx(tmp_path):
    return AppContext.create(tmp_path / "ws", "en_US")


def test_quiet_file_levels_are_its_peak_and_rms(tmp_path):
    # The sine's RMS is its peak / sqrt(2) (-3.01 dB); half the file silent halves the power (-3.01 dB).
    path = write_wav(tmp_path / "quiet.wav", quiet_sine(), SR, subtype="FLOAT")
    scan = scan_file(path, SliceParams())
    levels = scan.levels
    assert scan.segments == [] and levels.nothing_above and not levels.silent
    assert levels.peak_db == pytest.approx(PEAK_DB, abs=0.1)
    assert levels.rms_db == pytest.approx(PEAK_DB - 20 * math.log10(2), abs=0.1)  # -44.2
    assert levels.threshold_db == -34.0
    assert levels.sentence() == (
        "Nothing above the threshold: peak -38.2 dBFS, RMS -44.2 dBFS, threshold -34 dBFS. "
        "Lower the threshold below the peak."
    )
    # Below the peak but above the loudest frame still keeps nothing; below the loudest frame keeps it.
    assert scan_file(path, SliceParams(threshold_db=-40)).levels.nothing_above
    louder = scan_file(path, SliceParams(threshold_db=-45))
    assert not louder.levels.nothing_above and louder.segments


def test_preview_status_says_why_no_clip_came_out(ctx):
    write_wav(ctx.folder("uploads") / "quiet.wav", quiet_sine(), SR, subtype="FLOAT")
    fig, rows, status, segments, state = slice_tab.preview_cuts(
        ctx, None, "uploads/quiet.wav", {**PARAMS, "max_length": 0}
    )
    assert rows == [] and state["segments"] == [] and segments["choices"] == [] and segments["value"] is None
    assert status == (
        "Preview: 0 clips (nothing written).\n"
        "quiet.wav: nothing above the threshold: peak -38.2 dBFS, RMS -44.2 dBFS, threshold -34 dBFS. "
        "Lower the threshold below the peak."
    )
    # zh_CN says the same numbers
    zh = AppContext(ctx.workspace, type(ctx.i18n)("zh_CN"), ctx.model_dir)
    text = slice_tab.preview_cuts(zh, None, "uploads/quiet.wav", {**PARAMS, "max_length": 0})[2]
    assert (
        "-38.2" in text and "-44.2" in text and "-34" in text and "quiet.wav" in text and "peak" not in text
    )


def test_digital_silence_is_named_as_such(ctx):
    write_wav(ctx.folder("uploads") / "zeros.wav", np.zeros(5 * SR, dtype=np.float32), SR)
    status = slice_tab.preview_cuts(ctx, None, "uploads/zeros.wav", {**PARAMS, "max_length": 0})[2]
    assert status.endswith(
        "zeros.wav: nothing above the threshold, the file is digital silence (every sample is 0)."
    )


def test_slice_job_summary_and_cli_say_why(tmp_path, ctx, capsys):
    src = write_wav(tmp_path / "quiet.wav", quiet_sine(), SR, subtype="FLOAT")
    result = slice_file(src, tmp_path / "out", SliceParams())
    assert result.outputs == [] and result.nothing_above
    back = Levels.from_dict(result.to_dict()["levels"])  # through the job's JSON event and back
    assert back == result.levels
    summary = slice_tab.summary(
        ctx, {"outputs": [], "failures": [], "results": [result.to_dict()]}, tmp_path, 0
    )
    assert "quiet.wav: nothing above the threshold: peak -38.2 dBFS, RMS -44.2 dBFS" in summary
    assert main([str(src), "--out", str(tmp_path / "out2")]) == 0
    assert "0 clips. Nothing above the threshold: peak -38.2 dBFS" in capsys.readouterr().out
    silent = Levels.of(0.0, 0.0, 0.0, -34).to_dict()
    assert silent["peak_db"] is None and Levels.from_dict(silent).silent  # -inf is not valid JSON


def test_plot_is_scaled_to_the_signal_and_draws_the_threshold(tmp_path):
    path = write_wav(tmp_path / "quiet.wav", quiet_sine(), SR, subtype="FLOAT")
    fig = slice_tab.waveform_figure(scan_file(path, SliceParams()), "quiet", -34.0)
    wave, db = fig.axes
    peak = 10 ** (PEAK_DB / 20)
    assert wave.get_ylim() == pytest.approx((-1.1 * peak, 1.1 * peak), rel=0.01)  # not a fixed +-1
    lo, hi = db.get_ylim()
    loudest = PEAK_DB - 20 * math.log10(math.sqrt(2))
    assert lo < loudest < -34.0 < hi  # both the RMS curve's top and the threshold are in view
    assert [line.get_ydata()[0] for line in db.get_lines() if line.get_linestyle() == "--"] == [-34.0]
    loud = write_wav(tmp_path / "loud.wav", 0.8 * quiet_sine(peak_db=0.0), SR, subtype="FLOAT")
    assert fig_limit(
        slice_tab.waveform_figure(scan_file(loud, SliceParams()), "loud", -34.0)
    ) == pytest.approx(0.88, rel=0.01)


def fig_limit(fig) -> float:
    return fig.axes[0].get_ylim()[1]


def test_playback_gives_the_clip_slice_writes(tmp_path, ctx):
    # 44.1 kHz stereo input: the preview resamples and downmixes exactly as slicing does
    audio = voiced_segments(
        [("silence", 1.0), ("voice", 5.0), ("silence", 1.5), ("voice", 4.5), ("silence", 1.0)], sr=44100
    )
    src = write_wav(ctx.folder("uploads") / "talk.wav", np.stack([audio, 0.5 * audio]), 44100)
    params = {**PARAMS, "max_length": 0, "threshold": -40, "max_peak": 0.8, "alpha": 0.5}
    _fig, rows, _status, segments, state = slice_tab.preview_cuts(ctx, None, "uploads/talk.wav", params)
    assert len(rows) == 2 and [v for _l, v in segments["choices"]] == ["0", "1"] and segments["value"] == "0"
    assert segments["choices"][1][0].startswith("talk.wav #2  ")
    written = slice_file(src, ctx.folder("sliced"), slice_tab.make_params(**params)).outputs
    assert len(written) == 2
    for k in range(2):
        played = slice_tab.play_segment(ctx, str(k), state)
        assert played.startswith(str(ctx.workspace))  # served from the workspace (allowed_paths)
        heard, sr = sf.read(played, dtype="int16")
        expected, _sr = sf.read(written[k], dtype="int16")
        assert sr == SR and np.array_equal(heard, expected)
    assert (
        slice_tab.play_segment(ctx, None, state) is None and slice_tab.play_segment(ctx, "7", state) is None
    )
