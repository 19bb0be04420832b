"""Choosing among S1's candidates: mean log-probability plus the weighted scores of pluggable scorers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from gpt_sovits.infer.result import CandidateInfo, Scorer

if TYPE_CHECKING:
    from gpt_sovits.models.s1 import Candidate


def mean_logprob(c: Candidate) -> float:
    return float(c.logprobs.mean()) if c.logprobs.numel() else float("-inf")


def select_candidates(
    phones: list[int],
    candidates: list[Candidate],
    scorers: Mapping[str, tuple[Scorer, float]],
    lp_weight: float,
) -> tuple[list[CandidateInfo], int]:
    """Score every candidate (mean log-prob + weighted extra scorers) and pick the highest total."""
    infos = [
        CandidateInfo(
            tokens=c.tokens.tolist(),
            mean_logprob=mean_logprob(c),
            scores={"logprob": mean_logprob(c)},
            total=lp_weight * mean_logprob(c),
            eos=c.eos,
        )
        for c in candidates
    ]
    usable = [i for i, c in enumerate(infos) if c.tokens]
    for name, (scorer, weight) in scorers.items():
        if not usable:
            break
        values = scorer(phones, [infos[i].tokens for i in usable])
        if len(values) != len(usable):
            raise RuntimeError(f"scorer {name!r} returned {len(values)} scores for {len(usable)} candidates")
        for i, v in zip(usable, values, strict=True):
            infos[i].scores[name] = float(v)
            infos[i].total += weight * float(v)
    for i, c in enumerate(infos):
        if i not in usable:
            c.total = float("-inf")
    return infos, best_candidate(infos)


def best_candidate(infos: Sequence[CandidateInfo]) -> int:
    """The index of the highest total (the first one on a tie)."""
    return max(range(len(infos)), key=lambda i: (infos[i].total, -i))
