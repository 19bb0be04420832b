"""Mel vocoders of v3 and v4: BigVGAN v2 (24 kHz, 100 bands, 256x) and the v4 HiFi-GAN generator (48 kHz).

Both take log-mel (B, 100, T) (the CFM's output after `cfm.denorm_spec`) and return a waveform
(B, 1, T * upsample) in [-1, 1].

- v3: NVIDIA BigVGAN v2 `bigvgan_v2_24khz_100band_256x`: HiFi-GAN upsampling with anti-aliased
  multi-periodicity (AMP) residual blocks: SnakeBeta activations applied at twice the rate
  (Kaiser-sinc up- and down-sampling filters, kernel 12), upsample 4,4,2,2,2,2.
  We implement it here rather than use the `bigvgan` PyPI package: that package (2.4.1) pulls
  heavy training dependencies (pesq, nnAudio, auraloss, tensorboard, ...) and builds through
  `huggingface_hub`'s mixin, and it has to be installed with them; the classes below use the official
  parameter and buffer names (`conv_pre`, `ups.<i>.0`, `resblocks.<k>.convs1/convs2/activations`,
  `activation_post`, `conv_post`, the `upsample.filter` / `downsample.lowpass.filter` buffers), so
  the official `bigvgan_generator.pt` loads strictly, with or without weight normalisation.
- v4: the reference's `Generator` with `initial_channel=100`, upsample 10,6,2,2,2 (kernels
  20,12,4,4,4), 512 channels, no speaker conditioning and a biased `conv_post` (`is_bias=True`);
  `vocoder.pth` is its state dict after weight-norm removal. It reuses our S2 HiFi-GAN `Generator`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from gpt_sovits.models.commons import get_padding
from gpt_sovits.models.modules import WNConv1d, WNConvTranspose1d
from gpt_sovits.models.s2 import Generator

BIGVGAN_RATE = 24000
V4_VOCODER_RATE = 48000


# --- anti-aliased activation ------------------------------------------------------------------------


def kaiser_sinc_filter1d(cutoff: float, half_width: float, kernel_size: int) -> torch.Tensor:
    """(1, 1, kernel_size) Kaiser-windowed sinc low-pass, normalised to unit DC gain (BigVGAN's filter)."""
    even = kernel_size % 2 == 0
    half = kernel_size // 2
    delta_f = 4 * half_width
    attenuation = 2.285 * (half - 1) * math.pi * delta_f + 7.95
    if attenuation > 50.0:
        beta = 0.1102 * (attenuation - 8.7)
    elif attenuation >= 21.0:
        beta = 0.5842 * (attenuation - 21) ** 0.4 + 0.07886 * (attenuation - 21.0)
    else:
        beta = 0.0
    window = torch.kaiser_window(kernel_size, beta=beta, periodic=False)
    time = torch.arange(-half, half) + 0.5 if even else torch.arange(kernel_size) - half
    if cutoff == 0:
        filt = torch.zeros_like(time)
    else:
        filt = 2 * cutoff * window * torch.sinc(2 * cutoff * time)
        filt = filt / filt.sum()
    return filt.view(1, 1, kernel_size)


class LowPassFilter1d(nn.Module):
    """Depthwise low-pass with replicate padding and a stride (the down-sampler)."""

    def __init__(self, cutoff: float, half_width: float, stride: int, kernel_size: int) -> None:
        super().__init__()
        even = kernel_size % 2 == 0
        self.pad_left = kernel_size // 2 - int(even)
        self.pad_right = kernel_size // 2
        self.stride = stride
        self.register_buffer("filter", kaiser_sinc_filter1d(cutoff, half_width, kernel_size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        x = F.pad(x, (self.pad_left, self.pad_right), mode="replicate")
        return F.conv1d(x, self.filter.expand(c, -1, -1), stride=self.stride, groups=c)


class UpSample1d(nn.Module):
    """x ratio by transposed depthwise sinc filtering; (B, C, T) -> (B, C, T*ratio)."""

    def __init__(self, ratio: int = 2, kernel_size: int = 12) -> None:
        super().__init__()
        self.ratio = ratio
        self.pad = kernel_size // ratio - 1
        self.pad_left = self.pad * ratio + (kernel_size - ratio) // 2
        self.pad_right = self.pad * ratio + (kernel_size - ratio + 1) // 2
        self.register_buffer(
            "filter",
            kaiser_sinc_filter1d(cutoff=0.5 / ratio, half_width=0.6 / ratio, kernel_size=kernel_size),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        x = F.pad(x, (self.pad, self.pad), mode="replicate")
        x = self.ratio * F.conv_transpose1d(x, self.filter.expand(c, -1, -1), stride=self.ratio, groups=c)
        return x[..., self.pad_left : -self.pad_right]


class DownSample1d(nn.Module):
    def __init__(self, ratio: int = 2, kernel_size: int = 12) -> None:
        super().__init__()
        self.lowpass = LowPassFilter1d(0.5 / ratio, 0.6 / ratio, stride=ratio, kernel_size=kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lowpass(x)


class Snake(nn.Module):
    """x + 1/alpha * sin^2(alpha x), per channel; alpha stored as log when `alpha_logscale`."""

    def __init__(self, channels: int, alpha_logscale: bool = False) -> None:
        super().__init__()
        self.alpha_logscale = alpha_logscale
        self.alpha = nn.Parameter(torch.zeros(channels) if alpha_logscale else torch.ones(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        alpha = self.alpha.unsqueeze(0).unsqueeze(-1)  # (1, C, 1)
        if self.alpha_logscale:
            alpha = torch.exp(alpha)
        return x + (1.0 / (alpha + 1e-9)) * torch.pow(torch.sin(x * alpha), 2)


class SnakeBeta(nn.Module):
    """x + 1/beta * sin^2(alpha x): separate frequency (alpha) and magnitude (beta) per channel."""

    def __init__(self, channels: int, alpha_logscale: bool = False) -> None:
        super().__init__()
        self.alpha_logscale = alpha_logscale
        init = torch.zeros(channels) if alpha_logscale else torch.ones(channels)
        self.alpha = nn.Parameter(init.clone())
        self.beta = nn.Parameter(init.clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        alpha = self.alpha.unsqueeze(0).unsqueeze(-1)
        beta = self.beta.unsqueeze(0).unsqueeze(-1)
        if self.alpha_logscale:
            alpha, beta = torch.exp(alpha), torch.exp(beta)
        return x + (1.0 / (beta + 1e-9)) * torch.pow(torch.sin(x * alpha), 2)


class Activation1d(nn.Module):
    """Anti-aliased activation: up-sample x2, activation, down-sample x2 (`act`, `upsample`, `downsample`)."""

    def __init__(
        self, activation: nn.Module, up_ratio: int = 2, down_ratio: int = 2, kernel_size: int = 12
    ) -> None:
        super().__init__()
        self.act = activation
        self.upsample = UpSample1d(up_ratio, kernel_size)
        self.downsample = DownSample1d(down_ratio, kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.downsample(self.act(self.upsample(x)))


# --- BigVGAN -----------------------------------------------------------------------------------------


@dataclass
class BigVGANConfig:
    """The architecture part of BigVGAN's `config.json` (defaults: `bigvgan_v2_24khz_100band_256x`).

    The whole file travels in `extra` (training and mel settings are not needed to vocode)."""

    num_mels: int = 100
    upsample_rates: list[int] = field(default_factory=lambda: [4, 4, 2, 2, 2, 2])
    upsample_kernel_sizes: list[int] = field(default_factory=lambda: [8, 8, 4, 4, 4, 4])
    upsample_initial_channel: int = 1536
    resblock: str = "1"
    resblock_kernel_sizes: list[int] = field(default_factory=lambda: [3, 7, 11])
    resblock_dilation_sizes: list[list[int]] = field(
        default_factory=lambda: [[1, 3, 5], [1, 3, 5], [1, 3, 5]]
    )
    activation: str = "snakebeta"
    snake_logscale: bool = True
    use_bias_at_final: bool = False
    use_tanh_at_final: bool = False
    sampling_rate: int = BIGVGAN_RATE
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json_dict(cls, d: Mapping[str, Any]) -> BigVGANConfig:
        names = {f.name for f in fields(cls)} - {"extra"}
        kwargs = {k: d[k] for k in names if k in d}
        kwargs["resblock"] = str(kwargs.get("resblock", "1"))
        cfg = cls(**kwargs, extra=dict(d))
        # BigVGAN's own defaults when a key is absent (its code reads them with h.get(..., True)).
        cfg.use_bias_at_final = bool(d.get("use_bias_at_final", True))
        cfg.use_tanh_at_final = bool(d.get("use_tanh_at_final", True))
        cfg.validate()
        return cfg

    def to_json_dict(self) -> dict[str, Any]:
        out = dict(self.extra)
        out.update({f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra"})
        return out

    @property
    def hop(self) -> int:
        return math.prod(self.upsample_rates)

    def validate(self) -> None:
        if self.activation not in ("snake", "snakebeta"):
            raise ValueError(f"BigVGAN activation must be 'snake' or 'snakebeta', got {self.activation!r}")
        if self.resblock not in ("1", "2"):
            raise ValueError(f"BigVGAN resblock must be '1' or '2', got {self.resblock!r}")
        if len(self.upsample_rates) != len(self.upsample_kernel_sizes):
            raise ValueError("BigVGAN upsample_rates and upsample_kernel_sizes differ in length")
        if len(self.resblock_kernel_sizes) != len(self.resblock_dilation_sizes):
            raise ValueError("BigVGAN resblock_kernel_sizes and resblock_dilation_sizes differ in length")


def _snake(cfg: BigVGANConfig, channels: int) -> nn.Module:
    cls = SnakeBeta if cfg.activation == "snakebeta" else Snake
    return cls(channels, alpha_logscale=cfg.snake_logscale)


class AMPBlock1(nn.Module):
    """Per dilation: act -> conv(dilated) -> act -> conv(dilation 1), residual (`convs1`, `convs2`)."""

    def __init__(self, cfg: BigVGANConfig, channels: int, kernel_size: int, dilation: Sequence[int]) -> None:
        super().__init__()
        self.convs1 = nn.ModuleList(
            WNConv1d(channels, channels, kernel_size, 1, dilation=d, padding=get_padding(kernel_size, d))
            for d in dilation
        )
        self.convs2 = nn.ModuleList(
            WNConv1d(channels, channels, kernel_size, 1, dilation=1, padding=get_padding(kernel_size, 1))
            for _ in dilation
        )
        self.activations = nn.ModuleList(
            Activation1d(_snake(cfg, channels)) for _ in range(2 * len(dilation))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        acts1, acts2 = self.activations[::2], self.activations[1::2]
        for c1, c2, a1, a2 in zip(self.convs1, self.convs2, acts1, acts2, strict=True):
            x = x + c2(a2(c1(a1(x))))
        return x


class AMPBlock2(nn.Module):
    """Per dilation: act -> conv(dilated), residual (`convs`)."""

    def __init__(self, cfg: BigVGANConfig, channels: int, kernel_size: int, dilation: Sequence[int]) -> None:
        super().__init__()
        self.convs = nn.ModuleList(
            WNConv1d(channels, channels, kernel_size, 1, dilation=d, padding=get_padding(kernel_size, d))
            for d in dilation
        )
        self.activations = nn.ModuleList(Activation1d(_snake(cfg, channels)) for _ in dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for c, a in zip(self.convs, self.activations, strict=True):
            x = x + c(a(x))
        return x


class BigVGAN(nn.Module):
    """BigVGAN generator: log-mel (B, num_mels, T) -> waveform (B, 1, T * hop)."""

    def __init__(self, cfg: BigVGANConfig) -> None:
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        self.num_kernels = len(cfg.resblock_kernel_sizes)
        self.num_upsamples = len(cfg.upsample_rates)
        ch0 = cfg.upsample_initial_channel
        self.conv_pre = WNConv1d(cfg.num_mels, ch0, 7, 1, padding=3)
        self.ups = nn.ModuleList(
            nn.ModuleList([WNConvTranspose1d(ch0 // 2**i, ch0 // 2 ** (i + 1), k, u, padding=(k - u) // 2)])
            for i, (u, k) in enumerate(zip(cfg.upsample_rates, cfg.upsample_kernel_sizes, strict=True))
        )
        block = AMPBlock1 if cfg.resblock == "1" else AMPBlock2
        self.resblocks = nn.ModuleList()
        ch = ch0
        for i in range(self.num_upsamples):
            ch = ch0 // 2 ** (i + 1)
            for k, d in zip(cfg.resblock_kernel_sizes, cfg.resblock_dilation_sizes, strict=True):
                self.resblocks.append(block(cfg, ch, k, d))
        self.activation_post = Activation1d(_snake(cfg, ch))
        self.conv_post = WNConv1d(ch, 1, 7, 1, padding=3, bias=cfg.use_bias_at_final)

    @property
    def sampling_rate(self) -> int:
        return self.cfg.sampling_rate

    @property
    def hop(self) -> int:
        return self.cfg.hop

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv_pre(x)
        for i in range(self.num_upsamples):
            for up in self.ups[i]:
                x = up(x)
            xs = self.resblocks[i * self.num_kernels](x)
            for j in range(1, self.num_kernels):
                xs = xs + self.resblocks[i * self.num_kernels + j](x)
            x = xs / self.num_kernels
        x = self.conv_post(self.activation_post(x))
        return torch.tanh(x) if self.cfg.use_tanh_at_final else torch.clamp(x, min=-1.0, max=1.0)


# --- v4 vocoder ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class V4VocoderConfig:
    """The reference's `init_vocoder("v4")` Generator arguments."""

    initial_channel: int = 100
    resblock: str = "1"
    resblock_kernel_sizes: tuple[int, ...] = (3, 7, 11)
    resblock_dilation_sizes: tuple[tuple[int, ...], ...] = ((1, 3, 5), (1, 3, 5), (1, 3, 5))
    upsample_rates: tuple[int, ...] = (10, 6, 2, 2, 2)
    upsample_initial_channel: int = 512
    upsample_kernel_sizes: tuple[int, ...] = (20, 12, 4, 4, 4)
    sampling_rate: int = V4_VOCODER_RATE

    @property
    def hop(self) -> int:
        return math.prod(self.upsample_rates)


class VocoderV4(Generator):
    """The v4 HiFi-GAN vocoder: log-mel (B, 100, T) -> 48 kHz waveform (B, 1, T * 480)."""

    def __init__(self, cfg: V4VocoderConfig | None = None) -> None:
        cfg = cfg or V4VocoderConfig()
        super().__init__(
            cfg.initial_channel,
            cfg.resblock,
            cfg.resblock_kernel_sizes,
            cfg.resblock_dilation_sizes,
            cfg.upsample_rates,
            cfg.upsample_initial_channel,
            cfg.upsample_kernel_sizes,
            gin_channels=0,
        )
        self.cfg = cfg
        # The reference builds this vocoder with is_bias=True: its last conv has a bias.
        ch = cfg.upsample_initial_channel // 2 ** len(cfg.upsample_rates)
        self.conv_post = nn.Conv1d(ch, 1, 7, 1, padding=3, bias=True)

    @property
    def sampling_rate(self) -> int:
        return self.cfg.sampling_rate

    @property
    def hop(self) -> int:
        return self.cfg.hop

    def forward(self, x: torch.Tensor, g: torch.Tensor | None = None) -> torch.Tensor:
        if g is not None:
            raise ValueError("the v4 vocoder has no speaker conditioning")
        return super().forward(x)
