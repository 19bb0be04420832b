"""Audio I/O: load any common format to float32 at a requested rate, and save wavs atomically.

Decoding goes through soundfile (libsndfile: wav of every bit depth, flac, ogg) and falls back
to PyAV (ffmpeg: mp3, m4a/aac, opus, video containers…). Resampling uses torchaudio's
band-limited sinc resampler. Every failure surfaces as one `AudioDecodeError` naming the file.

Arrays are `(samples,)` for mono and `(channels, samples)` otherwise, float32 in [-1, 1].
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.errors import UserError
from core.fsutil import atomic_write_with

logger = logging.getLogger(__name__)

AUDIO_EXTENSIONS = (
    ".wav",
    ".flac",
    ".mp3",
    ".m4a",
    ".ogg",
    ".opus",
    ".aac",
    ".wma",
    ".aiff",
    ".aif",
    ".webm",
    ".mp4",
)


# The rates shared by every stage: sliced clips, 5-wav32k and S2 v1/v2 run at 32 kHz; HuBERT (and the
# SV model) read 16 kHz.
DATASET_RATE = 32000
HUBERT_RATE = 16000


class AudioDecodeError(UserError, ValueError):
    """A file could not be read as audio: missing, empty, corrupt or not audio at all."""


@dataclass(frozen=True)
class AudioInfo:
    sample_rate: int
    channels: int
    frames: int

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate if self.sample_rate else 0.0


def is_audio_file(path: str | Path) -> bool:
    return Path(path).suffix.lower() in AUDIO_EXTENSIONS


def list_audio_files(inputs: list[str | Path] | tuple[str | Path, ...]) -> list[Path]:
    """Expand files and folders (not recursive) into a sorted, de-duplicated list of audio files."""
    files: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            files.extend(sorted(f for f in p.iterdir() if f.is_file() and is_audio_file(f)))
        elif p.exists():
            files.append(p)
        else:
            raise FileNotFoundError(f"input not found: {p}")
    seen: set[Path] = set()
    unique = []
    for f in files:
        key = f.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(f)
    return unique


def _read_soundfile(path: Path) -> tuple[np.ndarray, int]:
    import soundfile as sf

    data, sr = sf.read(str(path), dtype="float32", always_2d=True)  # (samples, channels)
    return data.T, int(sr)


def _read_pyav(path: Path) -> tuple[np.ndarray, int]:
    import av

    chunks: list[np.ndarray] = []
    with av.open(str(path)) as container:
        if not container.streams.audio:
            raise AudioDecodeError(f"{path.name}: the file has no audio stream")
        stream = container.streams.audio[0]
        sr = stream.codec_context.sample_rate
        channels = stream.codec_context.channels
        # Resample to planar float32 with the stream's own rate and layout: only the format changes.
        resampler = av.AudioResampler(format="fltp", layout=stream.layout.name, rate=sr)
        for frame in container.decode(stream):
            for out in resampler.resample(frame):
                chunks.append(out.to_ndarray())  # (channels, n)
        for out in resampler.resample(None):
            chunks.append(out.to_ndarray())
    if not chunks:
        return np.zeros((channels or 1, 0), dtype=np.float32), int(sr or 0)
    return np.concatenate(chunks, axis=1).astype(np.float32, copy=False), int(sr)


def _decode(path: Path) -> tuple[np.ndarray, int]:
    errors = []
    for reader in (_read_soundfile, _read_pyav):
        try:
            return reader(path)
        except AudioDecodeError:
            raise
        except Exception as e:  # each backend raises its own types; keep the message for the report
            errors.append(f"{reader.__name__.strip('_')}: {e}")
    raise AudioDecodeError(f"{path.name}: not a readable audio file ({'; '.join(errors)})")


def resample(audio: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """Resample along the last axis with torchaudio (band-limited sinc, Hann window)."""
    if orig_sr == target_sr or audio.shape[-1] == 0:
        return audio
    import torch
    import torchaudio.functional as AF

    out = AF.resample(torch.from_numpy(np.ascontiguousarray(audio)), orig_sr, target_sr)
    return out.numpy().astype(np.float32, copy=False)


def load_audio(path: str | Path, sample_rate: int | None = None, mono: bool = True) -> tuple[np.ndarray, int]:
    """Decode `path` to float32, downmixed to mono unless `mono=False`, resampled to `sample_rate`.

    Returns `(audio, sample_rate)`: audio is `(samples,)` when mono, else `(channels, samples)`.
    Raises `AudioDecodeError` for a missing, empty, corrupt or non-audio file.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioDecodeError(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise AudioDecodeError(f"{path.name}: the file is empty (0 bytes)")
    audio, sr = _decode(path)
    if audio.shape[-1] == 0 or sr <= 0:
        raise AudioDecodeError(f"{path.name}: the file holds no audio samples")
    if not np.all(np.isfinite(audio)):
        raise AudioDecodeError(f"{path.name}: the audio contains NaN or infinite samples")
    if mono:
        audio = audio.mean(axis=0)
    if sample_rate is not None:
        audio = resample(audio, sr, sample_rate)
        sr = sample_rate
    return np.ascontiguousarray(audio, dtype=np.float32), sr


def audio_info(path: str | Path) -> AudioInfo:
    """Rate, channels and length without decoding the samples when the container allows it."""
    path = Path(path)
    try:
        import soundfile as sf

        info = sf.info(str(path))
        return AudioInfo(int(info.samplerate), int(info.channels), int(info.frames))
    except Exception:
        audio, sr = load_audio(path, mono=False)
        return AudioInfo(sr, audio.shape[0], audio.shape[-1])


def to_int16(audio: np.ndarray) -> np.ndarray:
    """float [-1, 1] to int16 as the reference writes it: scale by 32767, clip, truncate."""
    return (np.clip(audio, -1.0, 1.0) * 32767).astype(np.int16)


def save_wav(path: str | Path, audio: np.ndarray, sample_rate: int, subtype: str = "PCM_16") -> Path:
    """Write a wav atomically. `audio` is `(samples,)` or `(channels, samples)`, float or int16."""
    import soundfile as sf

    path = Path(path)
    data = audio.T if audio.ndim == 2 else audio  # soundfile wants (samples, channels)
    atomic_write_with(path, lambda tmp: sf.write(str(tmp), data, sample_rate, subtype=subtype, format="WAV"))
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m core.audio", description="Inspect or convert audio files (any common format)."
    )
    parser.add_argument("inputs", nargs="+", help="audio files or folders")
    parser.add_argument("--to", metavar="DIR", help="convert each input to a wav in DIR")
    parser.add_argument("--sr", type=int, default=None, help="target sample rate (default: keep)")
    parser.add_argument("--stereo", action="store_true", help="keep channels instead of downmixing")
    args = parser.parse_args(argv)
    failed = 0
    for f in list_audio_files(args.inputs):
        try:
            if args.to:
                audio, sr = load_audio(f, args.sr, mono=not args.stereo)
                out = save_wav(Path(args.to) / f"{f.stem}.wav", audio, sr)
                print(f"{f} -> {out}")
            else:
                info = audio_info(f)
                print(f"{f}\t{info.sample_rate} Hz\t{info.channels} ch\t{info.duration:.2f} s")
        except AudioDecodeError as e:
            failed += 1
            print(f"error: {e}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
