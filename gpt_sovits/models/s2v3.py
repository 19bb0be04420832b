"""S2 of GPT-SoVITS v3 and v4: `SynthesizerTrnV3`, semantic tokens -> conditioning -> CFM mel -> vocoder.

    codes (1,B,T25) --codebook--> (B,768,T25) --x2 nearest--> enc_p(phones, ge) --> x (B,192,T50)
    x --bridge (1x1 conv 512, LeakyReLU)--> x frame_factor nearest (v3 1.875, v4 2) --> wns1 (WN, g=ge)
      --> mu (B,512,Tm)                                                              decode_encp
    [prompt mu | target mu] --CFM (DiT, n steps)--> normalised mel (B,100,Tm) --denorm--> vocoder

Synthesis (`prompt_condition`, `infer_mel`) follows the reference's TTS.using_vocoder_synthesis: the
reference clip's log-mel (`reference_mel`) is the CFM prompt, long pieces go in chunks of the profile's
`t_chunk` frames, each continuing from the end of the previous one.

Tm is the mel frame rate of the vocoder: 25 Hz tokens x 3.75 = 93.75 Hz (v3, 24 kHz / hop 256) and
x 4 = 100 Hz (v4, 32 kHz mel with hop 320, vocoded at 48 kHz / 480). `ge` is the reference
encoder's style vector from the first 704 bins of the 32 kHz linear spectrogram, as in v2; the
text encoder, MRTE and quantizer are the v2 modules (phone table of 732 symbols).

Parameter names and shapes equal the reference (`GPT_SoVITS/module/models.py` SynthesizerTrnV3),
so `s2Gv3.pth` / `s2Gv4.pth` load strictly (`gpt_sovits.models.weights_v3`). The DiT size is
configurable for tests; its default is the official one.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from gpt_sovits.models.cfm import CFM, denorm_spec, norm_spec
from gpt_sovits.models.commons import sequence_mask
from gpt_sovits.models.dit import DiT
from gpt_sovits.models.modules import WN, MelStyleEncoder
from gpt_sovits.models.quantize import ResidualVectorQuantizer
from gpt_sovits.models.s2 import N_SYMBOLS, REF_ENC_BINS_V2, SSL_DIM, TextEncoder, UnsupportedS2Version

V3V4_VERSIONS = ("v3", "v4")
BRIDGE_CHANNELS = 512  # `inter_channels2` of the reference: bridge, wns1 and the DiT's text_dim
MEL_BANDS = 100
WNS1_LAYERS = 8
PROMPT_SHARE = 2 / 3  # training: the prompt is a random part of up to 2/3 of each item's mel


@dataclass(frozen=True)
class V3V4Profile:
    """What differs between v3 and v4 around the model (the reference's TTS.py constants).

    `frame_factor` stretches the 50 Hz encoder frames to mel frames; `length_factor` is the mel
    length per 25 Hz token that decode_encp masks to. The prompt mel is computed from the reference
    audio resampled to `mel_rate` with (n_fft = win, hop, 100 bands, fmin 0, no fmax, center False).
    Chunked synthesis uses at most `t_ref` prompt frames and `t_chunk` frames per CFM call,
    cross-fading `overlapped_len` frames; each mel frame is `upsample_rate` output samples.
    """

    version: str
    frame_factor: float
    length_factor: float
    mel_rate: int
    mel_n_fft: int
    mel_hop: int
    output_rate: int
    t_ref: int
    t_chunk: int
    overlapped_len: int
    upsample_rate: int
    default_steps: int
    step_choices: tuple[int, ...]


PROFILES: dict[str, V3V4Profile] = {
    "v3": V3V4Profile(
        "v3", 1.875, 3.875, 24000, 1024, 256, 24000, 468, 934, 12, 256, 32, (4, 8, 16, 32, 64, 128)
    ),
    "v4": V3V4Profile("v4", 2.0, 4.0, 32000, 1280, 320, 48000, 500, 1000, 12, 480, 8, (4, 8, 16, 32)),
}


@dataclass
class S2V3Config:
    """Architecture of SynthesizerTrnV3 plus the official hparams it came from (kept for round trips).

    The encoder fields are the `model` section of the official config; the DiT fields are fixed in
    the reference (dim 1024, depth 22, heads 16, ff_mult 2, conv_layers 4) and only tests change them.
    """

    version: str = "v3"
    inter_channels: int = 192
    hidden_channels: int = 192
    filter_channels: int = 768
    n_heads: int = 2
    n_layers: int = 6
    kernel_size: int = 3
    p_dropout: float = 0.1
    gin_channels: int = 512
    semantic_frame_rate: str = "25hz"
    freeze_quantizer: bool = True
    dit_dim: int = 1024
    dit_depth: int = 22
    dit_heads: int = 16
    dit_dim_head: int = 64
    dit_ff_mult: float = 2
    dit_conv_layers: int = 4
    hparams: dict[str, Any] = field(default_factory=dict)

    _MODEL_KEYS = (
        "inter_channels hidden_channels filter_channels n_heads n_layers kernel_size p_dropout gin_channels "
        "semantic_frame_rate freeze_quantizer"
    ).split()

    @property
    def profile(self) -> V3V4Profile:
        return PROFILES[self.version]

    def validate(self) -> None:
        if self.version not in V3V4_VERSIONS:
            raise UnsupportedS2Version(f"SynthesizerTrnV3 builds v3 or v4, not {self.version!r}")
        if self.semantic_frame_rate not in ("25hz", "50hz"):
            raise ValueError(
                f"semantic_frame_rate must be '25hz' or '50hz', got {self.semantic_frame_rate!r}"
            )
        if self.hidden_channels != 192 or self.gin_channels != 512:
            raise ValueError("S2 v3/v4 needs hidden_channels=192 and gin_channels=512 (MRTE has fixed sizes)")

    @classmethod
    def from_hparams(cls, hps: Mapping[str, Any] | None, version: str, **dit: Any) -> S2V3Config:
        """From the official nested hparams (a checkpoint's `config`; None: the defaults).

        `version` ("v3"/"v4") comes from the caller: the official files tell it by header or hash, not
        by their config. `dit` overrides the DiT fields (tests)."""
        model = dict((hps or {}).get("model") or {})
        kwargs = {k: model[k] for k in cls._MODEL_KEYS if k in model}
        names = {f.name for f in fields(cls)}
        unknown = set(dit) - names
        if unknown:
            raise ValueError(f"unknown S2V3Config fields: {sorted(unknown)}")
        cfg = cls(version=version, hparams=_plain(hps or {}), **kwargs, **dit)
        cfg.semantic_frame_rate = "25hz"  # as official inference forces
        return cfg

    def to_hparams(self) -> dict[str, Any]:
        """The official nested layout with this config's model fields and version."""
        out = _plain(self.hparams)
        model = dict(out.get("model") or {})
        model.update({k: getattr(self, k) for k in self._MODEL_KEYS})
        model["version"] = self.version
        out["model"] = model
        return out


def _plain(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


class Encoder(nn.Module):
    """`wns1`: 1x1 conv -> WaveNet (g = ge, detached) -> 1x1 conv, masked; (B, C, T) -> (B, out, T)."""

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
        self.pre = nn.Conv1d(in_channels, hidden_channels, 1)
        self.enc = WN(hidden_channels, kernel_size, dilation_rate, n_layers, gin_channels=gin_channels)
        self.proj = nn.Conv1d(hidden_channels, out_channels, 1)

    def forward(
        self, x: torch.Tensor, x_lengths: torch.Tensor, g: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if g is not None:
            g = g.detach()
        x_mask = sequence_mask(x_lengths, x.size(2)).unsqueeze(1).to(x.dtype)  # (B, 1, T)
        x = self.enc(self.pre(x) * x_mask, x_mask, g=g)
        return self.proj(x) * x_mask, x_mask


class SynthesizerTrnV3(nn.Module):
    """The v3/v4 S2 model (conditioning encoder + CFM); the vocoder is separate (`vocoders`)."""

    def __init__(self, cfg: S2V3Config) -> None:
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
            n_symbols=N_SYMBOLS["v2"],  # v3/v4 use the v2 phone table
        )
        self.ref_enc = MelStyleEncoder(REF_ENC_BINS_V2, style_vector_dim=cfg.gin_channels)
        stride = 2 if cfg.semantic_frame_rate == "25hz" else 1
        self.ssl_proj = nn.Conv1d(SSL_DIM, SSL_DIM, stride, stride=stride)
        self.quantizer = ResidualVectorQuantizer(dimension=SSL_DIM, n_q=1, bins=1024)
        self.bridge = nn.Sequential(nn.Conv1d(cfg.inter_channels, BRIDGE_CHANNELS, 1), nn.LeakyReLU())
        self.wns1 = Encoder(
            BRIDGE_CHANNELS,
            BRIDGE_CHANNELS,
            BRIDGE_CHANNELS,
            5,
            1,
            WNS1_LAYERS,
            gin_channels=cfg.gin_channels,
        )
        self.linear_mel = nn.Conv1d(BRIDGE_CHANNELS, MEL_BANDS, 1)  # in the official weights; unused
        dit = DiT(
            dim=cfg.dit_dim,
            depth=cfg.dit_depth,
            heads=cfg.dit_heads,
            dim_head=cfg.dit_dim_head,
            ff_mult=cfg.dit_ff_mult,
            mel_dim=MEL_BANDS,
            text_dim=BRIDGE_CHANNELS,
            conv_layers=cfg.dit_conv_layers,
        )
        self.cfm = CFM(MEL_BANDS, dit)

    @property
    def profile(self) -> V3V4Profile:
        return self.cfg.profile

    def frozen_modules(self) -> list[nn.Module]:
        """What training leaves untouched when `freeze_quantizer` (the reference's set_no_grad)."""
        return [self.ssl_proj, self.quantizer, self.enc_p] if self.cfg.freeze_quantizer else []

    # -- pieces ---------------------------------------------------------------------------------

    def style(self, refer: torch.Tensor) -> torch.Tensor:
        """`ge` (B, 512, 1) from a 32 kHz linear spectrogram (B, 1025, Tr), all frames."""
        lengths = torch.full((refer.size(0),), refer.size(2), dtype=torch.long, device=refer.device)
        mask = sequence_mask(lengths, refer.size(2)).unsqueeze(1).to(refer.dtype)
        return self.ref_enc(refer[:, :REF_ENC_BINS_V2] * mask, mask)

    @torch.no_grad()
    def extract_latent(self, ssl: torch.Tensor) -> torch.Tensor:
        """HuBERT features (B, 768, T50) -> semantic codes (B, 1, T25)."""
        codes = self.quantizer.encode(self.ssl_proj(ssl))  # (n_q, B, T)
        return codes.transpose(0, 1)

    def _stretch(self, x: torch.Tensor) -> torch.Tensor:
        # scale_factor (not size) so nearest picks the same source frames as the reference.
        return F.interpolate(x, scale_factor=self.profile.frame_factor, mode="nearest")

    @torch.no_grad()
    def decode_encp(
        self,
        codes: torch.Tensor,
        text: torch.Tensor,
        refer: torch.Tensor | None,
        ge: torch.Tensor | None = None,
        speed: float = 1.0,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """CFM conditioning for semantic tokens.

        codes: (1, 1, T25); text: (1, Tt) phone ids; refer: (1, 1025, Tr) spectrogram, used when
        `ge` is None. Returns mu (1, 512, Tm) and ge (1, 512, 1); Tm = floor(2*T25 * frame_factor)
        at speed 1 (frames past int(T25 * length_factor / speed) (+1 when speed != 1) are masked).
        """
        if codes.dim() != 3 or codes.size(-1) == 0:
            raise ValueError(f"codes must be a non-empty (n_q, B, T) tensor, got shape {tuple(codes.shape)}")
        if text.size(-1) == 0:
            raise ValueError("text is empty: at least one phone id is needed")
        if speed <= 0:
            raise ValueError(f"speed must be positive, got {speed}")
        if ge is None:
            if refer is None:
                raise ValueError("decode_encp needs a reference spectrogram or its style vector ge")
            ge = self.style(refer)
        t25 = codes.size(2)
        y_lengths = torch.tensor([t25 * 2], device=codes.device)
        factor = self.profile.length_factor
        mel_len = int(t25 * factor) if speed == 1 else int(t25 * factor / speed) + 1
        text_lengths = torch.tensor([text.size(-1)], device=text.device)
        quantized = self.quantizer.decode(codes)  # (B, 768, T25)
        if self.cfg.semantic_frame_rate == "25hz":
            quantized = F.interpolate(quantized, scale_factor=2, mode="nearest")
        x, _, _, _ = self.enc_p(quantized, y_lengths, text, text_lengths, ge, speed)
        fea = self._stretch(self.bridge(x))
        fea, _ = self.wns1(fea, torch.tensor([mel_len], device=codes.device), ge)
        return fea, ge

    # -- training -----------------------------------------------------------------------------

    def forward(
        self,
        ssl: torch.Tensor,
        spec: torch.Tensor,
        mel: torch.Tensor,
        spec_lengths: torch.Tensor,
        text: torch.Tensor,
        text_lengths: torch.Tensor,
        mel_lengths: torch.Tensor,
        use_grad_ckpt: bool = False,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """CFM training loss, as the reference's SynthesizerTrnV3.forward.

        ssl: (B, 768, 2*Ts) HuBERT; spec: (B, 1025, Ts) linear spectrogram; mel: (B, 100, Tm)
        normalised mel; text: (B, Tt). Returns the scalar loss.
        """
        y_mask = sequence_mask(spec_lengths, spec.size(2)).unsqueeze(1).to(spec.dtype)
        ge = self.ref_enc(spec[:, :REF_ENC_BINS_V2] * y_mask, y_mask)
        frozen = self.cfg.freeze_quantizer
        for m in self.frozen_modules():
            m.eval()
        with torch.no_grad() if frozen else contextlib.nullcontext():
            quantized, _, _ = self.quantizer(self.ssl_proj(ssl))
            quantized = F.interpolate(quantized, scale_factor=2, mode="nearest")
            x, _, _, _ = self.enc_p(quantized, spec_lengths, text, text_lengths, ge)
        fea = self._stretch(self.bridge(x))
        fea, _ = self.wns1(fea, mel_lengths, ge)
        b = ssl.shape[0]
        prompt_max = mel_lengths * PROMPT_SHARE
        prompt_len = (torch.rand((b,), generator=generator).to(fea.device) * prompt_max).floor().long()
        n = min(mel.shape[-1], fea.shape[-1])
        return self.cfm(
            mel[:, :, :n], mel_lengths, prompt_len, fea[:, :, :n], use_grad_ckpt, generator=generator
        )


def frame_counts(t25: int, version: str, speed: float = 1.0) -> tuple[int, int]:
    """(mu frames, unmasked mu frames) that decode_encp returns for `t25` tokens (chunk planning)."""
    p = PROFILES[version]
    t50 = t25 * 2 if speed == 1 else int(t25 * 2 / speed) + 1
    frames = int(t50 * p.frame_factor)
    valid = int(t25 * p.length_factor) if speed == 1 else int(t25 * p.length_factor / speed) + 1
    return frames, min(frames, valid)


# -- synthesis (the reference's TTS.using_vocoder_synthesis / inference_webui's v3 branch) ---------------


def reference_mel(wav: torch.Tensor, version: str) -> torch.Tensor:
    """Log-mel (1, 100, T) of the reference clip for the CFM prompt, as TTS.py's `mel_fn` / `mel_fn_v4`.

    `wav`: (1, N) or (N,) float audio already at the profile's `mel_rate` (24 kHz v3, 32 kHz v4), not
    peak-limited (the reference takes the raw clip). n_fft = win, hop, 100 bands, fmin 0, no fmax."""
    from gpt_sovits.models.features import mel_spectrogram

    p = PROFILES[version]
    if wav.ndim == 1:
        wav = wav.unsqueeze(0)
    return mel_spectrogram(
        wav.float(), n_fft=p.mel_n_fft, n_mels=MEL_BANDS, sr=p.mel_rate, hop=p.mel_hop, win=p.mel_n_fft
    )


@dataclass
class V3Prompt:
    """The reference's part of every CFM call: its conditioning, normalised mel and style vector.

    fea_ref: (1, 512, Tp) and mel: (1, 100, Tp), Tp = min(mel frames, conditioning frames), the last
    `t_ref` frames when longer; ge: (1, 512, 1). Computed once per reference and prompt text."""

    fea_ref: torch.Tensor
    mel: torch.Tensor
    ge: torch.Tensor

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> V3Prompt:
        return V3Prompt(
            self.fea_ref.to(device=device, dtype=dtype),
            self.mel.to(device=device, dtype=dtype),
            self.ge.to(device=device, dtype=dtype),
        )


def _chunk_len(profile: V3V4Profile, prompt_frames: int) -> int:
    return profile.t_chunk - prompt_frames


@torch.no_grad()
def prompt_condition(
    model: SynthesizerTrnV3,
    prompt_codes: torch.Tensor,
    prompt_text: torch.Tensor,
    refer: torch.Tensor,
    ref_mel: torch.Tensor,
) -> V3Prompt:
    """The prompt part of the CFM input from the reference's tokens (1, 1, Tp25), the prompt text's
    phones (1, Np), its 32 kHz spectrogram (1, 1025, Tr) and its log-mel (1, 100, Tm) (`reference_mel`)."""
    fea_ref, ge = model.decode_encp(prompt_codes, prompt_text, refer)
    mel = norm_spec(ref_mel.to(fea_ref.device, fea_ref.dtype))
    t_min = min(mel.shape[2], fea_ref.shape[2])
    mel, fea_ref = mel[:, :, :t_min], fea_ref[:, :, :t_min]
    t_ref = model.profile.t_ref
    if t_min > t_ref:  # only the reference's last t_ref frames condition the CFM
        mel, fea_ref = mel[:, :, -t_ref:], fea_ref[:, :, -t_ref:]
    return V3Prompt(fea_ref, mel, ge)


@torch.no_grad()
def infer_mel(
    model: SynthesizerTrnV3,
    prompt: V3Prompt,
    codes: torch.Tensor,
    text: torch.Tensor,
    steps: int,
    speed: float = 1.0,
    generator: torch.Generator | None = None,
    noises: list[torch.Tensor] | None = None,
) -> torch.Tensor:
    """Log-mel (1, 100, Tm) of one piece: tokens (1, 1, T25) + phones (1, Nt), in chunks of the CFM.

    As the reference: each CFM call sees [prompt | at most t_chunk - Tp target frames]; the first call's
    prompt is the reference's, each later one continues from the last Tp frames just generated (their
    mel and conditioning). `steps` Euler steps; the noise of each call comes from `generator` (seeded
    synthesis), from `noises` (one (1, 100, T) per call: fixed-noise parity) or the global RNG.
    """
    fea_todo, _ = model.decode_encp(codes, text, None, prompt.ge, speed)
    mel, fea_ref = prompt.mel.to(fea_todo.dtype), prompt.fea_ref
    t_min = mel.shape[2]
    chunk_len = _chunk_len(model.profile, t_min)
    out = []
    for n, start in enumerate(range(0, fea_todo.shape[-1], chunk_len)):
        chunk = fea_todo[:, :, start : start + chunk_len]
        fea = torch.cat([fea_ref, chunk], 2).transpose(2, 1)  # (1, Tp + Tc, 512)
        noise = noises[n] if noises is not None else None
        res = model.cfm.inference(
            fea,
            torch.tensor([fea.size(1)], device=fea.device),
            mel,
            steps,
            inference_cfg_rate=0,
            noise=noise,
            generator=None if noise is not None else generator,
        )[:, :, mel.shape[2] :]
        mel, fea_ref = res[:, :, -t_min:], chunk[:, :, -t_min:]
        out.append(res)
    return denorm_spec(torch.cat(out, 2))


def chunk_frames(prompt_frames: int, target_frames: int, version: str) -> list[int]:
    """Frames of each CFM call's target part for `infer_mel` (tests and progress planning)."""
    chunk_len = _chunk_len(PROFILES[version], prompt_frames)
    return [min(chunk_len, target_frames - s) for s in range(0, target_frames, chunk_len)]
