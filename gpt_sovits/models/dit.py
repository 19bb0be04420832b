"""The DiT velocity estimator of the v3/v4 flow-matching S2 (F5-TTS's backbone as GPT-SoVITS uses it).

One call predicts the flow velocity for every mel frame:

    x (B,mel,T) noisy mel, cond (B,mel,T) prompt mel (zeros past the prompt), text (B,text_dim,T)
    text --(+ sinusoidal positions, ConvNeXt-V2 x conv_layers)--> text_emb (B,T,text_dim)
    [x | cond | text_emb] --Linear--> (B,T,dim) --(+ grouped conv position embedding)
    t = time_embed(time) + d_embed(dt)                                              (B,dim)
    depth x DiTBlock(adaLN-zero(t), self-attention with rotary positions, tanh-GELU FFN)
    --adaLN(t)--> Linear --> velocity (B,mel,T)

Quirks kept because trained weights depend on them:

- rotary positions (interleaved pairs, base 10000) rotate only the first `dim_head` features of the
  full `heads * dim_head` query/key vectors, i.e. the first head, as F5-TTS applies them before the
  head split; the inverse frequencies are a persistent buffer (`rotary_embed.inv_freq`), so
  official files carry them;
- the text positions are `cat(cos, sin)` tables of `text_dim` features, clamped at position 4095;
- GRN normalises over the time axis (dim 1 of (B, T, C)).

Parameter names equal the reference's (`f5_tts/model/backbones/dit.py`, `f5_tts/model/modules.py`),
so official `cfm.estimator.*` weights load strictly and peft can target `to_q/to_k/to_v/to_out.0`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from gpt_sovits.models.commons import sequence_mask

TEXT_MAX_POS = 4096  # text position table length in the reference (~44 s of 24 kHz mel)
FREQ_EMBED_DIM = 256  # sinusoidal size of the time embeddings


# --- embeddings ------------------------------------------------------------------------------------


def sinusoidal_embedding(x: torch.Tensor, dim: int, scale: float = 1000.0) -> torch.Tensor:
    """Times (B,) -> (B, dim) as [sin | cos] with log-spaced frequencies (the diffusion convention)."""
    half = dim // 2
    step = math.log(10000) / (half - 1)
    freqs = torch.exp(torch.arange(half, device=x.device).float() * -step)  # (half,)
    emb = scale * x.unsqueeze(1) * freqs.unsqueeze(0)  # (B, half)
    return torch.cat((emb.sin(), emb.cos()), dim=-1)


class TimestepEmbedding(nn.Module):
    """Flow time (or step size) (B,) -> (B, dim): sinusoid, Linear, SiLU, Linear."""

    def __init__(self, dim: int, freq_embed_dim: int = FREQ_EMBED_DIM) -> None:
        super().__init__()
        self.freq_embed_dim = freq_embed_dim
        self.time_mlp = nn.Sequential(nn.Linear(freq_embed_dim, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, timestep: torch.Tensor) -> torch.Tensor:
        hidden = sinusoidal_embedding(timestep, self.freq_embed_dim).to(timestep.dtype)
        return self.time_mlp(hidden)


def text_positions(seq_len: int, dim: int, device: torch.device) -> torch.Tensor:
    """(seq_len, dim) table [cos | sin] of the text positions, clamped at TEXT_MAX_POS - 1.

    Equal to the rows of the reference's precomputed 4096-row table (computed per call here, so the
    model has no non-persistent buffer and can be built on the meta device)."""
    freqs = 1.0 / (10000.0 ** (torch.arange(0, dim, 2, device=device)[: dim // 2].float() / dim))
    pos = torch.arange(seq_len, device=device).clamp(max=TEXT_MAX_POS - 1)
    angles = torch.outer(pos, freqs).float()  # (T, dim/2)
    return torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1)


class GRN(nn.Module):
    """Global response normalisation of ConvNeXt-V2 over the time axis of (B, T, C)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(1, 1, dim))
        self.beta = nn.Parameter(torch.zeros(1, 1, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gx = torch.norm(x, p=2, dim=1, keepdim=True)  # (B, 1, C)
        nx = gx / (gx.mean(dim=-1, keepdim=True) + 1e-6)
        return self.gamma * (x * nx) + self.beta + x


class ConvNeXtV2Block(nn.Module):
    """Depthwise conv (k7) -> LayerNorm -> Linear up -> GELU -> GRN -> Linear down, residual; (B,T,C)."""

    def __init__(self, dim: int, intermediate_dim: int, dilation: int = 1) -> None:
        super().__init__()
        padding = (dilation * (7 - 1)) // 2
        self.dwconv = nn.Conv1d(dim, dim, kernel_size=7, padding=padding, groups=dim, dilation=dilation)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, intermediate_dim)
        self.act = nn.GELU()
        self.grn = GRN(intermediate_dim)
        self.pwconv2 = nn.Linear(intermediate_dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.dwconv(x.transpose(1, 2)).transpose(1, 2)  # (B, T, C)
        y = self.pwconv2(self.grn(self.act(self.pwconv1(self.norm(y)))))
        return x + y


class TextEmbedding(nn.Module):
    """Conditioning features (B, T, text_dim) + positions -> ConvNeXt-V2 blocks (none when conv_layers=0)."""

    def __init__(self, text_dim: int, conv_layers: int = 0, conv_mult: int = 2) -> None:
        super().__init__()
        self.text_dim = text_dim
        self.extra_modeling = conv_layers > 0
        if self.extra_modeling:
            self.text_blocks = nn.Sequential(
                *[ConvNeXtV2Block(text_dim, text_dim * conv_mult) for _ in range(conv_layers)]
            )

    def forward(self, text: torch.Tensor, drop_text: bool = False) -> torch.Tensor:
        if drop_text:  # classifier-free guidance: the unconditional branch
            text = torch.zeros_like(text)
        if self.extra_modeling:
            pos = text_positions(text.shape[1], self.text_dim, text.device)  # (T, text_dim) fp32
            # the reference's table is a buffer: it has the model's dtype
            text = self.text_blocks(text + pos.to(text.dtype).unsqueeze(0))
        return text


class ConvPositionEmbedding(nn.Module):
    """Two grouped convolutions (k31, 16 groups) with Mish: a relative position signal, (B,T,D) -> (B,T,D)."""

    def __init__(self, dim: int, kernel_size: int = 31, groups: int = 16) -> None:
        super().__init__()
        if kernel_size % 2 == 0:
            raise ValueError("ConvPositionEmbedding needs an odd kernel_size")
        pad = kernel_size // 2
        self.conv1d = nn.Sequential(
            nn.Conv1d(dim, dim, kernel_size, groups=groups, padding=pad),
            nn.Mish(),
            nn.Conv1d(dim, dim, kernel_size, groups=groups, padding=pad),
            nn.Mish(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv1d(x.transpose(1, 2)).transpose(1, 2)


class InputEmbedding(nn.Module):
    """[noisy mel | prompt mel | text embedding] (B,T,2*mel+text_dim) -> (B,T,dim), plus conv positions."""

    def __init__(self, mel_dim: int, text_dim: int, out_dim: int) -> None:
        super().__init__()
        self.proj = nn.Linear(mel_dim * 2 + text_dim, out_dim)
        self.conv_pos_embed = ConvPositionEmbedding(dim=out_dim)

    def forward(
        self, x: torch.Tensor, cond: torch.Tensor, text_embed: torch.Tensor, drop_audio_cond: bool = False
    ) -> torch.Tensor:
        if drop_audio_cond:
            cond = torch.zeros_like(cond)
        x = self.proj(torch.cat((x, cond, text_embed), dim=-1))
        return self.conv_pos_embed(x) + x


# --- rotary positions --------------------------------------------------------------------------------


class RotaryEmbedding(nn.Module):
    """Rotary position angles for `dim` features; `inv_freq` is persistent, as official files hold it."""

    def __init__(self, dim: int, base: float = 10000.0) -> None:
        super().__init__()
        self.register_buffer("inv_freq", rotary_inv_freq(dim, base))

    def forward(self, seq_len: int) -> torch.Tensor:
        """(1, T, dim) angles, each frequency repeated for its interleaved feature pair."""
        t = torch.arange(seq_len, device=self.inv_freq.device).type_as(self.inv_freq)
        freqs = torch.outer(t, self.inv_freq)  # (T, dim/2)
        return freqs.repeat_interleave(2, dim=-1).unsqueeze(0)


def rotary_inv_freq(dim: int, base: float = 10000.0) -> torch.Tensor:
    return 1.0 / (base ** (torch.arange(0, dim, 2).float() / dim))


def _rotate_pairs(x: torch.Tensor) -> torch.Tensor:
    """(x0, x1, x2, x3, ...) -> (-x1, x0, -x3, x2, ...)."""
    x = x.unflatten(-1, (-1, 2))
    x1, x2 = x.unbind(dim=-1)
    return torch.stack((-x2, x1), dim=-1).flatten(-2)


def apply_rotary(t: torch.Tensor, freqs: torch.Tensor) -> torch.Tensor:
    """Rotate the first freqs.shape[-1] features of t (B, T, D); the rest pass unchanged."""
    rot = freqs.shape[-1]
    freqs = freqs[:, -t.shape[-2] :, :]
    head, tail = t[..., :rot], t[..., rot:]
    # In the dtype promotion of (t, freqs), as the reference (half stays half after model.half()).
    head = head * freqs.cos() + _rotate_pairs(head) * freqs.sin()
    return torch.cat((head, tail.to(head.dtype)), dim=-1).to(t.dtype)


# --- transformer ---------------------------------------------------------------------------------------


class AdaLayerNormZero(nn.Module):
    """Shift/scale/gate (x6) from the time embedding; returns the modulated x and the FFN's parameters."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.silu = nn.SiLU()
        self.linear = nn.Linear(dim, dim * 6)
        self.norm = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> tuple[torch.Tensor, ...]:
        emb = self.linear(self.silu(emb))  # (B, 6*dim)
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = torch.chunk(emb, 6, dim=1)
        x = self.norm(x) * (1 + scale_msa[:, None]) + shift_msa[:, None]
        return x, gate_msa, shift_mlp, scale_mlp, gate_mlp


class AdaLayerNormZeroFinal(nn.Module):
    """Final modulation: scale and shift from the time embedding."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.silu = nn.SiLU()
        self.linear = nn.Linear(dim, dim * 2)
        self.norm = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        scale, shift = torch.chunk(self.linear(self.silu(emb)), 2, dim=1)
        return self.norm(x) * (1 + scale)[:, None, :] + shift[:, None, :]


class FeedForward(nn.Module):
    """Linear -> GELU (tanh) -> dropout -> Linear, named `ff.0.0` / `ff.2` as the reference."""

    def __init__(self, dim: int, mult: float = 4, dropout: float = 0.0, approximate: str = "none") -> None:
        super().__init__()
        inner = int(dim * mult)
        self.ff = nn.Sequential(
            nn.Sequential(nn.Linear(dim, inner), nn.GELU(approximate=approximate)),
            nn.Dropout(dropout),
            nn.Linear(inner, dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ff(x)


class Attention(nn.Module):
    """Multi-head self-attention with rotary positions and a key-padding mask; (B,T,dim) -> (B,T,dim)."""

    def __init__(self, dim: int, heads: int = 8, dim_head: int = 64, dropout: float = 0.0) -> None:
        super().__init__()
        self.heads = heads
        inner = dim_head * heads
        self.to_q = nn.Linear(dim, inner)
        self.to_k = nn.Linear(dim, inner)
        self.to_v = nn.Linear(dim, inner)
        self.to_out = nn.ModuleList([nn.Linear(inner, dim), nn.Dropout(dropout)])

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor | None = None, rope: torch.Tensor | None = None
    ) -> torch.Tensor:
        b = x.shape[0]
        q, k, v = self.to_q(x), self.to_k(x), self.to_v(x)  # (B, T, H*dh)
        if rope is not None:  # before the head split: only the first dim_head features rotate
            q, k = apply_rotary(q, rope), apply_rotary(k, rope)
        dh = k.shape[-1] // self.heads
        q, k, v = (z.view(b, -1, self.heads, dh).transpose(1, 2) for z in (q, k, v))  # (B, H, T, dh)
        attn_mask = None
        if mask is not None:  # (B or 1, T) True = frame -> (B, H, Tq, Tk)
            attn_mask = mask[:, None, None, :].expand(b, self.heads, q.shape[-2], k.shape[-2])
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=0.0, is_causal=False)
        out = out.transpose(1, 2).reshape(b, -1, self.heads * dh).to(q.dtype)
        out = self.to_out[1](self.to_out[0](out))
        if mask is not None:
            out = out.masked_fill(~mask.unsqueeze(-1), 0.0)
        return out


class DiTBlock(nn.Module):
    """adaLN-zero transformer block: gated attention and gated FFN residuals."""

    def __init__(self, dim: int, heads: int, dim_head: int, ff_mult: float = 4, dropout: float = 0.1) -> None:
        super().__init__()
        self.attn_norm = AdaLayerNormZero(dim)
        self.attn = Attention(dim, heads=heads, dim_head=dim_head, dropout=dropout)
        self.ff_norm = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.ff = FeedForward(dim, mult=ff_mult, dropout=dropout, approximate="tanh")

    def forward(
        self, x: torch.Tensor, t: torch.Tensor, mask: torch.Tensor | None, rope: torch.Tensor
    ) -> torch.Tensor:
        norm, gate_msa, shift_mlp, scale_mlp, gate_mlp = self.attn_norm(x, emb=t)
        x = x + gate_msa.unsqueeze(1) * self.attn(norm, mask=mask, rope=rope)
        norm = self.ff_norm(x) * (1 + scale_mlp[:, None]) + shift_mlp[:, None]
        return x + gate_mlp.unsqueeze(1) * self.ff(norm)


class DiT(nn.Module):
    """The velocity estimator `cfm.estimator`. Official v3/v4 size: DiT(1024, depth=22, heads=16,
    ff_mult=2, text_dim=512, conv_layers=4) with dim_head 64, mel_dim 100, dropout 0.1."""

    def __init__(
        self,
        dim: int,
        depth: int = 8,
        heads: int = 8,
        dim_head: int = 64,
        dropout: float = 0.1,
        ff_mult: float = 4,
        mel_dim: int = 100,
        text_dim: int | None = None,
        conv_layers: int = 0,
    ) -> None:
        super().__init__()
        text_dim = mel_dim if text_dim is None else text_dim
        self.dim, self.depth, self.mel_dim, self.text_dim = dim, depth, mel_dim, text_dim
        self.time_embed = TimestepEmbedding(dim)
        self.d_embed = TimestepEmbedding(dim)
        self.text_embed = TextEmbedding(text_dim, conv_layers=conv_layers)
        self.input_embed = InputEmbedding(mel_dim, text_dim, dim)
        self.rotary_embed = RotaryEmbedding(dim_head)
        self.transformer_blocks = nn.ModuleList(
            DiTBlock(dim, heads=heads, dim_head=dim_head, ff_mult=ff_mult, dropout=dropout)
            for _ in range(depth)
        )
        self.norm_out = AdaLayerNormZeroFinal(dim)
        self.proj_out = nn.Linear(dim, mel_dim)

    def forward(
        self,
        x: torch.Tensor,
        cond: torch.Tensor,
        x_lens: torch.Tensor,
        time: torch.Tensor,
        dt: torch.Tensor,
        text: torch.Tensor,
        use_grad_ckpt: bool = False,
        drop_audio_cond: bool = False,
        drop_text: bool = False,
        text_cache: torch.Tensor | None = None,
        dt_cache: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Velocity for x.

        x, cond: (B, mel, T); x_lens: (B,) or (1,) frames; time, dt: (B,) or (); text: (B, text_dim, T).
        `text_cache` / `dt_cache` skip recomputing what does not change between sampling steps.
        Returns (velocity (B, mel, T), text embedding (B, T, text_dim), dt embedding (B, dim)).
        """
        x, cond, text = x.transpose(2, 1), cond.transpose(2, 1), text.transpose(2, 1)  # (B, T, C)
        b, seq_len = x.shape[0], x.shape[1]
        mask = sequence_mask(x_lens, seq_len).to(x.device)  # (B or 1, T)
        if time.ndim == 0:
            time = time.repeat(b)
        dt_emb = self.d_embed(dt) if dt_cache is None else dt_cache
        t = self.time_embed(time) + dt_emb  # (B, dim)
        text_emb = self.text_embed(text, drop_text=drop_text) if text_cache is None else text_cache
        h = self.input_embed(x, cond, text_emb, drop_audio_cond=drop_audio_cond)  # (B, T, dim)
        rope = self.rotary_embed(seq_len)
        for block in self.transformer_blocks:
            if use_grad_ckpt and self.training:
                h = checkpoint(block, h, t, mask, rope, use_reentrant=False)
            else:
                h = block(h, t, mask, rope)
        out = self.proj_out(self.norm_out(h, t))  # (B, T, mel)
        return out.transpose(2, 1), text_emb, dt_emb
