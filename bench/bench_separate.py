"""Peak memory of `tools.separate` on a long stereo 44.1 kHz file with a full-size random HTDemucs.

    python -m bench.bench_separate [--durations 600] [--device cpu] [--window 40]

For each duration a fresh child process builds `HTDemucs` with the default constructor arguments
(the htdemucs architecture, random weights), separates a synthetic file of that length with
`tools.separate.separate_file`, and reports its peak RSS (`ru_maxrss`), the RSS after the model
was built, and the wall time. Peak memory that does not grow with duration shows the windowed
processing keeps memory bounded; the target is < 4 GB for 10 minutes on CPU.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.memory import rss_mb

SR = 44100


def write_synthetic(path: Path, seconds: float, seed: int = 0) -> Path:
    """Tones + noise, written in 10 s blocks so the parent never holds the whole file."""
    import numpy as np
    import soundfile as sf

    rng = np.random.default_rng(seed)
    total = int(seconds * SR)
    with sf.SoundFile(str(path), "w", samplerate=SR, channels=2, subtype="PCM_16", format="WAV") as f:
        for start in range(0, total, 10 * SR):
            n = min(10 * SR, total - start)
            t = (start + np.arange(n)) / SR
            left = 0.3 * np.sin(2 * np.pi * 220 * t) + 0.05 * rng.standard_normal(n)
            right = 0.3 * np.sin(2 * np.pi * 330 * t) + 0.05 * rng.standard_normal(n)
            f.write(np.stack([left, right], axis=1).astype(np.float32))
    return path


def child(args: argparse.Namespace) -> None:
    import torch
    from demucs.apply import BagOfModels
    from demucs.htdemucs import HTDemucs

    from tools.separate import SeparationOptions, separate_file

    torch.manual_seed(0)
    model = BagOfModels([HTDemucs(sources=["drums", "bass", "other", "vocals"])]).eval()
    params = sum(p.numel() for p in model.parameters())
    after_model = rss_mb()
    opts = SeparationOptions(device=args.device, window=args.window)
    t0 = time.perf_counter()
    separate_file(args.input, args.out, opts, progress=lambda d, t, m: None, model=model)
    elapsed = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(
        json.dumps(
            {
                "params": params,
                "rss_after_model_mb": round(after_model),
                "peak_rss_mb": round(peak),
                "seconds": round(elapsed, 1),
            }
        )
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.bench_separate", description=__doc__.split("\n")[0])
    p.add_argument("--durations", type=float, nargs="+", default=[600.0], help="audio lengths in seconds")
    p.add_argument("--device", default="cpu")
    p.add_argument("--window", type=float, default=40.0, help="seconds per processing window")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--input", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        child(args)
        return 0
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-separate-") as tmp:
        for seconds in args.durations:
            src = write_synthetic(Path(tmp) / f"mix_{int(seconds)}s.wav", seconds)
            run = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "bench.bench_separate",
                    "--child",
                    "--input",
                    str(src),
                    "--out",
                    str(Path(tmp) / "out"),
                    "--device",
                    args.device,
                    "--window",
                    str(args.window),
                ],
                capture_output=True,
                text=True,
                check=False,
            )
            if run.returncode != 0:
                print(run.stderr[-3000:], file=sys.stderr)
                return 1
            row = {"audio_s": seconds, **json.loads(run.stdout.strip().splitlines()[-1])}
            row["realtime_factor"] = round(row["seconds"] / seconds, 2)
            rows.append(row)
            print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
