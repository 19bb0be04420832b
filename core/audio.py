"""Audio I/O: load any common format to float32 at a requested rate, and save wavs atomically.

Decoding goes through soundfile (libsndfile: wav of every bit depth, flac, ogg) and falls back
to PyAV (ffmpeg: mp3, m4a/aac, opus, video containers…). Resampling uses torchaudio's
band-limited sinc resampler. Every failure surfaces as one `AudioDecodeError` naming the file.

Arrays are `(samples,)` for mono and `(channels, samples)` otherwise, float32 in [-1, 1].

Long recordings: `open_audio(path, rate).blocks()` yields the same samples as `load_audio` in blocks
of `block_seconds`, resampled on the fly (`StreamResampler`: the sinc filter of `resample` run over
overlapping chunks, equal to resampling the whole file), so memory follows the block, not the file.
`audio_info` reads rate, channels and length from the header (soundfile, else the container), so a
length limit is checked before anything is decoded.

PyAV frames are read as one packed float plane: PyAV 18 reports a ninth plane for 8-channel planar
frames and an 8-channel layout named "8 channels" resamples into such frames, and reading them
crashed the process (SIGSEGV); the packed plane never has that problem, for any channel count.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.errors import UserError, os_error_message, plain_detail
from core.fsutil import atomic_write_with
from core.jobs import EXIT_ALL_FAILED, EXIT_OK, EXIT_SOME_FAILED, EXIT_USER_ERROR

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


class AudioInputNotFoundError(UserError, FileNotFoundError):
    """A file or folder given as input does not exist."""


class AudioTooLongError(UserError, ValueError):
    """The header says the file is longer than a stage accepts (nothing was decoded)."""

    def __init__(self, message: str, duration: float) -> None:
        super().__init__(message)
        self.duration = duration


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
            raise AudioInputNotFoundError(f"Not found: {p.name or p}")
    seen: set[Path] = set()
    unique = []
    for f in files:
        key = f.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(f)
    return unique


BLOCK_SECONDS = 10.0  # default block length of the streaming reader


def _check_file(path: Path) -> None:
    if path.is_dir():
        raise AudioDecodeError(f"{path.name}: a folder, not an audio file")
    if not path.is_file():
        raise AudioDecodeError(f"Not found: {path.name}")
    if path.stat().st_size == 0:
        raise AudioDecodeError(f"{path.name}: the file is empty (0 bytes)")


def unreadable_message(path: Path, error: BaseException) -> str:
    """`name: not a readable audio file (why)`: the decoder's reason in plain words, without its errno,
    the file's path or the decoder's name."""
    if type(error).__name__ == "InvalidDataError":  # PyAV's "Invalid data found when processing input"
        why = "it is not audio, or it is damaged"
    else:
        why = plain_detail(str(error))
    return f"{path.name}: not a readable audio file" + (f" ({why})" if why else "")


def _sf_info(path: Path) -> AudioInfo | None:
    """The soundfile header, or None when libsndfile cannot read this format."""
    try:
        import soundfile as sf

        info = sf.info(str(path))
    except Exception:  # not a libsndfile format (mp3 in old versions, m4a, opus…): PyAV reads it
        return None
    return AudioInfo(int(info.samplerate), int(info.channels), int(info.frames))


def _sf_blocks(path: Path, block: int) -> Iterator[np.ndarray]:
    import soundfile as sf

    with sf.SoundFile(str(path)) as f:
        while True:
            data = f.read(block, dtype="float32", always_2d=True)  # (n, channels)
            if not len(data):
                return
            yield np.ascontiguousarray(data.T)


def _packed(frame) -> np.ndarray:
    """A PyAV frame already converted to packed float32 ("flt") as `(channels, samples)`."""
    channels = len(frame.layout.channels)
    data = np.frombuffer(frame.planes[0], dtype=np.float32)[: frame.samples * channels]
    return data.reshape(frame.samples, channels).T.copy()


def _av_info(path: Path) -> AudioInfo:
    """Rate, channels and (estimated) length from the container header, without decoding."""
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise AudioDecodeError(f"{path.name}: the file has no audio stream")
            stream = container.streams.audio[0]
            sr = int(stream.codec_context.sample_rate or 0)
            channels = int(stream.codec_context.channels or 0)
            if stream.duration is not None and stream.time_base is not None:
                seconds = float(stream.duration * stream.time_base)
            elif container.duration is not None:
                seconds = container.duration / 1_000_000  # av.time_base: microseconds
            else:
                seconds = -1.0
    except AudioDecodeError:
        raise
    except Exception as e:  # PyAV raises many types; one message naming the file
        raise AudioDecodeError(unreadable_message(path, e)) from e
    if seconds < 0:  # no length in the header (raw streams): count the samples, block by block
        frames = sum(b.shape[-1] for b in _av_blocks(path))
    else:
        frames = int(round(seconds * sr))
    return AudioInfo(sr, channels, frames)


def _av_blocks(path: Path) -> Iterator[np.ndarray]:
    import av

    with av.open(str(path)) as container:
        if not container.streams.audio:
            raise AudioDecodeError(f"{path.name}: the file has no audio stream")
        stream = container.streams.audio[0]
        # Only the sample format changes (to packed float): layout and rate stay the stream's own.
        resampler = av.AudioResampler(format="flt")
        for frame in container.decode(stream):
            for out in resampler.resample(frame):
                yield _packed(out)
        for out in resampler.resample(None):
            yield _packed(out)


class StreamResampler:
    """`resample` over a stream of `(channels, n)` blocks; the output equals resampling it whole.

    torchaudio's sinc resampler is a strided convolution: output frame `f` (of `new/g` samples, g the
    gcd of the rates) reads input `[f*o - w, f*o + o + w)`, o = orig/g, w the filter half-width. Each
    chunk is resampled with `ctx` >= w real input samples on both sides (a multiple of o, so chunk
    starts map to whole output frames) and only the outputs of its middle are kept.
    """

    def __init__(self, orig_sr: int, target_sr: int, channels: int) -> None:
        g = math.gcd(orig_sr, target_sr)
        self.orig_sr, self.target_sr = orig_sr, target_sr
        self.o, self.t = orig_sr // g, target_sr // g
        width = math.ceil(6 * self.o / (min(self.o, self.t) * 0.99))  # torchaudio's, lowpass width 6
        self.ctx = math.ceil(width / self.o) * self.o
        self.channels = channels
        self._buf = np.zeros((channels, 0), dtype=np.float32)
        self._buf_start = 0  # absolute input index of _buf[:, 0]
        self._done_in = 0  # input samples whose outputs were returned (a multiple of o)

    def _run(self, lo: int, hi: int, keep_from: int, keep: int | None) -> np.ndarray:
        chunk = self._buf[:, lo - self._buf_start : hi - self._buf_start]
        out = resample(chunk, self.orig_sr, self.target_sr)
        skip = (keep_from - lo) // self.o * self.t
        return out[:, skip:] if keep is None else out[:, skip : skip + keep]

    def push(self, block: np.ndarray) -> np.ndarray:
        """Feed `(channels, n)`; returns the `(channels, m)` outputs that are final so far."""
        self._buf = np.concatenate([self._buf, block.astype(np.float32, copy=False)], axis=1)
        end = self._buf_start + self._buf.shape[1]
        stop = (end - self.ctx) // self.o * self.o  # outputs of input [_done_in, stop) are final
        if stop <= self._done_in:
            return np.zeros((self.channels, 0), dtype=np.float32)
        lo = max(0, self._done_in - self.ctx)
        out = self._run(lo, stop + self.ctx, self._done_in, (stop - self._done_in) // self.o * self.t)
        self._done_in = stop
        drop = max(0, stop - self.ctx) - self._buf_start  # keep the left context of the next chunk
        self._buf = self._buf[:, drop:]
        self._buf_start += drop
        return out

    def flush(self) -> np.ndarray:
        """The last outputs (end of input: zero padding, as `resample` pads the end of a file)."""
        end = self._buf_start + self._buf.shape[1]
        if end <= self._done_in:
            return np.zeros((self.channels, 0), dtype=np.float32)
        out = self._run(max(0, self._done_in - self.ctx), end, self._done_in, None)
        self._done_in = end
        return out


class AudioStream:
    """A file opened for block reads: `info` is the header's, `blocks()` decodes as it goes.

    Blocks are `(samples,)` when mono, else `(channels, samples)`, float32 at `sample_rate`. Errors
    (corrupt data, NaN, no samples at all) raise `AudioDecodeError` naming the file, like `load_audio`.
    """

    def __init__(
        self,
        path: str | Path,
        sample_rate: int | None = None,
        mono: bool = True,
        block_seconds: float = BLOCK_SECONDS,
    ) -> None:
        self.path = Path(path)
        _check_file(self.path)
        sf_info = _sf_info(self.path)
        self._soundfile = sf_info is not None
        self.info = sf_info if sf_info is not None else _av_info(self.path)
        if self.info.sample_rate <= 0:
            raise AudioDecodeError(f"{self.path.name}: the file holds no audio samples")
        self.mono = mono
        self.sample_rate = sample_rate or self.info.sample_rate
        self.channels = 1 if mono else self.info.channels
        self.block_frames = max(1, int(block_seconds * self.info.sample_rate))

    @property
    def duration(self) -> float:
        """Seconds, from the header (an estimate for some compressed formats)."""
        return self.info.duration

    def _native(self) -> Iterator[np.ndarray]:
        """(channels, n) blocks at the file's rate, about `block_frames` each."""
        if self._soundfile:
            yield from _sf_blocks(self.path, self.block_frames)
            return
        pending: list[np.ndarray] = []
        size = 0
        for piece in _av_blocks(self.path):  # codec frames are small (~1024): gather them into blocks
            pending.append(piece)
            size += piece.shape[1]
            if size >= self.block_frames:
                yield np.concatenate(pending, axis=1)
                pending, size = [], 0
        if pending:
            yield np.concatenate(pending, axis=1)

    def _decoded(self) -> Iterator[np.ndarray]:
        try:
            yield from self._native()
        except AudioDecodeError:
            raise
        except Exception as e:  # each backend raises its own types; keep the message for the report
            raise AudioDecodeError(unreadable_message(self.path, e)) from e

    def blocks(self) -> Iterator[np.ndarray]:
        resampler = None
        if self.sample_rate != self.info.sample_rate:
            resampler = StreamResampler(self.info.sample_rate, self.sample_rate, self.channels)
        total = 0
        for block in self._decoded():
            if not np.all(np.isfinite(block)):
                raise AudioDecodeError(f"{self.path.name}: the audio contains NaN or infinite samples")
            total += block.shape[1]
            x = block.mean(axis=0, keepdims=True) if self.mono else block  # (channels, n)
            if resampler is not None:
                x = resampler.push(x)
            if x.shape[1]:
                yield np.ascontiguousarray(x[0] if self.mono else x, dtype=np.float32)
        if total == 0:
            raise AudioDecodeError(f"{self.path.name}: the file holds no audio samples")
        if resampler is not None:
            x = resampler.flush()
            if x.shape[1]:
                yield np.ascontiguousarray(x[0] if self.mono else x, dtype=np.float32)


