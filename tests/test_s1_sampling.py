"""S1 sampling helpers: penalty, top-p, top-k, temperature, seeded draws."""

from __future__ import annotations

import pytest
import torch

from gpt_sovits.models.sampling import (
    SamplingError,
    SamplingParams,
    apply_repetition_penalty,
    logits_to_probs,
    sample_from_probs,
    top_k_filter,
    top_p_filter,
)


def test_repetition_penalty_scales_by_sign() -> None:
    logits = torch.tensor([[2.0, -2.0, 1.0, -1.0]])
    seen = torch.tensor([[True, True, False, False]])
    out = apply_repetition_penalty(logits, seen, 2.0)
    assert out.tolist() == [[1.0, -4.0, 1.0, -1.0]]


def test_top_k_keeps_ties_and_top_p_drops_the_token_that_crosses_the_threshold() -> None:
    logits = torch.tensor([[3.0, 1.0, 1.0, 0.0]])
    assert torch.isinf(top_k_filter(logits, 2)).tolist() == [[False, False, False, True]]
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05]])
    # As the reference (unlike Hugging Face): a token goes once the cumulative probability up to and
    # including it exceeds top_p, so 0.7 keeps only the first token (0.5, then 0.8 > 0.7).
    assert (~torch.isinf(top_p_filter(probs.log(), 0.7))).tolist() == [[True, False, False, False]]
    assert (~torch.isinf(top_p_filter(probs.log(), 0.85))).tolist() == [[True, True, False, False]]
    # the most likely token survives even a tiny top_p
    assert (~torch.isinf(top_p_filter(probs.log(), 0.01))).tolist() == [[True, False, False, False]]


def test_order_is_penalty_top_p_temperature_top_k() -> None:
    logits = torch.tensor([[4.0, 3.0, 2.0, -1.0]])
    seen = torch.tensor([[True, False, False, False]])
    params = SamplingParams(top_k=2, top_p=1.0, temperature=0.5, repetition_penalty=2.0)
    penalised, probs = logits_to_probs(logits.clone(), seen, params)
    assert penalised.tolist() == [[2.0, 3.0, 2.0, -1.0]]
    # top-2 after penalty keeps 3.0 and the tie at 2.0 (three tokens), scaled by 1/0.5
    expected = torch.softmax(torch.tensor([[4.0, 6.0, 4.0, float("-inf")]]), -1)
    torch.testing.assert_close(probs, expected)


def test_sampling_follows_distribution_and_generator() -> None:
    probs = torch.tensor([[0.7, 0.2, 0.1, 0.0]]).repeat(20000, 1)
    draws = sample_from_probs(probs, torch.Generator().manual_seed(0))
    freq = torch.bincount(draws, minlength=4).float() / len(draws)
    torch.testing.assert_close(freq, torch.tensor([0.7, 0.2, 0.1, 0.0]), atol=0.02, rtol=0)
    again = sample_from_probs(probs, torch.Generator().manual_seed(0))
    assert torch.equal(draws, again)


def test_params_validate_and_round_trip() -> None:
    p = SamplingParams(top_k=5, temperature=0.7)
    assert SamplingParams.from_dict(p.to_dict()) == p
    with pytest.raises(SamplingError, match="temperature"):
        SamplingParams(temperature=-1).validate()
    with pytest.raises(SamplingError, match="max_new_tokens"):
        SamplingParams(max_new_tokens=0).validate()
