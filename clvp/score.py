"""Scoring S1 candidates with a CLVP model (the body of ``clvp.rerank``).

With a reader (format version 2) the score is the reader's log p(phones | candidate) per phone plus the
calibrated ``score_mix`` times the contrastive score; a CLVP-only file (version 1) scores by the contrastive
score alone, as before.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from clvp.model import N_CODES, N_PHONES, ClvpInputError, ClvpModel, pad_sequences

S1_EOS = N_CODES  # S1's end-of-sequence id; a candidate may still carry it at the end


def _as_int_list(seq: Sequence[int] | torch.Tensor, what: str) -> list[int]:
    if isinstance(seq, torch.Tensor):
        seq = seq.reshape(-1).tolist()
    try:
        return [int(v) for v in seq]
    except (TypeError, ValueError) as e:
        raise ClvpInputError(f"{what} must be a sequence of integer ids") from e


def check_phones(phone_ids: Sequence[int] | torch.Tensor) -> list[int]:
    """Validated phone ids (v2 table, 0..731)."""
    ids = _as_int_list(phone_ids, "phone_ids")
    if not ids:
        raise ClvpInputError("CLVP needs the sentence's phone ids, got an empty list")
    bad = [v for v in ids if not 0 <= v < N_PHONES]
    if bad:
        raise ClvpInputError(f"phone ids must be in 0..{N_PHONES - 1} (v2 table); got {bad[:5]}")
    return ids


def check_tokens(tokens: Sequence[int] | torch.Tensor, index: int) -> list[int]:
    """Validated semantic tokens (0..1023), a trailing S1 EOS removed."""
    ids = _as_int_list(tokens, f"candidate {index}")
    while ids and ids[-1] == S1_EOS:
        ids.pop()
    if not ids:
        raise ClvpInputError(f"candidate {index} has no semantic tokens to score")
    bad = [v for v in ids if not 0 <= v < N_CODES]
    if bad:
        raise ClvpInputError(f"candidate {index}: semantic tokens must be in 0..{N_CODES - 1}; got {bad[:5]}")
    return ids


@torch.inference_mode()
def score_parts(
    model: ClvpModel,
    phone_ids: Sequence[int] | torch.Tensor,
    candidates: Sequence[Sequence[int] | torch.Tensor],
    batch_size: int = 16,
) -> dict[str, list[float]]:
    """Each score of each candidate, in input order: ``clvp`` (scale * cos of the pooled embeddings) and,
    when the model has a reader, ``reader`` (log p(phones | candidate) per phone). Candidates are batched
    with padding masks, so a candidate's scores do not depend on the others."""
    if len(candidates) == 0:
        raise ClvpInputError("rerank needs at least one candidate, got an empty list")
    phones = check_phones(phone_ids)
    cands = [check_tokens(c, i) for i, c in enumerate(candidates)]
    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        text, text_lens = pad_sequences([phones], model.cfg.text_pad, device)
        t = model.encode_text(text, text_lens)  # (1, D)
        scale = model.scale()
        out: dict[str, list[float]] = {"clvp": []}
        if model.reader is not None:
            out["reader"] = []
        for i in range(0, len(cands), max(1, batch_size)):
            ids, lens = pad_sequences(cands[i : i + batch_size], model.cfg.speech_pad, device)
            s = model.encode_speech(ids, lens)  # (b, D)
            out["clvp"].extend((scale * (s @ t[0])).tolist())
            if model.reader is not None:
                b = ids.shape[0]
                out["reader"].extend(
                    model.reader_score(text.expand(b, -1), text_lens.expand(b), ids, lens).tolist()
                )
        return out
    finally:
        model.train(was_training)


def combine(parts: dict[str, list[float]], mix: float) -> list[float]:
    """The reranking score: ``reader + mix * clvp`` with a reader, else the CLVP score alone."""
    if "reader" not in parts:
        return list(parts["clvp"])
    return [r + mix * c for r, c in zip(parts["reader"], parts["clvp"], strict=True)]


def model_mix(model: ClvpModel) -> float:
    """The model's calibrated weight of the contrastive score (0 without a reader)."""
    mix = getattr(model, "score_mix", None)
    return float(mix) if mix is not None else 0.0


def score_candidates(
    model: ClvpModel,
    phone_ids: Sequence[int] | torch.Tensor,
    candidates: Sequence[Sequence[int] | torch.Tensor],
    batch_size: int = 16,
) -> list[float]:
    """The reranking score of each candidate, in input order (see ``combine``); higher = better."""
    return combine(score_parts(model, phone_ids, candidates, batch_size), model_mix(model))
