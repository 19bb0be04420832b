"""Transformer blocks of the S2 text/content encoders (VITS style, channels-first tensors).

Relative-position multi-head attention with a window of +-4 positions (shared across heads),
post-norm encoder layers and a convolutional feed-forward block. Parameter names follow the
reference (`conv_q/k/v/o`, `emb_rel_k/v`, `norm_layers_1/2.N.gamma/beta`, `ffn_layers.N.conv_1/2`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class LayerNorm(nn.Module):
    """LayerNorm over the channel axis of a (B, C, T) tensor."""

    def __init__(self, channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.channels = channels
        self.eps = eps
        self.gamma = nn.Parameter(torch.ones(channels))
        self.beta = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.transpose(1, -1)  # (B, T, C)
        x = F.layer_norm(x, (self.channels,), self.gamma, self.beta, self.eps)
        return x.transpose(1, -1)


class MultiHeadAttention(nn.Module):
    """Multi-head attention on (B, C, T) tensors, optionally with relative position embeddings.

    With `window_size` set (self-attention only), learned key/value embeddings for the relative
    offsets -window..+window are added to the scores and to the output, as in VITS.
    """

    def __init__(
        self,
        channels: int,
        out_channels: int,
        n_heads: int,
        p_dropout: float = 0.0,
        window_size: int | None = None,
    ) -> None:
        super().__init__()
        if channels % n_heads:
            raise ValueError(f"channels ({channels}) must be divisible by n_heads ({n_heads})")
        self.n_heads = n_heads
        self.k_channels = channels // n_heads
        self.window_size = window_size
        self.conv_q = nn.Conv1d(channels, channels, 1)
        self.conv_k = nn.Conv1d(channels, channels, 1)
        self.conv_v = nn.Conv1d(channels, channels, 1)
        self.conv_o = nn.Conv1d(channels, out_channels, 1)
        self.drop = nn.Dropout(p_dropout)
        if window_size is not None:
            std = self.k_channels**-0.5
            # One table shared by all heads: (1, 2*window+1, k_channels).
            self.emb_rel_k = nn.Parameter(torch.randn(1, 2 * window_size + 1, self.k_channels) * std)
            self.emb_rel_v = nn.Parameter(torch.randn(1, 2 * window_size + 1, self.k_channels) * std)
        for conv in (self.conv_q, self.conv_k, self.conv_v):
            nn.init.xavier_uniform_(conv.weight)

    def forward(
        self, x: torch.Tensor, c: torch.Tensor, attn_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """x: queries (B, C, T_q); c: keys/values (B, C, T_k); attn_mask: (B, 1, T_q, T_k) of 0/1."""
        q, k, v = self.conv_q(x), self.conv_k(c), self.conv_v(c)
        b, d, t_k = k.shape
        t_q = q.size(2)
        h, dk = self.n_heads, self.k_channels
        q = q.view(b, h, dk, t_q).transpose(2, 3) / math.sqrt(dk)  # (B, H, Tq, dk)
        k = k.view(b, h, dk, t_k).transpose(2, 3)  # (B, H, Tk, dk)
        v = v.view(b, h, dk, t_k).transpose(2, 3)  # (B, H, Tk, dk)

        scores = q @ k.transpose(-2, -1)  # (B, H, Tq, Tk)
        if self.window_size is not None:
            if t_q != t_k:
                raise ValueError("relative attention needs queries and keys of the same length")
            rel_k = self._relative_embeddings(self.emb_rel_k, t_k)  # (1, 2T-1, dk)
            rel_logits = q @ rel_k.unsqueeze(0).transpose(-2, -1)  # (B, H, T, 2T-1)
            scores = scores + _relative_to_absolute(rel_logits)
        if attn_mask is not None:
            # A large finite value (not -inf) so fully masked rows stay finite, as the reference.
            scores = scores.masked_fill(attn_mask == 0, -1e4)
        p_attn = self.drop(F.softmax(scores, dim=-1))
        out = p_attn @ v  # (B, H, Tq, dk)
        if self.window_size is not None:
            rel_v = self._relative_embeddings(self.emb_rel_v, t_k)
            out = out + _absolute_to_relative(p_attn) @ rel_v.unsqueeze(0)
        out = out.transpose(2, 3).contiguous().view(b, d, t_q)  # (B, C, Tq)
        return self.conv_o(out)

    def _relative_embeddings(self, table: torch.Tensor, length: int) -> torch.Tensor:
        """Rows of `table` for offsets -(length-1)..(length-1), zero beyond the window: (1, 2L-1, dk)."""
        w = self.window_size
        assert w is not None
        pad = max(length - (w + 1), 0)
        start = max((w + 1) - length, 0)
        if pad > 0:
            table = F.pad(table, (0, 0, pad, pad))
        return table[:, start : start + 2 * length - 1]


def _relative_to_absolute(x: torch.Tensor) -> torch.Tensor:
    """(B, H, L, 2L-1) logits indexed by relative offset -> (B, H, L, L) indexed by key position."""
    b, h, length, _ = x.shape
    x = F.pad(x, (0, 1))  # (B, H, L, 2L)
    x = x.reshape(b, h, length * 2 * length)
    x = F.pad(x, (0, length - 1))
    return x.view(b, h, length + 1, 2 * length - 1)[:, :, :length, length - 1 :]


def _absolute_to_relative(x: torch.Tensor) -> torch.Tensor:
    """(B, H, L, L) weights indexed by key position -> (B, H, L, 2L-1) indexed by relative offset."""
    b, h, length, _ = x.shape
    x = F.pad(x, (0, length - 1))  # (B, H, L, 2L-1)
    x = x.reshape(b, h, length * (2 * length - 1))
    x = F.pad(x, (length, 0))
    return x.view(b, h, length, 2 * length)[:, :, :, 1:]


class FFN(nn.Module):
    """Two 'same'-padded convolutions with ReLU, masked before each convolution."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        filter_channels: int,
        kernel_size: int,
        p_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.conv_1 = nn.Conv1d(in_channels, filter_channels, kernel_size)
        self.conv_2 = nn.Conv1d(filter_channels, out_channels, kernel_size)
        self.drop = nn.Dropout(p_dropout)

    def _pad(self, x: torch.Tensor) -> torch.Tensor:
        if self.kernel_size == 1:
            return x
        return F.pad(x, ((self.kernel_size - 1) // 2, self.kernel_size // 2))

    def forward(self, x: torch.Tensor, x_mask: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv_1(self._pad(x * x_mask)))
        x = self.drop(x)
        x = self.conv_2(self._pad(x * x_mask))
        return x * x_mask


class Encoder(nn.Module):
    """Stack of post-norm layers: relative self-attention then FFN, each with a residual."""

    def __init__(
        self,
        hidden_channels: int,
        filter_channels: int,
        n_heads: int,
        n_layers: int,
        kernel_size: int = 1,
        p_dropout: float = 0.0,
        window_size: int = 4,
    ) -> None:
        super().__init__()
        self.n_layers = n_layers
        self.drop = nn.Dropout(p_dropout)
        self.attn_layers = nn.ModuleList()
        self.norm_layers_1 = nn.ModuleList()
        self.ffn_layers = nn.ModuleList()
        self.norm_layers_2 = nn.ModuleList()
        for _ in range(n_layers):
            self.attn_layers.append(
                MultiHeadAttention(
                    hidden_channels, hidden_channels, n_heads, p_dropout=p_dropout, window_size=window_size
                )
            )
            self.norm_layers_1.append(LayerNorm(hidden_channels))
            self.ffn_layers.append(
                FFN(hidden_channels, hidden_channels, filter_channels, kernel_size, p_dropout=p_dropout)
            )
            self.norm_layers_2.append(LayerNorm(hidden_channels))

    def forward(self, x: torch.Tensor, x_mask: torch.Tensor) -> torch.Tensor:
        """x: (B, C, T); x_mask: (B, 1, T) -> (B, C, T)."""
        attn_mask = x_mask.unsqueeze(2) * x_mask.unsqueeze(-1)  # (B, 1, T, T)
        x = x * x_mask
        for i in range(self.n_layers):
            y = self.drop(self.attn_layers[i](x, x, attn_mask))
            x = self.norm_layers_1[i](x + y)
            y = self.drop(self.ffn_layers[i](x, x_mask))
            x = self.norm_layers_2[i](x + y)
        return x * x_mask
