"""S2 v3/v4 (CFM + vocoder) speed and memory: full-size models with random weights, CPU by default.

    python -m bench.bench_s2v3 [--version v3|v4|all] [--seconds 3] [--steps 0] [--repeats 1]
                               [--threads N] [--device cpu] [--reference PATH]

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

With `--reference PATH` (a RVC-Boss/GPT-SoVITS checkout, imported at run time; `x_transformers` from
the wheel in `bench._reference_v3.XT_WHEEL`, put on `sys.path` only) it times the same work side by
side instead, CPU only: the reference's `SynthesizerTrnV3` (its F5-TTS CFM + DiT) and vocoder (v3
`BigVGAN`, v4 `Generator` with `init_vocoder`'s arguments, weight norm removed as there) at full size
with random weights, copied strictly into ours. Alternating reference / ours, best of `repeats`, after
one warm-up call of each: one CFM step (the same noise, conditioning and prompt), the vocoder on the
same mel, and the whole decode at `steps` (prompt conditioning, chunked CFM, vocoder; no extra
warm-up, the two above warm every part). The reference's TTS class needs ffmpeg, librosa, peft and
transformers, so its decode runs `bench._reference_v3.reference_decode`: the steps of TTS.py
`using_vocoder_synthesis` from `decode_encp` on, calling the reference model's own `decode_encp` and
`CFM.inference`, then its vocoder. One JSON line per measurement: `ref_s`, `ours_s`, `ratio` (reference
/ ours; > 1: we are faster); agreement lines give max |ours - reference| / reference peak on the same
noise (the CFM step, the vocoder's wave, the whole decode's wave); `uptime`'s load average is printed at
the start and the end (the machine may be shared).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
from collections.abc import Callable
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    import torch

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", default="all", choices=("v3", "v4", "all"))
    p.add_argument("--seconds", type=float, default=3.0, help="speech to synthesise (default 3)")
    p.add_argument("--steps", type=int, default=0, help="CFM steps (0: the version's default)")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--reference", type=Path, help="a GPT-SoVITS checkout: time it side by side (CPU)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.reference:
        _print({"load_start": _load()})
        for version in ("v3", "v4") if args.version == "all" else (args.version,):
            _vs_reference(version, args)
        _print({"load_end": _load()})
        return 0
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


def _print(row: dict) -> None:
    print(json.dumps(row), flush=True)


def _load() -> str:
    """`uptime`'s load averages (1, 5, 15 min)."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _side_by_side(
    version: str, what: str, ref: Callable[[], object], ours: Callable[[], object], repeats: int
) -> tuple[object, object]:
    """Best of `repeats` seconds of each, alternating reference / ours; prints one JSON line and
    returns the last outputs (reference, ours)."""
    ref_s, ours_s = float("inf"), float("inf")
    for _ in range(max(1, repeats)):
        t, ref_out = _timed(ref, "cpu")
        ref_s = min(ref_s, t)
        t, ours_out = _timed(ours, "cpu")
        ours_s = min(ours_s, t)
    _print(
        {
            "version": version,
            "what": what,
            "ref_s": round(ref_s, 3),
            "ours_s": round(ours_s, 3),
            "ratio": round(ref_s / ours_s, 3),
        }
    )
    return ref_out, ours_out


def _rel(ours: object, ref: object) -> float:
    """max |ours - ref| / max |ref| of two tensors."""
    import torch

    assert isinstance(ours, torch.Tensor) and isinstance(ref, torch.Tensor)
    return float((ours.float() - ref.float()).abs().max() / ref.float().abs().max())


