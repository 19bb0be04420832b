"""CLVP for GPT-SoVITS: a contrastive model that scores semantic-token sequences against phone ids.

In the spirit of Tortoise's CLVP (Betker 2023) and CLIP: two transformer encoders, one over phone ids (the
v2 symbol table S1 reads) and one over S1's semantic tokens (25 Hz, 1024 codes); each is pooled by a
**masked** mean (only real positions; transformers' ``ClvpEncoder`` averages over padding, which makes
candidates of different lengths incomparable), projected to a shared latent and L2-normalised. The score is
cosine similarity times a learned scale ``exp(logit_scale)`` (initialised to 1/0.07 as CLIP, clamped to 100).

Training (``forward``) uses a symmetric contrastive loss over the batch, extended with hard negatives: each
text is contrasted against every true speech sequence of the batch *and* every corrupted sequence
(repeated/dropped spans, truncation, run-on, ...) so the loss pushes the failure modes of S1 below the true
pairing, not only other utterances. Scoring (``score``/``clvp.rerank``) is a paired cosine per row.

With ``reader_dim`` > 0 the model also owns the CTC reader (``clvp.reader.CtcReader``): its CTC loss on the
true pairs is added to the training loss, and ``reader_score`` gives log p(phones | tokens) per phone, the
alignment-sensitive part of the reranking score (``clvp.score``).

Padding never changes a real position's output: attention masks padded keys, patch merging zeroes padded
inputs first, and the pooled mean divides by the real length.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from core.errors import UserError

N_PHONES = 732  # GPT-SoVITS v2 symbol table (gpt_sovits.text.symbols); id 732 is our padding
N_CODES = 1024  # S1 semantic codebook; S1's EOS (1024) is never a speech token here, id 1024 is padding


class ClvpConfigError(UserError, ValueError):
    """A CLVP config that cannot describe a model (unknown size, bad field, inconsistent dims)."""


class ClvpInputError(UserError, ValueError):
    """Inputs a person passed to scoring: empty sequences, ids outside the vocabulary."""


@dataclass
class ClvpConfig:
    """Architecture of ClvpModel; saved inside every checkpoint and used to rebuild the model.

    ``speech_stride`` merges that many consecutive semantic tokens (25 Hz) into one encoder position, which
    brings the speech side near the phone rate and divides its cost; ``logit_scale_max`` bounds the learned
    temperature as CLIP does (exp(scale) <= 100).
    """

    text_vocab: int = N_PHONES + 1
    speech_vocab: int = N_CODES + 1
    dim: int = 256
    heads: int = 4
    text_layers: int = 4
    speech_layers: int = 6
    ffn_mult: int = 4
    latent_dim: int = 256
    speech_stride: int = 2
    dropout: float = 0.1
    logit_scale_init: float = math.log(1 / 0.07)
    logit_scale_max: float = math.log(100.0)
    max_positions: int = 4096
    length_feature: bool = True
    conv_kernel: int = 5
    # The CTC reader (clvp.reader); reader_dim 0 = none (CLVP-only files of format version 1).
    reader_dim: int = 128
    reader_conv: int = 2
    reader_layers: int = 2
    reader_upsample: int = 2

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name in ("conv_kernel", "reader_dim", "reader_conv", "reader_layers"):
                if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                    raise ClvpConfigError(
                        f"ClvpConfig.{f.name} must be 0 (none) or a positive integer, got {v!r}"
                    )
            elif f.type in ("int", int) and (not isinstance(v, int) or isinstance(v, bool) or v <= 0):
                raise ClvpConfigError(f"ClvpConfig.{f.name} must be a positive integer, got {v!r}")
        if self.reader_dim and self.reader_dim % self.heads:
            raise ClvpConfigError(f"reader_dim ({self.reader_dim}) must be divisible by heads ({self.heads})")
        if self.dim % self.heads:
            raise ClvpConfigError(f"dim ({self.dim}) must be divisible by heads ({self.heads})")
        if not 0.0 <= self.dropout < 1.0:
            raise ClvpConfigError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.text_vocab < N_PHONES + 1 or self.speech_vocab < N_CODES + 1:
            raise ClvpConfigError("text_vocab must be >= 733 and speech_vocab >= 1025 (ids + padding)")

    @property
    def text_pad(self) -> int:
        return self.text_vocab - 1

    @property
    def speech_pad(self) -> int:
        return self.speech_vocab - 1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ClvpConfig:
        if not isinstance(d, dict):
            raise ClvpConfigError(f"CLVP config must be a dict, got {type(d).__name__}")
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise ClvpConfigError(f"unknown ClvpConfig fields {sorted(unknown)}")
        return cls(**d)

    @classmethod
    def from_stored(cls, d: dict[str, Any]) -> ClvpConfig:
        """The config stored in a weight file or run state: one written before the reader existed (no
        ``reader_dim``) describes a CLVP-only model, so it is rebuilt without a reader."""
        if isinstance(d, dict) and "reader_dim" not in d:
            d = {**d, "reader_dim": 0}
        return cls.from_dict(d)

    @classmethod
    def preset(cls, name: str) -> ClvpConfig:
        """``tiny`` (tests, seconds on a CPU) or ``base`` (the default; ~9M parameters, trains on one
        consumer GPU and scores 8 candidates of 10 s in well under a second on a CPU)."""
        if name == "tiny":
            return cls(
                dim=64, heads=4, text_layers=2, speech_layers=2, latent_dim=64, speech_stride=2, dropout=0.0,
                reader_dim=64, reader_conv=2, reader_layers=1,
            )  # fmt: skip
        if name == "base":
            return cls()
        raise ClvpConfigError(f"unknown CLVP size {name!r}; use tiny or base (or a JSON config file)")


# ----------------------------------------------------------------------------------------- building blocks


def sine_features(values: torch.Tensor, dim: int) -> torch.Tensor:
    """(N,) positions or lengths -> (N, dim) sinusoidal features (sin on even channels, cos on odd), fp32."""
    pos = values.to(torch.float32).unsqueeze(1)
    div = torch.exp(
        torch.arange(0, dim, 2, dtype=torch.float32, device=values.device) * -(math.log(10000.0) / dim)
    )
    pe = torch.zeros(values.shape[0], dim, device=values.device)
    pe[:, 0::2] = torch.sin(pos * div)
    pe[:, 1::2] = torch.cos(pos * div)
    return pe


def log_length_features(lengths: torch.Tensor, dim: int) -> torch.Tensor:
    """(N,) lengths -> (N, dim): sin/cos of w_k * log(length), w_k geometric from 0.5 to 64.

    On a log scale a text's phone count and its speech's token count differ by a near-constant shift (the
    speaking rate), and a shift is a rotation of each (sin, cos) pair, which a linear layer can apply; so
    the dot product of the two sides' features peaks where the lengths agree, to within a few percent.
    """
    half = dim // 2
    w = torch.exp(torch.linspace(math.log(0.5), math.log(64.0), half, device=lengths.device))
    arg = torch.log(lengths.to(torch.float32).clamp_min(1.0)).unsqueeze(1) * w  # (N, half)
    out = torch.zeros(lengths.shape[0], dim, device=lengths.device)
    out[:, 0 : 2 * half : 2] = torch.sin(arg)
    out[:, 1 : 2 * half : 2] = torch.cos(arg)
    return out


def sine_positions(length: int, dim: int, device: torch.device) -> torch.Tensor:
    """(length, dim) table for positions 0..length-1."""
    return sine_features(torch.arange(length, device=device), dim)


def lengths_to_mask(lengths: torch.Tensor, width: int) -> torch.Tensor:
    """(B,) lengths -> (B, width) bool, True at real positions."""
    return torch.arange(width, device=lengths.device).unsqueeze(0) < lengths.unsqueeze(1)


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """x (B, T, C), mask (B, T) bool -> (B, C): mean over real positions only."""
    m = mask.unsqueeze(-1).to(x.dtype)
    return (x * m).sum(1) / m.sum(1).clamp_min(1.0)


class EncoderLayer(nn.Module):
    """Pre-norm transformer layer (stable without warm-up tricks): x += attn(ln(x)); x += ffn(ln(x))."""

    def __init__(self, dim: int, heads: int, ffn_dim: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.ffn = nn.Sequential(
            nn.Linear(dim, ffn_dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(ffn_dim, dim)
        )
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, key_ok: torch.Tensor) -> torch.Tensor:
        """x (B, T, C); key_ok (B, T) bool, True where a key is real (padded keys are never attended)."""
        b, t, c = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, t, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        # no dropout on the attention weights: on CPU it costs more than the rest of the layer
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=key_ok[:, None, None, :])
        x = x + self.drop(self.out(a.transpose(1, 2).reshape(b, t, c)))
        return x + self.drop(self.ffn(self.norm2(x)))


class SequenceEncoder(nn.Module):
    """Token ids -> one unnormalised latent per sequence: embed (optionally merge ``stride`` tokens per
    position), add sine positions, transformer layers, final norm, masked mean, projection."""

    def __init__(self, vocab: int, cfg: ClvpConfig, layers: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        self.embed = nn.Embedding(vocab, cfg.dim)
        self.merge = nn.Linear(stride * cfg.dim, cfg.dim) if stride > 1 else None
        # A local convolution before attention finds short patterns (a phone's codes over a few frames)
        # much sooner in training than attention with positions does.
        k = cfg.conv_kernel
        self.conv = nn.Conv1d(cfg.dim, cfg.dim, k, padding=k // 2) if k > 1 else None
        self.layers = nn.ModuleList(
            EncoderLayer(cfg.dim, cfg.heads, cfg.ffn_mult * cfg.dim, cfg.dropout) for _ in range(layers)
        )
        self.norm = nn.LayerNorm(cfg.dim)
        # The sequence length as an explicit feature of the pooled vector: a repeated or dropped word
        # moves a mean of content only slightly, but it changes the length a text implies.
        self.length = nn.Linear(cfg.dim, cfg.dim) if cfg.length_feature else None
        self.proj = nn.Linear(cfg.dim, cfg.latent_dim, bias=False)
        self.max_positions = cfg.max_positions

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """ids (B, T) padded on the right, lengths (B,) -> (B, latent_dim)."""
        b, t = ids.shape
        n_tokens = lengths
        mask = lengths_to_mask(lengths, t)
        x = self.embed(ids) * mask.unsqueeze(-1).to(self.embed.weight.dtype)  # (B, T, C), padding zeroed
        if self.merge is not None:
            s = self.stride
            t2 = -(-t // s)
            x = F.pad(x, (0, 0, 0, t2 * s - t))  # (B, t2*s, C)
            x = self.merge(x.reshape(b, t2, s * x.shape[-1]))  # (B, t2, C)
            lengths = torch.div(lengths + s - 1, s, rounding_mode="floor")
            t = t2
            mask = lengths_to_mask(lengths, t)
        if self.conv is not None:  # padded positions are zero here, so their count does not matter
            x = x * mask.unsqueeze(-1).to(x.dtype)
            x = x + F.gelu(self.conv(x.transpose(1, 2))[..., :t].transpose(1, 2))
        if t > self.max_positions:
            raise ClvpInputError(f"sequence of {t} positions exceeds the model's {self.max_positions}")
        x = x + sine_positions(t, x.shape[-1], x.device).to(x.dtype)
        for layer in self.layers:
            x = layer(x, mask)
        pooled = masked_mean(self.norm(x), mask)  # (B, C)
        if self.length is not None:
            pooled = pooled + self.length(log_length_features(n_tokens, pooled.shape[-1]).to(pooled.dtype))
        return self.proj(pooled)


@dataclass
class ClvpOutput:
    """Training pass. loss: scalar; logits (B, B + N): text i against the B true speech sequences then the N
    hard negatives (column i is the positive); accuracy: fraction of texts whose positive scored highest."""

    loss: torch.Tensor
    logits: torch.Tensor
    accuracy: torch.Tensor
    ctc: torch.Tensor | None = None  # the reader's mean -log p(phones | tokens) per phone (in ``loss``)


class ClvpModel(nn.Module):
    """Text (phone ids) and speech (semantic tokens) encoders with a shared latent and a learned scale."""

    def __init__(self, cfg: ClvpConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.text_encoder = SequenceEncoder(cfg.text_vocab, cfg, cfg.text_layers, 1)
        self.speech_encoder = SequenceEncoder(cfg.speech_vocab, cfg, cfg.speech_layers, cfg.speech_stride)
        self.logit_scale = nn.Parameter(torch.tensor(float(cfg.logit_scale_init)))
        self.reader = None
        if cfg.reader_dim:
            from clvp.reader import CtcReader

            self.reader = CtcReader(cfg)
            # Weight of the contrastive score in the combined one (reader + mix * clvp); set by training
            # from the held-out figures (clvp.train.calibrate_mix), saved with the weights.
            self.register_buffer("score_mix", torch.tensor(0.0))

    def scale(self) -> torch.Tensor:
        """exp(logit_scale), clamped as CLIP so the temperature cannot run away."""
        return self.logit_scale.clamp(max=self.cfg.logit_scale_max).exp()

    def encode_text(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(B, T) phone ids, (B,) lengths -> (B, latent) L2-normalised."""
        return F.normalize(self.text_encoder(ids, lengths).float(), dim=-1)

    def encode_speech(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(B, T) semantic tokens, (B,) lengths -> (B, latent) L2-normalised."""
        return F.normalize(self.speech_encoder(ids, lengths).float(), dim=-1)

    def score(
        self,
        text: torch.Tensor,
        text_lens: torch.Tensor,
        speech: torch.Tensor,
        speech_lens: torch.Tensor,
    ) -> torch.Tensor:
        """Row-wise paired score scale * cos(text_i, speech_i) -> (B,). A single text row broadcasts."""
        t = self.encode_text(text, text_lens)
        s = self.encode_speech(speech, speech_lens)
        return (t * s).sum(-1) * self.scale()

    def reader_score(
        self,
        text: torch.Tensor,
        text_lens: torch.Tensor,
        speech: torch.Tensor,
        speech_lens: torch.Tensor,
    ) -> torch.Tensor:
        """Row-wise log p(phones_i | tokens_i) / n_phones_i under the CTC reader -> (B,)."""
        if self.reader is None:
            raise ClvpInputError("this CLVP model has no reader (a CLVP-only file of format version 1)")
        ll = self.reader.log_likelihood(speech, speech_lens, text, text_lens)
        return ll / text_lens.clamp_min(1).to(ll.dtype)

    def forward(
        self,
        text: torch.Tensor,
        text_lens: torch.Tensor,
        speech: torch.Tensor,
        speech_lens: torch.Tensor,
        neg_speech: torch.Tensor | None = None,
        neg_lens: torch.Tensor | None = None,
    ) -> ClvpOutput:
        """Contrastive loss with hard negatives.

        text (B, Tt), speech (B, Ts) are the true pairs; neg_speech (N, Tn) corrupted sequences (any owner).
        Text-to-speech: for each text a softmax over [B true speech ; N negatives], target = its own pair.
        Speech-to-text: for each true speech a softmax over the B texts. Loss = mean of the two.
        """
        t = self.encode_text(text, text_lens)  # (B, D)
        s = self.encode_speech(speech, speech_lens)  # (B, D)
        if neg_speech is not None and neg_speech.shape[0] > 0:
            assert neg_lens is not None
            s_all = torch.cat([s, self.encode_speech(neg_speech, neg_lens)], dim=0)  # (B+N, D)
        else:
            s_all = s
        scale = self.scale()
        logits = scale * t @ s_all.T  # (B, B+N)
        target = torch.arange(t.shape[0], device=t.device)
        loss_t = F.cross_entropy(logits, target)
        loss_s = F.cross_entropy(scale * s @ t.T, target)
        acc = (logits.argmax(-1) == target).float().mean()
        loss = (loss_t + loss_s) / 2
        ctc = None
        if self.reader is not None:  # maximum likelihood on the true pairs; the negatives are not read
            ctc = -self.reader_score(text, text_lens, speech, speech_lens).mean()
            loss = loss + ctc
        return ClvpOutput(loss=loss, logits=logits, accuracy=acc, ctc=ctc)


# ------------------------------------------------------------------------------------------------ helpers


def pad_sequences(
    seqs: list[list[int]] | list[torch.Tensor], pad_id: int, device: torch.device | str = "cpu"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad integer sequences -> ids (B, T) int64 and lengths (B,) int64."""
    lens = [len(s) for s in seqs]
    width = max(lens) if lens else 0
    out = torch.full((len(seqs), max(width, 1)), pad_id, dtype=torch.long)
    for i, s in enumerate(seqs):
        if len(s):
            out[i, : len(s)] = torch.as_tensor(s, dtype=torch.long)
    return out.to(device), torch.tensor(lens, dtype=torch.long, device=device)
