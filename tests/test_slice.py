"""The silence slicer: cut points on signals with known silences, outputs, CLI, batches, memory."""

from __future__ import annotations

import json
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import REPO_ROOT, write_wav
from tests.support.synth import voiced_segments
from tools.slice import (
    SliceOutputError,
    SliceParams,
    SliceParamsError,
    clip_name,
    find_cuts,
    frame_rms,
    main,
    normalise,
    slice_file,
    slice_inputs,
)

SR = 32000
HOP = 320  # 10 ms at 32 kHz
# 2 s silence, 5 s voice, 1.5 s silence, 5 s voice, 2 s silence (the voice edges sit on frame centres)
PATTERN = [("silence", 2.0), ("voice", 5.0), ("silence", 1.5), ("voice", 5.0), ("silence", 2.0)]


def reference_walk(rms: np.ndarray, threshold: float, min_length: int, min_interval: int, msk: int):
    """The slicer's decision rules walked frame by frame (written for this test from the description
    of the GPT-SoVITS slicer), to check the run-based implementation makes the same decisions."""
    tags, silence_start, clip_start = [], None, 0
    for i, v in enumerate(rms):
        if v < threshold:
            if silence_start is None:
                silence_start = i
            continue
        if silence_start is None:
            continue
        leading = silence_start == 0 and i > msk
        middle = i - silence_start >= min_interval and i - clip_start >= min_length
        if not leading and not middle:
            silence_start = None
            continue
        s = silence_start
        lo = lambda a, b: a + int(np.argmin(rms[a : b + 1]))  # noqa: E731
        if i - s <= msk:
            pos = lo(s, i)
            tags.append((0, pos) if s == 0 else (pos, pos))
            clip_start = pos
        elif i - s <= 2 * msk:
            pos, left, right = lo(i - msk, s + msk), lo(s, s + msk), lo(i - msk, i)
            if s == 0:
                tags.append((0, right))
                clip_start = right
            else:
                tags.append((min(left, pos), max(right, pos)))
                clip_start = max(right, pos)
        else:
            left, right = lo(s, s + msk), lo(i - msk, i)
            tags.append((0, right) if s == 0 else (left, right))
            clip_start = right
        silence_start = None
    total = len(rms)
    if silence_start is not None and total - silence_start >= min_interval:
        tags.append((lo(silence_start, min(total, silence_start + msk)), total + 1))
    return tags


def walk_segments(audio: np.ndarray, p: SliceParams) -> list[tuple[int, int]]:
    hop = round(SR * p.hop_ms / 1000)
    win = min(round(SR * p.min_interval_ms / 1000), 4 * hop)
    rms = frame_rms(audio, win, hop)
    tags = reference_walk(
        rms,
        10 ** (p.threshold_db / 20),
        round(SR * p.min_length_ms / 1000 / hop),
        round(SR * p.min_interval_ms / 1000 / hop),
        round(SR * p.max_sil_kept_ms / 1000 / hop),
    )
    total = len(rms)
    if not tags:
        bounds = [(0, total)]
    else:
        bounds = ([(0, tags[0][0])] if tags[0][0] > 0 else []) + [
            (tags[k][1], tags[k + 1][0]) for k in range(len(tags) - 1)
        ]
        if tags[-1][1] < total:
            bounds.append((tags[-1][1], total))
    return [(a * hop, b * hop) for a, b in bounds if min(len(audio), b * hop) > a * hop]


