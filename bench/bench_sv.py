"""SV (speaker-verification) embedding time of v2Pro / v2ProPlus: full-size ERes2NetV2, random weights.

    python -m bench.bench_sv [--seconds 10] [--repeats 3] [--threads N] [--device cpu]

Builds the official w24s4ep4 model (``gpt_sovits.models.sv``, 53.6 M tensor elements) with random
weights, saves it in the official format (a plain state dict) and loads it back through ``load_sv``,
then times ``embed`` (Kaldi fbank + network) on `seconds` of random 16 kHz audio: best and median of
`repeats` timed runs after one warm-up, the fbank share, and the process peak RSS (``ru_maxrss``).
This is the cost formatting pays per clip (7-sv_cn) and synthesis pays per reference clip.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import tempfile
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    import torch

    from gpt_sovits.models.sv import SV_DIM, SV_RATE, ERes2NetV2, fbank_features, load_sv

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "pretrained_eres2netv2w24s4ep4.ckpt"
        torch.save(ERes2NetV2().state_dict(), path)
        t0 = time.perf_counter()
        sv = load_sv(path, device=args.device)
        load_s = time.perf_counter() - t0
    wav = (0.1 * torch.randn(1, int(args.seconds * SV_RATE))).to(args.device)

    def timed(fn) -> float:
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        t = time.perf_counter()
        out = fn()
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        assert out.shape[0] == 1
        return time.perf_counter() - t

    emb = sv.embed(wav)  # warm-up
    assert emb.shape == (1, SV_DIM)
    runs = [timed(lambda: sv.embed(wav)) for _ in range(args.repeats)]
    fbank = min(timed(lambda: fbank_features(wav)) for _ in range(args.repeats))
    rss_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    print(
        f"SV embedding of {args.seconds:g} s at 16 kHz on {args.device}, {torch.get_num_threads()} threads: "
        f"best {min(runs):.3f} s, median {statistics.median(runs):.3f} s "
        f"(fbank {fbank * 1000:.1f} ms; load {load_s:.2f} s; peak RSS {rss_gb:.2f} GB)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
