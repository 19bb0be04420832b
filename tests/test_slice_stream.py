"""Slicing reads files in blocks: the same clips as from the whole signal, memory bounded by a block."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from core.audio import load_audio, resample
from tests.support.crashing_slicer import task as crashing_task
from tools.slice import (
    RmsStream,
    SliceParams,
    find_cuts,
    frame_rms,
    iter_segments,
    scan_file,
    slice_file,
    slice_inputs,
)


def bursts(path: Path, minutes: float, sr: int = 8000, seed: int = 0) -> Path:
    """Voice-like noise bursts of 2-6 s between 1-3 s pauses, written a minute at a time."""
    rng = np.random.default_rng(seed)
    with sf.SoundFile(path, "w", samplerate=sr, channels=1, subtype="PCM_16") as f:
        written = 0
        while written < minutes * 60 * sr:
            loud = (0.3 * rng.standard_normal(int(rng.uniform(2, 6) * sr))).astype(np.float32)
            quiet = np.zeros(int(rng.uniform(1, 3) * sr), dtype=np.float32)
            f.write(np.concatenate([loud, quiet]))
            written += loud.size + quiet.size
    return path


@pytest.mark.parametrize("sizes", [[1, 2, 3], [5000, 1], [320 * 1024 + 7]])
def test_rms_stream_equals_frame_rms_for_any_pieces(sizes):
    rng = np.random.default_rng(1)
    x = rng.standard_normal(40000).astype(np.float32)
    stream, pos, k = RmsStream(1200, 320, block_frames=7), 0, 0
    while pos < x.size:
        stream.push(x[pos : pos + sizes[k % len(sizes)]])
        pos += sizes[k % len(sizes)]
        k += 1
    np.testing.assert_allclose(stream.finish(), frame_rms(x, 1200, 320), rtol=1e-9, atol=1e-12)
    lo, hi = stream.envelope()
    padded = np.concatenate([x, np.zeros(-x.size % 320, dtype=np.float32)])
    assert lo.shape == hi.shape == (-(-x.size // 320),)
    np.testing.assert_array_equal(hi[:-1], padded.reshape(-1, 320).max(axis=1)[:-1])


def test_iter_segments_gives_each_segment_from_blocks():
    x = np.arange(1000, dtype=np.float32)
    blocks = (x[i : i + 37] for i in range(0, 1000, 37))
    segments = [(0, 10), (50, 300), (300, 301), (900, 1010)]  # the last one ends past the signal
    got = [(s, e, a) for s, e, a in iter_segments(blocks, segments, 1000)]
    assert [(s, e) for s, e, _ in got] == segments
    for s, e, a in got:
        np.testing.assert_array_equal(a, x[s : min(e, 1000)])


def test_block_reads_cut_and_write_exactly_as_the_whole_signal(tmp_path):
    src = bursts(tmp_path / "talk.wav", 0.35, sr=16000)
    params = SliceParams(max_length_s=5.0)
    whole, _ = load_audio(src, 32000)
    assert scan_file(src, params, block_seconds=1.1).segments == find_cuts(whole, params)
    small = slice_file(src, tmp_path / "a", params, block_seconds=1.1)
    big = slice_file(src, tmp_path / "b", params, block_seconds=600)
    assert [Path(p).name for p in small.outputs] == [Path(p).name for p in big.outputs]
    assert len(small.outputs) > 3
    for a, b in zip(small.outputs, big.outputs, strict=True):  # resampled in other chunks: within 1 LSB
        da, db = sf.read(a, dtype="int16")[0].astype(int), sf.read(b, dtype="int16")[0].astype(int)
        assert da.shape == db.shape and np.abs(da - db).max() <= 1


def _peak_bytes(fn) -> int:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_slicing_memory_does_not_grow_with_the_file(tmp_path):
    """Numpy's peak while slicing 10 min (8 kHz in, 32 kHz out) is that of 2 min: a block, not the file."""
    short, long = bursts(tmp_path / "short.wav", 2.0), bursts(tmp_path / "long.wav", 10.0, seed=1)
    whole_bytes = 10 * 60 * 32000 * 4  # 77 MB: what loading the long file at 32 kHz would take
    resample(np.zeros((1, 800), dtype=np.float32), 8000, 32000)  # imports before measuring
    results = {}
    peak_short = _peak_bytes(lambda: results.setdefault("s", slice_file(short, tmp_path / "o1")))
    peak_long = _peak_bytes(lambda: results.setdefault("l", slice_file(long, tmp_path / "o2")))
    assert len(results["l"].outputs) > 40 and results["l"].duration_s == pytest.approx(10 * 60, abs=10)
    assert peak_long < 1.5 * peak_short + 2e6, (
        f"{peak_short / 1e6:.1f} MB for 2 min, {peak_long / 1e6:.1f} for 10"
    )
    assert peak_long < 0.2 * whole_bytes


def test_a_file_that_crashes_its_worker_fails_alone(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("a.wav", "crash.wav", "c.wav", "d.wav"):
        bursts(folder / name, 0.15, sr=32000)  # at the clips' rate: the workers never load torch
    report = slice_inputs([folder], tmp_path / "out", workers=2, task=crashing_task)
    assert [Path(f.path).name for f in report.failures] == ["crash.wav"]
    assert "crashed" in report.failures[0].error
    assert sorted(Path(r.source).name for r in report.results) == ["a.wav", "c.wav", "d.wav"]
    assert all(r.outputs for r in report.results)
