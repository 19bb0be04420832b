"""S1 (Text2Semantic) training step time and peak memory on CPU, full-size v2 architecture, random weights.

    .venv/bin/python -m bench.bench_train_s1 [--batches 2 4] [--phones 200] [--tokens 250] [--steps 3] [--dpo]

For each batch size a fresh child process builds ``S1Config()`` (24 layers, 512 wide, 16 heads: 77.6 M
parameters), the trainer's optimiser (ScaledAdam) and one batch of ``--phones`` phones (+ random BERT
features) and ``--tokens`` semantic tokens per item, then times ``--steps`` full training steps after one
warm-up step, each = forward + summed-CE loss (``train_s1.batch_loss``, as in training) + backward +
optimiser step. It reports the median wall and CPU (all threads) seconds per step, wall seconds per item,
and the child's peak RSS (``ru_maxrss``) beside the RSS after the model was built.

Figures on the 2-core development machine while 7 other jobs ran on it (load average ~13, so wall times
are ~7x the CPU times; the CPU column is what a quiet single core would take), 200 phones + 250 tokens:

| batch | threads | DPO | s/step (median) | CPU s/step | s/item | RSS after model | peak RSS |
|------:|--------:|:---:|----------------:|-----------:|-------:|----------------:|---------:|
| 2 | 1 | no | 46.20 | 6.70 | 23.10 | 921 MB | 7214 MB |
| 4 | 1 | no | 47.78 | 13.88 | 11.95 | 921 MB | 9582 MB |
| 2 | 2 | no | 68.18 | - | 34.09 | 921 MB | 7686 MB |
| 4 | 2 | no | 119.91 | - | 29.98 | 921 MB | 9681 MB |

CPU cost is linear in the batch (~3.4 CPU-seconds per 450-position item: forward + backward + ScaledAdam).
Memory: the model with gradients and ScaledAdam state is ~1.9 GB; activations add ~1.2-2.7 GB per item
in fp32 on CPU, mostly the (B, 16, 450, 450) attention tensors that the math attention path keeps for
the backward of every layer. Full-size S1 fine-tuning on CPU is therefore a correctness path, not a
practical one: a 15-epoch run on 100 items at batch 4 is ~375 steps, ~1.5 hours of one quiet core.
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


def child(batch: int, phones: int, tokens: int, steps: int, dpo: bool, threads: int, seed: int) -> dict:
    import torch

    if threads > 0:
        torch.set_num_threads(threads)
    from gpt_sovits.data.s1_dataset import S1Batch
    from gpt_sovits.models.s1 import S1Config, Text2Semantic
    from gpt_sovits.train.optim import ScaledAdam
    from gpt_sovits.train.s1 import batch_loss

    torch.manual_seed(seed)
    cfg = S1Config()
    model = Text2Semantic(cfg).train()
    optimizer = ScaledAdam(model.parameters(), lr=0.002, betas=(0.9, 0.95), clipping_scale=2.0)
    rss_model = rss_mb()
    g = torch.Generator().manual_seed(seed)
    # lengths vary a little within the batch, as length-bucketed batches do
    x_lens = torch.tensor([phones - 3 * i for i in range(batch)])
    y_lens = torch.tensor([tokens - 5 * i for i in range(batch)])
    x = torch.randint(1, cfg.phoneme_vocab_size, (batch, phones), generator=g)
    y = torch.randint(0, 1024, (batch, tokens), generator=g)
    bert = torch.randn(batch, 1024, phones, generator=g)
    data = S1Batch(x, x_lens, y, y_lens, bert, [f"item{i}" for i in range(batch)])
    times, cpu = [], []
    for i in range(steps + 1):
        t0, c0 = time.perf_counter(), time.process_time()
        loss, _metrics = batch_loss(model, data, dpo, cfg.EOS)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if i:  # the first step allocates optimiser state and warms up kernels
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    step = statistics.median(times)
    return {
        "batch": batch,
        "threads": torch.get_num_threads(),
        "dpo": dpo,
        "s_per_step": round(step, 3),
        "s_per_item": round(step / batch, 3),
        "cpu_s_per_step": round(statistics.median(cpu), 3),
        "rss_model_mb": round(rss_model),
        "peak_rss_mb": round(peak),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batches", type=int, nargs="+", default=[2, 4])
    p.add_argument("--phones", type=int, default=200)
    p.add_argument("--tokens", type=int, default=250)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    p.add_argument("--dpo", action="store_true", help="time the DPO loss (chosen + rejected pass)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child is not None:
        res = child(args.child, args.phones, args.tokens, args.steps, args.dpo, args.threads, args.seed)
        print(json.dumps(res))
        return 0
    print("| batch | threads | DPO | s/step (median) | CPU s/step | s/item | RSS after model | peak RSS |")
    print("|------:|--------:|:---:|----------------:|-----------:|-------:|----------------:|---------:|")
    for b in args.batches:
        cmd = [sys.executable, "-m", "bench.bench_train_s1", "--child", str(b)]
        cmd += ["--phones", str(args.phones), "--tokens", str(args.tokens), "--steps", str(args.steps)]
        cmd += ["--threads", str(args.threads), "--seed", str(args.seed)] + (["--dpo"] if args.dpo else [])
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
        r = json.loads(out)
        print(
            f"| {r['batch']} | {r['threads']} | {'yes' if r['dpo'] else 'no'} | {r['s_per_step']:.2f} | "
            f"{r['cpu_s_per_step']:.2f} | "
            f"{r['s_per_item']:.2f} | {r['rss_model_mb']} MB | {r['peak_rss_mb']} MB |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
