"""Sampling helpers for S1 decoding: pure functions over (B, V) logits.

The order of operations follows the reference decoder (``AR/models/utils.py logits_to_probs``):
repetition penalty, then top-p on the temperature-1 distribution, then temperature, then top-k, then a
multinomial draw. Banning a token (EOS during the first steps) is done by setting its logit to -inf,
which gives the same distribution as the reference's removal of the EOS column.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch

from core.errors import UserError


class SamplingError(UserError, ValueError):
    """Sampling parameters that cannot be used (for example a negative temperature)."""


@dataclass
class SamplingParams:
    """How S1 picks each next semantic token.

    ``top_k`` <= 0 disables top-k, ``top_p`` >= 1 disables top-p. ``eos_ban_steps`` is the number of first
    decoding steps in which EOS cannot be chosen (the reference uses 11, i.e. at least 0.44 s of audio).
    ``max_new_tokens`` caps the number of generated tokens; the reference's ``early_stop_num=E``
    corresponds to ``max_new_tokens=E + 1`` (it stops once more than E tokens were generated).
    """

    top_k: int = 15
    top_p: float = 1.0
    temperature: float = 1.0
    repetition_penalty: float = 1.35
    eos_ban_steps: int = 11
    max_new_tokens: int = 1500

    def validate(self) -> None:
        """Raise SamplingError when a value is out of range."""
        if self.temperature < 0:
            raise SamplingError(f"temperature must be >= 0, got {self.temperature}")
        if self.repetition_penalty <= 0:
            raise SamplingError(f"repetition_penalty must be > 0, got {self.repetition_penalty}")
        if not 0 < self.top_p:
            raise SamplingError(f"top_p must be > 0, got {self.top_p}")
        if self.max_new_tokens < 1:
            raise SamplingError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.eos_ban_steps < 0:
            raise SamplingError(f"eos_ban_steps must be >= 0, got {self.eos_ban_steps}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SamplingParams:
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def apply_repetition_penalty(logits: torch.Tensor, seen: torch.Tensor, penalty: float) -> torch.Tensor:
    """Penalise every token id already seen in a row: negative logits times ``penalty``, others divided.

    logits: (B, V); seen: (B, V) bool. Each id is penalised once however often it occurred, as in the
    reference's gather/scatter.
    """
    if penalty == 1.0:
        return logits
    penalised = torch.where(logits < 0, logits * penalty, logits / penalty)
    return torch.where(seen, penalised, logits)


def top_p_filter(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    """Nucleus filtering in the reference's variant.

    A token is removed when the cumulative probability up to and including it is above ``top_p`` (so,
    unlike the Hugging Face variant, the token that crosses the threshold is dropped too); the most
    likely token is always kept.
    """
    if top_p >= 1.0:
        return logits
    sorted_logits, sorted_idx = torch.sort(logits, descending=True)  # (B, V)
    cum = torch.cumsum(torch.softmax(sorted_logits, dim=-1), dim=-1)
    remove_sorted = cum > top_p
    remove_sorted[:, 0] = False
    remove = remove_sorted.scatter(1, sorted_idx, remove_sorted)
    return logits.masked_fill(remove, float("-inf"))


def top_k_filter(logits: torch.Tensor, top_k: int) -> torch.Tensor:
    """Keep the tokens whose logit is at least the k-th largest (ties at the pivot are kept)."""
    if top_k <= 0 or top_k >= logits.size(-1):
        return logits
    pivot = torch.topk(logits, top_k, dim=-1).values[:, -1:]  # (B, 1)
    return torch.where(logits < pivot, torch.full_like(logits, float("-inf")), logits)


def logits_to_probs(
    logits: torch.Tensor,
    seen: torch.Tensor | None,
    params: SamplingParams,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (penalised logits, sampling probabilities), both (B, V), in the reference's order.

    The penalised logits are returned because the reference's stop rule looks at their argmax.
    """
    if seen is not None:
        logits = apply_repetition_penalty(logits, seen, params.repetition_penalty)
    penalised = logits
    logits = top_p_filter(logits, params.top_p)
    # The reference clamps the temperature at 1e-5 rather than special-casing greedy decoding.
    logits = logits / max(params.temperature, 1e-5)
    logits = top_k_filter(logits, params.top_k)
    return penalised, torch.softmax(logits, dim=-1)


def sample_from_probs(probs: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Draw one id per row, (B, V) -> (B,), with the exponential-race trick the reference uses.

    argmax(p / q) with q ~ Exp(1) picks index i with probability p_i and needs no host sync.
    """
    q = torch.empty_like(probs).exponential_(1.0, generator=generator)
    return torch.argmax(probs / q, dim=-1)


def device_generator(generator: torch.Generator | None, device: torch.device) -> torch.Generator | None:
    """A generator on ``device`` for draws there: ``generator`` itself when it already lives there, else a
    new one seeded by one draw from it (so a CPU-seeded decode on CUDA is still reproducible per seed, and
    the noise never crosses to the device with a synchronising copy)."""
    if generator is None or generator.device.type == device.type:
        return generator
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    return torch.Generator(device=device).manual_seed(seed)