def last_frame_end(audio: np.ndarray, hop: int = 320) -> int:
    """Where the reference says the last clip ends: the end of the last centred RMS frame."""
    return (len(audio) // hop + 1) * hop


# ---------------------------------------------------------------------------------------------
# Cut points


def test_defaults_are_the_gpt_sovits_ui_defaults():
    p = SliceParams()
    assert (p.threshold_db, p.min_length_ms, p.min_interval_ms, p.hop_ms, p.max_sil_kept_ms) == (
        -34,
        4000,
        300,
        10,
        500,
    )
    assert (p.max_peak, p.alpha, p.max_length_s, p.sample_rate) == (0.9, 0.25, None, 32000)


def test_cut_points_on_known_silences():
    # Hand-derived: frame i is centred on sample 320*i and spans +-640 samples. The first fully silent
    # frame after a voice ending at sample v is v/320 + 2; silences longer than 2*max_sil_kept (100
    # frames) keep 50 frames of silence before the next voice, cutting from the first silent frame.
    audio = voiced_segments(PATTERN)
    assert find_cuts(audio) == [(149 * HOP, 702 * HOP), (799 * HOP, 1352 * HOP)]


def test_medium_and_short_silences_cut_in_the_middle():
    # 0.8 s silence (78 silent frames, 50 < 78 <= 100): cut out from its first silent frame to
    # the first frame whose window may hold the next voice minus max_sil_kept; 0.4 s (38 frames) -> one cut.
    audio = voiced_segments(
        [("voice", 5.0), ("silence", 0.8), ("voice", 5.0), ("silence", 0.4), ("voice", 5.0)]
    )
    v1_end, v2_start = 5 * SR // HOP, int(5.8 * SR) // HOP  # frames 500, 580
    v2_end = int(10.8 * SR) // HOP  # 1080
    cuts = find_cuts(audio)
    assert len(cuts) == 3
    assert cuts[0] == (0, (v1_end + 2) * HOP)  # left part: the medium silence starts right after voice 1
    # the clip after the medium silence starts at most max_sil_kept (50 frames) before voice 2
    assert (v2_start - 1 - 50) * HOP <= cuts[1][0] <= v2_start * HOP
    # the short silence is cut once, at its first fully silent frame
    assert cuts[1][1] == cuts[2][0] == (v2_end + 2) * HOP
    assert cuts[2][1] == last_frame_end(audio)


def test_short_pauses_do_not_cut_before_min_length():
    # pauses of 0.5 s every 1 s of voice: a clip only ends once it is >= 4 s long
    pattern = []
    for _ in range(8):
        pattern += [("voice", 1.0), ("silence", 0.5)]
    audio = voiced_segments(pattern)
    cuts = find_cuts(audio)
    assert len(cuts) >= 2
    for s, e in cuts[:-1]:
        assert e - s >= 4 * SR - 2 * HOP


@pytest.mark.parametrize("seed", range(6))
def test_run_based_decisions_match_a_frame_by_frame_walk(seed):
    rng = np.random.default_rng(seed)
    pattern = []
    for _ in range(12):
        pattern += [("voice", float(rng.uniform(0.2, 4))), ("silence", float(rng.uniform(0.05, 2.5)))]
    if seed % 2:
        pattern = [("silence", float(rng.uniform(0.1, 1.5)))] + pattern
    audio = voiced_segments(pattern, seed=seed)
    params = SliceParams(
        min_length_ms=float(rng.choice([1000, 4000])), max_sil_kept_ms=float(rng.choice([100, 500]))
    )
    assert find_cuts(audio, params) == walk_segments(audio, params)


def test_frame_rms_matches_direct_framing():
    rng = np.random.default_rng(1)
    x = rng.standard_normal(5003).astype(np.float32)
    for win, hop in [(1280, 320), (960, 320), (7, 3), (64, 64)]:
        pad = win // 2
        padded = np.pad(x.astype(np.float64), (pad, pad))
        n_frames = 1 + (len(padded) - win) // hop
        direct = np.array([np.sqrt(np.mean(padded[i * hop : i * hop + win] ** 2)) for i in range(n_frames)])
        got = frame_rms(x, win, hop, block_frames=5)  # several blocks, block edges included
        assert got.shape == direct.shape
        np.testing.assert_allclose(got, direct, rtol=1e-9, atol=1e-12)


def test_cut_segments_are_ordered_and_inside_the_signal():
    rng = np.random.default_rng(3)
    audio = voiced_segments([(k, float(rng.uniform(0.1, 3))) for k in ["voice", "silence"] * 15])
    cuts = find_cuts(audio, SliceParams(min_length_ms=500))
    assert cuts
    end = last_frame_end(audio)
    for (s, e), nxt in zip(cuts, cuts[1:] + [(end, end)], strict=True):
        assert 0 <= s < min(e, len(audio)) and e <= nxt[0] <= end


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"min_length_ms": 200}, "min_length >= min_interval >= hop_size"),
        ({"min_interval_ms": 5}, "min_length >= min_interval >= hop_size"),
        ({"max_sil_kept_ms": 5}, "max_sil_kept >= hop_size"),
        ({"max_peak": 0}, "max"),
        ({"alpha": 1.5}, "alpha"),
        ({"max_length_s": 0.2}, "max length"),
    ],
)
def test_invalid_parameters_raise_clear_errors(kwargs, message):
    with pytest.raises(SliceParamsError, match=message):
        find_cuts(np.zeros(SR, dtype=np.float32), SliceParams(**kwargs))


