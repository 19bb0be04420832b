"""The CTC "reader": semantic tokens -> per-frame phone posteriors, scored as log p(phones | tokens).

A pooled contrastive embedding barely moves when a span of a candidate is repeated or dropped; a reader that
has to account for *every* target phone, in order, along the candidate's frames does: a dropped word leaves
phones with no frames to come from, a repeated word leaves frames that read as phones the text does not
have there, a run-on leaves frames that must be read as blanks. The score is the CTC log-likelihood of the
sentence's phones given the candidate, divided by the number of phones (the same for every candidate of one
sentence, so it only puts sentences on one scale; measured: dividing by the candidate's length instead
rewards run-ons).

Architecture (small and cheap; scoring 8 x 250 tokens costs a few milliseconds on a CPU): token embedding,
``reader_conv`` masked residual convolutions (a phone's codes over a few frames, and the phone before it,
which colours its first code), ``reader_layers`` pre-norm transformer layers (masked keys), then each token
position emits ``reader_upsample`` frames of logits over the 732 phones + blank (CTC needs a blank between
two equal phones, and a phone may be one token long). Padding never changes a real position's output.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from clvp.model import N_PHONES, EncoderLayer, lengths_to_mask, sine_positions

if TYPE_CHECKING:
    from clvp.model import ClvpConfig

BLANK = N_PHONES  # CTC blank: the index after the last phone (the text padding id, never a target)


class MaskedConv(nn.Module):
    """x += gelu(conv(ln(x))) with padded positions zeroed before the convolution."""

    def __init__(self, dim: int, kernel: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.conv = nn.Conv1d(dim, dim, kernel, padding=kernel // 2)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x (B, T, C), mask (B, T) bool -> (B, T, C)."""
        h = self.norm(x) * mask.unsqueeze(-1).to(x.dtype)
        return x + F.gelu(self.conv(h.transpose(1, 2)).transpose(1, 2))


class CtcReader(nn.Module):
    """Semantic tokens (B, T) -> log-probabilities (B, T * upsample, N_PHONES + 1) over phones + blank."""

    def __init__(self, cfg: ClvpConfig) -> None:
        super().__init__()
        d = cfg.reader_dim
        self.upsample = cfg.reader_upsample
        self.embed = nn.Embedding(cfg.speech_vocab, d)
        self.convs = nn.ModuleList(MaskedConv(d, cfg.conv_kernel or 5) for _ in range(cfg.reader_conv))
        self.layers = nn.ModuleList(
            EncoderLayer(d, cfg.heads, cfg.ffn_mult * d, cfg.dropout) for _ in range(cfg.reader_layers)
        )
        self.norm = nn.LayerNorm(d)
        self.out = nn.Linear(d, self.upsample * (N_PHONES + 1))
        self.max_positions = cfg.max_positions

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """ids (B, T) right-padded, lengths (B,) -> (log-probs (B, T*u, 733) fp32, frame lengths (B,))."""
        b, t = ids.shape
        if t > self.max_positions:
            from clvp.model import ClvpInputError

            raise ClvpInputError(f"sequence of {t} positions exceeds the model's {self.max_positions}")
        mask = lengths_to_mask(lengths, t)
        x = self.embed(ids) * mask.unsqueeze(-1).to(self.embed.weight.dtype)  # (B, T, D)
        for conv in self.convs:
            x = conv(x, mask)
        x = x + sine_positions(t, x.shape[-1], x.device).to(x.dtype)
        for layer in self.layers:
            x = layer(x, mask)
        logits = self.out(self.norm(x)).float()  # (B, T, u * 733)
        logits = logits.view(b, t * self.upsample, N_PHONES + 1)
        return logits.log_softmax(-1), lengths * self.upsample

    def log_likelihood(
        self,
        ids: torch.Tensor,
        lengths: torch.Tensor,
        phones: torch.Tensor,
        phone_lens: torch.Tensor,
    ) -> torch.Tensor:
        """log p(phones_i | tokens_i) per row -> (B,); phones (B, S) right-padded (any pad value).

        -inf (a candidate too short to carry the phones at all) is clamped to a very low finite value, so a
        ranking still works and a mean stays finite.
        """
        logp, frames = self(ids, lengths)
        targets = phones.clamp(0, N_PHONES - 1)
        nll = F.ctc_loss(
            logp.transpose(0, 1),
            targets,
            frames,
            phone_lens,
            blank=BLANK,
            reduction="none",
            zero_infinity=False,
        )
        return (-nll).clamp_min(-1e4)
