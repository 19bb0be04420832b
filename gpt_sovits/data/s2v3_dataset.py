"""S2 v3/v4 (CFM) LoRA fine-tuning data: the reference's ``TextAudioSpeakerLoaderV3/V4`` and collates.

The clips, their filters, the repetition of a small set and the seeded shuffle are those of the v2
loader (``gpt_sovits.data.s2_dataset.scan_experiment`` with the v2 phone table, which v3/v4 use);
what differs:

- the length buckets end at 1000 spectrogram frames (20 s), as ``s2_train_v3_lora.py``'s sampler;
- each item also carries the CFM's target mel, 100 bands, normalised to [-1, 1] (spec_min -12,
  spec_max 2): v3 from the clip resampled to 24 kHz (n_fft = win 1024, hop 256, 93.75 frames/s),
  v4 from the 32 kHz clip itself (n_fft = win 1280, hop 320, 100 frames/s); fmin 0, no fmax,
  center False (the profile's ``mel_rate``/``mel_n_fft``/``mel_hop``);
- the collate pads as the reference's: HuBERT and spectrogram frames to 2 * (max // 2 + 1), the
  mel to int(8 * (max_ssl // 8 + 1) * 1.875) frames (v3) or twice the padded spectrogram (v4).

As in ``s2_dataset``, an unreadable clip raises `S2DataError` naming the file instead of training
on zeros.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from core.audio import DATASET_RATE
from gpt_sovits.data.experiment import ExperimentPaths
from gpt_sovits.data.s2_dataset import S2DataError, S2DataReport, S2Item, align_ssl, scan_experiment
from gpt_sovits.models.cfm import norm_spec
from gpt_sovits.models.features import spec_to_mel, spectrogram
from gpt_sovits.models.s2v3 import MEL_BANDS, PROFILES, V3V4_VERSIONS

# Spectrogram-frame bucket boundaries of the reference's s2_train_v3_lora.py (its 1100..1900 are
# commented out there): clips of 0.64 s to 20 s train.
V3_BUCKET_BOUNDARIES: tuple[int, ...] = (32, *range(300, 1100, 100))
SHUFFLE_SEED = 1234  # the reference's random.seed(1234) before shuffling the item list
FILTER_LENGTH, HOP_LENGTH, WIN_LENGTH = 2048, 640, 2048  # the 32 kHz spectrogram (configs/s2.json)


def _check_version(version: str) -> None:
    if version not in V3V4_VERSIONS:
        raise ValueError(f"the v3/v4 dataset is for v3 or v4, not {version!r}")


def scan_experiment_v3(exp_dir: str | Path, version: str) -> tuple[list[S2Item], S2DataReport]:
    """The clips a v3/v4 LoRA run trains on (as `scan_experiment`, with the v3 buckets) and a report."""
    _check_version(version)
    # v3/v4 read the v2 phone table; a folder formatted for v3/v4 or v2 (same phones) is accepted.
    return scan_experiment(exp_dir, "v2", DATASET_RATE, HOP_LENGTH, V3_BUCKET_BOUNDARIES)


def target_mel(wav32k: torch.Tensor, version: str, wav_mel_rate: torch.Tensor | None = None) -> torch.Tensor:
    """The CFM's normalised target mel (100, Tm) of a 32 kHz clip (N,).

    v3 computes it from the clip at 24 kHz (`wav_mel_rate`, resampled by the caller from the file as
    the reference's loader does; resampled here when None), v4 from the 32 kHz samples."""
    _check_version(version)
    p = PROFILES[version]
    audio = wav32k
    if p.mel_rate != DATASET_RATE:
        if wav_mel_rate is None:
            from core.audio import resample

            wav_mel_rate = torch.from_numpy(resample(wav32k.numpy(), DATASET_RATE, p.mel_rate))
        audio = wav_mel_rate
    spec = spectrogram(audio.unsqueeze(0).float(), p.mel_n_fft, p.mel_hop, p.mel_n_fft)  # (1, F, Tm)
    mel = spec_to_mel(spec, p.mel_n_fft, MEL_BANDS, p.mel_rate, 0.0, None)  # (1, 100, Tm) log mel
    return norm_spec(mel[0])


@dataclass
class S2V3Example:
    """One clip's tensors. T = 32 kHz spectrogram frames (50 Hz); Tm = mel frames."""

    ssl: torch.Tensor  # (768, T) float32 HuBERT features
    spec: torch.Tensor  # (1025, T) linear magnitude spectrogram (the reference encoder's input)
    mel: torch.Tensor  # (100, Tm) normalised log mel, the CFM's target
    text: torch.Tensor  # (Tt,) long phone ids


class S2V3Dataset(torch.utils.data.Dataset):
    """The reference's v3/v4 item list (repeated, shuffled with seed 1234) and per-item loading.

    `lengths[i]` is item i's spectrogram frames, which the bucket sampler groups by."""

    def __init__(self, exp_dir: str | Path, items: Sequence[S2Item], repeats: int, version: str) -> None:
        _check_version(version)
        self.paths = ExperimentPaths.of(exp_dir)
        self.version = version
        order = [it for _ in range(max(1, repeats)) for it in items]
        random.Random(SHUFFLE_SEED).shuffle(order)
        self.items = order
        self.lengths = [it.frames for it in order]

    def __len__(self) -> int:
        return len(self.items)

    def _audio(self, name: str, rate: int) -> torch.Tensor:
        from core.audio import AudioDecodeError, load_audio

        try:
            audio, _ = load_audio(self.paths.wav(name), rate)
        except AudioDecodeError as e:
            raise S2DataError(f"cannot read {self.paths.wav(name)}: {e}") from None
        return torch.from_numpy(audio)

    def __getitem__(self, index: int) -> S2V3Example:
        item = self.items[index]
        wav = self._audio(item.name, DATASET_RATE)  # (N,) in [-1, 1]
        spec = spectrogram(wav.unsqueeze(0), FILTER_LENGTH, HOP_LENGTH, WIN_LENGTH)[0]  # (1025, T)
        rate = PROFILES[self.version].mel_rate
        mel = target_mel(wav, self.version, self._audio(item.name, rate) if rate != DATASET_RATE else None)
        path = self.paths.hubert(item.name)
        try:
            ssl = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # truncated or foreign file: say which
            raise S2DataError(f"cannot read {path}: {e}") from None
        if not isinstance(ssl, torch.Tensor) or ssl.dim() != 3 or ssl.shape[:2] != (1, 768):
            shape = tuple(ssl.shape) if isinstance(ssl, torch.Tensor) else type(ssl).__name__
            raise S2DataError(f"{path} holds {shape}; expected a (1, 768, T) tensor")
        ssl = align_ssl(ssl[0].float(), spec.shape[-1], item.name)
        return S2V3Example(ssl, spec, mel, torch.tensor(item.phone_ids, dtype=torch.long))


@dataclass
class S2V3Batch:
    """Zero-padded batch, longest spectrogram first (the reference collate's order and pads)."""

    ssl: torch.Tensor  # (B, 768, Ts)
    spec: torch.Tensor  # (B, 1025, Ts)
    mel: torch.Tensor  # (B, 100, Tm)
    ssl_lengths: torch.Tensor  # (B,)
    spec_lengths: torch.Tensor  # (B,)
    text: torch.Tensor  # (B, Tt)
    text_lengths: torch.Tensor  # (B,)
    mel_lengths: torch.Tensor  # (B,)

    def to(self, device: torch.device | str, non_blocking: bool = False) -> S2V3Batch:
        return S2V3Batch(*(t.to(device, non_blocking=non_blocking) for t in self.__dict__.values()))

    def pin_memory(self) -> S2V3Batch:
        return S2V3Batch(*(t.pin_memory() for t in self.__dict__.values()))


def mel_pad_length(version: str, max_ssl: int, spec_pad: int) -> int:
    """The mel frames a batch is padded to: v3 int(8 * (max_ssl // 8 + 1) * 1.25 * 1.5) (24000/256
    over 32000/640 = 1.875), v4 twice the padded spectrogram (100 Hz over 50 Hz)."""
    if version == "v3":
        return int(8 * (max_ssl // 8 + 1) * 1.25 * 1.5)
    return spec_pad * 2


def collate_s2v3(examples: Sequence[S2V3Example], version: str) -> S2V3Batch:
    """Pad a list of examples as the reference's TextAudioSpeakerCollateV3/V4."""
    _check_version(version)
    order = sorted(range(len(examples)), key=lambda i: examples[i].spec.shape[-1], reverse=True)
    exs = [examples[i] for i in order]
    b = len(exs)
    max_ssl = max(e.ssl.shape[-1] for e in exs)
    ssl_pad = 2 * (max_ssl // 2 + 1)
    spec_pad = 2 * (max(e.spec.shape[-1] for e in exs) // 2 + 1)
    mel_pad = mel_pad_length(version, max_ssl, spec_pad)
    tt_max = max(e.text.shape[-1] for e in exs)
    ssl = torch.zeros(b, exs[0].ssl.shape[0], ssl_pad)
    spec = torch.zeros(b, exs[0].spec.shape[0], spec_pad)
    mel = torch.zeros(b, exs[0].mel.shape[0], mel_pad)
    text = torch.zeros(b, tt_max, dtype=torch.long)
    lengths = [torch.zeros(b, dtype=torch.long) for _ in range(4)]
    ssl_lengths, spec_lengths, text_lengths, mel_lengths = lengths
    for i, e in enumerate(exs):
        ssl[i, :, : e.ssl.shape[-1]] = e.ssl
        ssl_lengths[i] = e.ssl.shape[-1]
        spec[i, :, : e.spec.shape[-1]] = e.spec
        spec_lengths[i] = e.spec.shape[-1]
        tm = min(e.mel.shape[-1], mel_pad)  # never more than the pad (a clip is at most 1000 frames)
        mel[i, :, :tm] = e.mel[:, :tm]
        mel_lengths[i] = tm
        text[i, : e.text.shape[-1]] = e.text
        text_lengths[i] = e.text.shape[-1]
    return S2V3Batch(ssl, spec, mel, ssl_lengths, spec_lengths, text, text_lengths, mel_lengths)
