"""Speaker-verification (SV) embedding of v2Pro / v2ProPlus: ERes2NetV2 (3D-Speaker) and its Kaldi fbank.

v2Pro and v2ProPlus condition S2 on a speaker embedding besides the reference spectrogram. The reference
computes it with ``ERes2NetV2(baseWidth=24, scale=4, expansion=4)`` loaded from the official
``sv/pretrained_eres2netv2w24s4ep4.ckpt`` (a plain ``state_dict``: parameter and buffer names as below, no
wrapper dict), on an 80-bin Kaldi fbank of 16 kHz audio, through ``forward3``: the network up to the
bottom-up fusion of stages 3 and 4, then the frequency and channel axes flattened and the time axis
averaged, (B, 2048 channels x 10 bands = 20480). The pooling + ``seg_1`` head of the classifier
(``forward``) is kept so that the official file loads strictly, but is not used.

Architecture (names are the official state-dict keys):

- ``conv1``/``bn1``: 3x3 conv, 1 -> m_channels on the (1, 80, T) fbank "image", then ReLU.
- ``layer1..layer4``: ``num_blocks`` residual blocks each with ``planes`` = m, 2m, 4m, 8m and stride 1, 2,
  2, 2 for the first block of each stage. A block: 1x1 ``conv1`` to ``width * scale`` channels
  (``width = floor(planes * baseWidth / 64)``), split into ``scale`` groups; group i (plus the previous
  group's output) goes through a 3x3 ``convs.i``/``bns.i``; concatenated, 1x1 ``conv3`` to
  ``planes * expansion``, plus the ``shortcut`` (1x1 conv + BN when shape changes, else identity). In
  stages 3 and 4 the "plus" is an attentional feature fusion (``fuse_models.i``, AFF) instead of a sum.
  Activations inside blocks are ReLU clipped at 20 (Hardtanh(0, 20)).
- ``layer3_ds``: 3x3 stride-2 conv bringing stage 3 to stage 4's shape; ``fuse34``: AFF of the two.
- AFF(x, y): ``a = 1 + tanh(local_att(cat(x, y)))`` (1x1 conv, BN, SiLU, 1x1 conv, BN), ``x*a + y*(2-a)``.

Features: ``torchaudio.compliance.kaldi.fbank(wav, num_mel_bins=80, sample_frequency=16000, dither=0)``
with every other option at its default (25 ms Povey window, 10 ms shift, pre-emphasis 0.97, DC removal,
``snip_edges``; no mean normalisation, as the reference's ``sv.py``), one clip at a time, on audio in
[-1, 1] (no int16 scaling). The reference ships a copy of torchaudio's kaldi.py that only caches the mel
banks; the numbers are the same.

Precision: fp32. The reference runs the network in fp16 when ``is_half`` (features too); we always compute
the features in fp32 and cast them to the network's dtype, so a ``.half()``-ed verifier works but is not
the exact path.

Parity with the reference (its ERes2NetV2 + kaldi.py from RVC-Boss/GPT-SoVITS, random seeded weights with
randomised BatchNorm statistics, saved with ``torch.save(model.state_dict())`` as the official file, read
back through ``load_sv(path).embed(wav16k)``): full size, 4 s of random 16 kHz audio, CPU fp32, one
thread: relative error of the 20480-d embedding (max |diff| / max |ref|) 0.0, i.e. bit-identical (target
<= 1e-3). The tests compare a small variant (m_channels 3, blocks 2-1-2-1) with data recorded from the
reference (``tests/data/sv/``) and the full-size key names and shapes with the reference's.

Resampling for 32 kHz material (``sv_embedding_of_wav32k``): the reference's ``2-get-sv.py`` (formatting)
and ``TTS.py`` / ``inference_webui.py`` (synthesis) both use ``torchaudio.transforms.Resample(32000,
16000)`` with its defaults; we use ``core.audio.resample`` (``torchaudio.functional.resample``, the same
Hann-windowed sinc filter, width 6, rolloff 0.99). The transform builds its kernel in float64 and caches it
in float32, the function builds it in the input's dtype: outputs differ by < 1e-7.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from core.audio import resample
from core.errors import UserError
from core.model_route import GSV_REPO, download_route, hub_url
from gpt_sovits.models.s2 import SV_DIM as SV_DIM  # re-exported: the (B, 20480) embed() width
from gpt_sovits.models.weights import (
    CheckpointError,
    UnsupportedVersionError,
    WrongModelTypeError,
    classify,
    read_checkpoint,
)

SV_RATE = 16000  # the SV model's input rate (Hz)
N_MELS = 80
SV_FILE = "sv/pretrained_eres2netv2w24s4ep4.ckpt"  # relative to the pretrained-models folder
SV_NAME = "sv-eres2netv2"  # its row in the pretrained-models registry (what `download` takes)
_MIN_SAMPLES = 400  # one 25 ms fbank frame at 16 kHz


class SVModelNotFoundError(CheckpointError, FileNotFoundError):
    """The speaker-verification model file is missing."""


class SVModelMismatchError(WrongModelTypeError):
    """The file is not the ERes2NetV2 speaker-verification model (another model, or other sizes)."""


class SVInputError(UserError, ValueError):
    """Audio that cannot be embedded (wrong shape, too short)."""


@dataclass(frozen=True)
class SVConfig:
    """ERes2NetV2 sizes; the defaults are the official w24s4ep4 model (``sv.py``'s constructor call)."""

    num_blocks: tuple[int, int, int, int] = (3, 4, 6, 3)
    m_channels: int = 64
    feat_dim: int = N_MELS
    embedding_size: int = 192  # seg_1 output (the classifier head; unused by forward3)
    base_width: int = 24
    scale: int = 4
    expansion: int = 4

    @property
    def embed_dim(self) -> int:
        """forward3 size: stage-4 channels x frequency bands left after three stride-2 stages."""
        bands = self.feat_dim
        for _ in range(3):
            bands = (bands + 1) // 2
        return self.m_channels * 8 * self.expansion * bands


class ClippedReLU(nn.Hardtanh):
    """ReLU clipped at 20, ERes2Net's activation inside the blocks."""

    def __init__(self) -> None:
        super().__init__(0.0, 20.0, inplace=True)


class AFF(nn.Module):
    """Attentional feature fusion of two maps of equal shape: a learned per-position mix of x and y."""

    def __init__(self, channels: int, r: int = 4) -> None:
        super().__init__()
        inter = channels // r
        self.local_att = nn.Sequential(
            nn.Conv2d(channels * 2, inter, kernel_size=1),
            nn.BatchNorm2d(inter),
            nn.SiLU(inplace=True),
            nn.Conv2d(inter, channels, kernel_size=1),
            nn.BatchNorm2d(channels),
        )

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        att = 1.0 + torch.tanh(self.local_att(torch.cat((x, y), dim=1)))  # in (0, 2)
        return x * att + y * (2.0 - att)


class Block(nn.Module):
    """ERes2NetV2 residual block; ``fuse`` picks AFF (stages 3, 4) over a plain sum between the groups."""

    def __init__(
        self,
        in_planes: int,
        planes: int,
        stride: int,
        base_width: int,
        scale: int,
        expansion: int,
        fuse: bool,
    ) -> None:
        super().__init__()
        width = int(math.floor(planes * (base_width / 64.0)))
        out_planes = planes * expansion
        self.width = width
        self.conv1 = nn.Conv2d(in_planes, width * scale, kernel_size=1, stride=stride, bias=False)
        self.bn1 = nn.BatchNorm2d(width * scale)
        self.convs = nn.ModuleList(
            nn.Conv2d(width, width, kernel_size=3, padding=1, bias=False) for _ in range(scale)
        )
        self.bns = nn.ModuleList(nn.BatchNorm2d(width) for _ in range(scale))
        if fuse:
            self.fuse_models = nn.ModuleList(AFF(width, r=4) for _ in range(scale - 1))
        self.fuse = fuse
        self.relu = ClippedReLU()
        self.conv3 = nn.Conv2d(width * scale, out_planes, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != out_planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(out_planes),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C_in, F, T) -> (B, planes*expansion, F/s, T/s)
        groups = torch.split(self.relu(self.bn1(self.conv1(x))), self.width, dim=1)
        outs: list[torch.Tensor] = []
        sp = groups[0]
        for i, conv in enumerate(self.convs):
            if i > 0:  # each group also sees the previous group's output
                sp = self.fuse_models[i - 1](sp, groups[i]) if self.fuse else sp + groups[i]
            sp = self.relu(self.bns[i](conv(sp)))
            outs.append(sp)
        out = self.bn3(self.conv3(torch.cat(outs, dim=1)))
        out += self.shortcut(x)
        return self.relu(out)


class ERes2NetV2(nn.Module):
    """The network; ``forward`` returns the 20480-d embedding of the reference's ``forward3``."""

    def __init__(self, cfg: SVConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg = cfg or SVConfig()
        m, e = cfg.m_channels, cfg.expansion
        self.conv1 = nn.Conv2d(1, m, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(m)
        in_planes = m
        stages = []
        for i, (n, stride) in enumerate(zip(cfg.num_blocks, (1, 2, 2, 2), strict=True)):
            planes = m * 2**i
            blocks = []
            for s in [stride] + [1] * (n - 1):
                blocks.append(Block(in_planes, planes, s, cfg.base_width, cfg.scale, e, fuse=i >= 2))
                in_planes = planes * e
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.layer3_ds = nn.Conv2d(m * 4 * e, m * 8 * e, kernel_size=3, padding=1, stride=2, bias=False)
        self.fuse34 = AFF(m * 8 * e, r=4)
        # Classifier head of the official file (mean+std pooling -> seg_1); loaded, not run.
        stats_dim = int(cfg.feat_dim / 8) * m * 8 * e
        self.seg_1 = nn.Linear(stats_dim * 2, cfg.embedding_size)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:  # (B, T, n_mels) -> (B, embed_dim)
        x = feats.transpose(1, 2).unsqueeze(1)  # (B, 1, F, T)
        out = F.relu(self.bn1(self.conv1(x)))
        out3 = self.layer3(self.layer2(self.layer1(out)))  # (B, 4m*e, F/4, T/4)
        out4 = self.layer4(out3)  # (B, 8m*e, F/8, T/8)
        fused = self.fuse34(out4, self.layer3_ds(out3))
        return fused.flatten(start_dim=1, end_dim=2).mean(-1)  # (B, 8m*e * F/8)


def fbank_features(wav16k: torch.Tensor) -> torch.Tensor:
    """(B, N) audio at 16 kHz in [-1, 1] -> (B, T, 80) Kaldi fbank (T = 1 + (N - 400) // 160), fp32."""
    import torchaudio.compliance.kaldi as kaldi

    wav = wav16k.float()
    return torch.stack(
        [kaldi.fbank(w.unsqueeze(0), num_mel_bins=N_MELS, sample_frequency=SV_RATE, dither=0.0) for w in wav]
    )


class SpeakerVerifier(nn.Module):
    """ERes2NetV2 with its features: ``embed`` maps 16 kHz audio to the 20480-d v2Pro SV embedding."""

    def __init__(self, cfg: SVConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg = cfg or SVConfig()
        self.model = ERes2NetV2(cfg)

    @torch.no_grad()  # not inference_mode: the embedding may feed a trained S2 layer
    def embed(self, wav16k: torch.Tensor) -> torch.Tensor:
        """(B, N) float audio at 16 kHz (or (N,) for one clip) -> (B, embed_dim) float32 on the model's device."""
        if not isinstance(wav16k, torch.Tensor):
            raise SVInputError(
                f"SV embedding needs a torch tensor of 16 kHz audio, got {type(wav16k).__name__}"
            )
        if wav16k.dim() == 1:
            wav16k = wav16k.unsqueeze(0)
        if wav16k.dim() != 2 or wav16k.shape[0] == 0:
            raise SVInputError(
                f"SV embedding needs (batch, samples) audio at 16 kHz, got shape {tuple(wav16k.shape)}"
            )
        if wav16k.shape[1] < _MIN_SAMPLES:
            raise SVInputError(
                f"audio too short for the SV embedding: {wav16k.shape[1]} samples at 16 kHz, at least "
                f"{_MIN_SAMPLES} (25 ms) needed"
            )
        param = next(self.model.parameters())
        feats = fbank_features(wav16k.to(param.device))  # (B, T, 80), fp32
        return self.model(feats.to(param.dtype)).float()

    def forward(self, wav16k: torch.Tensor) -> torch.Tensor:
        return self.embed(wav16k)


def _describe_keys(keys: list[str], limit: int = 4) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


def _state_dict_or_explain(content: object, path: Path) -> dict[str, torch.Tensor]:
    """The file's flat state dict, or a SVModelMismatchError saying what the file is instead.

    The official file is the bare state dict; one wrapped in a training checkpoint's dict (``state_dict``,
    ``model``, ``embedding_model``) is accepted when the wrapped dict is an ERes2NetV2's.
    """

    def tensors(obj: object) -> bool:
        return (
            isinstance(obj, Mapping) and bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())
        )

    if tensors(content):
        return dict(content)
    if isinstance(content, Mapping):
        for key in ("state_dict", "model", "embedding_model"):
            inner = content.get(key)
            if tensors(inner) and "layer3_ds.weight" in inner:
                return dict(inner)
    kind = classify(content)
    what = {
        "gpt": "a GPT (S1) checkpoint",
        "sovits": "a SoVITS (S2) generator",
        "sovits-v2pro": "a SoVITS v2Pro/v2ProPlus generator",
        "sovits-v3": "a SoVITS v3/v4 model",
        "sovits-discriminator": "a SoVITS discriminator (s2D)",
    }.get(kind, "not a plain state dict of tensors")
    raise SVModelMismatchError(
        f"{path} is {what}, not the speaker-verification model; expected the ERes2NetV2 weights "
        f"{Path(SV_FILE).name} from {hub_url(GSV_REPO, SV_FILE)}"
    )


def _check_keys(model: nn.Module, sd: Mapping[str, torch.Tensor], path: Path, cfg: SVConfig) -> None:
    """Strict key and shape check with a readable message (BatchNorm counters may be absent, as torch allows)."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in sd and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in sd if k not in expected]
    wrong = [k for k in expected if k in sd and tuple(sd[k].shape) != tuple(expected[k].shape)]
    if not (missing or unexpected or wrong):
        return
    problems = []
    if missing:
        problems.append(f"{len(missing)} tensors missing ({_describe_keys(missing)})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected ({_describe_keys(unexpected)})")
    if wrong:
        k = wrong[0]
        problems.append(
            f"{len(wrong)} of other shapes (e.g. {k}: {tuple(sd[k].shape)}, expected {tuple(expected[k].shape)})"
        )
    sizes = ", ".join(f"{k}={v}" for k, v in asdict(cfg).items())
    raise SVModelMismatchError(
        f"{path} is not the ERes2NetV2 speaker-verification model ({sizes}): {'; '.join(problems)}. "
        f"Expected {Path(SV_FILE).name} from {hub_url(GSV_REPO, SV_FILE)}"
    )


def load_sv(
    path: str | Path, device: str | torch.device = "cpu", *, config: SVConfig | None = None
) -> SpeakerVerifier:
    """Load the SV model from the official state-dict file (restricted unpickling, strict keys), eval, fp32.

    ``config`` defaults to the official w24s4ep4 sizes; tests pass a small variant.
    """
    path = Path(path)
    cfg = config or SVConfig()
    if not path.exists():
        # The official layout puts it at <model_dir>/sv/<file>: that model_dir is where `download` writes.
        model_dir = path.parent.parent if path.parent.name == Path(SV_FILE).parent.name else None
        route = download_route(SV_NAME, (path.name,), path.parent, hub_url(GSV_REPO, SV_FILE), model_dir)
        raise SVModelNotFoundError(
            f"speaker-verification model not found: {path}. v2Pro and v2ProPlus need it. {route}"
        )
    try:
        raw = read_checkpoint(path)
    except UnsupportedVersionError as e:  # a v2Pro/v3 SoVITS export: a model, just not this one
        raise SVModelMismatchError(f"{e}; it is not the speaker-verification model ({SV_FILE})") from None
    sd = _state_dict_or_explain(raw.content, path)
    sv = SpeakerVerifier(cfg)
    _check_keys(sv.model, sd, path, cfg)
    try:
        sv.model.load_state_dict(sd, strict=True)
    except RuntimeError as e:  # dtype/shape problems the key check did not catch
        raise CheckpointError(f"{path} does not load into the ERes2NetV2 SV model: {e}") from None
    return sv.float().eval().to(device)


def sv_embedding_of_wav32k(sv: SpeakerVerifier, audio32k: np.ndarray) -> torch.Tensor:
    """SV embedding of a 32 kHz clip, as formatting (7-sv_cn) and synthesis compute it: (N,) -> (1, 20480).

    ``audio32k`` is the float32 mono clip at 32 kHz exactly as S2 gets it (the 5-wav32k file, or the
    reference clip after its peak limiting); it is resampled to 16 kHz with ``core.audio.resample`` (see the
    module docstring for how that compares with the reference's ``Resample`` transform). Returns a float32
    CPU tensor, ready to save or to move to S2's device.
    """
    audio = np.asarray(audio32k, dtype=np.float32)
    if audio.ndim != 1:
        raise SVInputError(f"SV embedding needs mono 32 kHz audio (samples,), got shape {audio.shape}")
    wav16k = resample(audio, 32000, SV_RATE)
    return sv.embed(torch.from_numpy(np.ascontiguousarray(wav16k)).unsqueeze(0)).cpu()
