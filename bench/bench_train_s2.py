"""S2 (SoVITS v2) fine-tuning step time and peak memory, full-size architecture, random weights.

    .venv/bin/python -m bench.bench_train_s2 [--batches 2] [--seconds 5] [--steps 2] [--threads 0] [--device cpu]

For each batch size a fresh child process builds ``S2Config()`` (the reference's configs/s2.json model:
generator with enc_q, 52.9 M parameters, of which ssl_proj + quantizer are frozen) and the
``MultiPeriodDiscriminator`` (46.7 M), the trainer's two AdamW optimisers (``train_s2.make_optimizers``),
and one batch of items of about ``--seconds`` seconds (a voiced tone at 32 kHz, its spectrogram, random
HuBERT features), collated as in training. It then times ``--steps`` full ``train_s2.train_step`` calls
after one warm-up step; each is the generator forward over the whole clips, the discriminator step and
the generator step on a 20480-sample slice (the reference's segment). It reports the median wall and CPU
(all threads) seconds per step and the child's peak RSS (``ru_maxrss``) beside the RSS after the models
were built. With ``--device cuda`` it uses the trainer's autocast dtype and reports peak CUDA memory.

Figures on the 2-core development machine shared with 7 other jobs (load average 5-10), one torch thread
(with two threads on the loaded machine OpenMP oversubscription made a step 78 s, not representative):

| batch | clip s | device | threads | s/step (median) | CPU s/step | RSS after models | peak RSS |
|------:|-------:|:-------|--------:|----------------:|-----------:|-----------------:|---------:|
| 2 | 5 | cpu | 1 | 4.67 | 4.62 | 993 MB | 3916 MB |
| 2 | 10 | cpu | 1 | 5.42 | 5.39 | 1118 MB | 4286 MB |
| 4 | 5 | cpu | 2 (load ~10) | 100.98 | 40.13 | 1064 MB | 5048 MB |

Most of a step is the per-parameter work on the 46.7 M-parameter discriminator and the generator (AdamW,
weight norm, the discriminator's wide convolutions on the 20480-sample slice), so a longer clip costs
little more (only enc_p/enc_q/flow run over the whole clip). Memory: models + gradients + AdamW state are
~1.6 GB; each 5 s item adds ~0.5 GB of fp32 activations. An 8-epoch run on 100 items at batch 2 is
400 steps, about 30 minutes of one quiet core: CPU fine-tuning of S2 is slow but practical for a small set.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

from bench.memory import rss_mb


def child(batch: int, seconds: float, steps: int, threads: int, device: str, seed: int) -> dict:
    import torch

    if threads > 0:
        torch.set_num_threads(threads)
    from gpt_sovits.data.s2_dataset import S2Example, align_ssl, collate_s2
    from gpt_sovits.device import autocast_dtype, make_grad_scaler
    from gpt_sovits.models.features import spectrogram
    from gpt_sovits.models.s2 import MultiPeriodDiscriminator, S2Config, SynthesizerTrn
    from gpt_sovits.train.s2 import S2Recipe, freeze_content_path, make_optimizers, train_step
    from tests.support.synth import voiced_tone

    torch.manual_seed(seed)
    dev = torch.device(device)
    cfg = S2Config()
    recipe = S2Recipe()
    cfg.segment_size = recipe.segment_size
    net_g = SynthesizerTrn(cfg, with_posterior=True)
    net_d = MultiPeriodDiscriminator()
    freeze_content_path(net_g)
    net_g.to(dev).train()
    net_d.to(dev).train()
    opt_g, opt_d = make_optimizers(net_g, net_d, recipe)
    scaler = make_grad_scaler(dev)
    amp = autocast_dtype(dev)
    rss_model = rss_mb()
    examples = []
    for i in range(batch):
        wav = torch.from_numpy(voiced_tone(seconds - 0.25 * i, 32000, f0=120 + 10 * i, seed=i))
        spec = spectrogram(wav.unsqueeze(0))[0]
        ssl = align_ssl(torch.randn(768, spec.shape[-1]), spec.shape[-1])
        text = torch.randint(1, 732, (int(seconds * 12),))
        examples.append(S2Example(ssl, spec, wav, text))
    data = collate_s2(examples).to(dev)
    times, cpu = [], []
    for i in range(steps + 1):
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t0, c0 = time.perf_counter(), time.process_time()
        train_step(net_g, net_d, opt_g, opt_d, scaler, data, cfg, recipe, amp)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        if i:  # the first step allocates optimiser state and warms up kernels
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    step = statistics.median(times)
    out = {
        "batch": batch,
        "seconds": seconds,
        "threads": torch.get_num_threads(),
        "device": str(dev) + (f" ({amp})" if amp else ""),
        "s_per_step": round(step, 3),
        "cpu_s_per_step": round(statistics.median(cpu), 3),
        "rss_model_mb": round(rss_model),
        "peak_rss_mb": round(peak),
    }
    if dev.type == "cuda":
        out["peak_cuda_mb"] = round(torch.cuda.max_memory_allocated(dev) / 1024**2)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batches", type=int, nargs="+", default=[2])
    p.add_argument("--seconds", type=float, default=5.0, help="length of the longest clip (default 5 s)")
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child is not None:
        res = child(args.child, args.seconds, args.steps, args.threads, args.device, args.seed)
        print(json.dumps(res))
        return 0
    print(
        "| batch | clip s | device | threads | s/step (median) | CPU s/step | RSS after models | peak RSS | peak CUDA |"
    )
    print(
        "|------:|-------:|:-------|--------:|----------------:|-----------:|-----------------:|---------:|----------:|"
    )
    for b in args.batches:
        cmd = [
            sys.executable,
            "-m",
            "bench.bench_train_s2",
            "--child",
            str(b),
            "--seconds",
            str(args.seconds),
        ]
        cmd += ["--steps", str(args.steps), "--threads", str(args.threads), "--device", args.device]
        cmd += ["--seed", str(args.seed)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
        r = json.loads(out)
        cuda = f"{r['peak_cuda_mb']} MB" if "peak_cuda_mb" in r else "-"
        print(
            f"| {r['batch']} | {r['seconds']:g} | {r['device']} | {r['threads']} | {r['s_per_step']:.2f} | "
            f"{r['cpu_s_per_step']:.2f} | {r['rss_model_mb']} MB | {r['peak_rss_mb']} MB | {cuda} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
