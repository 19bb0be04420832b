"""Slicer throughput in x real time per core, on 32 kHz mono speech-like audio (target >= 300x).

    .venv/bin/python bench/bench_slice.py [--minutes 10]     (or: python -m bench.bench_slice)

Measures, on one process (one core):
- `find_cuts` alone (the RMS curve + the cut decisions), the slicer proper;
- the whole per-file stage `slice_file`: decode a 32 kHz int16 wav, cut, normalise, write int16 clips.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

if __package__:  # run as `python -m bench.bench_slice` from the repository root
    from tests.support.synth import voiced_segments
    from tools.slice import SliceParams, find_cuts, slice_file

SR = 32000


def speechlike(minutes: float, seed: int = 0) -> np.ndarray:
    """Voiced stretches of 1-8 s separated by pauses of 0.1-2 s, `minutes` long."""
    rng = np.random.default_rng(seed)
    pattern: list[tuple[str, float]] = []
    total = 0.0
    while total < minutes * 60:
        v, s = float(rng.uniform(1, 8)), float(rng.uniform(0.1, 2))
        pattern += [("voice", v), ("silence", s)]
        total += v + s
    return voiced_segments(pattern, sr=SR, seed=seed)


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the test signal")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    # one core: the slicer's numpy work (squares, cumsum, argmin) and soundfile I/O are single-threaded,
    # and a 32 kHz input needs no resampling, so torch never runs
    audio = speechlike(args.minutes)
    seconds = audio.shape[0] / SR
    params = SliceParams()
    t_cuts = best_of(lambda: find_cuts(audio, params), args.repeats)
    n_clips = len(find_cuts(audio, params))
    print(f"signal: {seconds / 60:.1f} min at 32 kHz mono, {n_clips} clips with the default parameters")
    print(f"find_cuts:  {t_cuts * 1000:8.1f} ms  -> {seconds / t_cuts:8.0f}x real time per core")
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "long.wav"
        sf.write(src, audio, SR, subtype="PCM_16")

        def whole() -> None:
            out = Path(tempfile.mkdtemp(dir=tmp))
            slice_file(src, out, params)

        t_file = best_of(whole, args.repeats)
    print(
        f"slice_file: {t_file * 1000:8.1f} ms  -> {seconds / t_file:8.0f}x real time per core "
        "(decode + cut + normalise + write)"
    )
    verdict = "meets" if seconds / t_cuts >= 300 else "MISSES"
    print(f"target >= 300x real time per core for the slicer: {verdict}")


if __name__ == "__main__":
    if not __package__:  # run as a script: re-run as a module from the repository root (no sys.path edits)
        repo = Path(__file__).resolve().parent.parent
        sys.exit(subprocess.call([sys.executable, "-m", "bench.bench_slice", *sys.argv[1:]], cwd=repo))
    main()