def test_silence_only_gives_no_clip_and_no_nan(tmp_path):
    assert find_cuts(np.zeros(10 * SR, dtype=np.float32)) == []
    # very quiet noise (-60 dB) is silence too
    quiet = (1e-3 * np.random.default_rng(0).standard_normal(10 * SR)).astype(np.float32)
    assert find_cuts(quiet) == []
    path = write_wav(tmp_path / "silence.wav", np.zeros(3 * SR, dtype=np.float32), SR)
    result = slice_file(path, tmp_path / "out")
    assert result.outputs == [] and result.segments == []


def test_max_length_splits_at_the_quietest_point():
    # 12 s of voice with a short dip (0.2 s silence: too short to be cut) at 7 s
    audio = voiced_segments([("voice", 7.0), ("silence", 0.2), ("voice", 4.8)])
    assert find_cuts(audio) == [(0, last_frame_end(audio))]
    cuts = find_cuts(audio, SliceParams(max_length_s=10))
    assert len(cuts) == 2 and cuts[0][0] == 0 and cuts[-1][1] == last_frame_end(audio)
    assert 7 * SR <= cuts[0][1] <= int(7.2 * SR)  # inside the dip
    # recursive: 60 s of voice, max 10 s -> every piece fits, pieces tile the segment
    long = voiced_segments([("voice", 60.0)])
    pieces = find_cuts(long, SliceParams(max_length_s=10))
    assert all(e - s <= 10 * SR for s, e in pieces)
    assert pieces[0][0] == 0 and pieces[-1][1] == last_frame_end(long)
    assert all(a[1] == b[0] for a, b in zip(pieces, pieces[1:], strict=False))
    assert min(e - s for s, e in pieces) >= 2 * SR  # split points stay away from the edges


# ---------------------------------------------------------------------------------------------
# Normalisation and files


def test_normalise_values():
    x = np.array([0.0, 0.5, -0.25], dtype=np.float32)
    out = normalise(x, 0.9, 0.25)
    np.testing.assert_allclose(out, x / 0.5 * 0.225 + 0.75 * x, rtol=1e-6)
    assert np.abs(out).max() == pytest.approx(0.225 + 0.375)
    loud = np.array([2.0, -1.0], dtype=np.float32)  # peak > 1: divided by it once first
    np.testing.assert_allclose(normalise(loud, 0.9, 0.25), [0.225 + 0.75, -(0.1125 + 0.375)], rtol=1e-6)
    assert normalise(np.zeros(100, dtype=np.float32)) is None
    np.testing.assert_allclose(normalise(x, 0.9, 0.0), x)  # alpha 0: untouched


def test_slice_file_writes_named_int16_32k_mono_clips(tmp_path):
    audio = voiced_segments(PATTERN)
    src = write_wav(tmp_path / "take 1.wav", audio, SR)
    out = tmp_path / "out"
    result = slice_file(src, out)
    audio, _ = sf.read(src, dtype="float32")  # what the slicer saw: the int16-quantised signal
    expected = [out / clip_name(src, s, e) for s, e in [(47680, 224640), (255680, 432640)]]
    assert [Path(p) for p in result.outputs] == expected
    assert expected[0].name == "take 1.wav_0000047680_0000224640.wav"
    for path, (s, e) in zip(expected, result.segments, strict=True):
        info = sf.info(path)
        assert (info.samplerate, info.channels, info.subtype, info.frames) == (32000, 1, "PCM_16", e - s)
        data, _ = sf.read(path, dtype="int16")
        chunk = audio[s:e]
        want = (np.clip(normalise(chunk), -1, 1) * 32767).astype(np.int16)
        np.testing.assert_array_equal(data, want)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "take 1.wav"]


def test_rerun_never_overwrites(tmp_path):
    src = write_wav(tmp_path / "a.wav", voiced_segments(PATTERN), SR)
    out = tmp_path / "out"
    first = slice_file(src, out)
    mtimes = {p: Path(p).stat().st_mtime_ns for p in first.outputs}
    again = slice_file(src, out)  # identical clips: kept, not rewritten, not duplicated
    assert again.outputs == first.outputs and again.already_present == 2
    assert {p: Path(p).stat().st_mtime_ns for p in first.outputs} == mtimes
    # a different file under the same name is never replaced
    different = slice_file(src, out, SliceParams(alpha=0.0))
    assert all(Path(p).name.endswith(" (1).wav") for p in different.outputs)
    assert len(list(out.iterdir())) == 4