def open_audio(
    path: str | Path, sample_rate: int | None = None, mono: bool = True, block_seconds: float = BLOCK_SECONDS
) -> AudioStream:
    """Open `path` for block reads (see `AudioStream`); the header is read now, no samples yet."""
    return AudioStream(path, sample_rate, mono, block_seconds)


def _decode(path: Path) -> tuple[np.ndarray, int]:
    stream = AudioStream(path, block_seconds=60.0)
    blocks = list(stream._decoded())
    if not blocks:
        return np.zeros((stream.info.channels or 1, 0), dtype=np.float32), stream.info.sample_rate
    return np.concatenate(blocks, axis=1).astype(np.float32, copy=False), stream.info.sample_rate


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
    _check_file(path)
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
    """Rate, channels and length from the header, decoding nothing (except the rare container that
    states no length: then the samples are counted block by block)."""
    path = Path(path)
    _check_file(path)
    return _sf_info(path) or _av_info(path)


def check_duration(path: str | Path, max_seconds: float, what: str = "The file") -> AudioInfo:
    """The header's info; `AudioTooLongError` when it says the file is longer than `max_seconds`."""
    info = audio_info(path)
    if info.duration > max_seconds:
        raise AudioTooLongError(
            f"{what} {Path(path).name} is {format_duration(info.duration)} long; the limit is "
            f"{format_duration(max_seconds)}.",
            info.duration,
        )
    return info


