"""Does CLVP pick the true tokens among S1-style failures? Top-1 accuracy and mean rank on held-out items.

For each held-out item, K candidates: the true tokens plus K-1 corrupted copies (repeat, drop, truncate,
run-on, other item, in turn; ``clvp.negatives`` with a fixed seed and spans of at least ``--min-span``
tokens, about a word at 25 Hz). Each selection rule ranks the K candidates:

- ``clvp``: the reranker's score, what synthesis uses (``clvp.rerank``): with a reader (format version 2)
  the reader's log p(phones | candidate) per phone + the calibrated ``score_mix`` x the contrastive score,
  else the contrastive score;
- ``reader``: the CTC reader's log-likelihood alone (``clvp.reader``);
- ``clvp contrastive``: the pooled contrastive score alone (scale x cosine);
- ``s1``: S1's teacher-forced mean log-probability per token (including the final EOS) of each
  candidate given the item's phones (BERT features from ``3-bert`` when present, else zeros), with
  ``--gpt CKPT``; this is what a "highest likelihood" pick does;
- ``random``: a uniform choice (expected top-1 = 1/K, mean rank = (K+1)/2, reported exactly).

    python -m clvp.evaluate --ckpt weights/clvp/exp-e20.pt --exp-dir experiments/exp [--k 6] [--gpt G.ckpt]

Prints one table (also per corruption kind: how often the true tokens beat that corruption) and writes it
as JSON with ``--json FILE``.

Measured figures (the easy corpus of ``tests/support/clvp_corpus.py`` and the hard one of
``tests/support/clvp_corpus_hard.py``, several pattern rules) are in the README's "CLVP reranking" section,
with the command lines. The figures of the CLVP-only model (format version 1) on the easy corpus: top-1
0.965 held-out, 0.953 unseen; on a hard corpus 0.52 (issue 14).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from clvp.data import ClvpItem
from clvp.negatives import KINDS, SpanSpec, corrupt
from core.errors import UserError
from core.jobs import EXIT_OK, EXIT_USER_ERROR

EVAL_SPAN = SpanSpec(lo=0.1, hi=0.3, min_tokens=8)


@dataclass
class EvalCase:
    """One held-out item: candidates[0] is the true sequence, kinds[j] names candidates[j]."""

    item: ClvpItem
    candidates: list[list[int]]
    kinds: list[str]


@dataclass
class RuleResult:
    """Top-1 accuracy, mean rank (1 = best) of the true sequence, and per kind the fraction of cases where
    the true sequence scored strictly above that corruption."""

    name: str
    top1: float
    mean_rank: float
    beats: dict[str, float] = field(default_factory=dict)
    n: int = 0


def make_cases(
    items: Sequence[ClvpItem], k: int = 6, seed: int = 0, spec: SpanSpec = EVAL_SPAN
) -> list[EvalCase]:
    """K candidates per item (true + K-1 corruptions, kinds in turn); deterministic in ``seed``."""
    if k < 2:
        raise ValueError("k must be at least 2 (the true sequence and one corruption)")
    if len(items) < 2:
        raise ValueError("evaluation needs at least 2 held-out items (one supplies the other's tokens)")
    rng = random.Random(seed)
    cases = []
    for i, it in enumerate(items):
        cands, kinds = [list(it.tokens)], ["true"]
        for j in range(k - 1):
            kind = KINDS[j % len(KINDS)]
            other = items[(i + 1 + rng.randrange(len(items) - 1)) % len(items)].tokens
            cands.append(corrupt(it.tokens, kind, rng, other, spec))
            kinds.append(kind)
        cases.append(EvalCase(it, cands, kinds))
    return cases


def rank_of_true(scores: Sequence[float]) -> int:
    """1-based rank of candidate 0; ties count against it (a rule that cannot tell them apart gets no credit)."""
    return 1 + sum(1 for s in scores[1:] if s >= scores[0])


def summarise(name: str, cases: Sequence[EvalCase], scores: Sequence[Sequence[float]]) -> RuleResult:
    ranks = [rank_of_true(s) for s in scores]
    beats: dict[str, list[bool]] = {}
    for case, s in zip(cases, scores, strict=True):
        for kind, v in zip(case.kinds[1:], s[1:], strict=True):
            beats.setdefault(kind, []).append(s[0] > v)
    return RuleResult(
        name=name,
        top1=sum(r == 1 for r in ranks) / len(ranks),
        mean_rank=sum(ranks) / len(ranks),
        beats={k: sum(v) / len(v) for k, v in beats.items()},
        n=len(ranks),
    )


def random_result(cases: Sequence[EvalCase]) -> RuleResult:
    """The exact expectation of a uniform pick (no sampling noise)."""
    k = len(cases[0].candidates)
    kinds = {kind for c in cases for kind in c.kinds[1:]}
    return RuleResult("random", 1.0 / k, (k + 1) / 2, {kind: 0.5 for kind in sorted(kinds)}, len(cases))


def score_parts_of(model: Any, cases: Sequence[EvalCase]) -> dict[str, list[list[float]]]:
    """Each of the model's scores (``clvp.score.score_parts``) of every case: part -> per case -> per candidate."""
    from clvp.score import score_parts

    out: dict[str, list[list[float]]] = {}
    for c in cases:
        for part, scores in score_parts(model, c.item.phone_ids, c.candidates).items():
            out.setdefault(part, []).append(scores)
    return out


