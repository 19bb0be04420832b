"""S2 of GPT-SoVITS: `SynthesizerTrn` (VITS with a semantic-token content path and MRTE), v1/v2/v2Pro/v2ProPlus.

Semantic tokens (25 Hz) + target phones + a reference linear spectrogram -> 32 kHz waveform.

    ssl (B,768,T50) --ssl_proj(k2,s2)--> (B,768,T25) --RVQ--> codes (1,B,T25)        extract_latent
    codes --codebook--> x2 nearest --enc_p(text, ge)--> m_p, logs_p (B,inter,T50)
          --z_p = m_p + noise--> flow^-1 (g=ge) --> z --dec (HiFi-GAN, g=ge)--> wav    decode

`ge` is the reference encoder's style vector from the first 704 linear-spectrogram bins (v2;
all 1025 bins for v1). Training adds the posterior encoder `enc_q` over the target spectrogram,
the forward flow and a random slice for the generator; see `SynthesizerTrn.forward`.

v2Pro / v2ProPlus (`configs/s2v2Pro.json`, `s2v2ProPlus.json`: gin 1024, no dropout; ProPlus has a
wider generator) add a speaker-verification embedding sv (B, 20480) per reference:

    ge = prelu(ref_enc(spec) + sv_emb(sv))   (B, gin, 1)   conditions enc_q, flow and dec
    ge_to512(ge)                             (B, 512, 1)   conditions MRTE (fixed 512 wide)

With several references each one's ge (after the PReLU) is computed with its own sv, then averaged.
Parameter names and shapes equal the reference (`GPT_SoVITS/module/models.py`), so official
weights load strictly.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from core.audio import DATASET_RATE
from core.errors import UserError
from gpt_sovits.models import attentions
from gpt_sovits.models.commons import rand_slice_segments, sequence_mask
from gpt_sovits.models.modules import (
    LRELU_SLOPE,
    MRTE,
    WN,
    Flip,
    MelStyleEncoder,
    ResBlock1,
    ResBlock2,
    ResidualCouplingLayer,
    WNConv1d,
    WNConv2d,
    WNConvTranspose1d,
)
from gpt_sovits.models.quantize import ResidualVectorQuantizer

SUPPORTED_VERSIONS = ("v1", "v2", "v2Pro", "v2ProPlus")
SV_VERSIONS = ("v2Pro", "v2ProPlus")  # S2 takes a speaker-verification embedding besides the spectrogram
# Phone vocabulary sizes of the official symbol tables (text/symbols.py, text/symbols2.py); v2Pro and
# v2ProPlus use v2's table.
N_SYMBOLS = {"v1": 322, "v2": 732}
SSL_DIM = 768  # HuBERT base hidden size, hard-coded in the reference
SV_DIM = 20480  # ERes2NetV2 forward3 embedding (2048 channels x 10 bands), gpt_sovits.models.sv's output
MRTE_GE_DIM = 512  # MRTE adds ge at its fixed hidden size
REF_ENC_BINS_V2 = 704  # v2 and later feed only the first 704 spectrogram bins to the style encoder
# Multi-period discriminator periods (besides the scale discriminator) per version.
DISCRIMINATOR_PERIODS: dict[str, tuple[int, ...]] = {
    "v1": (2, 3, 5, 7, 11),
    "v2": (2, 3, 5, 7, 11),
    "v2Pro": (2, 3, 5, 7, 11, 17, 23),
    "v2ProPlus": (2, 3, 5, 7, 11, 17, 23),
}
# Model sizes that differ from configs/s2.json in configs/s2v2Pro.json / s2v2ProPlus.json.
VERSION_MODEL_SIZES: dict[str, dict[str, Any]] = {
    "v1": {},
    "v2": {},
    "v2Pro": {"gin_channels": 1024, "p_dropout": 0.0},
    "v2ProPlus": {
        "gin_channels": 1024,
        "p_dropout": 0.0,
        "upsample_initial_channel": 768,
        "upsample_kernel_sizes": [20, 16, 8, 2, 2],
    },
}


_SV_MISSING = (
    "this SoVITS {version} model needs a speaker-verification embedding (sv_emb, 1 x 20480) for each "
    "reference; compute it with gpt_sovits.models.sv from the reference audio"
)


class UnsupportedS2Version(UserError, ValueError):
    """The S2 model version is not one this implementation can build (v1, v2, v2Pro, v2ProPlus are)."""


class SVEmbeddingError(UserError, ValueError):
    """The speaker-verification embedding is missing (v2Pro/v2ProPlus), not wanted (v1/v2) or misshapen."""


def symbol_version(version: str) -> str:
    """The phone table a model version uses: v1's, else v2's."""
    return "v1" if version == "v1" else "v2"


# --- config --------------------------------------------------------------------------------------


@dataclass
class S2Config:
    """Architecture and audio parameters of S2, plus the rest of the official hparams for round trips.

    `from_hparams`/`to_hparams` read and write the official nested layout (`train`, `data`,
    `model`, top-level extras) as in `configs/s2.json` and the `config` entry of SoVITS weights.
    `from_dict`/`to_dict` are the flat typed form.
    """

    version: str = "v2"
    # model
    inter_channels: int = 192
    hidden_channels: int = 192
    filter_channels: int = 768
    n_heads: int = 2
    n_layers: int = 6
    kernel_size: int = 3
    p_dropout: float = 0.1
    resblock: str = "1"
    resblock_kernel_sizes: list[int] = field(default_factory=lambda: [3, 7, 11])
    resblock_dilation_sizes: list[list[int]] = field(
        default_factory=lambda: [[1, 3, 5], [1, 3, 5], [1, 3, 5]]
    )
    upsample_rates: list[int] = field(default_factory=lambda: [10, 8, 2, 2, 2])
    upsample_initial_channel: int = 512
    upsample_kernel_sizes: list[int] = field(default_factory=lambda: [16, 16, 8, 2, 2])
    gin_channels: int = 512
    semantic_frame_rate: str = "25hz"
    freeze_quantizer: bool = True
    n_speakers: int = 300
    # data
    sampling_rate: int = DATASET_RATE
    filter_length: int = 2048
    hop_length: int = 640
    win_length: int = 2048
    n_mel_channels: int = 128
    mel_fmin: float = 0.0
    mel_fmax: float | None = None
    # train (only what the model needs; the rest travels in `train`)
    segment_size: int = 20480
    # everything else of the official hparams, kept verbatim
    train: dict[str, Any] = field(default_factory=dict)
    data_extra: dict[str, Any] = field(default_factory=dict)
    model_extra: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def spec_channels(self) -> int:
        return self.filter_length // 2 + 1

    @property
    def segment_frames(self) -> int:
        return self.segment_size // self.hop_length

    @property
    def n_symbols(self) -> int:
        return N_SYMBOLS[symbol_version(self.version)]

    @property
    def uses_sv(self) -> bool:
        """True for v2Pro/v2ProPlus: decode and training take a speaker-verification embedding."""
        return self.version in SV_VERSIONS

    @property
    def discriminator_periods(self) -> tuple[int, ...]:
        return DISCRIMINATOR_PERIODS[self.version]

    @classmethod
    def for_version(cls, version: str, **overrides: Any) -> S2Config:
        """The official config of `version` (configs/s2.json, s2v2Pro.json, s2v2ProPlus.json)."""
        if version not in SUPPORTED_VERSIONS:
            raise UnsupportedS2Version(
                f"S2 version {version!r} is not supported; use one of {', '.join(SUPPORTED_VERSIONS)} "
                "(v3/v4 are different models)"
            )
        return cls(version=version, **{**VERSION_MODEL_SIZES[version], **overrides})

    def validate(self) -> None:
        if self.version not in SUPPORTED_VERSIONS:
            raise UnsupportedS2Version(
                f"S2 version {self.version!r} is not supported; this implementation builds "
                f"{', '.join(SUPPORTED_VERSIONS)} SoVITS models (v3/v4 are different models)"
            )
        if self.semantic_frame_rate not in ("25hz", "50hz"):
            raise ValueError(
                f"semantic_frame_rate must be '25hz' or '50hz', got {self.semantic_frame_rate!r}"
            )
        if self.hidden_channels != 192:
            # MRTE is built with fixed sizes in the reference (content 192, hidden 512).
            raise ValueError("S2 needs hidden_channels=192 (MRTE has fixed sizes)")
        if not self.uses_sv and self.gin_channels != MRTE_GE_DIM:
            # v1/v2 add ge to MRTE's 512-wide hidden state directly; v2Pro maps it with ge_to512.
            raise ValueError(f"S2 {self.version} needs gin_channels=512 (MRTE adds ge at 512 channels)")

    # flat form
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> S2Config:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown S2Config fields: {sorted(unknown)}")
        return cls(**dict(d))

    # official nested form
    _MODEL_KEYS = (
        "inter_channels hidden_channels filter_channels n_heads n_layers kernel_size p_dropout resblock "
        "resblock_kernel_sizes resblock_dilation_sizes upsample_rates upsample_initial_channel "
        "upsample_kernel_sizes gin_channels semantic_frame_rate freeze_quantizer"
    ).split()
    _DATA_KEYS = (
        "sampling_rate filter_length hop_length win_length n_mel_channels mel_fmin mel_fmax n_speakers"
    ).split()

    @classmethod
    def from_hparams(cls, hps: Mapping[str, Any], version: str | None = None) -> S2Config:
        """Build from the official nested hparams (`s2.json` layout or a checkpoint's `config`).

        `version` overrides the stored one (the official loader decides v1/v2 from the weights).
        """
        model = dict(hps.get("model") or {})
        data = dict(hps.get("data") or {})
        train = dict(hps.get("train") or {})
        kwargs: dict[str, Any] = {}
        for k in cls._MODEL_KEYS:
            if k in model:
                kwargs[k] = model.pop(k)
        for k in cls._DATA_KEYS:
            if k in data:
                kwargs[k] = data.pop(k)
        if "segment_size" in train:
            kwargs["segment_size"] = train["segment_size"]
        extra = {k: v for k, v in hps.items() if k not in ("model", "data", "train")}
        v = version or model.get("version") or extra.get("version") or "v2"
        model.pop("version", None)
        # Sizes a config leaves out are its version's official ones (gin 1024 for v2Pro, ...).
        kwargs = {**VERSION_MODEL_SIZES.get(v, {}), **kwargs}
        kwargs["resblock"] = str(kwargs.get("resblock", "1"))
        if kwargs.get("resblock_dilation_sizes") is not None:
            kwargs["resblock_dilation_sizes"] = [list(x) for x in kwargs["resblock_dilation_sizes"]]
        return cls(version=v, train=train, data_extra=data, model_extra=model, extra=extra, **kwargs)

    def to_hparams(self) -> dict[str, Any]:
        """The official nested layout, as plain containers (loads with `weights_only=True`)."""
        flat = self.to_dict()
        model = {k: flat[k] for k in self._MODEL_KEYS}
        model.update(self.model_extra)
        model["version"] = self.version
        data = {k: flat[k] for k in self._DATA_KEYS}
        data.update(self.data_extra)
        train = dict(self.train)
        train["segment_size"] = self.segment_size
        out: dict[str, Any] = {"train": train, "data": data, "model": model}
        out.update(self.extra)
        out["version"] = self.version
        return out


# --- encoders, flow, generator -------------------------------------------------------------------


class TextEncoder(nn.Module):
    """Prior encoder `enc_p`: content frames + phones + `ge` -> prior mean / log-std.

    content (B,192,T) -> encoder_ssl -> MRTE(cross-attend to encoder_text(phones), + ge)
    -> encoder2 -> proj -> (m_p, logs_p) of `out_channels` each.
    """

    def __init__(
        self,
        out_channels: int,
        hidden_channels: int,
        filter_channels: int,
        n_heads: int,
        n_layers: int,
        kernel_size: int,
        p_dropout: float,
        n_symbols: int,
    ) -> None:
        super().__init__()
        self.out_channels = out_channels
        self.ssl_proj = nn.Conv1d(SSL_DIM, hidden_channels, 1)
        self.encoder_ssl = attentions.Encoder(
            hidden_channels, filter_channels, n_heads, n_layers // 2, kernel_size, p_dropout
        )
        self.encoder_text = attentions.Encoder(
            hidden_channels, filter_channels, n_heads, n_layers, kernel_size, p_dropout
        )
        self.text_embedding = nn.Embedding(n_symbols, hidden_channels)
        self.mrte = MRTE()
        self.encoder2 = attentions.Encoder(
            hidden_channels, filter_channels, n_heads, n_layers // 2, kernel_size, p_dropout
        )
        self.proj = nn.Conv1d(hidden_channels, out_channels * 2, 1)

    def forward(
        self,
        y: torch.Tensor,
        y_lengths: torch.Tensor,
        text: torch.Tensor,
        text_lengths: torch.Tensor,
        ge: torch.Tensor | None,
        speed: float = 1.0,
        text_memo: dict[torch.dtype, tuple[torch.Tensor, torch.Tensor]] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """y: (B, 768, T); text: (B, Tt) ids; ge: (B, 512, 1).

        Returns x (B, H, T'), m (B, out, T'), logs (B, out, T'), mask (B, 1, T'), where T' = T,
        or int(T / speed) + 1 when speed != 1 (linear time stretch, as the reference).
        ``text_memo``: a dict a caller keeps while it encodes the same phones again (streamed parts); the
        phones' encoding, which does not depend on y, is stored there on the first call and reused after.
        """
        y_mask = sequence_mask(y_lengths, y.size(2)).unsqueeze(1).to(y.dtype)  # (B, 1, T)
        y = self.ssl_proj(y * y_mask) * y_mask
        y = self.encoder_ssl(y * y_mask, y_mask)
        if text_memo is None:
            t, text_mask = self._encode_text(text, text_lengths, y.dtype)
        else:
            # Keyed by the activations' dtype: the mask takes it, as it did before the memo (autocast).
            if y.dtype not in text_memo:
                text_memo[y.dtype] = self._encode_text(text, text_lengths, y.dtype)
            t, text_mask = text_memo[y.dtype]
        y = self.mrte(y, y_mask, t, text_mask, ge)
        y = self.encoder2(y * y_mask, y_mask)
        if speed != 1:
            y = F.interpolate(y, size=int(y.shape[-1] / speed) + 1, mode="linear")
            y_mask = F.interpolate(y_mask, size=y.shape[-1], mode="nearest")
        stats = self.proj(y) * y_mask
        m, logs = torch.split(stats, self.out_channels, dim=1)
        return y, m, logs, y_mask

    def _encode_text(
        self, text: torch.Tensor, text_lengths: torch.Tensor, dtype: torch.dtype
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """text (B, Tt) ids -> (encoder_text's output (B, H, Tt), text mask (B, 1, Tt) in ``dtype``)."""
        text_mask = sequence_mask(text_lengths, text.size(1)).unsqueeze(1).to(dtype)
        t = self.text_embedding(text).transpose(1, 2)  # (B, H, Tt)
        return self.encoder_text(t * text_mask, text_mask), text_mask


class PosteriorEncoder(nn.Module):
    """`enc_q`: linear spectrogram -> posterior latent z (training only)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        hidden_channels: int,
        kernel_size: int,
        dilation_rate: int,
        n_layers: int,
        gin_channels: int = 0,
    ) -> None:
        super().__init__()
        self.out_channels = out_channels
        self.pre = nn.Conv1d(in_channels, hidden_channels, 1)
        self.enc = WN(hidden_channels, kernel_size, dilation_rate, n_layers, gin_channels=gin_channels)
        self.proj = nn.Conv1d(hidden_channels, out_channels * 2, 1)

    def forward(
        self,
        x: torch.Tensor,
        x_lengths: torch.Tensor,
        g: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """x: (B, spec, T) -> z, m, logs (B, out, T), mask (B, 1, T)."""
        if g is not None:
            g = g.detach()  # the reference keeps the style encoder out of the posterior's gradient
        x_mask = sequence_mask(x_lengths, x.size(2)).unsqueeze(1).to(x.dtype)
        x = self.enc(self.pre(x) * x_mask, x_mask, g=g)
        stats = self.proj(x) * x_mask
        m, logs = torch.split(stats, self.out_channels, dim=1)
        noise = torch.randn(m.shape, generator=generator, dtype=m.dtype).to(m.device)
        z = (m + noise * torch.exp(logs)) * x_mask
        return z, m, logs, x_mask


class ResidualCouplingBlock(nn.Module):
    """Normalising flow: `n_flows` x (mean-only coupling, channel flip)."""

    def __init__(
        self,
        channels: int,
        hidden_channels: int,
        kernel_size: int,
        dilation_rate: int,
        n_layers: int,
        n_flows: int = 4,
        gin_channels: int = 0,
    ) -> None:
        super().__init__()
        self.flows = nn.ModuleList()
        for _ in range(n_flows):
            self.flows.append(
                ResidualCouplingLayer(
                    channels, hidden_channels, kernel_size, dilation_rate, n_layers, gin_channels=gin_channels
                )
            )
            self.flows.append(Flip())

    def forward(
        self, x: torch.Tensor, x_mask: torch.Tensor, g: torch.Tensor | None = None, reverse: bool = False
    ) -> torch.Tensor:
        flows = reversed(self.flows) if reverse else self.flows
        for flow in flows:
            x, _ = flow(x, x_mask, g=g, reverse=reverse)
        return x


class Generator(nn.Module):
    """HiFi-GAN generator `dec`: latent (B, C, T) + style -> waveform (B, 1, T * prod(upsample_rates))."""

    def __init__(
        self,
        initial_channel: int,
        resblock: str,
        resblock_kernel_sizes: Sequence[int],
        resblock_dilation_sizes: Sequence[Sequence[int]],
        upsample_rates: Sequence[int],
        upsample_initial_channel: int,
        upsample_kernel_sizes: Sequence[int],
        gin_channels: int = 0,
    ) -> None:
        super().__init__()
        self.num_kernels = len(resblock_kernel_sizes)
        self.num_upsamples = len(upsample_rates)
        self.conv_pre = nn.Conv1d(initial_channel, upsample_initial_channel, 7, 1, padding=3)
        block = ResBlock1 if resblock == "1" else ResBlock2
        self.ups = nn.ModuleList()
        for i, (u, k) in enumerate(zip(upsample_rates, upsample_kernel_sizes, strict=True)):
            c_in, c_out = upsample_initial_channel // 2**i, upsample_initial_channel // 2 ** (i + 1)
            self.ups.append(WNConvTranspose1d(c_in, c_out, k, u, padding=(k - u) // 2))
        self.resblocks = nn.ModuleList()
        ch = upsample_initial_channel
        for i in range(self.num_upsamples):
            ch = upsample_initial_channel // 2 ** (i + 1)
            for k, d in zip(resblock_kernel_sizes, resblock_dilation_sizes, strict=True):
                self.resblocks.append(block(ch, k, tuple(d)))
        self.conv_post = nn.Conv1d(ch, 1, 7, 1, padding=3, bias=False)
        if gin_channels:
            self.cond = nn.Conv1d(gin_channels, upsample_initial_channel, 1)

    def forward(self, x: torch.Tensor, g: torch.Tensor | None = None) -> torch.Tensor:
        x = self.conv_pre(x)
        if g is not None:
            x = x + self.cond(g)
        for i in range(self.num_upsamples):
            x = self.ups[i](F.leaky_relu(x, LRELU_SLOPE))
            xs = self.resblocks[i * self.num_kernels](x)
            for j in range(1, self.num_kernels):
                xs = xs + self.resblocks[i * self.num_kernels + j](x)
            x = xs / self.num_kernels
        x = self.conv_post(F.leaky_relu(x))  # default slope 0.01 here, as the reference
        return torch.tanh(x)


def decoder_reach(gen: Generator) -> int:
    """How many latent frames on each side of a frame can change its output samples in ``gen``: an upper
    bound summed over the layers (each conv's reach in its stage's samples, over the stage's rate), rounded
    up. About 13 for the v2 decoder (9 measured by perturbing one frame)."""
    reach = (gen.conv_pre.kernel_size[0] - 1) / 2 * gen.conv_pre.dilation[0]
    rate = 1
    for i, up in enumerate(gen.ups):
        reach += math.ceil(up.kernel_size[0] / up.stride[0]) / rate  # inputs one output sample mixes
        rate *= up.stride[0]
        stage = 0.0
        for block in gen.resblocks[i * gen.num_kernels : (i + 1) * gen.num_kernels]:
            convs = [*block.convs1, *block.convs2] if isinstance(block, ResBlock1) else list(block.convs)
            stage = max(stage, sum((c.kernel_size[0] - 1) / 2 * c.dilation[0] for c in convs))
        reach += stage / rate
    reach += (gen.conv_post.kernel_size[0] - 1) / 2 / rate
    return math.ceil(reach)


def flow_reach(flow: ResidualCouplingBlock) -> int:
    """How many frames on each side of a frame can change it through ``flow`` (either direction): the
    WaveNet convolutions' reach summed over the coupling layers (32 for the v2 flow: 4 x 4 layers of
    kernel 5)."""
    reach = 0
    for layer in flow.flows:
        if isinstance(layer, ResidualCouplingLayer):
            reach += sum((c.kernel_size[0] - 1) // 2 * c.dilation[0] for c in layer.enc.in_layers)
    return reach


# --- the synthesizer ----------------------------------------------------------------------------


@dataclass
class S2TrainOutput:
    """What the training forward returns (all time axes in spectrogram frames unless noted)."""

    wav_slice: torch.Tensor  # (B, 1, segment_frames * hop) generated audio of the random slice
    commit_loss: torch.Tensor  # () quantizer commitment loss (0 when the quantizer is frozen)
    ids_slice: torch.Tensor  # (B,) start frame of each slice
    y_mask: torch.Tensor  # (B, 1, T)
    z: torch.Tensor  # (B, inter, T) posterior sample
    z_p: torch.Tensor  # (B, inter, T) flow(z)
    m_p: torch.Tensor  # (B, inter, T) prior mean
    logs_p: torch.Tensor  # (B, inter, T)
    m_q: torch.Tensor  # (B, inter, T) posterior mean
    logs_q: torch.Tensor  # (B, inter, T)
    quantized: torch.Tensor  # (B, 768, T) upsampled quantized content


class SynthesizerTrn(nn.Module):
    """The SoVITS generator. `with_posterior=False` omits `enc_q` (inference-only weights lack it)."""

    def __init__(self, cfg: S2Config, with_posterior: bool = True) -> None:
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        self.version = cfg.version
        self.enc_p = TextEncoder(
            cfg.inter_channels,
            cfg.hidden_channels,
            cfg.filter_channels,
            cfg.n_heads,
            cfg.n_layers,
            cfg.kernel_size,
            cfg.p_dropout,
            n_symbols=cfg.n_symbols,
        )
        self.dec = Generator(
            cfg.inter_channels,
            cfg.resblock,
            cfg.resblock_kernel_sizes,
            cfg.resblock_dilation_sizes,
            cfg.upsample_rates,
            cfg.upsample_initial_channel,
            cfg.upsample_kernel_sizes,
            gin_channels=cfg.gin_channels,
        )
        if with_posterior:
            self.enc_q = PosteriorEncoder(
                cfg.spec_channels,
                cfg.inter_channels,
                cfg.hidden_channels,
                5,
                1,
                16,
                gin_channels=cfg.gin_channels,
            )
        self.flow = ResidualCouplingBlock(
            cfg.inter_channels, cfg.hidden_channels, 5, 1, 4, gin_channels=cfg.gin_channels
        )
        ref_bins = cfg.spec_channels if cfg.version == "v1" else REF_ENC_BINS_V2
        self.ref_enc = MelStyleEncoder(ref_bins, style_vector_dim=cfg.gin_channels)
        stride = 2 if cfg.semantic_frame_rate == "25hz" else 1
        self.ssl_proj = nn.Conv1d(SSL_DIM, SSL_DIM, stride, stride=stride)
        self.quantizer = ResidualVectorQuantizer(dimension=SSL_DIM, n_q=1, bins=1024)
        if cfg.uses_sv:
            self.sv_emb = nn.Linear(SV_DIM, cfg.gin_channels)
            self.ge_to512 = nn.Linear(cfg.gin_channels, MRTE_GE_DIM)
            self.prelu = nn.PReLU(num_parameters=cfg.gin_channels)
        # The CPU fast path's decoder (fastpath.FastGenerator), used by ``decode`` in place of ``dec`` when
        # set; a plain attribute, not a submodule, so the state dict stays the exact one.
        self.inference_dec: Any = None

    @property
    def has_posterior(self) -> bool:
        return hasattr(self, "enc_q")

    # -- pieces ---------------------------------------------------------------------------------

    @property
    def uses_sv(self) -> bool:
        return self.cfg.uses_sv

    def style(
        self, spec: torch.Tensor, lengths: torch.Tensor | None = None, sv_emb: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Reference embedding `ge` (B, gin, 1) from a linear spectrogram (B, 1025, T).

        v2Pro/v2ProPlus: `sv_emb` (B or 1, 20480) is projected and added before the PReLU, as the reference.
        """
        if lengths is None:
            lengths = torch.full((spec.size(0),), spec.size(2), dtype=torch.long, device=spec.device)
        mask = sequence_mask(lengths, spec.size(2)).unsqueeze(1).to(spec.dtype)  # (B, 1, T)
        if self.version != "v1":
            spec = spec[:, :REF_ENC_BINS_V2]
        ge = self.ref_enc(spec * mask, mask)
        if self.uses_sv:
            if sv_emb is None:
                raise SVEmbeddingError(_SV_MISSING.format(version=self.version))
            ge = self.prelu(ge + self.sv_emb(sv_emb.to(ge.dtype)).unsqueeze(-1))  # (B, gin, 1)
        return ge

    def mrte_style(self, ge: torch.Tensor) -> torch.Tensor:
        """What MRTE adds: ge itself (v1/v2, 512 wide) or ge_to512(ge) (v2Pro/v2ProPlus): (B, 512, 1)."""
        if not self.uses_sv:
            return ge
        return self.ge_to512(ge.transpose(1, 2)).transpose(1, 2)

    def _sv_per_reference(
        self, sv_emb: torch.Tensor | Sequence[torch.Tensor] | None, n_refs: int
    ) -> list[torch.Tensor | None]:
        """One embedding (B or 1, 20480) per reference, or Nones for v1/v2; clear errors otherwise."""
        if not self.uses_sv:
            if sv_emb is not None:
                raise SVEmbeddingError(
                    f"this is a SoVITS {self.version} model, which takes no speaker-verification embedding "
                    "(sv_emb); only v2Pro/v2ProPlus models do"
                )
            return [None] * n_refs
        if sv_emb is None:
            raise SVEmbeddingError(_SV_MISSING.format(version=self.version))
        if isinstance(sv_emb, torch.Tensor):
            if sv_emb.dim() == 3:  # (n_refs, B, 20480)
                items = list(sv_emb.unbind(0))
            elif sv_emb.dim() == 2 and n_refs > 1:  # (n_refs, 20480): one row per reference
                items = [row.unsqueeze(0) for row in sv_emb.unbind(0)]
            else:  # (B, 20480) or (20480,) for the one reference
                items = [sv_emb]
        else:
            items = list(sv_emb)
        if len(items) != n_refs:
            raise SVEmbeddingError(
                f"{len(items)} speaker-verification embeddings for {n_refs} reference spectrograms; "
                "give one per reference"
            )
        out = []
        for e in items:
            if not isinstance(e, torch.Tensor) or e.shape[-1] != SV_DIM or e.dim() > 2:
                shape = tuple(e.shape) if isinstance(e, torch.Tensor) else type(e).__name__
                raise SVEmbeddingError(f"a speaker-verification embedding must be (1, {SV_DIM}); got {shape}")
            out.append(e.reshape(-1, SV_DIM))
        return out

    def _upsample_content(self, quantized: torch.Tensor) -> torch.Tensor:
        if self.cfg.semantic_frame_rate == "25hz":
            quantized = F.interpolate(quantized, size=int(quantized.shape[-1] * 2), mode="nearest")
        return quantized

    @torch.no_grad()
    def extract_latent(self, ssl: torch.Tensor) -> torch.Tensor:
        """HuBERT features (B, 768, T50) -> semantic codes (B, n_q=1, T25), as the reference returns."""
        codes = self.quantizer.encode(self.ssl_proj(ssl))  # (n_q, B, T)
        return codes.transpose(0, 1)

    # -- inference ----------------------------------------------------------------------------

    @torch.no_grad()
    def decode(
        self,
        codes: torch.Tensor,
        text: torch.Tensor,
        refer: torch.Tensor | Sequence[torch.Tensor],
        noise_scale: float = 0.5,
        speed: float = 1.0,
        sv_emb: torch.Tensor | Sequence[torch.Tensor] | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Synthesize audio.

        codes: (n_q=1, B, T25) semantic tokens (the reference passes `pred_semantic.unsqueeze(0)`);
        text: (B, Tt) target phone ids; refer: one spectrogram (B, 1025, Tr) or a list of them, whose
        style vectors are averaged. sv_emb (v2Pro/v2ProPlus only, required there): one (1, 20480)
        speaker-verification embedding per reference, as a list or stacked (n_refs, 1, 20480) / (n_refs,
        20480); each reference's ge gets its own before the average. Returns (B, 1, T50' * hop) with
        T50' = 2*T25 (speed 1).
        """
        if codes.dim() != 3:
            raise ValueError(f"codes must be (n_q, B, T), got shape {tuple(codes.shape)}")
        if codes.size(-1) == 0:
            raise ValueError("codes is empty: there are no semantic tokens to decode")
        if text.size(-1) == 0:
            raise ValueError("text is empty: at least one phone id is needed")
        if speed <= 0:
            raise ValueError(f"speed must be positive, got {speed}")
        ge = self.reference_style(refer, sv_emb)
        _, m_p, logs_p, y_mask = self.prior(codes, text, ge, speed)
        noise = torch.randn(m_p.shape, generator=generator, dtype=m_p.dtype).to(m_p.device)
        z_p = m_p + noise * torch.exp(logs_p) * noise_scale
        z = self.flow(z_p, y_mask, g=ge, reverse=True)
        return self.decode_frames(z * y_mask, ge)

    @torch.no_grad()
    def reference_style(
        self,
        refer: torch.Tensor | Sequence[torch.Tensor],
        sv_emb: torch.Tensor | Sequence[torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """``ge`` (B, gin, 1) of ``decode``'s references: their style vectors averaged (see ``decode``)."""
        refs = list(refer) if isinstance(refer, (list, tuple)) else [refer]
        if not refs:
            raise ValueError("at least one reference spectrogram is needed")
        svs = self._sv_per_reference(sv_emb, len(refs))
        return torch.stack([self.style(r, sv_emb=sv) for r, sv in zip(refs, svs, strict=True)], 0).mean(0)

    @torch.no_grad()
    def prior(
        self,
        codes: torch.Tensor,
        text: torch.Tensor,
        ge: torch.Tensor,
        speed: float = 1.0,
        text_memo: dict[torch.dtype, tuple[torch.Tensor, torch.Tensor]] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """The prior of ``decode``: codes (1, B, T25), text (B, Tt), ge (B, gin, 1) -> (x, m_p, logs_p,
        y_mask) of ``TextEncoder.forward``, 2*T25 frames (int(2*T25 / speed) + 1 when speed != 1).
        ``text_memo``: see ``TextEncoder.forward`` (one dict per text)."""
        y_lengths = torch.tensor([codes.size(2) * 2], device=codes.device)
        text_lengths = torch.tensor([text.size(-1)], device=text.device)
        quantized = self._upsample_content(self.quantizer.decode(codes))  # (B, 768, T50)
        return self.enc_p(quantized, y_lengths, text, text_lengths, self.mrte_style(ge), speed, text_memo)

    @property
    def hop(self) -> int:
        """Output samples per latent frame (640 at 32 kHz: 50 frames per second)."""
        return math.prod(self.cfg.upsample_rates)

    @torch.no_grad()
    def decode_frames(
        self, z: torch.Tensor, ge: torch.Tensor, start: int = 0, stop: int | None = None
    ) -> torch.Tensor:
        """The decoder's audio of latent frames [start, stop) of z (B, C, T): (B, 1, (stop - start) * hop).

        The frames of z around the span are its context (the decoder reaches ``decoder_reach`` frames);
        beyond z's ends the decoder sees zeros, as at the ends of a whole sequence. The CPU fast path's
        decoder (``inference_dec``) is used when the model has one.
        """
        t = z.size(-1)
        stop = t if stop is None else stop
        fast = self.inference_dec
        if fast is not None and not self.training and fast.device == z.device and z.dtype == torch.float32:
            return fast(z, g=ge, start=start, stop=stop)
        if (start, stop) == (0, t):
            return self.dec(z, g=ge)
        reach = decoder_reach(self.dec)
        lo, hi = max(0, start - reach), min(t, stop + reach)
        y = self.dec(z[..., lo:hi], g=ge)
        return y[..., (start - lo) * self.hop : (stop - lo) * self.hop]

    # -- training -----------------------------------------------------------------------------

    def forward(
        self,
        ssl: torch.Tensor,
        spec: torch.Tensor,
        spec_lengths: torch.Tensor,
        text: torch.Tensor,
        text_lengths: torch.Tensor,
        sv_emb: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> S2TrainOutput:
        """Training forward.

        ssl: (B, 768, T) 50 Hz HuBERT features (T = 2 x spec frames for 25 Hz models, trimmed by the
        data pipeline); spec: (B, 1025, Ts) linear spectrogram; text: (B, Tt) phone ids;
        sv_emb: (B, 20480) the clips' speaker-verification embeddings (v2Pro/v2ProPlus only).
        """
        if not self.has_posterior:
            raise RuntimeError("this S2 model was built without enc_q (inference weights); it cannot train")
        (sv,) = self._sv_per_reference(sv_emb, 1)
        ge = self.style(spec, spec_lengths, sv_emb=sv)  # (B, gin, 1), the whole target as reference

        if self.cfg.freeze_quantizer:
            # Frozen content path: no gradient, no straight-through, commit loss 0.
            self.ssl_proj.eval()
            self.quantizer.eval()
            with torch.no_grad():
                quantized, _, commit_loss = self.quantizer(self.ssl_proj(ssl))
        else:
            quantized, _, commit_loss = self.quantizer(self.ssl_proj(ssl))
        quantized = self._upsample_content(quantized)

        _, m_p, logs_p, y_mask = self.enc_p(quantized, spec_lengths, text, text_lengths, self.mrte_style(ge))
        z, m_q, logs_q, y_mask = self.enc_q(spec, spec_lengths, g=ge, generator=generator)
        z_p = self.flow(z, y_mask, g=ge)
        z_slice, ids_slice = rand_slice_segments(
            z, spec_lengths, self.cfg.segment_frames, generator=generator
        )
        wav = self.dec(z_slice, g=ge)
        return S2TrainOutput(wav, commit_loss, ids_slice, y_mask, z, z_p, m_p, logs_p, m_q, logs_q, quantized)


# --- discriminator --------------------------------------------------------------------------------


class DiscriminatorP(nn.Module):
    """Period discriminator: the waveform folded into (T/period, period) and 2-D convolutions."""

    def __init__(self, period: int, kernel_size: int = 5, stride: int = 3) -> None:
        super().__init__()
        self.period = period
        pad = ((kernel_size - 1) // 2, 0)
        chans = [1, 32, 128, 512, 1024, 1024]
        self.convs = nn.ModuleList(
            WNConv2d(chans[i], chans[i + 1], (kernel_size, 1), (stride if i < 4 else 1, 1), padding=pad)
            for i in range(5)
        )
        self.conv_post = WNConv2d(1024, 1, (3, 1), 1, padding=(1, 0))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        fmap = []
        b, c, t = x.shape
        if t % self.period:
            n_pad = self.period - t % self.period
            x = F.pad(x, (0, n_pad), "reflect")
            t += n_pad
        x = x.view(b, c, t // self.period, self.period)
        for conv in self.convs:
            x = F.leaky_relu(conv(x), LRELU_SLOPE)
            fmap.append(x)
        x = self.conv_post(x)
        fmap.append(x)
        return torch.flatten(x, 1, -1), fmap


class DiscriminatorS(nn.Module):
    """Scale discriminator on the raw waveform (grouped 1-D convolutions)."""

    def __init__(self) -> None:
        super().__init__()
        self.convs = nn.ModuleList(
            [
                WNConv1d(1, 16, 15, 1, padding=7),
                WNConv1d(16, 64, 41, 4, groups=4, padding=20),
                WNConv1d(64, 256, 41, 4, groups=16, padding=20),
                WNConv1d(256, 1024, 41, 4, groups=64, padding=20),
                WNConv1d(1024, 1024, 41, 4, groups=256, padding=20),
                WNConv1d(1024, 1024, 5, 1, padding=2),
            ]
        )
        self.conv_post = WNConv1d(1024, 1, 3, 1, padding=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        fmap = []
        for conv in self.convs:
            x = F.leaky_relu(conv(x), LRELU_SLOPE)
            fmap.append(x)
        x = self.conv_post(x)
        fmap.append(x)
        return torch.flatten(x, 1, -1), fmap


class MultiPeriodDiscriminator(nn.Module):
    """One scale discriminator and period discriminators (`s2D*.pth` names): periods 2, 3, 5, 7, 11 for
    v1/v2, and also 17, 23 for v2Pro/v2ProPlus (`DISCRIMINATOR_PERIODS`)."""

    def __init__(self, periods: Sequence[int] = DISCRIMINATOR_PERIODS["v2"]) -> None:
        super().__init__()
        self.periods = tuple(periods)
        self.discriminators = nn.ModuleList([DiscriminatorS(), *(DiscriminatorP(p) for p in periods)])

    @classmethod
    def for_version(cls, version: str) -> MultiPeriodDiscriminator:
        return cls(DISCRIMINATOR_PERIODS[version])

    def forward(
        self, y: torch.Tensor, y_hat: torch.Tensor
    ) -> tuple[list[torch.Tensor], list[torch.Tensor], list[list[torch.Tensor]], list[list[torch.Tensor]]]:
        """Real y and generated y_hat (B, 1, T) -> (real scores, fake scores, real fmaps, fake fmaps)."""
        rs, gs, frs, fgs = [], [], [], []
        for d in self.discriminators:
            r, fr = d(y)
            g, fg = d(y_hat)
            rs.append(r)
            gs.append(g)
            frs.append(fr)
            fgs.append(fg)
        return rs, gs, frs, fgs
