"""Fidelity of S1's CPU fast path at full size: greedy decodes against exact fp32.

    .venv/bin/python -m bench.fidelity_s1 [--prompts 3] [--tokens 100]

Full-size v2 GPT (s1longer-v2 sizes), random weights rounded to fp16 as checkpoints store them; for each
prompt (random phones, BERT features and a 150-token semantic prompt), a greedy decode (top-k 1, no
repetition penalty, EOS banned) of ``--tokens`` tokens by exact fp32, by the fast path, and by the fast path
with torch's kernels in place of the project's (``cpu_kernels.py``). Prints the first token at which each
fast decode leaves fp32's (none: all agree) and the largest logit change over the steps they share.
"""

from __future__ import annotations

import argparse
import copy

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=int, default=3)
    ap.add_argument("--tokens", type=int, default=100)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from gpt_sovits.models.fastpath import Int8Linear, fast_s1
    from gpt_sovits.models.s1 import S1Config, Text2Semantic
    from gpt_sovits.models.sampling import SamplingParams

    torch.manual_seed(0)
    exact = Text2Semantic(S1Config()).eval()
    with torch.no_grad():
        for p in exact.parameters():
            p.copy_(p.half().float())
    ours = fast_s1(copy.deepcopy(exact))
    torchs = fast_s1(copy.deepcopy(exact))
    torchs.fast_step.kernels = None
    for m in torchs.modules():
        if isinstance(m, Int8Linear):
            m.kernel = None
    kernels_on = ours.fast_step.kernels is not None
    print(f"project kernels {'built' if kernels_on else 'NOT available: both fast rows use torch kernels'}")
    params = SamplingParams(
        top_k=1, repetition_penalty=1.0, max_new_tokens=args.tokens, eos_ban_steps=args.tokens
    )
    g = torch.Generator().manual_seed(1)
    for i in range(args.prompts):
        phones, bert = torch.randint(0, 732, (60,), generator=g), torch.randn(1024, 60, generator=g)
        prompt = torch.randint(0, 1024, (150,), generator=g)

        inputs = ([phones], [bert], prompt, params)
        ref = exact.generate(*inputs, return_step_logits=True).candidates[0][0]
        for name, model in (("fast path", ours), ("fast, torch kernels", torchs)):
            got = model.generate(*inputs, return_step_logits=True).candidates[0][0]
            differ = (got.tokens != ref.tokens).nonzero()
            first = int(differ[0]) if differ.numel() else None
            shared = got.step_logits[: (first if first is not None else args.tokens) + 1]
            change = float((shared - ref.step_logits[: shared.size(0)]).abs().max())
            print(
                f"prompt {i}: {name:20s} first differing token {first if first is not None else 'none'}"
                f" of {args.tokens}; max logit change {change:.3f}"
            )


if __name__ == "__main__":
    main()