def combined_scores(parts: dict[str, list[list[float]]], mix: float) -> list[list[float]]:
    """The reranking score (``clvp.score.combine``) of every case."""
    from clvp.score import combine

    n = len(parts["clvp"])
    return [combine({k: v[i] for k, v in parts.items()}, mix) for i in range(n)]


def reranker_results(model: Any, cases: Sequence[EvalCase]) -> list[RuleResult]:
    """Rows for a reranker: ``clvp`` (its reranking score, what synthesis uses), and with a reader
    ``reader`` (CTC log-likelihood alone) and ``clvp contrastive`` (the pooled score alone)."""
    from clvp.score import model_mix

    parts = score_parts_of(model, cases)
    rows = [summarise("clvp", cases, combined_scores(parts, model_mix(model)))]
    if "reader" in parts:
        rows.append(summarise("reader", cases, parts["reader"]))
        rows.append(summarise("clvp contrastive", cases, parts["clvp"]))
    return rows


def clvp_scores(model: Any, cases: Sequence[EvalCase]) -> list[list[float]]:
    """The reranking score of every case."""
    from clvp.score import model_mix

    return combined_scores(score_parts_of(model, cases), model_mix(model))


def evaluate_clvp(model: Any, items: Sequence[ClvpItem], k: int = 6, seed: int = 0) -> RuleResult:
    """The reranking score's result on ``items``."""
    cases = make_cases(items, k, seed)
    return summarise("clvp", cases, clvp_scores(model, cases))


# ------------------------------------------------------------------------------------------- S1 baseline


@torch.inference_mode()
def s1_mean_logprobs(
    gpt: Any,
    phone_ids: Sequence[int],
    candidates: Sequence[Sequence[int]],
    bert: torch.Tensor | None = None,
) -> list[float]:
    """Mean log-probability per token (candidate tokens + the final EOS) under S1, teacher-forced, with the
    item's phones as the only prefix (no prompt). ``bert`` (1024, n_phones) or zeros."""
    from gpt_sovits.models.s1 import BERT_DIM

    device = next(gpt.parameters()).device
    n = len(candidates)
    x = torch.tensor([list(phone_ids)] * n, dtype=torch.long, device=device)  # (n, Tx), no padding
    x_lens = torch.full((n,), x.shape[1], dtype=torch.long, device=device)
    feats = bert if bert is not None else torch.zeros(BERT_DIM, x.shape[1])
    feats = feats.to(device, torch.float32).unsqueeze(0).expand(n, -1, -1)  # (n, 1024, Tx)
    y_lens = torch.tensor([len(c) for c in candidates], dtype=torch.long, device=device)
    y = torch.zeros(n, int(y_lens.max()), dtype=torch.long, device=device)
    for i, c in enumerate(candidates):
        y[i, : len(c)] = torch.tensor(list(c), dtype=torch.long)
    out = gpt(x, x_lens, y, y_lens, feats)
    logp = out.logits.float().log_softmax(-1).gather(2, out.targets.unsqueeze(2)).squeeze(2)  # (n, Ty+1)
    keep = torch.arange(logp.shape[1], device=device).unsqueeze(0) <= y_lens.unsqueeze(1)  # tokens + EOS
    return ((logp * keep).sum(1) / (y_lens + 1)).tolist()


