"""Building blocks of the S2 (SoVITS) generator and discriminator.

Weight-normalised convolutions keep the reference's legacy parameter names (`weight_g`, `weight_v`)
so official checkpoints load strictly; the WaveNet stack, HiFi-GAN residual blocks, the coupling
flow, the reference (style) encoder and MRTE (multi-reference timbre encoder) follow.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from gpt_sovits.models.attentions import MultiHeadAttention as RelMultiHeadAttention
from gpt_sovits.models.commons import fused_add_tanh_sigmoid_multiply, get_padding

LRELU_SLOPE = 0.1


# --- weight normalisation with the legacy parameter names ---------------------------------------


class _WeightNorm:
    """Replaces a conv's `weight` by `weight_g` (norm over all dims but 0) and `weight_v` (direction).

    The effective weight is recomputed on every forward, as `torch.nn.utils.weight_norm` does; the
    legacy names are what GPT-SoVITS checkpoints contain.
    """

    weight_g: nn.Parameter
    weight_v: nn.Parameter

    def _split_weight(self) -> None:
        w = self.weight.detach()  # type: ignore[attr-defined]
        del self._parameters["weight"]  # type: ignore[attr-defined]
        self.weight_g = nn.Parameter(torch.norm_except_dim(w, 2, 0))
        self.weight_v = nn.Parameter(w.clone())

    def effective_weight(self) -> torch.Tensor:
        return torch._weight_norm(self.weight_v, self.weight_g, 0)


class WNConv1d(nn.Conv1d, _WeightNorm):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._split_weight()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.effective_weight(), self.bias)


class WNConv2d(nn.Conv2d, _WeightNorm):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._split_weight()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.effective_weight(), self.bias)


class WNConvTranspose1d(nn.ConvTranspose1d, _WeightNorm):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._split_weight()

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return F.conv_transpose1d(
            x,
            self.effective_weight(),
            self.bias,
            self.stride,
            self.padding,
            self.output_padding,
            self.groups,
            self.dilation,
        )


# --- WaveNet, HiFi-GAN residual blocks, flow --------------------------------------------------


class WN(nn.Module):
    """Non-causal WaveNet: dilated gated convolutions with residual and skip outputs, global conditioning."""

    def __init__(
        self,
        hidden_channels: int,
        kernel_size: int,
        dilation_rate: int,
        n_layers: int,
        gin_channels: int = 0,
        p_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError("WN kernel_size must be odd")
        self.hidden_channels = hidden_channels
        self.n_layers = n_layers
        self.in_layers = nn.ModuleList()
        self.res_skip_layers = nn.ModuleList()
        self.drop = nn.Dropout(p_dropout)
        if gin_channels:
            self.cond_layer = WNConv1d(gin_channels, 2 * hidden_channels * n_layers, 1)
        for i in range(n_layers):
            dilation = dilation_rate**i
            padding = (kernel_size * dilation - dilation) // 2
            self.in_layers.append(
                WNConv1d(
                    hidden_channels, 2 * hidden_channels, kernel_size, dilation=dilation, padding=padding
                )
            )
            # The last layer only feeds the skip path.
            res_skip = 2 * hidden_channels if i < n_layers - 1 else hidden_channels
            self.res_skip_layers.append(WNConv1d(hidden_channels, res_skip, 1))

    def forward(self, x: torch.Tensor, x_mask: torch.Tensor, g: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B, H, T); x_mask: (B, 1, T); g: (B, gin, 1) -> (B, H, T)."""
        output = torch.zeros_like(x)
        h = self.hidden_channels
        if g is not None:
            g = self.cond_layer(g)  # (B, 2H*n_layers, 1)
        for i in range(self.n_layers):
            x_in = self.in_layers[i](x)
            g_l = g[:, i * 2 * h : (i + 1) * 2 * h] if g is not None else torch.zeros_like(x_in)
            acts = self.drop(fused_add_tanh_sigmoid_multiply(x_in, g_l, h))
            res_skip = self.res_skip_layers[i](acts)
            if i < self.n_layers - 1:
                x = (x + res_skip[:, :h]) * x_mask
                output = output + res_skip[:, h:]
            else:
                output = output + res_skip
        return output * x_mask