def format_duration(seconds: float) -> str:
    """`12.3 s`, `4 min 05 s`, `3 h 00 min`."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"


def convert(
    path: str | Path,
    dest: str | Path,
    sample_rate: int | None = None,
    mono: bool = True,
    subtype: str = "PCM_16",
    block_seconds: float = BLOCK_SECONDS,
) -> Path:
    """Write `path` as a wav at `dest` (atomically), block by block: memory is one block, not the file."""
    import soundfile as sf

    stream = open_audio(path, sample_rate, mono, block_seconds)

    def write(tmp: Path) -> None:
        with sf.SoundFile(
            str(tmp),
            "w",
            samplerate=stream.sample_rate,
            channels=stream.channels,
            subtype=subtype,
            format="WAV",
        ) as out:
            for block in stream.blocks():
                out.write(block if block.ndim == 1 else block.T)  # soundfile wants (samples, channels)

    atomic_write_with(Path(dest), write)
    return Path(dest)


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
    try:
        files = list_audio_files(args.inputs)
    except AudioInputNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USER_ERROR
    failed = 0
    for f in files:
        try:
            if args.to:
                out = convert(f, Path(args.to) / f"{f.stem}.wav", args.sr, mono=not args.stereo)
                print(f"{f} -> {out}")
            else:
                info = audio_info(f)
                print(f"{f}\t{info.sample_rate} Hz\t{info.channels} ch\t{info.duration:.2f} s")
        except AudioDecodeError as e:
            failed += 1
            print(f"error: {e}", file=sys.stderr)
        except OSError as e:  # writing the output: no space, no permission
            failed += 1
            print(f"error: {f.name}: {os_error_message(e)}", file=sys.stderr)
    if failed and failed == len(files):
        return EXIT_ALL_FAILED  # nothing converted: "Failed.", not "Done, some files failed."
    return EXIT_SOME_FAILED if failed else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
