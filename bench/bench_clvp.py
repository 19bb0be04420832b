"""CLVP cost: scoring 8 candidates on CPU against S1's decoding time, and training throughput.

    .venv/bin/python -m bench.bench_clvp [--tokens 250] [--candidates 8] [--phones 60] [--s1-steps 60]
        [--train-steps 4] [--threads 0]

1. ``clvp.rerank`` (reader + contrastive score) of ``--candidates`` random candidates of ``--tokens`` semantic tokens against ``--phones``
   phone ids, default (base) and tiny configs, random weights (the cost does not depend on the values):
   median of 5 after a warm-up.
2. One S1 decoding step at full size (v2, batch = candidates, KV cache), measured by ``bench.bench_s1``'s
   code over ``--s1-steps`` steps; the step cost is nearly flat in position, so ``tokens`` steps cost
   ``tokens`` x that. Target (issue 7): reranking adds under 5% to the S1 decoding of the candidates
   (S2 decoding of the chosen one comes on top, so the share of a whole synthesis is smaller still).
3. Training throughput (items/s; each item = its text, its tokens and 4 hard negatives, ``--train-tokens``
   tokens long) for tiny and base, batch 16, forward + backward + AdamW step.

Figures on the 2-core development machine (quiet, load ~1.4; random weights):

| threads | rerank base (8 x 250) | rerank tiny | S1 step, batch 8 | 250 S1 steps | base share | train tiny | train base |
|--------:|----------------------:|------------:|-----------------:|-------------:|-----------:|-----------:|-----------:|
| 1 | 126.7 ms | 12.0 ms | 54.8 ms | 13.7 s | 0.93% | 94 items/s | 7.5 items/s |
| 2 | 67.2 ms | 6.3 ms | 33.4 ms | 8.3 s | 0.81% | 166 items/s | 12.8 items/s |

(Those two rows are the CLVP-only model of format version 1.) With the CTC reader (format version 2,
``clvp.reader``), measured on the same machine crowded by other jobs (load ~10 on 2 cores, so absolute
times are ~10x the quiet ones; both sides of the ratio ran under the same load), 1 thread,
``--s1-steps 10 --train-steps 2``:

| threads | rerank base (8 x 250) | rerank tiny | S1 step, batch 8 | 250 S1 steps | base share | tiny share |
|--------:|----------------------:|------------:|-----------------:|-------------:|-----------:|-----------:|
| 1 (busy) | 2953 ms | 771 ms | 792 ms | 198 s | 1.49% | 0.39% |

Reranking 8 candidates with the default model costs under 2% of decoding them (target: under 5%).
On a machine crowded with other jobs, torch's default thread count can be many times slower than one
thread for these small matrices (spin-waiting threads); ``clvp.train --threads 1`` helps there.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time


def time_rerank(config: str, tokens: int, candidates: int, phones: int, repeats: int = 5) -> float:
    """Median seconds of one ``clvp.rerank`` call."""
    import torch

    import clvp
    from clvp.model import ClvpConfig, ClvpModel

    torch.manual_seed(0)
    model = ClvpModel(ClvpConfig.preset(config)).eval()
    rng = random.Random(0)
    ph = [rng.randrange(732) for _ in range(phones)]
    cands = [[rng.randrange(1024) for _ in range(tokens - rng.randrange(0, 20))] for _ in range(candidates)]
    clvp.rerank(model, ph, cands)  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        clvp.rerank(model, ph, cands)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def train_throughput(
    config: str, steps: int, batch: int = 16, tokens: int = 100, negatives: int = 4
) -> float:
    """Items per second of training steps (after one warm-up step)."""
    import torch

    from clvp.data import ClvpItem, collate
    from clvp.model import ClvpConfig, ClvpModel

    torch.manual_seed(0)
    model = ClvpModel(ClvpConfig.preset(config)).train()
    opt = torch.optim.AdamW(model.parameters(), 3e-4)
    rng = random.Random(0)
    items = [
        ClvpItem(
            f"i{i}",
            [rng.randrange(732) for _ in range(tokens // 2)],
            [rng.randrange(1024) for _ in range(tokens)],
        )
        for i in range(batch)
    ]
    times = []
    for _ in range(steps + 1):
        t0 = time.perf_counter()
        b = collate(items, negatives, rng, model.cfg.text_pad, model.cfg.speech_pad)
        out = model(b.text, b.text_lens, b.speech, b.speech_lens, b.neg, b.neg_lens)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        times.append(time.perf_counter() - t0)
    return batch / statistics.median(times[1:])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokens", type=int, default=250)
    ap.add_argument("--candidates", type=int, default=8)
    ap.add_argument("--phones", type=int, default=60)
    ap.add_argument("--s1-steps", type=int, default=60, help="S1 steps measured (0: skip the S1 comparison)")
    ap.add_argument("--train-steps", type=int, default=4)
    ap.add_argument("--train-tokens", type=int, default=100)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON too")
    args = ap.parse_args()

    import torch

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    out: dict = {"threads": torch.get_num_threads()}
    for cfg in ("base", "tiny"):
        out[f"rerank_ms_{cfg}"] = time_rerank(cfg, args.tokens, args.candidates, args.phones) * 1000
    if args.s1_steps:
        from bench.bench_s1 import child as s1_decode

        s1 = s1_decode(args.candidates, 150, args.s1_steps, args.phones, 0, args.threads)
        out["s1_step_ms"] = s1["ms_per_step"]
        out["s1_decode_ms"] = s1["ms_per_step"] * args.tokens
        for cfg in ("base", "tiny"):
            out[f"rerank_share_{cfg}"] = out[f"rerank_ms_{cfg}"] / out["s1_decode_ms"]
    for cfg in ("tiny", "base"):
        out[f"train_items_per_s_{cfg}"] = train_throughput(cfg, args.train_steps, tokens=args.train_tokens)

    print(f"CLVP on CPU, {out['threads']} torch threads, random weights")
    print(f"rerank {args.candidates} x {args.tokens} tokens vs {args.phones} phones:")
    for cfg in ("base", "tiny"):
        line = f"  {cfg:4s}: {out[f'rerank_ms_{cfg}']:8.1f} ms"
        if args.s1_steps:
            line += f"  = {100 * out[f'rerank_share_{cfg}']:.2f}% of S1 decoding {args.tokens} steps"
        print(line)
    if args.s1_steps:
        print(
            f"S1 full size, batch {args.candidates}: {out['s1_step_ms']:.1f} ms/step -> "
            f"{out['s1_decode_ms'] / 1000:.1f} s for {args.tokens} steps"
        )
    for cfg in ("tiny", "base"):
        print(f"training {cfg}: {out[f'train_items_per_s_{cfg}']:.1f} items/s (batch 16, 4 negatives each)")
    if args.json:
        print(json.dumps(out))


if __name__ == "__main__":
    main()
