"""S2 (SoVITS) decode speed and memory: full-size models with random weights, CPU by default.

    python -m bench.bench_s2 [--seconds 10] [--repeats 3] [--threads N] [--device cpu]
                             [--version v2|v2Pro|v2ProPlus|all]

Builds `SynthesizerTrn` from the official sizes of each version (`s2.json`, `s2v2Pro.json`,
`s2v2ProPlus.json`; inference form, without `enc_q`; `all` runs the three one after the other), then
decodes `seconds` of audio (25 Hz semantic tokens, 50 Hz content, 32 kHz output) from random tokens,
random phones (about 12 per second) and a 3 s reference spectrogram (v2Pro/ProPlus: and a random SV
embedding; computing it is `bench_sv.py`), as inference does. Reports, per version, the
real-time factor (decode wall time / audio duration; < 1 is faster than real time), the best and
median of `repeats` timed runs after one warm-up, and the process peak RSS (`ru_maxrss`).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import time


def main(argv: list[str] | None = None) -> int:
    import torch

    from gpt_sovits.models.s2 import S2Config

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--version", default="v2", choices=("v2", "v2Pro", "v2ProPlus", "all"))
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    for version in ("v2", "v2Pro", "v2ProPlus") if args.version == "all" else (args.version,):
        print(json.dumps(_bench(S2Config.for_version(version), args)))
    return 0


def _bench(cfg, args: argparse.Namespace) -> dict:
    import torch

    from gpt_sovits.models.s2 import SV_DIM, SynthesizerTrn

    torch.manual_seed(0)
    model = SynthesizerTrn(cfg, with_posterior=False).eval().to(args.device)
    n_params = sum(p.numel() for p in model.parameters())
    with torch.no_grad():  # give the codebook non-zero entries, as trained weights have
        model.quantizer.vq.layers[0]._codebook.embed.normal_()
    sr, hop = cfg.sampling_rate, cfg.hop_length
    n_tokens = int(args.seconds * sr / hop / 2)  # 25 Hz
    codes = torch.randint(0, 1024, (1, 1, n_tokens), device=args.device)
    text = torch.randint(0, cfg.n_symbols, (1, max(1, int(12 * args.seconds))), device=args.device)
    refer = torch.rand(1, cfg.spec_channels, 3 * sr // hop, device=args.device)
    audio_s = n_tokens * 2 * hop / sr
    sv = {"sv_emb": torch.randn(1, SV_DIM, device=args.device)} if cfg.uses_sv else {}

    def run() -> float:
        t0 = time.perf_counter()
        wav = model.decode(codes, text, refer, noise_scale=0.5, **sv)
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        assert wav.shape[-1] == n_tokens * 2 * hop
        return time.perf_counter() - t0

    run()  # warm-up
    times = [run() for _ in range(args.repeats)]
    return {
        "version": cfg.version,
        "device": args.device,
        "threads": torch.get_num_threads(),
        "params_m": round(n_params / 1e6, 2),
        "audio_s": round(audio_s, 2),
        "decode_s_best": round(min(times), 3),
        "decode_s_median": round(statistics.median(times), 3),
        "rtf_best": round(min(times) / audio_s, 4),
        "rtf_median": round(statistics.median(times) / audio_s, 4),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


if __name__ == "__main__":
    raise SystemExit(main())