def test_output_folder_must_differ_from_input_folder(tmp_path):
    src = write_wav(tmp_path / "a.wav", voiced_segments(PATTERN), SR)
    with pytest.raises(SliceOutputError):
        slice_file(src, tmp_path)
    with pytest.raises(SliceOutputError):
        slice_inputs([tmp_path], tmp_path, workers=1)
    assert [p.name for p in tmp_path.iterdir()] == ["a.wav"]


def test_dry_run_writes_nothing(tmp_path):
    src = write_wav(tmp_path / "a.wav", voiced_segments(PATTERN), SR)
    report = slice_inputs([src], tmp_path / "out", dry_run=True, workers=1)
    assert report.results[0].segments == [(47680, 224640), (255680, 432640)]
    assert report.outputs == [] and not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "sr, channels, subtype", [(48000, 2, "PCM_16"), (32000, 1, "PCM_U8"), (44100, 1, "PCM_24")]
)
def test_other_rates_channels_and_bit_depths(tmp_path, sr, channels, subtype):
    mono = voiced_segments(PATTERN, sr=sr)
    audio = np.stack([mono, mono]) if channels == 2 else mono
    src = write_wav(tmp_path / f"in_{sr}.wav", audio, sr, subtype=subtype)
    result = slice_file(src, tmp_path / "out")
    assert len(result.outputs) == 2
    for (s, e), ref in zip(result.segments, [(47680, 224640), (255680, 432640)], strict=True):
        assert abs(s - ref[0]) <= 2 * HOP and abs(e - ref[1]) <= 2 * HOP  # resampling smears edges slightly
    info = sf.info(result.outputs[0])
    assert (info.samplerate, info.channels, info.subtype) == (32000, 1, "PCM_16")


def test_parallel_batch_reports_the_corrupt_file_and_slices_the_rest(tmp_path):
    inp = tmp_path / "in"
    inp.mkdir()
    for k in range(3):
        write_wav(inp / f"f{k}.wav", voiced_segments(PATTERN, seed=k), SR)
    (inp / "broken.wav").write_bytes(np.random.default_rng(0).bytes(5000))
    (inp / "notes.txt").write_text("not audio")  # not an audio file: ignored in folders
    seen = []
    report = slice_inputs([inp], tmp_path / "out", workers=2, progress=lambda d, t, m: seen.append((d, t)))
    assert [Path(f.path).name for f in report.failures] == ["broken.wav"]
    assert report.failures[0].error.startswith("not a readable audio file")  # the list names the file once
    assert [Path(r.source).name for r in report.results] == ["f0.wav", "f1.wav", "f2.wav"]
    assert len(report.outputs) == 6 and all(Path(p).is_file() for p in report.outputs)
    assert seen[-1] == (4, 4)


def test_should_stop_cancels_before_the_next_file(tmp_path):
    files = [write_wav(tmp_path / f"f{k}.wav", voiced_segments(PATTERN), SR) for k in range(3)]
    calls = []
    report = slice_inputs(
        files,
        tmp_path / "out",
        workers=1,
        should_stop=lambda: len(calls) > 0,
        progress=lambda d, t, m: calls.append(d) if d else None,
    )
    assert report.cancelled and len(report.results) == 1


# ---------------------------------------------------------------------------------------------
# CLI


def test_cli_help():
    r = subprocess.run(
        [sys.executable, "-m", "tools.slice", "--help"], cwd=REPO_ROOT, capture_output=True, text=True
    )
    assert r.returncode == 0
    for flag in (
        "--out",
        "--threshold",
        "--min-length",
        "--max-length",
        "--dry-run",
        "--workers",
        "--events",
    ):
        assert flag in r.stdout


def test_cli_run_writes_clips_and_events(tmp_path):
    src = write_wav(tmp_path / "a.wav", voiced_segments(PATTERN), SR)
    events = tmp_path / "events.jsonl"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "tools.slice",
            str(src),
            "--out",
            str(tmp_path / "out"),
            "--events",
            str(events),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "a.wav_0000047680_0000224640.wav",
        "a.wav_0000255680_0000432640.wav",
    ]
    lines = [json.loads(x) for x in events.read_text().splitlines()]
    assert lines[-1]["type"] == "result" and len(lines[-1]["outputs"]) == 2
    assert any(e["type"] == "progress" and e["done"] == 1 for e in lines)


