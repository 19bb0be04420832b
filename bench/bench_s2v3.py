"""S2 v3/v4 (CFM + vocoder) speed and memory: full-size models with random weights, CPU by default.

    python -m bench.bench_s2v3 [--version v3|v4|all] [--seconds 3] [--steps 0] [--repeats 1]
                               [--threads N] [--device cpu]

Builds `SynthesizerTrnV3` at the official size (DiT dim 1024, depth 22, heads 16) and the version's
vocoder (v3: BigVGAN 24 kHz 100-band 256x; v4: the 48 kHz generator), then synthesises `seconds` of
speech from random 25 Hz tokens and phones with a 3 s reference, as the synthesiser does: the
prompt's conditioning (`prompt_condition`), the chunked CFM (`infer_mel`, `steps` Euler steps;
0 = the version's default, v3 32 / v4 8) and the vocoder. Reports:

- `cfm_step_ms`: one DiT evaluation over one CFM call's frames (prompt + target), the unit every
  sampling step costs;
- `cfm_s`, `vocoder_s`, `total_s` and `rtf` (total / audio seconds; < 1 is faster than real time),
  best of `repeats` after one warm-up;
- `peak_rss_mb` (process `ru_maxrss`).

Random weights make the CFM's cost, not its sound: the numbers time the real code paths.
"""

from __future__ import annotations

import argparse
import json
import resource
import time


def main(argv: list[str] | None = None) -> int:
    import torch

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", default="all", choices=("v3", "v4", "all"))
    p.add_argument("--seconds", type=float, default=3.0, help="speech to synthesise (default 3)")
    p.add_argument("--steps", type=int, default=0, help="CFM steps (0: the version's default)")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    for version in ("v3", "v4") if args.version == "all" else (args.version,):
        print(json.dumps(_bench(version, args)), flush=True)
    return 0


def _vocoder(version: str, device: str):
    from gpt_sovits.models.vocoders import BigVGAN, BigVGANConfig, V4VocoderConfig, VocoderV4

    model = BigVGAN(BigVGANConfig()) if version == "v3" else VocoderV4(V4VocoderConfig())
    return model.eval().to(device)


def _timed(fn, device: str) -> tuple[float, object]:
    import torch

    t0 = time.perf_counter()
    out = fn()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - t0, out


def _bench(version: str, args: argparse.Namespace) -> dict:
    import torch

    from gpt_sovits.models.s2 import N_SYMBOLS
    from gpt_sovits.models.s2v3 import PROFILES, S2V3Config, SynthesizerTrnV3, infer_mel, prompt_condition

    torch.manual_seed(0)
    n_symbols = N_SYMBOLS["v2"]  # v3/v4 take the v2 phone table
    dev = args.device
    profile = PROFILES[version]
    model = SynthesizerTrnV3(S2V3Config.from_hparams(None, version)).eval().to(dev)
    with torch.no_grad():  # give the codebook non-zero entries, as trained weights have
        model.quantizer.vq.layers[0]._codebook.embed.normal_()
    vocoder = _vocoder(version, dev)
    steps = args.steps or profile.default_steps
    n_tokens = max(1, int(args.seconds * 25))
    codes = torch.randint(0, 1024, (1, 1, n_tokens), device=dev)
    text = torch.randint(0, n_symbols, (1, max(1, int(12 * args.seconds))), device=dev)
    ref_tokens = torch.randint(0, 1024, (1, 1, 75), device=dev)  # a 3 s reference
    ref_text = torch.randint(0, n_symbols, (1, 36), device=dev)
    refer = torch.rand(1, 1025, 3 * 32000 // 640, device=dev)  # its 32 kHz linear spectrogram
    ref_mel = torch.randn(1, 100, 3 * profile.mel_rate // profile.mel_hop, device=dev)

    with torch.inference_mode():
        prompt = prompt_condition(model, ref_tokens, ref_text, refer, ref_mel)
        # One DiT evaluation over one CFM call's frames: prompt + a full chunk (or the whole target).
        target = min(profile.t_chunk - prompt.mel.shape[2], int(n_tokens * profile.length_factor))
        frames = prompt.mel.shape[2] + target
        mu = torch.randn(1, frames, 512, device=dev)
        one_step = lambda: model.cfm.inference(mu, torch.tensor([frames], device=dev), prompt.mel, 1)  # noqa: E731
        one_step()  # warm-up
        step_s = min(_timed(one_step, dev)[0] for _ in range(max(1, args.repeats)))

        def synthesise() -> tuple[float, float, int]:
            cfm_s, mel = _timed(lambda: infer_mel(model, prompt, codes, text, steps), dev)
            voc_s, wav = _timed(lambda: vocoder(mel), dev)
            return cfm_s, voc_s, wav.shape[-1]

        synthesise()  # warm-up
        runs = [synthesise() for _ in range(max(1, args.repeats))]
    cfm_s, voc_s, samples = min(runs, key=lambda r: r[0] + r[1])
    audio_s = samples / profile.output_rate
    n_params = sum(p.numel() for p in model.parameters()) + sum(p.numel() for p in vocoder.parameters())
    return {
        "version": version,
        "device": dev,
        "threads": torch.get_num_threads(),
        "params_m": round(n_params / 1e6, 1),
        "steps": steps,
        "audio_s": round(audio_s, 2),
        "cfm_frames": frames,
        "cfm_step_ms": round(step_s * 1000, 1),
        "cfm_s": round(cfm_s, 2),
        "vocoder_s": round(voc_s, 2),
        "total_s": round(cfm_s + voc_s, 2),
        "rtf": round((cfm_s + voc_s) / audio_s, 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


if __name__ == "__main__":
    raise SystemExit(main())