def s1_scores(gpt: Any, cases: Sequence[EvalCase], bert_for: Callable[[ClvpItem], Any]) -> list[list[float]]:
    return [s1_mean_logprobs(gpt, c.item.phone_ids, c.candidates, bert_for(c.item)) for c in cases]


def _bert_loader(item: ClvpItem) -> torch.Tensor | None:
    """3-bert/<name>.pt of the item's experiment when present (Chinese clips), else None (zeros)."""
    from gpt_sovits.data.experiment import ExperimentPaths

    p = ExperimentPaths.of(item.source).bert(item.name)
    if not p.is_file():
        return None
    t = torch.load(p, map_location="cpu", weights_only=True)
    return t if t.dim() == 2 and t.shape[1] == len(item.phone_ids) else None


# ------------------------------------------------------------------------------------------------- report


def format_table(results: Sequence[RuleResult], k: int) -> str:
    kinds = sorted({kind for r in results for kind in r.beats})
    head = ["rule", "top-1", "mean rank"] + [f"beats {kind}" for kind in kinds]
    rows = [head, ["---"] * len(head)]
    for r in results:
        rows.append(
            [r.name, f"{r.top1:.3f}", f"{r.mean_rank:.2f}"]
            + [f"{r.beats[kind]:.3f}" if kind in r.beats else "-" for kind in kinds]
        )
    n = results[0].n if results else 0
    lines = ["| " + " | ".join(row) + " |" for row in rows]
    return f"{n} held-out items, K = {k} candidates (true + {k - 1} corruptions)\n\n" + "\n".join(lines)


def run_evaluation(
    ckpt: str | Path | None,
    exp_dirs: Sequence[str | Path],
    k: int = 6,
    gpt_path: str | Path | None = None,
    held_out: float = 0.1,
    all_items: bool = False,
    seed: int = 0,
    device: str = "cpu",
    limit: int = 0,
) -> tuple[list[RuleResult], int]:
    """The table's rows (clvp when ``ckpt``, s1 when ``gpt_path``, random always) and the number of items."""
    from clvp.checkpoint import load_clvp_checkpoint
    from clvp.data import ClvpDataError, load_items, split_items
    from gpt_sovits.device import pick_device

    items, _notes = load_items(exp_dirs)
    if not all_items:
        _train, items = split_items(items, held_out)
        if not items:
            raise ClvpDataError(
                "no held-out items (fewer than 10 clips, or none hashed into the held-out part); use --all"
            )
    if limit:
        items = items[:limit]
    cases = make_cases(items, k, seed)
    dev = pick_device(device)
    results = []
    if ckpt:
        model = load_clvp_checkpoint(ckpt, dev)
        results += reranker_results(model, cases)
    if gpt_path:
        from gpt_sovits.models.weights import load_gpt

        gpt, _cfg = load_gpt(gpt_path, dev, precision="fp32")
        results.append(summarise("s1 mean log-prob", cases, s1_scores(gpt, cases, _bert_loader)))
    results.append(random_result(cases))
    return results, len(items)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ckpt", help="CLVP weights (.pt from python -m clvp.train)")
    ap.add_argument("--exp-dir", nargs="+", required=True, help="formatted experiment folder(s)")
    ap.add_argument("--k", type=int, default=6, help="candidates per item, the true one included (default 6)")
    ap.add_argument("--gpt", help="GPT (S1) weights for the log-probability baseline")
    ap.add_argument("--held-out", type=float, default=0.1, help="held-out fraction, as in training (0.1)")
    ap.add_argument("--all", action="store_true", help="evaluate every item (a folder not used in training)")
    ap.add_argument("--limit", type=int, default=0, help="evaluate at most this many items (0 = all)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads for torch (0 = torch's default)")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args(argv)
    if not args.ckpt and not args.gpt:
        ap.error("give --ckpt (CLVP) and/or --gpt (S1)")
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    try:
        results, n = run_evaluation(
            args.ckpt,
            args.exp_dir,
            args.k,
            args.gpt,
            args.held_out,
            args.all,
            args.seed,
            args.device,
            args.limit,
        )
    except UserError as e:  # bad folders, weights or device: the message says what to do
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USER_ERROR
    print(format_table(results, args.k))
    if args.json:
        from core.fsutil import atomic_write_text

        payload = {"k": args.k, "items": n, "results": [r.__dict__ for r in results]}
        atomic_write_text(args.json, json.dumps(payload, indent=2) + "\n")
    return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
