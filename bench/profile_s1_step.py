"""Profile one S1 decode step at full size (s1longer-v2: 24 layers, 512 wide, 16 heads), random weights.

    .venv/bin/python -m bench.profile_s1_step [--batch 1] [--prompt 210] [--precision auto] [--threads 1]

Builds the model through our classes and ``apply_precision``, decodes a few warm-up steps after a
``--prompt``-token semantic prompt (plus 60 phones), then runs ``--steps`` more under torch.profiler and
prints the operators by self CPU time, and the wall time per step (best of the profiled-free runs).
"""

from __future__ import annotations

import argparse
import time

import torch


def build(precision: str, seed: int = 0) -> torch.nn.Module:
    from gpt_sovits.models.fastpath import apply_precision
    from gpt_sovits.models.s1 import S1Config, Text2Semantic

    torch.manual_seed(seed)
    return apply_precision(Text2Semantic(S1Config()).eval(), precision, "cpu")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--prompt", type=int, default=210)
    ap.add_argument("--phones", type=int, default=60)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rows", type=int, default=25)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from gpt_sovits.models.sampling import SamplingParams

    model = build(args.precision)
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 732, (args.phones,), generator=g)
    bert = torch.randn(1024, args.phones, generator=g)
    prompt = torch.randint(0, 1024, (args.prompt,), generator=g)
    n = args.steps
    params = SamplingParams(top_k=15, max_new_tokens=n, eos_ban_steps=n)

    stamps: list[float] = []
    model.ar_predict_layer.register_forward_hook(lambda *_: stamps.append(time.perf_counter()))

    def run() -> list[float]:
        stamps.clear()
        model.generate([x], [bert], prompt, params, num_candidates=args.batch, generator=g)
        return [b - a for a, b in zip(stamps[1:], stamps[2:], strict=False)]

    run()  # warm-up
    best = min(min(run()) for _ in range(3))
    print(
        f"batch {args.batch}: best step {best * 1000:.2f} ms (median of a run: "
        f"{sorted(run())[n // 2 - 1] * 1000:.2f} ms)"
    )
    # Profile the decode steps only: start at the first output-layer call (after the prompt pass).
    prof = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU])
    started: list[bool] = []

    def start(*_: object) -> None:
        if not started:
            started.append(True)
            prof.start()

    hook = model.ar_predict_layer.register_forward_pre_hook(start)
    run()
    prof.stop()
    hook.remove()
    print(f"profiled {n} steps; per step:")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.rows))


if __name__ == "__main__":
    main()