def test_cli_user_errors_are_one_line(tmp_path, capsys):
    src = write_wav(tmp_path / "a.wav", voiced_segments(PATTERN), SR)
    assert main([str(src), "--out", str(tmp_path / "o"), "--min-length", "100"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err and err.count("\n") == 1
    assert main([str(tmp_path / "missing.wav"), "--out", str(tmp_path / "o")]) == 2
    assert main([str(src)]) == 2  # --out missing
    assert main([str(src), "--dry-run"]) == 0
    assert "47680\t224640" in capsys.readouterr().out
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"\x00garbage" * 100)
    assert main([str(src), str(bad), "--out", str(tmp_path / "o"), "--workers", "1"]) == 1
    assert len(list((tmp_path / "o").iterdir())) == 2


# ---------------------------------------------------------------------------------------------
# Long input, bounded memory


def test_one_hour_of_mostly_silence_in_bounded_memory():
    n = 3600 * SR
    audio = np.zeros(n, dtype=np.float32)  # 460 MB; the (frames x window) float32 matrix would be 1.8 GB
    burst = voiced_segments([("voice", 5.0)])
    starts = [600 * SR, 1800 * SR, 3000 * SR]
    for s in starts:
        audio[s : s + len(burst)] = burst
    tracemalloc.start()
    try:
        cuts = find_cuts(audio)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(cuts) == 3
    for (s, e), b in zip(cuts, starts, strict=True):
        assert b - 51 * HOP <= s <= b and b + len(burst) <= e <= b + len(burst) + 3 * HOP
    naive = (n // HOP) * 1280 * 4
    # the RMS curve (2.9 MB) plus one block of squares (~8 MB): far below the signal and the naive matrix
    assert peak < 0.05 * audio.nbytes and peak < naive / 80


# ---------------------------------------------------------------------------------------------
# UI helpers (plain functions; the browser test drives the real tab)


def test_ui_helpers_stage_uploads_once_and_keep_outputs_inside(tmp_path):
    from tools.slice import make_parser
    from ui.context import AppContext
    from ui.slice_tab import cli_args, collect_inputs, make_params, output_dir, preview

    ctx = AppContext.create(tmp_path / "ws", "en_US")
    user = write_wav(tmp_path / "mine.wav", voiced_segments(PATTERN), SR)
    before = user.read_bytes()
    first = collect_inputs(ctx, [str(user)], "")
    again = collect_inputs(ctx, [str(user)], "")
    assert first == again == [ctx.folder("uploads") / "mine.wav"] and user.read_bytes() == before
    with pytest.raises(ValueError, match="outside"):
        collect_inputs(ctx, None, "../mine.wav")
    with pytest.raises(ValueError, match="upload some"):
        collect_inputs(ctx, None, "  ")
    assert output_dir(ctx, "") == ctx.folder("sliced")
    assert output_dir(ctx, "spk1") == ctx.folder("sliced") / "spk1"
    with pytest.raises(ValueError, match="outside"):
        output_dir(ctx, "../../elsewhere")
    params = make_params(-30, 3000, 200, 10, 400, 0.8, 0.3, 12)
    assert params == SliceParams(-30, 3000, 200, 10, 400, 0.8, 0.3, 12.0)
    assert make_params(-34, 4000, 300, 10, 500, 0.9, 0.25, 0).max_length_s is None
    with pytest.raises(SliceParamsError):
        make_params(-34, 100, 300, 10, 500, 0.9, 0.25, 0)
    parsed = make_parser().parse_args(cli_args(first, ctx.folder("sliced"), params, 3))
    assert (parsed.threshold, parsed.min_length, parsed.max_length, parsed.workers) == (-30, 3000, 12, 3)
    shown = preview(first, SliceParams())
    assert [r[1:] for r in shown.rows] == [[1, 1.49, 7.02, 5.53], [2, 7.99, 13.52, 5.53]]
    assert shown.figure.axes and not any(ctx.folder("sliced").iterdir())


def test_job_stop_ends_a_running_slice(tmp_path):
    from core.jobs import Job

    inp = tmp_path / "in"
    inp.mkdir()
    for k in range(6):
        write_wav(inp / f"f{k}.wav", voiced_segments(PATTERN * 3, seed=k), SR)
    job = Job.start(
        "tools.slice", [str(inp), "--out", str(tmp_path / "out"), "--workers", "1"], tmp_path / "job"
    )
    job.stop()
    assert not job.running() and job.process.returncode != 0
