"""The reranker (CLVP) that picks the best of S1's candidates: a CTC reader (semantic tokens -> phones,
``clvp.reader``) whose log p(phones | candidate) sees skipped, repeated and run-on words, plus a contrastive
phone/semantic-token model (``clvp.model``), combined with a weight calibrated on held-out clips.

Public API (torch and the model code load on first call, not at import):
``load_clvp(path, device="cpu") -> ClvpModel`` and
``rerank(model, phone_ids, candidates) -> list[float]`` (higher = the candidate says the text better),
and ``load_scorer(path, device)``, the two in one: what the synthesiser's callers (the web UI, the
synthesis CLI) hand to ``gpt_sovits.Synthesizer(reranker_loader=...)``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

    from clvp.model import ClvpModel

__all__ = ["load_clvp", "load_scorer", "rerank"]


def load_clvp(path: str, device: str | torch.device = "cpu") -> ClvpModel:
    """Load a CLVP weight file written by ``python -m clvp.train`` (weights_only), in eval mode on ``device``.

    Raises ``clvp.checkpoint.ClvpCheckpointError`` (a ValueError) with a message for a person.
    """
    from clvp.checkpoint import load_clvp_checkpoint

    return load_clvp_checkpoint(path, device)


def rerank(
    model: ClvpModel, phone_ids: list[int], candidates: list[list[int]], batch_size: int = 16
) -> list[float]:
    """Score each candidate (semantic tokens, without EOS) against the phone ids; higher = better.

    With a reader: log p(phones | candidate) per phone + ``score_mix`` x the contrastive score; a CLVP-only
    file: the contrastive ``exp(scale) * cos`` in [-100, 100]. Candidates are batched (``batch_size`` at a
    time) with padding masks, so a score does not depend on the other candidates. A trailing S1 EOS (1024)
    is dropped. Raises ``clvp.model.ClvpInputError`` (a ValueError) for empty inputs or out-of-range ids.
    """
    from clvp.score import score_candidates

    return score_candidates(model, phone_ids, candidates, batch_size=batch_size)


def load_scorer(
    path: str | Path, device: str | torch.device = "cpu"
) -> Callable[[list[int], list[list[int]]], list[float]]:
    """The CLVP model of ``path`` as a candidate scorer: ``scorer(phone_ids, candidates) -> scores``.

    What the synthesiser's callers hand it: ``Synthesizer(..., reranker_loader=clvp.load_scorer)`` (the
    synthesiser caches the scorer per file and device, and never imports clvp itself).
    """
    return functools.partial(rerank, load_clvp(str(path), device))
