"""S2 (SoVITS) fine-tuning data: items of a formatted experiment, their tensors, batches and buckets.

Follows the reference's ``module/data_utils.py`` (``TextAudioSpeakerLoader``, ``TextAudioSpeakerCollate``,
``DistributedBucketSampler``) in what it keeps and how it groups, without its silent fallbacks:

- a clip is used when it has a line in ``2-name2text.txt``, a ``4-cnhubert/<name>.pt`` and a
  ``5-wav32k/<name>``; it must last more than 0.6 s and less than 54 s;
- a set of fewer than 100 clips is repeated ``max(2, 100 // n)`` times (n counted before the
  duration filter, as the reference does), then shuffled with a fixed seed;
- batches come from length buckets with the reference's boundaries (32, 300, 400, ..., 1900
  spectrogram frames, i.e. about 0.64 s to 38 s); clips outside them never reach a batch in the
  reference either, which we report instead of dropping quietly;
- each item is (HuBERT features (768, T), linear spectrogram (1025, T), waveform (N,), phone ids),
  with the features trimmed or edge-padded to the spectrogram's T (the reference pads one frame);
- v2Pro/v2ProPlus items also carry the clip's speaker-verification embedding from
  ``7-sv_cn/<name>.pt`` (1, 20480); the reference trains only on clips that have one, here a clip
  without one is an error (the experiment was formatted for another version).

Where the reference prints a message and substitutes zeros for an unreadable clip, we raise
`S2DataError` naming the file, so a broken experiment is fixed rather than trained on.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from core.audio import DATASET_RATE
from core.errors import UserError
from gpt_sovits.data.experiment import ExperimentFormatError, ExperimentPaths, read_name2text
from gpt_sovits.models.features import spectrogram
from gpt_sovits.models.s2 import SV_DIM, SV_VERSIONS, symbol_version
from gpt_sovits.text import cleaned_text_to_sequence, get_symbols

# Spectrogram-frame bucket boundaries of the reference's s2_train.py (50 frames per second).
BUCKET_BOUNDARIES: tuple[int, ...] = (32, *range(300, 2000, 100))
MIN_SECONDS = 0.6  # exclusive, as `54 > duration > 0.6`
MAX_SECONDS = 54.0  # exclusive
MIN_ITEMS = 100  # smaller sets are repeated
SHUFFLE_SEED = 1234  # the reference's random.seed(1234) before shuffling the item list
MAX_SSL_MISMATCH = 2  # frames; more means the features belong to another clip


class S2DataError(UserError, ValueError):
    """The experiment cannot feed S2 training; the message says what to fix."""


@dataclass(frozen=True)
class S2Item:
    """One usable clip: its name, phone ids and length in spectrogram frames (samples // hop)."""

    name: str
    phone_ids: tuple[int, ...]
    frames: int


@dataclass
class S2DataReport:
    """What `scan_experiment` found: how many clips, and which ones each filter removed (by name)."""

    listed: int = 0
    used: int = 0
    repeats: int = 1
    missing_hubert: list[str] = field(default_factory=list)
    missing_wav: list[str] = field(default_factory=list)
    unreadable_wav: list[str] = field(default_factory=list)
    too_short: list[str] = field(default_factory=list)
    too_long: list[str] = field(default_factory=list)
    outside_buckets: list[str] = field(default_factory=list)
    unknown_phones: list[str] = field(default_factory=list)  # used, but with phones outside the table
    bucket_span: str = "0.64-38 s"  # the clip lengths the buckets take (v3/v4: 0.64-20 s)

    def dropped(self) -> dict[str, list[str]]:
        """Non-empty filters, keyed by a short reason."""
        reasons = {
            "no 4-cnhubert features": self.missing_hubert,
            "no 5-wav32k audio": self.missing_wav,
            "unreadable 5-wav32k audio": self.unreadable_wav,
            f"shorter than {MIN_SECONDS} s": self.too_short,
            f"longer than {MAX_SECONDS:g} s": self.too_long,
            f"outside the length buckets ({self.bucket_span})": self.outside_buckets,
        }
        return {k: v for k, v in reasons.items() if v}

    def summary(self) -> str:
        parts = [f"{self.used} of {self.listed} clips used"]
        if self.repeats > 1:
            parts.append(f"repeated x{self.repeats} (small set)")
        for reason, names in self.dropped().items():
            parts.append(f"{len(names)} {reason}: {_names(names)}")
        if self.unknown_phones:
            parts.append(
                f"{len(self.unknown_phones)} with phones unknown to the model: {_names(self.unknown_phones)}"
            )
        return "; ".join(parts)

    def to_dict(self) -> dict:
        return {
            "listed": self.listed,
            "used": self.used,
            "repeats": self.repeats,
            "dropped": {k: list(v) for k, v in self.dropped().items()},
            "unknown_phones": list(self.unknown_phones),
        }


def _names(names: list[str], shown: int = 5) -> str:
    return ", ".join(names[:shown]) + (", ..." if len(names) > shown else "")


def _manifest_version(paths: ExperimentPaths) -> str | None:
    """The version our formatter recorded in prepare_manifest.json (None for reference-made folders)."""
    import json

    try:
        data = json.loads(paths.manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    version = data.get("version") if isinstance(data, dict) else None
    return version if isinstance(version, str) else None


def _wav_samples(path: Path, sampling_rate: int) -> int | None:
    """Length of an audio file in samples at `sampling_rate`, from its header; None if unreadable."""
    try:
        import soundfile as sf

        info = sf.info(str(path))
    except Exception:  # soundfile raises several types for a damaged or foreign file
        return None
    if info.samplerate <= 0:
        return None
    return int(info.frames) * sampling_rate // int(info.samplerate)


def _bucket_of(frames: int, boundaries: Sequence[int]) -> int:
    """Index i with boundaries[i] < frames <= boundaries[i+1], or -1 (the reference's `_bisect`)."""
    for i in range(len(boundaries) - 1):
        if boundaries[i] < frames <= boundaries[i + 1]:
            return i
    return -1


def scan_experiment(
    exp_dir: str | Path,
    version: str = "v2",
    sampling_rate: int = DATASET_RATE,
    hop_length: int = 640,
    boundaries: Sequence[int] = BUCKET_BOUNDARIES,
) -> tuple[list[S2Item], S2DataReport]:
    """The clips of a formatted experiment that S2 trains on (unique, sorted by name), and a report.

    Raises S2DataError when the folder is not a formatted experiment or nothing survives the filters.
    """
    paths = ExperimentPaths.of(exp_dir)
    if not paths.root.is_dir():
        raise S2DataError(f"experiment folder {paths.root} does not exist; run formatting first")
    if not paths.name2text.is_file():
        raise S2DataError(f"{paths.name2text} is missing; run formatting (step 1) first")
    for folder, what in ((paths.hubert_dir, "HuBERT features"), (paths.wav_dir, "32 kHz wavs")):
        if not folder.is_dir():
            raise S2DataError(f"{folder} ({what}) is missing; run formatting (step 1) first")
    try:
        entries = read_name2text(paths.name2text)
    except (ExperimentFormatError, UnicodeDecodeError) as e:
        raise S2DataError(f"{paths.name2text} cannot be read: {e}") from None
    if not entries:
        raise S2DataError(f"{paths.name2text} lists no clips; the experiment is empty")

    formatted_for = _manifest_version(paths)
    if formatted_for is not None and symbol_version(formatted_for) != symbol_version(version):
        raise S2DataError(
            f"{paths.root.name} was formatted for {formatted_for} but the S2 model is {version}; the phone "
            f"tables differ: format it again with version {version} (or train a {formatted_for} model)"
        )
    if version in SV_VERSIONS:
        _check_sv_files(paths, sorted(entries), version)
    report = S2DataReport(listed=len(entries))
    report.bucket_span = (
        f"{boundaries[0] * hop_length / sampling_rate:g}-{boundaries[-1] * hop_length / sampling_rate:g} s"
    )
    known = set(get_symbols(version))
    present: list[str] = []
    for name in sorted(entries):
        if not paths.hubert(name).is_file():
            report.missing_hubert.append(name)
        elif not paths.wav(name).is_file():
            report.missing_wav.append(name)
        else:
            present.append(name)
    # The reference decides the repetition from the clips present, before the duration filter.
    report.repeats = max(2, MIN_ITEMS // len(present)) if 0 < len(present) < MIN_ITEMS else 1

    items: list[S2Item] = []
    for name in present:
        n = _wav_samples(paths.wav(name), sampling_rate)
        if n is None:
            report.unreadable_wav.append(name)
            continue
        seconds = n / sampling_rate
        if not seconds > MIN_SECONDS:
            report.too_short.append(name)
            continue
        if not seconds < MAX_SECONDS:
            report.too_long.append(name)
            continue
        frames = n // hop_length
        if _bucket_of(frames, boundaries) < 0:
            report.outside_buckets.append(name)
            continue
        phones = entries[name].phones
        if any(p not in known for p in phones):
            report.unknown_phones.append(name)  # kept, as the reference; those phones read as UNK
        ids = tuple(cleaned_text_to_sequence(phones, version))
        items.append(S2Item(name, ids, frames))
    report.used = len(items)
    if not items:
        details = "; ".join(f"{len(v)} {k}" for k, v in report.dropped().items())
        raise S2DataError(
            f"no clip of {paths.root.name} can be used for S2 training ({report.listed} listed: {details})"
        )
    return items, report


def _check_sv_files(paths: ExperimentPaths, names: Sequence[str], version: str) -> None:
    """v2Pro/v2ProPlus: every listed clip needs its 7-sv_cn embedding (formatting writes them)."""
    hint = f"run formatting for a {version} experiment (it writes the speaker-verification embeddings)"
    if not paths.sv_dir.is_dir():
        raise S2DataError(f"{paths.sv_dir} is missing: an S2 {version} model needs it; {hint}")
    missing = [n for n in names if not paths.sv(n).is_file()]
    if missing:
        raise S2DataError(
            f"{len(missing)} clip(s) have no speaker-verification embedding in {paths.sv_dir} "
            f"({_names(missing)}); {hint}"
        )


# ------------------------------------------------------------------------------------------- tensors


@dataclass
class S2Example:
    """One clip's tensors. T = spectrogram frames; N = samples."""

    ssl: torch.Tensor  # (768, T) float32 HuBERT features at 50 Hz
    spec: torch.Tensor  # (1025, T) linear magnitude spectrogram
    wav: torch.Tensor  # (N,) float32 in [-1, 1]
    text: torch.Tensor  # (Tt,) long phone ids
    sv: torch.Tensor | None = None  # (20480,) float32 speaker-verification embedding (v2Pro/v2ProPlus)


def align_ssl(ssl: torch.Tensor, frames: int, name: str = "") -> torch.Tensor:
    """HuBERT features (768, Ts) to exactly `frames` frames: edge-pad or trim a frame or two.

    HuBERT gives floor((N/2 - 400) / 320) + 1 frames for N samples at 32 kHz and the spectrogram
    N // 640, so they differ by at most one; more means the features are of another clip.
    """
    diff = frames - ssl.shape[-1]
    if abs(diff) > MAX_SSL_MISMATCH:
        raise S2DataError(
            f"HuBERT features of {name or 'a clip'} have {ssl.shape[-1]} frames but its audio has {frames}; "
            "the experiment is out of date: run formatting again"
        )
    if diff > 0:
        return F.pad(ssl.unsqueeze(0), (0, diff), mode="replicate").squeeze(0)
    return ssl[:, :frames]


class S2Dataset(torch.utils.data.Dataset):
    """The reference's item list (repeated, shuffled with seed 1234) and per-item tensor loading.

    `lengths[i]` is item i's spectrogram frames, which the bucket sampler groups by.
    """

    def __init__(
        self,
        exp_dir: str | Path,
        items: Sequence[S2Item],
        repeats: int = 1,
        sampling_rate: int = DATASET_RATE,
        filter_length: int = 2048,
        hop_length: int = 640,
        win_length: int = 2048,
        with_sv: bool = False,
    ) -> None:
        self.paths = ExperimentPaths.of(exp_dir)
        self.with_sv = with_sv  # read 7-sv_cn/<name>.pt too (v2Pro/v2ProPlus)
        order = [it for _ in range(max(1, repeats)) for it in items]
        random.Random(SHUFFLE_SEED).shuffle(order)
        self.items = order
        self.lengths = [it.frames for it in order]
        self.sampling_rate = sampling_rate
        self.filter_length, self.hop_length, self.win_length = filter_length, hop_length, win_length

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> S2Example:
        from core.audio import AudioDecodeError, load_audio

        item = self.items[index]
        try:
            audio, _ = load_audio(self.paths.wav(item.name), self.sampling_rate)
        except AudioDecodeError as e:
            raise S2DataError(f"cannot read {self.paths.wav(item.name)}: {e}") from None
        wav = torch.from_numpy(audio)
        spec = spectrogram(wav.unsqueeze(0), self.filter_length, self.hop_length, self.win_length)[0]
        try:
            ssl = torch.load(self.paths.hubert(item.name), map_location="cpu", weights_only=True)
        except Exception as e:
            raise S2DataError(f"cannot read {self.paths.hubert(item.name)}: {e}") from None
        if not isinstance(ssl, torch.Tensor) or ssl.dim() != 3 or ssl.shape[:2] != (1, 768):
            shape = tuple(ssl.shape) if isinstance(ssl, torch.Tensor) else type(ssl).__name__
            raise S2DataError(f"{self.paths.hubert(item.name)} holds {shape}; expected a (1, 768, T) tensor")
        ssl = align_ssl(ssl[0].float(), spec.shape[-1], item.name)
        sv = self._sv(item.name) if self.with_sv else None
        return S2Example(ssl, spec, wav, torch.tensor(item.phone_ids, dtype=torch.long), sv)

    def _sv(self, name: str) -> torch.Tensor:
        path = self.paths.sv(name)
        if not path.is_file():
            raise S2DataError(f"{path} is missing; run formatting for a v2Pro experiment")
        try:
            sv = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:
            raise S2DataError(f"cannot read {path}: {e}") from None
        if not isinstance(sv, torch.Tensor) or sv.numel() != SV_DIM or sv.shape[-1] != SV_DIM:
            shape = tuple(sv.shape) if isinstance(sv, torch.Tensor) else type(sv).__name__
            raise S2DataError(
                f"{path} holds {shape}; expected a (1, {SV_DIM}) speaker-verification embedding"
            )
        return sv.reshape(SV_DIM).float()


@dataclass
class S2Batch:
    """Zero-padded batch, longest spectrogram first. Time axes padded to an even length (25 Hz pairs)."""

    ssl: torch.Tensor  # (B, 768, T)
    spec: torch.Tensor  # (B, 1025, T)
    spec_lengths: torch.Tensor  # (B,)
    wav: torch.Tensor  # (B, 1, N)
    wav_lengths: torch.Tensor  # (B,)
    text: torch.Tensor  # (B, Tt)
    text_lengths: torch.Tensor  # (B,)
    sv_emb: torch.Tensor | None = None  # (B, 20480) v2Pro/v2ProPlus speaker-verification embeddings

    def to(self, device: torch.device | str, non_blocking: bool = False) -> S2Batch:
        return S2Batch(
            *(None if t is None else t.to(device, non_blocking=non_blocking) for t in self.__dict__.values())
        )

    def pin_memory(self) -> S2Batch:
        return S2Batch(*(None if t is None else t.pin_memory() for t in self.__dict__.values()))


def collate_s2(examples: Sequence[S2Example]) -> S2Batch:
    """Pad a list of examples; the frame axis is padded to 2 * (max // 2 + 1) as the reference does,
    which keeps it even so the 25 Hz content path gives back exactly T frames."""
    order = sorted(range(len(examples)), key=lambda i: examples[i].spec.shape[-1], reverse=True)
    exs = [examples[i] for i in order]
    b = len(exs)
    t_max = max(e.spec.shape[-1] for e in exs)
    t_pad = 2 * (t_max // 2 + 1)
    n_max = max(e.wav.shape[-1] for e in exs)
    tt_max = max(e.text.shape[-1] for e in exs)
    ssl = torch.zeros(b, exs[0].ssl.shape[0], t_pad)
    spec = torch.zeros(b, exs[0].spec.shape[0], t_pad)
    wav = torch.zeros(b, 1, n_max)
    text = torch.zeros(b, tt_max, dtype=torch.long)
    spec_lengths, wav_lengths, text_lengths = (torch.zeros(b, dtype=torch.long) for _ in range(3))
    for i, e in enumerate(exs):
        t = e.spec.shape[-1]
        ssl[i, :, :t] = e.ssl
        spec[i, :, :t] = e.spec
        spec_lengths[i] = t
        wav[i, 0, : e.wav.shape[-1]] = e.wav
        wav_lengths[i] = e.wav.shape[-1]
        text[i, : e.text.shape[-1]] = e.text
        text_lengths[i] = e.text.shape[-1]
    with_sv = [e.sv is not None for e in exs]
    if any(with_sv) and not all(with_sv):
        raise ValueError("some examples have a speaker-verification embedding and some not")
    sv_emb = torch.stack([e.sv for e in exs]) if all(with_sv) else None  # (B, 20480), same order
    return S2Batch(ssl, spec, spec_lengths, wav, wav_lengths, text, text_lengths, sv_emb)


# ------------------------------------------------------------------------------------------- buckets


class BucketBatchSampler(torch.utils.data.Sampler[list[int]]):
    """Batches of similar length, with the reference `DistributedBucketSampler`'s semantics.

    Items go to the bucket (b_i, b_i+1] of their length (others are never used); each bucket is
    padded by repeating its own items to a multiple of batch_size x num_replicas; each replica
    takes every num_replicas-th item; batches are cut in order and then shuffled. The shuffle is
    seeded by (seed, epoch) alone, so an epoch's batches are reproducible and a resumed run can
    skip the ones already trained (`set_epoch(epoch, start=k)`).
    """

    def __init__(
        self,
        lengths: Sequence[int],
        batch_size: int,
        boundaries: Sequence[int] = BUCKET_BOUNDARIES,
        num_replicas: int = 1,
        rank: int = 0,
        shuffle: bool = True,
        seed: int = 0,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} is outside 0..{num_replicas - 1}")
        self.batch_size, self.num_replicas, self.rank = batch_size, num_replicas, rank
        self.shuffle, self.seed = shuffle, seed
        self.epoch, self.start = 0, 0
        buckets: list[list[int]] = [[] for _ in range(len(boundaries) - 1)]
        for i, n in enumerate(lengths):
            k = _bucket_of(n, boundaries)
            if k >= 0:
                buckets[k].append(i)
        self.buckets = [bk for bk in buckets if bk]
        if not self.buckets:
            raise ValueError("no item falls inside the length buckets")
        total = batch_size * num_replicas
        self.num_samples_per_bucket = [len(bk) + (total - len(bk) % total) % total for bk in self.buckets]
        self.num_samples = sum(self.num_samples_per_bucket) // num_replicas

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Choose the epoch's shuffle and the first batch to yield (to resume inside an epoch)."""
        self.epoch, self.start = epoch, start

    def epoch_batches(self) -> list[list[int]]:
        """All batches of the current epoch for this replica, in order."""
        g = torch.Generator()
        g.manual_seed(self.seed * 1_000_003 + self.epoch)
        batches: list[list[int]] = []
        for bucket, n_samples in zip(self.buckets, self.num_samples_per_bucket, strict=True):
            n = len(bucket)
            ids = torch.randperm(n, generator=g).tolist() if self.shuffle else list(range(n))
            rem = n_samples - n
            ids = ids + ids * (rem // n) + ids[: rem % n]
            ids = ids[self.rank :: self.num_replicas]
            for j in range(len(ids) // self.batch_size):
                batches.append([bucket[k] for k in ids[j * self.batch_size : (j + 1) * self.batch_size]])
        if self.shuffle:
            perm = torch.randperm(len(batches), generator=g).tolist()
            batches = [batches[i] for i in perm]
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.epoch_batches()[self.start :])

    def __len__(self) -> int:
        """Batches per epoch (a full epoch, whatever `start` is)."""
        return self.num_samples // self.batch_size