class ResBlock1(nn.Module):
    """HiFi-GAN residual block type 1: three (dilated conv, conv) pairs."""

    def __init__(self, channels: int, kernel_size: int = 3, dilation: tuple[int, ...] = (1, 3, 5)) -> None:
        super().__init__()
        self.convs1 = nn.ModuleList(
            WNConv1d(channels, channels, kernel_size, 1, dilation=d, padding=get_padding(kernel_size, d))
            for d in dilation
        )
        self.convs2 = nn.ModuleList(
            WNConv1d(channels, channels, kernel_size, 1, dilation=1, padding=get_padding(kernel_size, 1))
            for _ in dilation
        )
        for conv in [*self.convs1, *self.convs2]:
            nn.init.normal_(conv.weight_v, 0.0, 0.01)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for c1, c2 in zip(self.convs1, self.convs2, strict=True):
            xt = c1(F.leaky_relu(x, LRELU_SLOPE))
            xt = c2(F.leaky_relu(xt, LRELU_SLOPE))
            x = xt + x
        return x


class ResBlock2(nn.Module):
    """HiFi-GAN residual block type 2: single dilated convs."""

    def __init__(self, channels: int, kernel_size: int = 3, dilation: tuple[int, ...] = (1, 3)) -> None:
        super().__init__()
        self.convs = nn.ModuleList(
            WNConv1d(channels, channels, kernel_size, 1, dilation=d, padding=get_padding(kernel_size, d))
            for d in dilation
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for c in self.convs:
            x = c(F.leaky_relu(x, LRELU_SLOPE)) + x
        return x


class Flip(nn.Module):
    """Reverse the channel order so the next coupling layer transforms the other half."""

    def forward(
        self, x: torch.Tensor, x_mask: torch.Tensor, g: torch.Tensor | None = None, reverse: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.flip(x, [1])
        return x, torch.zeros(x.size(0), dtype=x.dtype, device=x.device)


class ResidualCouplingLayer(nn.Module):
    """Affine (here mean-only) coupling: the second half is shifted by a WaveNet of the first half."""

    def __init__(
        self,
        channels: int,
        hidden_channels: int,
        kernel_size: int,
        dilation_rate: int,
        n_layers: int,
        gin_channels: int = 0,
        mean_only: bool = True,
    ) -> None:
        super().__init__()
        if channels % 2:
            raise ValueError("coupling channels must be even")
        self.half_channels = channels // 2
        self.mean_only = mean_only
        self.pre = nn.Conv1d(self.half_channels, hidden_channels, 1)
        self.enc = WN(hidden_channels, kernel_size, dilation_rate, n_layers, gin_channels=gin_channels)
        self.post = nn.Conv1d(hidden_channels, self.half_channels * (2 - int(mean_only)), 1)
        # Start as the identity map.
        nn.init.zeros_(self.post.weight)
        nn.init.zeros_(self.post.bias)

    def forward(
        self, x: torch.Tensor, x_mask: torch.Tensor, g: torch.Tensor | None = None, reverse: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns (y, logdet (B,)); logdet is zero in reverse mode."""
        x0, x1 = torch.split(x, [self.half_channels] * 2, 1)
        h = self.enc(self.pre(x0) * x_mask, x_mask, g=g)
        stats = self.post(h) * x_mask
        if self.mean_only:
            m, logs = stats, torch.zeros_like(stats)
        else:
            m, logs = torch.split(stats, [self.half_channels] * 2, 1)
        if not reverse:
            x1 = m + x1 * torch.exp(logs) * x_mask
            logdet = torch.sum(logs, [1, 2])
        else:
            x1 = (x1 - m) * torch.exp(-logs) * x_mask
            logdet = torch.zeros(x.size(0), dtype=x.dtype, device=x.device)
        return torch.cat([x0, x1], 1), logdet


# --- reference (style) encoder ------------------------------------------------------------------


class LinearNorm(nn.Module):
    """A Linear kept under `.fc` so the parameter names match the reference."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__()
        self.fc = nn.Linear(in_features, out_features, bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)


class Mish(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.tanh(F.softplus(x))


class ConvNorm(nn.Module):
    """A 'same'-padded Conv1d kept under `.conv` (reference naming)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv1d(in_channels, out_channels, kernel_size, padding=(kernel_size - 1) // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Conv1dGLU(nn.Module):
    """Conv1d followed by a gated linear unit, with a residual connection."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, dropout: float) -> None:
        super().__init__()
        self.out_channels = out_channels
        self.conv1 = ConvNorm(in_channels, 2 * out_channels, kernel_size)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = torch.split(self.conv1(x), self.out_channels, dim=1)
        return x + self.dropout(a * torch.sigmoid(b))


class StyleAttention(nn.Module):
    """Multi-head self-attention of the style encoder (batch-first, scores scaled by sqrt(d_model))."""

    def __init__(self, n_head: int, d_model: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.n_head = n_head
        self.d_k = d_model // n_head
        self.w_qs = nn.Linear(d_model, n_head * self.d_k)
        self.w_ks = nn.Linear(d_model, n_head * self.d_k)
        self.w_vs = nn.Linear(d_model, n_head * self.d_k)
        self.fc = nn.Linear(n_head * self.d_k, d_model)
        self.temperature = math.sqrt(d_model)  # the reference scales by d_model, not d_k
        self.attn_dropout = nn.Dropout(dropout)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, pad_mask: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B, T, D); pad_mask: (B, T, T) True where attention is forbidden -> (B, T, D)."""
        b, t, _ = x.shape
        h, dk = self.n_head, self.d_k
        q = self.w_qs(x).view(b, t, h, dk).transpose(1, 2)  # (B, H, T, dk)
        k = self.w_ks(x).view(b, t, h, dk).transpose(1, 2)
        v = self.w_vs(x).view(b, t, h, dk).transpose(1, 2)
        scores = q @ k.transpose(-2, -1) / self.temperature  # (B, H, T, T)
        if pad_mask is not None:
            scores = scores.masked_fill(pad_mask.unsqueeze(1), float("-inf"))
        p = self.attn_dropout(F.softmax(scores, dim=-1))
        out = (p @ v).transpose(1, 2).reshape(b, t, h * dk)  # (B, T, H*dk)
        return self.dropout(self.fc(out)) + x


class MelStyleEncoder(nn.Module):
    """Reference encoder: spectrogram frames -> one style vector `ge` (B, style_vector_dim, 1)."""

    def __init__(
        self,
        n_mel_channels: int = 80,
        style_hidden: int = 128,
        style_vector_dim: int = 256,
        style_kernel_size: int = 5,
        style_head: int = 2,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.spectral = nn.Sequential(
            LinearNorm(n_mel_channels, style_hidden),
            Mish(),
            nn.Dropout(dropout),
            LinearNorm(style_hidden, style_hidden),
            Mish(),
            nn.Dropout(dropout),
        )
        self.temporal = nn.Sequential(
            Conv1dGLU(style_hidden, style_hidden, style_kernel_size, dropout),
            Conv1dGLU(style_hidden, style_hidden, style_kernel_size, dropout),
        )
        self.slf_attn = StyleAttention(style_head, style_hidden, dropout)
        self.fc = LinearNorm(style_hidden, style_vector_dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B, n_mels, T); mask: (B, 1, T) of 1/0 -> (B, style_vector_dim, 1)."""
        x = x.transpose(1, 2)  # (B, T, n_mels)
        pad = (mask.int() == 0).squeeze(1) if mask is not None else None  # (B, T) True = padding
        x = self.spectral(x)
        x = self.temporal(x.transpose(1, 2)).transpose(1, 2)  # (B, T, hidden)
        attn_mask = None
        if pad is not None:
            x = x.masked_fill(pad.unsqueeze(-1), 0)
            attn_mask = pad.unsqueeze(1).expand(-1, x.size(1), -1)  # (B, T, T)
        x = self.fc(self.slf_attn(x, attn_mask))
        # Masked temporal average.
        if pad is None:
            w = x.mean(dim=1)
        else:
            lengths = (~pad).sum(dim=1).view(-1, 1, 1)
            w = (x.masked_fill(pad.unsqueeze(-1), 0).float() / lengths).sum(dim=1).to(x.dtype)
        return w.unsqueeze(-1)


# --- multi-reference timbre encoder ------------------------------------------------------------


class MRTE(nn.Module):
    """Cross-attention from content (SSL) frames to text, plus the reference embedding `ge`."""

    def __init__(
        self,
        content_enc_channels: int = 192,
        hidden_size: int = 512,
        out_channels: int = 192,
        n_heads: int = 4,
    ) -> None:
        super().__init__()
        self.cross_attention = RelMultiHeadAttention(hidden_size, hidden_size, n_heads)
        self.c_pre = nn.Conv1d(content_enc_channels, hidden_size, 1)
        self.text_pre = nn.Conv1d(content_enc_channels, hidden_size, 1)
        self.c_post = nn.Conv1d(hidden_size, out_channels, 1)

    def forward(
        self,
        ssl_enc: torch.Tensor,
        ssl_mask: torch.Tensor,
        text: torch.Tensor,
        text_mask: torch.Tensor,
        ge: torch.Tensor | None,
    ) -> torch.Tensor:
        """ssl_enc: (B, C, T); text: (B, C, Tt); ge: (B, hidden, 1) -> (B, out, T)."""
        attn_mask = text_mask.unsqueeze(2) * ssl_mask.unsqueeze(-1)  # (B, 1, T, Tt)
        ssl_enc = self.c_pre(ssl_enc * ssl_mask)
        text_enc = self.text_pre(text * text_mask)
        x = self.cross_attention(ssl_enc * ssl_mask, text_enc * text_mask, attn_mask) + ssl_enc
        if ge is not None:
            x = x + ge
        return self.c_post(x * ssl_mask)
