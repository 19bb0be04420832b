"""S1 (Text2Semantic) decoding speed and memory on CPU, full-size v2 architecture with random weights.

    .venv/bin/python -m bench.bench_s1 [--prompt 150] [--tokens 300] [--phones 60] [--batches 1 8]
                                       [--precisions fp32 auto]

For each batch size (N candidates of one sentence decoded together) and precision (``fp32`` exact,
``auto`` the CPU fast path of fastpath.py, alternating) a fresh child process builds the model, decodes ``--tokens`` new tokens after a ``--prompt``-token semantic prompt (EOS banned throughout
so every run has the same length) and reports:
- ms per generated token (decode steps only, the prompt pass reported separately);
- the cost of a step at position ``--tokens`` versus position 10 (KV cache: should stay <= 1.5x);
- peak RSS of the child (``ru_maxrss``) and RSS after the model was built.
Targets (issue 4): a batch-8 step costs at most 2x a batch-1 step; position 300 <= 1.5x position 10.

Figures on the 2-core development machine (shared with other jobs, so they vary by about 30%):

| threads | batch | ms/step (median) | ms/token/row | step at 300 / at 10 | prompt pass | peak RSS |
|--------:|------:|-----------------:|-------------:|--------------------:|------------:|---------:|
| 2 | 1 | 22.2 | 22.5 | 1.07 | 252 ms | 899 MB |
| 2 | 8 | 51.8 | 6.5 | 1.28 | 278 ms | 1277 MB |
| 1 | 1 | 24.6 | 24.7 | 1.12 | 427 ms | 890 MB |
| 1 | 8 | 70.8 | 10.2 | 1.10 | 761 ms | 1270 MB |

A batch-8 step cost 1.9x to 3.3x a batch-1 step over four runs (2.3x in the 2-thread run above). On CPU, batch 8
does 8x the matrix arithmetic (about 1.2 GFLOP per step), so the ratio depends on how busy the cores are.
The model alone takes about 810 MB RSS (77.6 M fp32 parameters plus torch).
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


def child(
    batch: int, prompt_len: int, tokens: int, phones: int, seed: int, threads: int, precision: str
) -> dict:
    import torch

    if threads > 0:
        torch.set_num_threads(threads)

    from gpt_sovits.models.fastpath import apply_precision
    from gpt_sovits.models.s1 import S1Config, Text2Semantic
    from gpt_sovits.models.sampling import SamplingParams

    torch.manual_seed(seed)
    model = Text2Semantic(S1Config()).eval()  # s1longer-v2: 24 layers, 512 wide, 16 heads
    model = apply_precision(model, precision, "cpu")  # what load_gpt(..., precision=) returns
    rss_model = rss_mb()
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 732, (phones,), generator=g)
    bert = torch.randn(1024, phones, generator=g)
    prompt = torch.randint(0, 1024, (prompt_len,), generator=g)
    params = SamplingParams(top_k=15, max_new_tokens=tokens, eos_ban_steps=tokens)

    stamps: list[float] = []
    hook = model.ar_predict_layer.register_forward_hook(lambda *_: stamps.append(time.perf_counter()))
    model.generate(
        [x], [bert], prompt, SamplingParams(top_k=15, max_new_tokens=4, eos_ban_steps=4)
    )  # warm-up
    stamps.clear()
    t0 = time.perf_counter()
    res = model.generate([x], [bert], prompt, params, num_candidates=batch, generator=g)
    total = time.perf_counter() - t0
    hook.remove()
    assert all(c.tokens.numel() == tokens for c in res.candidates[0])
    # stamps[k] is when step k's logits were ready; step k (k >= 1) fed the token at position prompt+k-1.
    steps = [b - a for a, b in zip(stamps, stamps[1:], strict=False)]
    prefill = stamps[0] - t0

    def around(pos: int) -> float:
        window = steps[max(0, pos - 6) : pos + 5]
        return statistics.median(window) * 1000

    return {
        "batch": batch,
        "precision": precision,
        "threads": torch.get_num_threads(),
        "prompt_pass_ms": prefill * 1000,
        "ms_per_step": statistics.mean(steps) * 1000,
        "ms_per_step_median": statistics.median(steps) * 1000,
        "ms_per_token_per_row": statistics.mean(steps) * 1000 / batch,
        "step_ms_at_10": around(10),
        "step_ms_at_end": around(len(steps) - 6),
        "total_s": total,
        "rss_model_mb": rss_model,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prompt", type=int, default=150)
    ap.add_argument("--tokens", type=int, default=300)
    ap.add_argument("--phones", type=int, default=60)
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--precisions", nargs="+", default=["fp32", "auto"], choices=["fp32", "auto"])
    ap.add_argument("--child", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--child-precision", default="auto", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        res = child(
            args.child, args.prompt, args.tokens, args.phones, args.seed, args.threads, args.child_precision
        )
        print(json.dumps(res))
        return
    rows = []
    for b in args.batches:
        for precision in args.precisions:  # alternating, so both see the same machine load
            cmd = [sys.executable, "-m", "bench.bench_s1", "--child", str(b), "--prompt", str(args.prompt)]
            cmd += ["--tokens", str(args.tokens), "--phones", str(args.phones), "--seed", str(args.seed)]
            cmd += ["--threads", str(args.threads), "--child-precision", precision]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            rows.append(json.loads(out.strip().splitlines()[-1]))
    print(
        f"S1 v2 full size, random weights, CPU; prompt {args.prompt}, {args.tokens} new tokens, {args.phones} phones"
    )
    print(
        "prec  batch  ms/step  median  ms/token/row  step@10  step@end  end/10  prompt pass  peak RSS  RSS model"
    )
    for r in rows:
        print(
            f"{r['precision']:>4}  {r['batch']:5d}  {r['ms_per_step']:7.1f}  {r['ms_per_step_median']:6.1f}  {r['ms_per_token_per_row']:12.1f}  {r['step_ms_at_10']:7.1f}"
            f"  {r['step_ms_at_end']:8.1f}  {r['step_ms_at_end'] / r['step_ms_at_10']:6.2f}"
            f"  {r['prompt_pass_ms']:9.0f} ms  {r['peak_rss_mb']:6.0f} MB  {r['rss_model_mb']:6.0f} MB"
        )
    by = {(r["precision"], r["batch"]): r["ms_per_step_median"] for r in rows}
    for b in args.batches:
        if ("fp32", b) in by and ("auto", b) in by:
            print(f"batch {b}: auto is {by['fp32', b] / by['auto', b]:.2f}x fp32 (median step)")
    print(f"torch threads: {rows[0]['threads']}")


if __name__ == "__main__":
    main()