def _vs_reference(version: str, args: argparse.Namespace) -> None:
    import torch

    from bench._reference_v3 import (
        build_reference_s2,
        build_reference_vocoder,
        import_reference_v3,
        ours_from_reference,
        reference_decode,
    )
    from gpt_sovits.models.cfm import denorm_spec
    from gpt_sovits.models.s2 import N_SYMBOLS
    from gpt_sovits.models.s2v3 import PROFILES, infer_mel, prompt_condition

    ref_cls, gen_cls, bigvgan_cls, stubbed = import_reference_v3(args.reference.resolve())
    torch.manual_seed(0)
    profile = PROFILES[version]
    ref_s2 = build_reference_s2(ref_cls, version)
    ref_voc = build_reference_vocoder(version, gen_cls, bigvgan_cls)
    model, vocoder = ours_from_reference(version, ref_s2, ref_voc)
    steps = args.steps or profile.default_steps
    n_symbols = N_SYMBOLS["v2"]
    n_tokens = max(1, int(args.seconds * 25))
    codes = torch.randint(0, 1024, (1, 1, n_tokens))
    text = torch.randint(0, n_symbols, (1, max(1, int(12 * args.seconds))))
    ref_tokens = torch.randint(0, 1024, (1, 1, 75))  # a 3 s reference
    ref_text = torch.randint(0, n_symbols, (1, 36))
    refer = torch.rand(1, 1025, 3 * 32000 // 640)  # its 32 kHz linear spectrogram
    ref_mel = torch.randn(1, 100, 3 * profile.mel_rate // profile.mel_hop)
    _print(
        {
            "version": version,
            "threads": torch.get_num_threads(),
            "steps": steps,
            "seconds": args.seconds,
            "stubbed": stubbed,
        }
    )

    with torch.inference_mode():
        prompt = prompt_condition(model, ref_tokens, ref_text, refer, ref_mel)
        target = min(profile.t_chunk - prompt.mel.shape[2], int(n_tokens * profile.length_factor))
        frames = prompt.mel.shape[2] + target
        mu = torch.randn(1, frames, 512)
        lens = torch.tensor([frames])
        torch.manual_seed(1)
        noise = torch.randn(1, 100, frames)  # what the reference's CFM.inference draws after seed 1

        def ref_step() -> torch.Tensor:
            torch.manual_seed(1)
            return ref_s2.cfm.inference(mu, lens, prompt.mel, 1, inference_cfg_rate=0)

        def our_step() -> torch.Tensor:
            return model.cfm.inference(mu, lens, prompt.mel, 1, noise=noise)

        agree = _rel(our_step(), ref_step())  # also the warm-up
        _print({"version": version, "agree": "cfm_step", "frames": frames, "max_abs_diff_rel_peak": agree})
        _side_by_side(version, f"cfm_step ({frames} frames)", ref_step, our_step, args.repeats)

        mel = denorm_spec(torch.rand(1, 100, target) * 2 - 1)
        agree = _rel(vocoder(mel), ref_voc(mel))
        _print(
            {"version": version, "agree": "vocoder_wave", "frames": target, "max_abs_diff_rel_peak": agree}
        )
        _side_by_side(
            version, f"vocoder ({target} frames)", lambda: ref_voc(mel), lambda: vocoder(mel), args.repeats
        )

        def ref_decode() -> torch.Tensor:
            torch.manual_seed(2)
            parts = (ref_tokens, ref_text, refer, ref_mel)
            return ref_voc(
                reference_decode(ref_s2, profile.t_ref, profile.t_chunk, parts, codes, text, steps)
            )

        def our_decode() -> torch.Tensor:
            torch.manual_seed(2)  # infer_mel draws from the global RNG as the reference does
            p = prompt_condition(model, ref_tokens, ref_text, refer, ref_mel)
            return vocoder(infer_mel(model, p, codes, text, steps))

        what = f"decode ({steps} steps, {args.seconds:g} s)"
        ref_wav, our_wav = _side_by_side(version, what, ref_decode, our_decode, args.repeats)
        agree = _rel(our_wav, ref_wav)  # the last timed outputs: same seeded noise
        _print({"version": version, "agree": "decode_wave", "steps": steps, "max_abs_diff_rel_peak": agree})


if __name__ == "__main__":
    raise SystemExit(main())
