"""S1 of GPT-SoVITS: Text2Semantic, a decoder-only transformer from phones (+ BERT) to semantic tokens.

The prefix is ``[text ; prompt semantic tokens]``: text positions attend to all text, audio positions attend
to all text and causally to audio. The transformer is post-norm with ReLU (as the reference's
``AR/models/t2s_model.py Text2SemanticDecoder``) and its state-dict names are the official ones without the
Lightning ``model.`` prefix, so official GPT checkpoints load strictly.

Training: ``forward`` gives teacher-forced logits and targets; ``s1_loss``, ``top_k_accuracy``,
``sequence_logps`` and ``dpo_loss`` are plain functions at the end of this file.
Inference: ``generate`` decodes with a preallocated KV cache, batched over sentences and candidates
(``decode_steps`` is the same decode as a generator that shows the tokens so far at every look, for
streaming). The
step loop keeps its bookkeeping (tokens, stop flags, counts) in device tensors and looks at them on the host
only every ``sync_every`` steps (every step on CPU, where a look costs nothing and finished rows leave the
batch at once, as before). On CUDA the single-token step is captured once as a CUDA graph and replayed
(``cuda_graph``), which needs a static batch: finished rows stay in it and are ignored.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from core.errors import UserError
from gpt_sovits.models.sampling import SamplingParams, device_generator, logits_to_probs, sample_from_probs

BERT_DIM = 1024  # chinese-roberta-wwm-ext-large hidden size; fixed by the official bert_proj shape


class S1ConfigError(UserError, ValueError):
    """A GPT config dict that cannot describe a Text2Semantic model."""


class S1InputError(UserError, ValueError):
    """Inputs to S1 with inconsistent shapes or out-of-range ids."""


@dataclass
class S1Config:
    """Architecture of Text2Semantic; field names follow the official ``model`` config section.

    ``linear_units`` is recorded for round-tripping only: the official code never reads it and the FFN
    width is always ``4 * hidden_dim``. The dropouts other than ``dropout`` are hard-coded to 0.1 in the
    reference (position-embedding dropout, attention and FFN dropout) and only act in training.
    """

    vocab_size: int = 1025
    phoneme_vocab_size: int = 732
    embedding_dim: int = 512
    hidden_dim: int = 512
    head: int = 16
    n_layer: int = 24
    dropout: float = 0.0
    EOS: int = 1024
    linear_units: int = 2048
    random_bert: int = 0
    layer_dropout: float = 0.1
    position_dropout: float = 0.1
    max_positions: int = 4000

    def __post_init__(self) -> None:
        if self.EOS != self.vocab_size - 1:
            raise S1ConfigError(f"EOS must be vocab_size - 1 ({self.vocab_size - 1}), got {self.EOS}")
        if self.embedding_dim != self.hidden_dim:
            raise S1ConfigError(
                f"embedding_dim ({self.embedding_dim}) must equal hidden_dim ({self.hidden_dim}); "
                "the official model adds embeddings straight into the transformer"
            )
        if self.hidden_dim % self.head:
            raise S1ConfigError(f"hidden_dim ({self.hidden_dim}) must be divisible by head ({self.head})")

    @property
    def ffn_dim(self) -> int:
        return 4 * self.hidden_dim

    @classmethod
    def from_official(cls, config: dict[str, Any]) -> S1Config:
        """Read the ``config`` dict stored in an official GPT ``.ckpt`` (or just its ``model`` section)."""
        if not isinstance(config, dict):
            raise S1ConfigError(f"GPT config must be a dict, got {type(config).__name__}")
        model = config.get("model", config)
        if not isinstance(model, dict):
            raise S1ConfigError("GPT config 'model' section must be a dict")
        required = (
            "vocab_size",
            "phoneme_vocab_size",
            "embedding_dim",
            "hidden_dim",
            "head",
            "n_layer",
            "EOS",
        )
        missing = [k for k in required if k not in model]
        if missing:
            raise S1ConfigError(f"GPT config 'model' section lacks {missing}; has {sorted(model)}")
        kwargs: dict[str, Any] = {k: int(model[k]) for k in required}
        kwargs["dropout"] = float(model.get("dropout", 0.0))
        kwargs["linear_units"] = int(model.get("linear_units", 4 * kwargs["hidden_dim"]))
        kwargs["random_bert"] = int(model.get("random_bert", 0))
        return cls(**kwargs)

    def to_official(self) -> dict[str, Any]:
        """The ``model`` section in the official layout."""
        keys = ("vocab_size", "phoneme_vocab_size", "embedding_dim", "hidden_dim", "head", "linear_units")
        out: dict[str, Any] = {k: getattr(self, k) for k in keys}
        out.update(n_layer=self.n_layer, dropout=self.dropout, EOS=self.EOS, random_bert=self.random_bert)
        return out

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> S1Config:
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise S1ConfigError(f"unknown S1Config fields {sorted(unknown)}")
        return cls(**d)


# ----------------------------------------------------------------------------------------- building blocks


class TokenEmbedding(nn.Module):
    """Embedding table under the official name ``word_embeddings``, then dropout."""

    def __init__(self, dim: int, vocab: int, dropout: float) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab, dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.word_embeddings(ids))


def sine_table(length: int, dim: int) -> torch.Tensor:
    """(length, dim) sinusoidal table, sin on even and cos on odd channels, computed in fp32."""
    pos = torch.arange(length, dtype=torch.float32).unsqueeze(1)
    div = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * -(math.log(10000.0) / dim))
    pe = torch.zeros(length, dim)
    pe[:, 0::2] = torch.sin(pos * div)
    pe[:, 1::2] = torch.cos(pos * div)
    return pe


class SinePositionalEmbedding(nn.Module):
    """x + alpha * pe[pos], with a learned scalar ``alpha`` (x_scale is 1 in GPT-SoVITS)."""

    def __init__(self, dim: int, max_positions: int, dropout: float) -> None:
        super().__init__()
        self.alpha = nn.Parameter(torch.ones(1))
        self.dropout = nn.Dropout(dropout)
        self.register_buffer("pe", sine_table(max_positions, dim), persistent=False)  # (P, C)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, T, C), positions 0..T-1."""
        return self.dropout(x + self.alpha * self.pe[: x.size(1)].to(x.dtype))

    def at(self, x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """x: (B, T, C) at explicit positions (B, T); no dropout (inference only)."""
        return x + self.alpha * self.pe[positions].to(x.dtype)


class SelfAttention(nn.Module):
    """Multi-head self-attention with a packed q/k/v projection (``in_proj_weight``), as nn.MultiheadAttention."""

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.dropout = dropout
        self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * dim))
        self.out_proj = nn.Linear(dim, dim)
        # A module standing in for the packed projection (fastpath's int8 Linear); None = the fp weights.
        self.in_proj: nn.Module | None = None
        nn.init.xavier_uniform_(self.in_proj_weight)

    def qkv(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, T, C) -> three (B, H, T, C/H)."""
        b, t, c = x.shape
        if self.in_proj is not None:
            packed = self.in_proj(x)
        else:
            packed = F.linear(x, self.in_proj_weight, self.in_proj_bias)
        q, k, v = packed.chunk(3, dim=-1)
        return tuple(z.view(b, t, self.heads, c // self.heads).transpose(1, 2) for z in (q, k, v))  # type: ignore[return-value]

    def attend(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None
    ) -> torch.Tensor:
        """q (B, H, Tq, D), k/v (B, H, Tk, D), mask bool (True = may attend) -> (B, Tq, C)."""
        p = self.dropout if self.training else 0.0
        out = F.scaled_dot_product_attention(q.to(k.dtype), k, v, attn_mask=mask, dropout_p=p)
        b, h, t, d = out.shape
        return self.out_proj(out.transpose(1, 2).reshape(b, t, h * d))

    def attend_shared(
        self,
        q: torch.Tensor,
        prefix: tuple[torch.Tensor, torch.Tensor],
        suffix: tuple[torch.Tensor, torch.Tensor],
    ) -> torch.Tensor:
        """``shared_prefix_attention`` followed by the output projection: q (B, H, 1, D) -> (B, 1, C).
        Inference only (no dropout)."""
        b, h, _, d = q.shape
        out = shared_prefix_attention(q, prefix, suffix)
        return self.out_proj(out.transpose(1, 2).reshape(b, 1, h * d))


def layer_norm(x: torch.Tensor, norm: nn.LayerNorm) -> torch.Tensor:
    """``norm(x)`` without the module call (inference steps call it 48 times)."""
    return F.layer_norm(x, norm.normalized_shape, norm.weight, norm.bias, norm.eps)


def shared_prefix_attention(
    q: torch.Tensor, prefix: tuple[torch.Tensor, torch.Tensor], suffix: tuple[torch.Tensor, torch.Tensor]
) -> torch.Tensor:
    """Softmax attention of B single-position queries q (B, H, 1, D) over one shared prefix K/V (1, H, Tp, D)
    plus each row's own suffix K/V (B, H, Ts, D), every key valid -> (B, H, 1, D).

    The prefix is read once for all rows by folding the B queries into the query-length dim; the two
    partial softmaxes are merged by their log-sum-exps, which equals one softmax over [prefix ; suffix].
    """
    sdpa = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu
    q = q.to(prefix[0].dtype)
    out_p, lse_p = sdpa(q.transpose(0, 2), prefix[0], prefix[1])  # (1, H, B, D), (1, H, B)
    out_p, lse_p = (
        out_p.transpose(0, 2),
        lse_p.transpose(0, 2).unsqueeze(-1),
    )  # (B, H, 1, D), (B, H, 1, 1)
    out_s, lse_s = sdpa(q, suffix[0], suffix[1])  # (B, H, 1, D), (B, H, 1)
    lse_s = lse_s.unsqueeze(-1)
    # Weight of each part: exp(lse_part - lse_all), with lse_all = logaddexp of the two.
    w_p = torch.sigmoid(lse_p - lse_s)
    return out_s + w_p * (out_p - out_s)


class TransformerLayer(nn.Module):
    """Post-norm encoder layer: x = norm1(x + attn(x)); x = norm2(x + ffn(x)), ReLU FFN."""

    def __init__(self, dim: int, heads: int, ffn_dim: int, dropout: float) -> None:
        super().__init__()
        self.self_attn = SelfAttention(dim, heads, dropout)
        self.linear1 = nn.Linear(dim, ffn_dim)
        self.linear2 = nn.Linear(ffn_dim, dim)
        self.norm1 = nn.LayerNorm(dim, eps=1e-5)
        self.norm2 = nn.LayerNorm(dim, eps=1e-5)
        self.dropout = nn.Dropout(dropout)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)

    def _ffn_and_norms(self, x: torch.Tensor, attn: torch.Tensor) -> torch.Tensor:
        if self.training or torch.is_grad_enabled():
            x = self.norm1(x + self.dropout1(attn))
            ff = self.linear2(self.dropout(F.relu(self.linear1(x))))
            return self.norm2(x + self.dropout2(ff))
        # Inference: the same arithmetic with fewer calls (a decode step runs this 24 times): no dropout
        # modules, norms called directly, in-place adds and ReLU on the fresh outputs of the projections.
        x = layer_norm(attn.add_(x), self.norm1)
        ff = self.linear2(F.relu_(self.linear1(x)))
        return layer_norm(ff.add_(x), self.norm2)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """x: (B, T, C); mask: bool broadcastable to (B, H, T, T)."""
        q, k, v = self.self_attn.qkv(x)
        return self._ffn_and_norms(x, self.self_attn.attend(q, k, v, mask))

    def forward_cached(
        self, x: torch.Tensor, mask: torch.Tensor | None, cache: KVCache | SharedPrefixCache, layer: int
    ) -> torch.Tensor:
        """Like forward for new positions x (B, T, C), attending over cached K/V plus the new ones (with a
        SharedPrefixCache: x (B, 1, C), no mask, the shared prefix read once for all rows)."""
        q, k, v = self.self_attn.qkv(x)
        if isinstance(cache, SharedPrefixCache):
            suffix = cache.suffix.append(layer, k, v)
            return self._ffn_and_norms(x, self.self_attn.attend_shared(q, cache.prefix_kv(layer), suffix))
        k_all, v_all = cache.append(layer, k, v)
        return self._ffn_and_norms(x, self.self_attn.attend(q, k_all, v_all, mask))

    def forward_static(
        self, x: torch.Tensor, mask: torch.Tensor, cache: KVCache, layer: int, slot: torch.Tensor
    ) -> torch.Tensor:
        """One new position x (B, 1, C) written at cache slot ``slot`` (1,) (a device tensor); attends over
        the whole capacity with ``mask`` (B, 1, 1, capacity), so every shape is fixed (CUDA graphs)."""
        q, k, v = self.self_attn.qkv(x)
        k_all, v_all = cache.write_at(layer, slot, k, v)
        return self._ffn_and_norms(x, self.self_attn.attend(q, k_all, v_all, mask))


class TransformerStack(nn.Module):
    """The official ``h``: a list of layers under ``layers``, no final norm."""

    def __init__(self, cfg: S1Config) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            TransformerLayer(cfg.hidden_dim, cfg.head, cfg.ffn_dim, cfg.layer_dropout)
            for _ in range(cfg.n_layer)
        )

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x, mask)
        return x


class KVCache:
    """Keys and values of every layer, preallocated once: ``kv`` is (n_layer, 2, B, H, capacity, D).

    ``length`` positions are filled. Eager steps append after the filled part and attend over views of it;
    graph steps write at a slot given as a device tensor and attend over the whole capacity under a mask.
    """

    def __init__(
        self,
        n_layer: int,
        batch: int,
        heads: int,
        head_dim: int,
        capacity: int,
        dtype: torch.dtype,
        device: torch.device,
        zeroed: bool = False,
    ) -> None:
        # Masked-out slots still enter attention's P @ V as 0 * value, so graph steps need zeros, not
        # whatever memory held (a NaN there would leak). On CPU the untouched pages cost nothing.
        self.zeroed = zeroed
        make = torch.zeros if zeroed else torch.empty
        self.kv = make(n_layer, 2, batch, heads, capacity, head_dim, dtype=dtype, device=device)
        self.length = 0

    @property
    def capacity(self) -> int:
        return self.kv.size(4)

    def _end(self, new: int) -> int:
        """The end of the filled part after ``new`` more positions; an error past the capacity."""
        end = self.length + new
        if end > self.capacity:
            raise S1InputError(f"KV cache of {self.capacity} positions cannot hold {end}")
        return end

    def append(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Write k/v (B, H, T, D) after the filled part; return the filled views including them."""
        end = self._end(k.size(2))
        self.kv[layer, 0, :, :, self.length : end] = k
        self.kv[layer, 1, :, :, self.length : end] = v
        return self.kv[layer, 0, :, :, :end], self.kv[layer, 1, :, :, :end]

    def append_packed(self, layer: int, kv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``append`` of keys and values packed as kv (2, B, H, T, D): one copy instead of two."""
        end = self._end(kv.size(3))
        self.kv[layer, :, :, :, self.length : end] = kv
        return self.kv[layer, 0, :, :, :end], self.kv[layer, 1, :, :, :end]

    def write_at(
        self, layer: int, slot: torch.Tensor, k: torch.Tensor, v: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Write k/v (B, H, 1, D) at position ``slot`` (1,) long on the device; return the full buffers."""
        self.kv[layer, 0].index_copy_(2, slot, k.to(self.kv.dtype))
        self.kv[layer, 1].index_copy_(2, slot, v.to(self.kv.dtype))
        return self.kv[layer, 0], self.kv[layer, 1]

    def advance(self, t: int) -> None:
        self.length += t

    def keep_rows(self, rows: torch.Tensor) -> None:
        """Keep batch rows ``rows`` (1-D long, repeats allowed), copying only the filled positions."""
        filled = self.kv[:, :, :, :, : self.length].index_select(2, rows)
        shape = list(self.kv.shape)
        shape[2] = rows.numel()
        kv = self.kv.new_zeros(shape) if self.zeroed else self.kv.new_empty(shape)
        kv[:, :, :, :, : self.length] = filled
        self.kv = kv


class SharedPrefixCache:
    """The cache of N candidates of one sentence: ONE copy of the prefix's K/V (a filled batch-1 KVCache)
    and each candidate's own generated positions in ``suffix`` (a KVCache of B rows).

    Candidates share the prompt, so a step reads the prefix once instead of B times
    (``SelfAttention.attend_shared``). Rows leave (``keep_rows``) from the suffix only. Used when there is
    one sentence and no padding, so every prefix and suffix key is valid.
    """

    def __init__(self, prefix: KVCache, suffix: KVCache) -> None:
        if prefix.kv.size(2) != 1:
            raise S1InputError(f"a shared prefix has one row, got {prefix.kv.size(2)}")
        self.prefix, self.suffix = prefix, suffix

    def prefix_kv(self, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Layer ``layer``'s prefix keys and values, each (1, H, Tp, D)."""
        n = self.prefix.length
        return self.prefix.kv[layer, 0, :, :, :n], self.prefix.kv[layer, 1, :, :, :n]

    def advance(self, t: int) -> None:
        self.suffix.advance(t)

    def keep_rows(self, rows: torch.Tensor) -> None:
        self.suffix.keep_rows(rows)


# ------------------------------------------------------------------------------------------------ outputs


@dataclass
class S1ForwardOutput:
    """Teacher-forced pass. logits (B, Ty+1, V): position 0 is the last text position (predicts y[0]);
    targets (B, Ty+1) = y followed by EOS (padding positions also target EOS, as in the reference)."""

    logits: torch.Tensor
    targets: torch.Tensor


@dataclass
class Candidate:
    """One generated sequence: new semantic tokens (N,) int64 without the prompt, the model's
    log-probability of each (N,) (log-softmax of the raw logits, before penalty and filtering), whether it
    ended on EOS, and the number of decoding steps run. ``step_logits`` (steps, V) are the raw logits of
    every step when requested."""

    tokens: torch.Tensor
    logprobs: torch.Tensor
    eos: bool
    steps: int
    step_logits: torch.Tensor | None = None


@dataclass
class DecodeProgress:
    """What ``decode_steps`` yields at each look at the device state: the tokens kept so far, row r's
    being ``tokens[r, :n_tok[r]]`` (rows as in the result: candidate j of sentence i is row i * N + j).
    Device tensors, valid until the decode goes on: read them before asking for the next step."""

    tokens: torch.Tensor  # (rows, max_new_tokens) int64
    n_tok: torch.Tensor  # (rows,) int64


@dataclass
class GenerationResult:
    """``candidates[i][j]`` is candidate j of sentence i."""

    candidates: list[list[Candidate]] = field(default_factory=list)


# ------------------------------------------------------------------------------------------------- model


class Text2Semantic(nn.Module):
    """Phones (+ BERT features) and prompt semantic tokens -> semantic tokens (25 Hz, EOS = vocab_size-1)."""

    def __init__(self, cfg: S1Config) -> None:
        super().__init__()
        self.cfg = cfg
        d = cfg.embedding_dim
        # Registration order follows the official state dict.
        self.bert_proj = nn.Linear(BERT_DIM, d)
        self.ar_text_embedding = TokenEmbedding(d, cfg.phoneme_vocab_size, cfg.dropout)
        self.ar_text_position = SinePositionalEmbedding(d, cfg.max_positions, cfg.position_dropout)
        self.ar_audio_embedding = TokenEmbedding(d, cfg.vocab_size, cfg.dropout)
        self.ar_audio_position = SinePositionalEmbedding(d, cfg.max_positions, cfg.position_dropout)
        self.h = TransformerStack(cfg)
        self.ar_predict_layer = nn.Linear(cfg.hidden_dim, cfg.vocab_size, bias=False)
        # Decoding options (plain attributes, not state): how many steps between host looks at the stop
        # flags (None: 1 on CPU, where finished rows then leave at once; 8 on accelerators), and whether
        # CUDA decoding captures the single-token step as a CUDA graph.
        self.sync_every: int | None = None
        self.cuda_graph = True
        # The fixed-shape step (whole-capacity attention under a mask) without capturing it: None = only
        # when a CUDA graph is captured; True runs it anywhere (tests check it on CPU).
        self.static_step: bool | None = None
        # Candidates of one sentence read one copy of the prefix's K/V on CPU (SharedPrefixCache); False
        # copies it to every candidate (the arithmetic of before, for comparisons).
        self.shared_prefix = True
        # The KV cache's dtype (None: the activations'). The CPU fast path keeps it bf16: attention over it
        # runs in bf16 (fp32 softmax statistics), and the attention output reaches out_proj in bf16.
        self.kv_dtype: torch.dtype | None = None
        # The layers' step for one new position per row, (B, C) + cache + mask -> (B, C), set by the CPU fast
        # path (fastpath.FastDecodeStep: the same arithmetic with fewer operators); None: forward_cached.
        self.fast_step: (
            Callable[[torch.Tensor, KVCache | SharedPrefixCache, torch.Tensor | None], torch.Tensor] | None
        ) = None

    @property
    def eos(self) -> int:
        return self.cfg.EOS

    @property
    def device(self) -> torch.device:
        return self.ar_audio_embedding.word_embeddings.weight.device

    @property
    def compute_dtype(self) -> torch.dtype:
        """The activations' dtype: the embeddings' (fp32, or bf16/fp16 for a half model)."""
        return self.ar_audio_embedding.word_embeddings.weight.dtype

    # ---------------------------------------------------------------------------------------- embeddings

    def embed_text(self, x: torch.Tensor, bert_feature: torch.Tensor) -> torch.Tensor:
        """x (B, Tx) phone ids, bert_feature (B, 1024, Tx) -> (B, Tx, C) at positions 0..Tx-1."""
        if bert_feature.shape[-1] != x.shape[-1] or bert_feature.shape[-2] != BERT_DIM:
            raise S1InputError(
                f"BERT features must be (B, {BERT_DIM}, n_phones) with n_phones = {x.shape[-1]}, "
                f"got {tuple(bert_feature.shape)}"
            )
        e = self.ar_text_embedding(x) + self.bert_proj(
            bert_feature.transpose(1, 2).to(self.bert_proj.weight.dtype)
        )
        return self.ar_text_position(e)

    def embed_audio(self, y: torch.Tensor) -> torch.Tensor:
        """y (B, Ty) semantic ids -> (B, Ty, C) at positions 0..Ty-1."""
        return self.ar_audio_position(self.ar_audio_embedding(y))

    # ------------------------------------------------------------------------------------------ training

    def forward(
        self,
        x: torch.Tensor,
        x_lens: torch.Tensor,
        y: torch.Tensor,
        y_lens: torch.Tensor,
        bert_feature: torch.Tensor,
    ) -> S1ForwardOutput:
        """Teacher-forced pass over a batch.

        x (B, Tx) phones LEFT-padded (the reference's layout since 2025-07, so that every row's last text
        position is Tx-1), bert_feature (B, 1024, Tx) padded the same way, y (B, Ty) semantic ids
        right-padded. Returns logits (B, Ty+1, V) and targets (B, Ty+1).
        """
        logits, targets, _ = self._teacher_forced(x, x_lens, y, y_lens, bert_feature)
        return S1ForwardOutput(logits=logits, targets=targets)

    def _teacher_forced(
        self,
        x: torch.Tensor,
        x_lens: torch.Tensor,
        y: torch.Tensor,
        y_lens: torch.Tensor,
        bert_feature: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        tx, ty = x.shape[1], y.shape[1]
        dev = x.device
        x_pad = torch.arange(tx, device=dev).unsqueeze(0) < (tx - x_lens).unsqueeze(1)  # (B, Tx) left pad
        y_pad = torch.arange(ty, device=dev).unsqueeze(0) >= y_lens.unsqueeze(1)  # (B, Ty) right pad
        codes = y.long().masked_fill(y_pad, 0)
        eos_col = torch.full_like(codes[:, :1], self.eos)
        targets = torch.cat([codes.masked_fill(y_pad, self.eos), eos_col], dim=1)  # (B, Ty+1)

        xy = torch.cat([self.embed_text(x, bert_feature), self.embed_audio(codes)], dim=1)  # (B, S, C)
        s = tx + ty
        is_text = torch.arange(s, device=dev) < tx
        causal = torch.ones(s, s, dtype=torch.bool, device=dev).tril()
        # text rows: text keys only; audio rows: text keys + causal audio keys.
        structure = (is_text.unsqueeze(0) & True) | (~is_text.unsqueeze(1) & causal)
        structure = structure & ~(is_text.unsqueeze(1) & ~is_text.unsqueeze(0))
        key_ok = ~torch.cat([x_pad, y_pad], dim=1)  # (B, S)
        mask = structure.unsqueeze(0) & key_ok.unsqueeze(1)  # (B, S, S)
        xy_dec = self.h(xy, mask.unsqueeze(1))
        logits = self.ar_predict_layer(xy_dec[:, tx - 1 :])  # (B, Ty+1, V)
        return logits, targets, xy_dec

    # ----------------------------------------------------------------------------------------- inference

    @torch.inference_mode()
    def generate(
        self,
        phones: Sequence[torch.Tensor],
        bert_features: Sequence[torch.Tensor],
        prompts: torch.Tensor | Sequence[torch.Tensor | None] | None,
        params: SamplingParams | None = None,
        num_candidates: int = 1,
        generator: torch.Generator | None = None,
        return_step_logits: bool = False,
        between_steps: Callable[[], None] | None = None,
    ) -> GenerationResult:
        """The whole decode of ``decode_steps`` (same arguments, same tokens): its result."""
        steps = self.decode_steps(
            phones,
            bert_features,
            prompts,
            params,
            num_candidates,
            generator,
            return_step_logits,
            between_steps,
        )
        while True:
            try:
                next(steps)
            except StopIteration as done:
                return done.value

    @torch.inference_mode()  # entered again at every resume of the generator
    def decode_steps(
        self,
        phones: Sequence[torch.Tensor],
        bert_features: Sequence[torch.Tensor],
        prompts: torch.Tensor | Sequence[torch.Tensor | None] | None,
        params: SamplingParams | None = None,
        num_candidates: int = 1,
        generator: torch.Generator | None = None,
        return_step_logits: bool = False,
        between_steps: Callable[[], None] | None = None,
    ) -> Generator[DecodeProgress, None, GenerationResult]:
        """Decode semantic tokens with a KV cache for several sentences and candidates at once.

        phones[i] (Tx_i,) phone ids of prompt text + target text; bert_features[i] (1024, Tx_i);
        prompts: one (Tp,) tensor shared by all sentences, a list with one per sentence, or None for the
        reference-free mode. Each sentence is repeated ``num_candidates`` times; prefixes are left-padded
        to a common length and rows leave the batch when they finish. Follows the reference's
        ``infer_panel_naive`` rules: EOS banned for the first ``eos_ban_steps`` steps, stop when the sample
        or the argmax of the penalised logits is EOS (that step's token is dropped), stop after
        ``max_new_tokens`` tokens (the last one kept). ``between_steps`` is called at each look at the
        device state (every ``sync_every`` steps): a server lets other requests use the model there; at
        the same looks the generator yields a ``DecodeProgress``, and it returns the ``GenerationResult``.
        """
        params = params or SamplingParams()
        params.validate()
        if len(phones) == 0:
            raise S1InputError("generate needs at least one sentence")
        if len(phones) != len(bert_features):
            raise S1InputError(f"{len(phones)} phone sequences but {len(bert_features)} BERT feature tensors")
        if num_candidates < 1:
            raise S1InputError(f"num_candidates must be >= 1, got {num_candidates}")
        n_sent = len(phones)
        if prompts is None or isinstance(prompts, torch.Tensor):
            prompt_list: list[torch.Tensor | None] = [prompts] * n_sent  # type: ignore[list-item]
        else:
            prompt_list = list(prompts)
            if len(prompt_list) != n_sent:
                raise S1InputError(f"{n_sent} sentences but {len(prompt_list)} prompts")

        dev = self.device
        prefixes, kinds, prompt_lens, seen_lists = [], [], [], []
        for i in range(n_sent):
            ph, bert, pr = phones[i], bert_features[i], prompt_list[i]
            if ph.ndim != 1 or ph.numel() == 0:
                raise S1InputError(
                    f"sentence {i}: phones must be a non-empty 1-D tensor, got shape {tuple(ph.shape)}"
                )
            if bert.ndim != 2 or bert.shape != (BERT_DIM, ph.numel()):
                raise S1InputError(
                    f"sentence {i}: BERT features must be ({BERT_DIM}, {ph.numel()}) to match its "
                    f"{ph.numel()} phones, got {tuple(bert.shape)}"
                )
            if int(ph.max()) >= self.cfg.phoneme_vocab_size or int(ph.min()) < 0:
                raise S1InputError(f"sentence {i}: phone ids must be in [0, {self.cfg.phoneme_vocab_size})")
            pr = None if pr is None or pr.numel() == 0 else pr.reshape(-1)
            if pr is not None and (int(pr.max()) >= self.eos or int(pr.min()) < 0):
                raise S1InputError(f"sentence {i}: prompt semantic ids must be in [0, {self.eos})")
            x_emb = self.embed_text(ph.to(dev).unsqueeze(0), bert.to(dev).unsqueeze(0))[0]  # (Tx, C)
            parts, kind = [x_emb], [torch.ones(ph.numel(), dtype=torch.long)]
            if pr is not None:
                parts.append(self.embed_audio(pr.to(dev).unsqueeze(0))[0])
                kind.append(torch.full((pr.numel(),), 2, dtype=torch.long))
            prefix, k = torch.cat(parts), torch.cat(kind)
            prefixes.append(prefix)
            kinds.append(k)
            prompt_lens.append(0 if pr is None else pr.numel())
            seen_lists.append(pr)
        return (
            yield from self._decode(
                prefixes,
                kinds,
                prompt_lens,
                seen_lists,
                params,
                num_candidates,
                generator,
                return_step_logits,
                between_steps,
            )
        )

    def _decode(
        self,
        prefixes: list[torch.Tensor],
        kinds: list[torch.Tensor],
        prompt_lens: list[int],
        seen_lists: list[torch.Tensor | None],
        params: SamplingParams,
        num_candidates: int,
        generator: torch.Generator | None,
        return_step_logits: bool,
        between_steps: Callable[[], None] | None = None,
    ) -> Generator[DecodeProgress, None, GenerationResult]:
        """Prefill once per sentence, copy the cache to its candidates, then decode step by step."""
        dev = self.device
        n_sent = len(prefixes)
        n_rows = n_sent * num_candidates
        v = self.cfg.vocab_size
        max_new = params.max_new_tokens
        lmax = max(p.size(0) for p in prefixes)
        x = prefixes[0].new_zeros(n_sent, lmax, prefixes[0].size(1))  # (S, L, C), left-padded
        kind = torch.zeros(n_sent, lmax, dtype=torch.long)  # 0 pad, 1 text, 2 audio
        for r, (p, k) in enumerate(zip(prefixes, kinds, strict=True)):
            x[r, lmax - p.size(0) :] = p
            kind[r, lmax - k.size(0) :] = k
        kind = kind.to(dev)
        is_pad, is_text, is_audio = kind == 0, kind == 1, kind == 2
        causal = torch.ones(lmax, lmax, dtype=torch.bool, device=dev).tril()
        mask = (is_text.unsqueeze(1) & ~is_pad.unsqueeze(2)) | (
            is_audio.unsqueeze(2) & is_audio.unsqueeze(1) & causal
        )
        # Padding rows attend to themselves only, which keeps softmax finite; their outputs are unused.
        mask = mask | (is_pad.unsqueeze(2) & torch.eye(lmax, dtype=torch.bool, device=dev))
        any_pad = bool(is_pad.any())

        seen = torch.zeros(n_sent, v, dtype=torch.bool, device=dev)
        for r, s in enumerate(seen_lists):
            if s is not None:
                seen[r, s.to(dev).long()] = True
        next_pos = torch.tensor(prompt_lens, dtype=torch.long, device=dev)  # position of the next audio token

        use_graph = dev.type == "cuda" and self.cuda_graph
        static = use_graph if self.static_step is None else self.static_step or use_graph
        sync_every = self.sync_every or (1 if dev.type == "cpu" else 8)
        # Finished rows leave the batch at each host look, except with fixed shapes (a graph's).
        compact = not static
        heads = self.cfg.head
        # Candidates of one sentence keep one copy of the prefix's K/V (no padding there: one prefix);
        # attend_shared uses the CPU attention kernel that returns the log-sum-exp.
        shared = (
            self.shared_prefix and dev.type == "cpu" and not static and n_sent == 1 and num_candidates > 1
        )
        kv_dtype = self.kv_dtype or x.dtype
        kv_shape = (self.cfg.n_layer, heads, self.cfg.hidden_dim // heads)
        cache: KVCache | SharedPrefixCache = KVCache(
            kv_shape[0],
            n_sent,
            *kv_shape[1:],
            lmax + (0 if shared else max_new),
            kv_dtype,
            dev,
            zeroed=static,
        )
        h = x
        for i, layer in enumerate(self.h.layers):
            h = layer.forward_cached(h, mask.unsqueeze(1), cache, i)
        cache.advance(lmax)
        # Row r is candidate r % N of sentence r // N; candidates share the prefix computation.
        expand = torch.arange(n_sent, device=dev).repeat_interleave(num_candidates)
        if shared:
            cache = SharedPrefixCache(
                cache, KVCache(kv_shape[0], n_rows, *kv_shape[1:], max_new, kv_dtype, dev)
            )
        elif num_candidates > 1:
            cache.keep_rows(expand)
        last = h[expand, -1]  # (B, C)
        key_ok = torch.zeros(n_rows, lmax + max_new, dtype=torch.bool, device=dev)  # (B, capacity)
        key_ok[:, :lmax] = (~is_pad)[expand]
        seen, next_pos = seen[expand], next_pos[expand]
        generator = device_generator(generator, dev)

        # Bookkeeping on the device, indexed by original row; ``rows`` maps live batch rows to them.
        rows = torch.arange(n_rows, device=dev)
        alive = torch.ones(n_rows, dtype=torch.bool, device=dev)  # per live batch row
        tokens = torch.zeros(
            n_rows, max_new, dtype=torch.long, device=dev
        )  # row r's are tokens[r, :n_tok[r]]
        logps = torch.zeros(n_rows, max_new, dtype=torch.float32, device=dev)
        n_tok = torch.zeros(n_rows, dtype=torch.long, device=dev)
        n_steps = torch.zeros(n_rows, dtype=torch.long, device=dev)
        eos_hit = torch.zeros(n_rows, dtype=torch.bool, device=dev)
        logit_log: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []  # (rows, alive, raw) per step
        graph: _GraphStep | None = None

        for step in range(max_new):
            raw = self.ar_predict_layer(last).float()  # (B, V)
            logits = raw.clone()
            if step < params.eos_ban_steps:
                logits[:, self.eos] = float("-inf")
            penalised, probs = logits_to_probs(logits, seen, params)
            sample = sample_from_probs(probs, generator)  # (B,)
            stop_eos = (sample == self.eos) | (penalised.argmax(dim=-1) == self.eos)
            logp = torch.log_softmax(raw, dim=-1).gather(1, sample.unsqueeze(1)).squeeze(1)
            if return_step_logits:
                logit_log.append((rows, alive, raw))
            tokens[rows, step] = sample  # beyond n_tok for rows that already stopped: ignored
            logps[rows, step] = logp
            n_steps[rows] += alive.long()
            eos_hit[rows] |= alive & stop_eos
            alive = alive & ~stop_eos
            n_tok[rows] += alive.long()
            if step == max_new - 1:
                break
            if (step + 1) % sync_every == 0:
                n_alive = int(alive.sum())  # the only host look at the device state
                if n_alive == 0:
                    break
                if between_steps is not None:
                    between_steps()
                yield DecodeProgress(tokens, n_tok)
                if compact and n_alive < rows.numel():
                    idx = alive.nonzero().squeeze(1)
                    rows, alive, sample, seen, next_pos = (
                        rows[idx],
                        alive[idx],
                        sample[idx],
                        seen[idx],
                        next_pos[idx],
                    )
                    key_ok = key_ok[idx]
                    cache.keep_rows(idx)
            seen[torch.arange(rows.numel(), device=dev), sample] = True
            slot = lmax + step  # cache position of the token fed now (the same for all rows: left padding)
            if static:
                if graph is None:
                    graph = _GraphStep(self, cache, key_ok, capture=use_graph)
                last = graph.run(sample, next_pos, slot)
                cache.advance(1)
            else:
                key_ok[:, slot] = True
                step_mask = key_ok[:, None, None, : slot + 1] if any_pad else None
                last = self._step(sample, next_pos, step_mask, cache)
            next_pos = next_pos + 1

        return self._collect(tokens, logps, n_tok, n_steps, eos_hit, logit_log, num_candidates)

    def _step(
        self,
        sample: torch.Tensor,
        pos: torch.Tensor,
        mask: torch.Tensor | None,
        cache: KVCache | SharedPrefixCache,
    ) -> torch.Tensor:
        """Feed tokens ``sample`` (B,) at audio positions ``pos`` (B,) -> last hidden state (B, C)."""
        emb = self.ar_audio_embedding(sample.unsqueeze(1))
        # Positions continue after the prompt: the k-th new token sits at prompt_len + k.
        h = self.ar_audio_position.at(emb, pos.unsqueeze(1))  # (B, 1, C)
        if self.fast_step is not None:
            last = self.fast_step(h[:, 0], cache, mask)
        else:
            for i, layer in enumerate(self.h.layers):
                h = layer.forward_cached(h, mask, cache, i)
            last = h[:, -1]
        cache.advance(1)
        return last

    def _step_static(
        self,
        sample: torch.Tensor,
        pos: torch.Tensor,
        slot: torch.Tensor,
        key_ok: torch.Tensor,
        cache: KVCache,
    ) -> torch.Tensor:
        """The fixed-shape step a CUDA graph captures: every input is a device tensor, slot (1,) long."""
        key_ok.index_fill_(1, slot, True)
        mask = key_ok[:, None, None, :]  # (B, 1, 1, capacity)
        h = self.ar_audio_position.at(self.ar_audio_embedding(sample.unsqueeze(1)), pos.unsqueeze(1))
        for i, layer in enumerate(self.h.layers):
            h = layer.forward_static(h, mask, cache, i, slot)
        return h[:, -1]

    @staticmethod
    def _collect(
        tokens: torch.Tensor,
        logps: torch.Tensor,
        n_tok: torch.Tensor,
        n_steps: torch.Tensor,
        eos_hit: torch.Tensor,
        logit_log: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
        num_candidates: int,
    ) -> GenerationResult:
        """Device bookkeeping -> Candidates (one host copy at the end)."""
        tokens, logps = tokens.cpu(), logps.cpu()
        n_tok_l, n_steps_l, eos_l = n_tok.tolist(), n_steps.tolist(), eos_hit.tolist()
        per_row: list[list[torch.Tensor]] = [[] for _ in n_tok_l]
        for rows, alive, raw in logit_log:
            raw_c = raw.cpu()
            for b, (r, a) in enumerate(zip(rows.tolist(), alive.tolist(), strict=True)):
                if a:
                    per_row[r].append(raw_c[b])
        result = GenerationResult()
        for r, n in enumerate(n_tok_l):
            if r % num_candidates == 0:
                result.candidates.append([])
            result.candidates[-1].append(
                Candidate(
                    tokens=tokens[r, :n].clone(),
                    logprobs=logps[r, :n].clone(),
                    eos=bool(eos_l[r]),
                    steps=int(n_steps_l[r]),
                    step_logits=torch.stack(per_row[r]) if logit_log else None,
                )
            )
        return result


class _GraphStep:
    """The fixed-shape single-token step of one decode; with ``capture``, a CUDA graph captured on first use
    and replayed after.

    Inputs are copied into static buffers before each replay; the cache, the key mask and the output live
    at fixed addresses for the whole decode, so replays need no host synchronisation.
    """

    def __init__(self, model: Text2Semantic, cache: KVCache, key_ok: torch.Tensor, capture: bool) -> None:
        self.model, self.cache, self.key_ok, self.capture = model, cache, key_ok, capture
        b = key_ok.size(0)
        dev = key_ok.device
        self.sample = torch.zeros(b, dtype=torch.long, device=dev)
        self.pos = torch.zeros(b, dtype=torch.long, device=dev)
        self.slot = torch.zeros(1, dtype=torch.long, device=dev)
        self.graph: torch.cuda.CUDAGraph | None = None
        self.out: torch.Tensor | None = None

    def _run_eager(self) -> torch.Tensor:
        return self.model._step_static(self.sample, self.pos, self.slot, self.key_ok, self.cache)

    def run(self, sample: torch.Tensor, pos: torch.Tensor, slot: int) -> torch.Tensor:
        self.sample.copy_(sample)
        self.pos.copy_(pos)
        self.slot.fill_(slot)
        if not self.capture:
            return self._run_eager()
        if self.graph is None:
            # Warm up on a side stream (as the CUDA graph docs ask), then capture. The step only writes
            # at ``slot``, so running it again with the same inputs is harmless.
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                for _ in range(2):
                    self._run_eager()
            torch.cuda.current_stream().wait_stream(side)
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph):
                self.out = self._run_eager()
        self.graph.replay()
        assert self.out is not None
        return self.out.clone()


# ------------------------------------------------------------------------------------------------ losses


def s1_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Summed cross-entropy over all positions, as the reference (longer clips weigh more)."""
    return F.cross_entropy(logits.transpose(1, 2), targets, reduction="sum")


def top_k_accuracy(
    logits: torch.Tensor, targets: torch.Tensor, k: int = 3, ignore_index: int = -100
) -> torch.Tensor:
    """Micro top-k accuracy over positions whose target is not ``ignore_index`` (the reference ignores EOS)."""
    keep = targets != ignore_index
    if not bool(keep.any()):
        return logits.new_zeros(())
    topk = logits.topk(k, dim=-1).indices  # (B, T, k)
    hit = (topk == targets.unsqueeze(-1)).any(-1)
    return hit[keep].float().mean()


def sequence_logps(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Sum of per-position target log-probabilities, (B, T, V), (B, T) -> (B,) (padding included, as the
    reference's ``get_batch_logps``)."""
    return logits.log_softmax(-1).gather(2, targets.unsqueeze(2)).squeeze(2).sum(-1)


def dpo_loss(chosen_logps: torch.Tensor, rejected_logps: torch.Tensor, beta: float = 0.2) -> torch.Tensor:
    """Reference-free DPO loss: mean of -logsigmoid(beta * (chosen - rejected))."""
    return -F.logsigmoid(beta * (chosen_logps - rejected_logps)).mean()


def make_reject_y(
    y: torch.Tensor, y_lens: torch.Tensor, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rejected targets for DPO: per row, randomly repeat a span or drop a span of the true tokens.

    As the reference, the span is taken from the padded row (length y.shape[1]); rows are right-padded
    with 0 to the longest result.
    """
    out = []
    for b in range(y.shape[0]):
        row = y[b]
        mode = int(torch.randint(0, 2, (1,), generator=generator))
        lo, hi = torch.randint(0, len(row), (2,), generator=generator).sort().values.tolist()
        span = row[lo:hi]
        parts = [row[:lo], span, span, row[hi:]] if mode == 0 else [row[:lo], row[hi:]]
        out.append(torch.cat(parts))
    lens = torch.tensor([len(r) for r in out], device=y_lens.device)
    width = int(lens.max())
    padded = torch.stack([F.pad(r, (0, width - len(r))) for r in out])
    return padded, lens


def strip_lightning_prefix(
    state_dict: dict[str, torch.Tensor], prefix: str = "model."
) -> dict[str, torch.Tensor]:
    """Official GPT checkpoints store the Lightning module's state dict; drop its ``model.`` prefix."""
    return {k[len(prefix) :] if k.startswith(prefix) else k: v for k, v in state_dict.items()}
