"""Silence slicer: cut long recordings into clips at quiet places (GPT-SoVITS `slicer2` family).

    python -m tools.slice INPUT... --out DIR [--threshold -34] [--max-length 20] [--dry-run]

The cut decisions follow the RMS slicer of openvpi/audio-slicer as used by GPT-SoVITS
(`tools/slicer2.py` + `tools/slice_audio.py`), with the GPT-SoVITS web UI defaults, so the same
input gives the same cut points. Differences, all deliberate:

- the RMS curve is computed block by block from running sums of squares, never as a
  (frames x window) matrix, and the file is read twice in blocks (`core.audio.open_audio`): once
  for the RMS curve, once to write the clips, so memory is a block plus the longest clip, never the
  recording (a 3-hour file: the curve is 8 MB);
- `max_length_s` splits over-long clips at their quietest frame (the reference has no maximum);
- a clip whose peak exceeds 1 is divided by its peak once before mixing (the reference divides by
  the old peak twice); clips of pure digital silence are not written (the reference divides by 0);
- an output name that already exists is never overwritten: an identical file is kept and counted,
  a different one gets a free name `name (1).wav` (see `core.fsutil.unique_path`).

The CLI slices in worker processes: a file that crashes its process (a native fault, a kill for
memory) is reported as failed and the other files go on. Exit codes (`core.jobs`): 0 done, 1 some
files failed (or stopped), 4 every file failed, 2 a person's mistake.

Outputs are 32 kHz mono int16 wavs named `"%s_%010d_%010d.wav" % (source name with extension,
start, end)`, start/end in samples at 32 kHz, as the reference names them (so the last clip's end is that of the
last RMS frame, up to one hop past the last sample, exactly as GPT-SoVITS writes it).
"""

from __future__ import annotations

import argparse
import io
import logging
import math
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

from core.audio import BLOCK_SECONDS, DATASET_RATE, list_audio_files, open_audio, to_int16
from core.errors import UserError
from core.fsutil import atomic_write_bytes, unique_path
from core.jobs import (
    EXIT_ALL_FAILED,
    EXIT_OK,
    EXIT_SOME_FAILED,
    BatchReport,
    EventWriter,
    FileFailure,
    ProgressFn,
    StopFn,
    log_progress,
    never_stop,
    stage_failure,
)

logger = logging.getLogger(__name__)

SAMPLE_RATE = DATASET_RATE  # clips are written at the training rate
NAME_FORMAT = "%s_%010d_%010d.wav"


class SliceParamsError(UserError, ValueError):
    """Slicer parameters that cannot work together (e.g. min_length < min_interval)."""


class SliceOutputError(UserError, ValueError):
    """The output folder would mix clips with their inputs."""


@dataclass(frozen=True)
class SliceParams:
    """Slicer knobs, in the units of the GPT-SoVITS UI (dB, milliseconds, peak in [0, 1])."""

    threshold_db: float = -34.0  # frames quieter than this are candidate cuts
    min_length_ms: float = 4000.0  # a clip shorter than this is merged with the next one
    min_interval_ms: float = 300.0  # a silence must last this long to be cut
    hop_ms: float = 10.0  # hop of the RMS curve
    max_sil_kept_ms: float = 500.0  # at most this much silence is kept around a cut
    max_peak: float = 0.9  # peak after normalisation ("max")
    alpha: float = 0.25  # share of the normalised clip mixed with the original
    max_length_s: float | None = None  # split longer clips at their quietest point (None: never)
    sample_rate: int = SAMPLE_RATE

    def validate(self) -> SliceParams:
        """Raise `SliceParamsError` naming the offending values; return self when fine."""
        if not self.hop_ms > 0:
            raise SliceParamsError(f"hop size must be > 0 ms (got {self.hop_ms})")
        if not self.min_length_ms >= self.min_interval_ms >= self.hop_ms:
            raise SliceParamsError(
                "min_length >= min_interval >= hop_size must hold "
                f"(got min_length={self.min_length_ms} ms, min_interval={self.min_interval_ms} ms, "
                f"hop_size={self.hop_ms} ms)"
            )
        if not self.max_sil_kept_ms >= self.hop_ms:
            raise SliceParamsError(
                f"max_sil_kept >= hop_size must hold (got max_sil_kept={self.max_sil_kept_ms} ms, "
                f"hop_size={self.hop_ms} ms)"
            )
        if not 0.0 < self.max_peak <= 1.0:
            raise SliceParamsError(f"max (normalised peak) must be in (0, 1] (got {self.max_peak})")
        if not 0.0 <= self.alpha <= 1.0:
            raise SliceParamsError(f"alpha must be in [0, 1] (got {self.alpha})")
        if self.max_length_s is not None and not self.max_length_s >= 1.0:
            raise SliceParamsError(f"max length must be at least 1 s, or unset (got {self.max_length_s})")
        if self.sample_rate <= 0 or round(self.sample_rate * self.hop_ms / 1000) < 1:
            raise SliceParamsError(f"hop size {self.hop_ms} ms is below one sample at {self.sample_rate} Hz")
        return self


@dataclass(frozen=True)
class _Frames:
    """The parameters converted to RMS frames, exactly as the reference rounds them."""

    hop: int  # samples per hop
    win: int  # RMS window, samples
    threshold: float  # linear amplitude
    min_length: int  # frames
    min_interval: int  # frames
    max_sil_kept: int  # frames

    @classmethod
    def of(cls, p: SliceParams) -> _Frames:
        sr = p.sample_rate
        min_interval = sr * p.min_interval_ms / 1000  # samples, unrounded on purpose
        hop = round(sr * p.hop_ms / 1000)
        return cls(
            hop=hop,
            win=min(round(min_interval), 4 * hop),
            threshold=10 ** (p.threshold_db / 20.0),
            min_length=round(sr * p.min_length_ms / 1000 / hop),
            min_interval=round(min_interval / hop),
            max_sil_kept=round(sr * p.max_sil_kept_ms / 1000 / hop),
        )


def dbfs(amplitude: float) -> float:
    """20 log10 of a linear amplitude (1.0 = full scale); -inf for 0 (digital silence)."""
    return 20.0 * math.log10(amplitude) if amplitude > 0 else -math.inf


@dataclass(frozen=True)
class Levels:
    """How loud a file is, against the threshold it was sliced with (dBFS; -inf: digital silence).

    `nothing_above`: no RMS frame reaches the threshold, so the slicer finds no clip at all; the
    comparison is the slicer's own (linear frame RMS < 10^(threshold/20)).
    """

    peak_db: float  # largest |sample|
    rms_db: float  # RMS of the whole file
    loudest_db: float  # loudest RMS frame (the quantity compared with the threshold)
    threshold_db: float
    nothing_above: bool

    @classmethod
    def of(cls, peak: float, rms: float, loudest: float, threshold_db: float) -> Levels:
        above = loudest >= 10 ** (threshold_db / 20.0)
        return cls(dbfs(peak), dbfs(rms), dbfs(loudest), float(threshold_db), not above)

    @property
    def silent(self) -> bool:
        """Every sample is 0."""
        return self.peak_db == -math.inf

    def sentence(self) -> str:
        """Why no clip came out, in English (CLI, logs); the UI says the same through its i18n."""
        if self.silent:
            return "Nothing above the threshold: the file is digital silence (every sample is 0)."
        return (
            f"Nothing above the threshold: peak {self.peak_db:.1f} dBFS, RMS {self.rms_db:.1f} dBFS, "
            f"threshold {self.threshold_db:g} dBFS. Lower the threshold below the peak."
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe: -inf (digital silence) becomes None."""
        return {k: (None if isinstance(v, float) and math.isinf(v) else v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Levels:
        def db(key: str) -> float:
            return -math.inf if d.get(key) is None else float(d[key])

        return cls(
            db("peak_db"), db("rms_db"), db("loudest_db"), float(d["threshold_db"]), bool(d["nothing_above"])
        )


@dataclass
class SliceResult:
    """What slicing one file gave: cut points (samples at `sample_rate`) and the files written."""

    source: str
    segments: list[tuple[int, int]]
    outputs: list[str] = field(default_factory=list)
    sample_rate: int = SAMPLE_RATE
    duration_s: float = 0.0
    silent_skipped: int = 0  # clips of pure digital silence, not written
    already_present: int = 0  # identical clips found in the output folder, left as they were
    levels: Levels | None = None  # peak / RMS against the threshold (why a file gave no clip)

    @property
    def nothing_above(self) -> bool:
        """No clip because nothing reaches the threshold (`levels.sentence()` says so)."""
        return not self.segments and self.levels is not None and self.levels.nothing_above

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["segments"] = [list(s) for s in self.segments]
        d["levels"] = self.levels.to_dict() if self.levels else None
        return d


@dataclass
class SliceReport(BatchReport):
    """A `BatchReport` plus the per-file results, in input order."""

    results: list[SliceResult] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        d = super().to_dict()
        d["results"] = [r.to_dict() for r in self.results]
        return d


# ---------------------------------------------------------------------------------------------
# RMS curve and cut points


class RmsStream:
    """`frame_rms` over consecutive blocks: push the signal in pieces, `finish()` gives the curve.

    Frame `i` covers padded samples `[i*hop, i*hop + win)` (the signal with `win // 2` zeros on both
    sides). Only the samples of frames not yet computed are kept (less than a block plus `win`).
    Also keeps each hop's min and max (`envelope`), for drawing the waveform without the samples.
    """

    def __init__(self, win: int, hop: int, block_frames: int = 1024) -> None:
        self.win, self.hop, self.block_frames = win, hop, block_frames
        self.pad = win // 2
        self.n = 0  # signal samples pushed
        self._buf = np.zeros(self.pad, dtype=np.float64)  # padded samples from _buf_pos on
        self._buf_pos = 0
        self._next = 0  # next frame to compute
        self._rms: list[np.ndarray] = []
        self._lo: list[np.ndarray] = []
        self._hi: list[np.ndarray] = []
        self._env_tail = np.zeros(0, dtype=np.float32)  # samples of the hop not complete yet
        self.sum_sq = 0.0  # of every sample pushed (float64): the whole signal's RMS
        self.peak = 0.0  # largest |sample| pushed

    def _frames(self, last: int) -> None:
        """Compute frames `[_next, last)` from the buffer, then drop the samples no frame needs."""
        hop, win = self.hop, self.win
        for f0 in range(self._next, last, self.block_frames):
            f1 = min(last, f0 + self.block_frames)
            a = f0 * hop - self._buf_pos
            seg = self._buf[a : (f1 - 1) * hop + win - self._buf_pos]
            csum = np.empty(seg.shape[0] + 1, dtype=np.float64)
            csum[0] = 0.0
            np.cumsum(seg * seg, out=csum[1:])
            starts = np.arange(f1 - f0) * hop
            self._rms.append((csum[starts + win] - csum[starts]) / win)
        self._next = max(self._next, last)
        drop = self._next * hop - self._buf_pos
        if drop > 0:
            self._buf = self._buf[drop:]
            self._buf_pos += drop

    def _envelope(self, x: np.ndarray) -> None:
        x = np.concatenate([self._env_tail, x.astype(np.float32, copy=False)])
        whole = x.shape[0] // self.hop * self.hop
        if whole:
            hops = x[:whole].reshape(-1, self.hop)
            self._lo.append(hops.min(axis=1))
            self._hi.append(hops.max(axis=1))
        self._env_tail = x[whole:].copy()

    def push(self, x: np.ndarray) -> RmsStream:
        x = np.asarray(x).reshape(-1)
        piece = self.block_frames * self.hop  # a whole recording pushed at once is taken in pieces
        for i in range(0, x.shape[0], piece):
            self._push(x[i : i + piece])
        return self

    def _push(self, x: np.ndarray) -> None:
        self.n += x.shape[0]
        self._envelope(x)
        x64 = x.astype(np.float64)
        if x64.size:
            self.sum_sq += float(np.dot(x64, x64))
            self.peak = max(self.peak, float(np.abs(x64).max()))
        self._buf = np.concatenate([self._buf, x64])
        end = self._buf_pos + self._buf.shape[0]
        if end >= self.win:
            self._frames((end - self.win) // self.hop + 1)

    def finish(self) -> np.ndarray:
        """The RMS curve, float64 `(frames,)`, frames = 1 + (n + 2*pad - win) // hop."""
        total = max(0, 1 + (self.n + 2 * self.pad - self.win) // self.hop)
        self._buf = np.concatenate([self._buf, np.zeros(self.pad, dtype=np.float64)])
        self._frames(total)
        if self._env_tail.size:
            self._lo.append(self._env_tail.min(keepdims=True))
            self._hi.append(self._env_tail.max(keepdims=True))
            self._env_tail = np.zeros(0, dtype=np.float32)
        out = np.concatenate(self._rms) if self._rms else np.zeros(0, dtype=np.float64)
        return np.sqrt(np.maximum(out[:total], 0.0))  # rounding can leave -1e-17 where it is silent

    @property
    def rms(self) -> float:
        """RMS of the whole signal pushed so far (linear; 0 for no samples)."""
        return float(np.sqrt(self.sum_sq / self.n)) if self.n else 0.0

    def envelope(self) -> tuple[np.ndarray, np.ndarray]:
        """(min, max) of each hop of the signal, float32 `(ceil(n / hop),)` each (after `finish`)."""
        if not self._lo:
            return np.zeros(0, dtype=np.float32), np.zeros(0, dtype=np.float32)
        return np.concatenate(self._lo), np.concatenate(self._hi)


def frame_rms(audio: np.ndarray, win: int, hop: int, block_frames: int = 1024) -> np.ndarray:
    """RMS of centred frames: librosa framing with `win // 2` zeros padded on both sides.

    Frame `i` covers padded samples `[i*hop, i*hop + win)`, i.e. it is centred on sample `i*hop`.
    Computed per block of frames from a float64 cumulative sum of squares (`RmsStream`), so memory
    is O(block_frames * hop + win), not O(frames * win). Returns float64 `(frames,)`.
    """
    return RmsStream(win, hop, block_frames).push(np.asarray(audio)).finish()


def _silent_runs(silent: np.ndarray) -> list[tuple[int, int]]:
    """(first, end) frame ranges of consecutive True values, end exclusive."""
    edges = np.diff(np.concatenate(([0], silent.astype(np.int8), [0])))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist(), strict=True))


def _silence_tags(rms: np.ndarray, fr: _Frames) -> list[tuple[int, int]]:
    """Frame ranges to cut out, in order (the reference's `sil_tags`).

    The reference walks every frame; its state only changes on the first loud frame after a
    silent run, so walking the silent runs gives the same decisions at a fraction of the cost.
    """
    total = rms.shape[0]
    msk = fr.max_sil_kept
    tags: list[tuple[int, int]] = []
    clip_start = 0

    def quietest(lo: int, hi: int) -> int:  # frame index of the lowest RMS in [lo, hi]
        return lo + int(np.argmin(rms[lo : hi + 1]))

    for start, end in _silent_runs(rms < fr.threshold):
        if end == total:  # trailing silence: handled below
            if total - start >= fr.min_interval:
                tags.append((quietest(start, min(total, start + msk)), total + 1))
            break
        i = end  # first loud frame after the silence
        leading = start == 0 and i > msk
        long_enough = i - start >= fr.min_interval and i - clip_start >= fr.min_length
        if not leading and not long_enough:
            continue
        gap = i - start
        if gap <= msk:  # short silence: one cut at its quietest frame
            pos = quietest(start, i)
            tags.append((0, pos) if start == 0 else (pos, pos))
            clip_start = pos
        elif gap <= 2 * msk:  # medium: keep up to max_sil_kept on each side, cut the middle
            pos = quietest(i - msk, start + msk)
            left = quietest(start, start + msk)
            right = quietest(i - msk, i)
            if start == 0:
                tags.append((0, right))
                clip_start = right
            else:
                tags.append((min(left, pos), max(right, pos)))
                clip_start = max(right, pos)
        else:  # long silence: drop everything beyond max_sil_kept on each side
            left = quietest(start, start + msk)
            right = quietest(i - msk, i)
            tags.append((0, right) if start == 0 else (left, right))
            clip_start = right
    return tags


def _split_long(
    segments: list[tuple[int, int]], rms: np.ndarray, hop: int, max_len: int
) -> list[tuple[int, int]]:
    """Split every segment longer than `max_len` samples at its quietest frame, recursively.

    The split frame is searched away from the ends (a quarter of the segment or of `max_len`,
    whichever is smaller), so no piece is tiny and every split strictly shortens both pieces.
    """
    out: list[tuple[int, int]] = []
    stack = list(reversed(segments))
    while stack:
        s, e = stack.pop()
        if e - s <= max_len:
            out.append((s, e))
            continue
        edge = max(hop, min(max_len // 4, (e - s) // 4))
        lo = min(-(-(s + edge) // hop), rms.shape[0] - 1)  # first frame centred at >= s + edge
        hi = min((e - edge) // hop, rms.shape[0] - 1)
        if hi >= lo:
            cut = (lo + int(np.argmin(rms[lo : hi + 1]))) * hop
        else:
            cut = (s + e) // 2
        cut = min(max(cut, s + 1), e - 1)
        stack.extend([(cut, e), (s, cut)])  # popped left piece first: output stays in order
    return out


def find_cuts(audio: np.ndarray, params: SliceParams = SliceParams()) -> list[tuple[int, int]]:
    """Clip boundaries `[(start, end), ...]` in samples for mono `audio` at `params.sample_rate`."""
    params.validate()
    fr = _Frames.of(params)
    x = np.asarray(audio)
    if x.ndim != 1:
        raise ValueError(f"find_cuts wants mono audio of shape (samples,), got {x.shape}")
    return cuts_from_rms(frame_rms(x, fr.win, fr.hop), x.shape[0], params)


def cuts_from_rms(rms: np.ndarray, n: int, params: SliceParams = SliceParams()) -> list[tuple[int, int]]:
    """`find_cuts` from the RMS curve (`frame_rms` / `RmsStream`) of a signal of `n` samples."""
    params.validate()
    fr = _Frames.of(params)
    if n == 0:
        return []
    if n <= fr.min_length:  # the reference compares samples with min_length in frames; keep that
        return [(0, n)]
    total = rms.shape[0]
    tags = _silence_tags(rms, fr)
    if not tags:
        bounds = [(0, total)]
    else:
        bounds = [(0, tags[0][0])] if tags[0][0] > 0 else []
        bounds += [(tags[k][1], tags[k + 1][0]) for k in range(len(tags) - 1)]
        if tags[-1][1] < total:
            bounds.append((tags[-1][1], total))
    # Ends are frame indices x hop, as the reference names them: the last clip's end can lie up to
    # one hop past the last sample (slicing the audio clamps it). Same names as GPT-SoVITS writes.
    segments = [(a * fr.hop, b * fr.hop) for a, b in bounds]
    segments = [(s, e) for s, e in segments if min(e, n) > s]
    if params.max_length_s is not None:
        segments = _split_long(segments, rms, fr.hop, int(round(params.max_length_s * params.sample_rate)))
    return segments


def normalise(chunk: np.ndarray, max_peak: float = 0.9, alpha: float = 0.25) -> np.ndarray | None:
    """Mix a peak-normalised copy into the clip: `chunk/peak*(max*alpha) + (1-alpha)*chunk`.

    A clip whose peak exceeds 1 is first divided by its peak. Returns None for a clip of pure
    digital silence (nothing to normalise, nothing worth writing).
    """
    x = np.asarray(chunk, dtype=np.float32)
    peak = float(np.abs(x).max()) if x.size else 0.0
    if peak == 0.0:
        return None
    if peak > 1.0:
        x = x / peak
        peak = 1.0
    return (x / peak * (max_peak * alpha) + (1.0 - alpha) * x).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# Files


def clip_name(source: str | Path, start: int, end: int) -> str:
    return NAME_FORMAT % (Path(source).name, start, end)


def _wav_bytes(audio: np.ndarray, sample_rate: int) -> bytes:
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, to_int16(audio), sample_rate, subtype="PCM_16", format="WAV")
    return buf.getvalue()


def _write_new(target: Path, data: bytes) -> tuple[Path, bool]:
    """Write `data` at `target` unless an identical file is there; never replace a different file.

    Returns (path written or found, True when an identical file was already present).
    """
    if target.exists():
        if target.is_file() and target.stat().st_size == len(data) and target.read_bytes() == data:
            return target, True
        target = unique_path(target)
    atomic_write_bytes(target, data)
    return target, False


def check_output_dir(inputs: Sequence[str | Path], out_dir: str | Path) -> Path:
    """Refuse an output folder that is an input folder or holds an input file."""
    out = Path(out_dir).resolve()
    for item in inputs:
        p = Path(item).resolve()
        folder = p if p.is_dir() else p.parent
        if out == folder:
            raise SliceOutputError(
                f"the output folder {out} is where the input {Path(item).name} lives; choose another folder "
                "so clips never mix with (or are re-sliced as) the originals"
            )
    return out


@dataclass
class Scan:
    """What one reading of a file gives: its length, RMS curve, cut points and waveform envelope."""

    n: int  # samples at `sample_rate`
    sample_rate: int
    segments: list[tuple[int, int]]
    envelope_lo: np.ndarray  # float32 (ceil(n / hop),): min of each hop
    envelope_hi: np.ndarray  # float32, max of each hop
    hop: int
    rms_curve: np.ndarray = field(
        default_factory=lambda: np.zeros(0, dtype=np.float32)
    )  # (frames,), frame i at i*hop
    levels: Levels | None = None


def scan_file(
    path: str | Path, params: SliceParams = SliceParams(), block_seconds: float = BLOCK_SECONDS
) -> Scan:
    """Read `path` once in blocks and find its cuts (memory: one block, the curve and the envelope)."""
    params.validate()
    fr = _Frames.of(params)
    stream = open_audio(path, params.sample_rate, block_seconds=block_seconds)
    rms = RmsStream(fr.win, fr.hop)
    for block in stream.blocks():  # (samples,) float32 at params.sample_rate
        rms.push(block)
    curve = rms.finish()
    lo, hi = rms.envelope()
    loudest = float(curve.max()) if curve.size else 0.0
    levels = Levels.of(rms.peak, rms.rms, loudest, params.threshold_db)
    segments = cuts_from_rms(curve, rms.n, params)
    return Scan(rms.n, stream.sample_rate, segments, lo, hi, fr.hop, curve.astype(np.float32), levels)


def iter_segments(
    blocks: Iterator[np.ndarray], segments: list[tuple[int, int]], n: int
) -> Iterator[tuple[int, int, np.ndarray]]:
    """`(start, end, samples[start:min(end, n)])` for each segment (ordered by start), from blocks.

    Only the samples from the start of the first segment not yet complete are kept: a block plus
    the longest segment.
    """
    pending = sorted(segments)
    k = 0
    buf = np.zeros(0, dtype=np.float32)
    buf_start = 0  # absolute index of buf[0]
    for block in blocks:
        buf = np.concatenate([buf, block])
        end = buf_start + buf.shape[0]
        while k < len(pending) and min(pending[k][1], n) <= end:
            s, e = pending[k]
            yield s, e, buf[s - buf_start : min(e, n) - buf_start].copy()
            k += 1
        keep_from = pending[k][0] if k < len(pending) else end
        keep_from = min(max(keep_from, buf_start), end)
        buf = buf[keep_from - buf_start :]
        buf_start = keep_from
    end = buf_start + buf.shape[0]
    for s, e in pending[k:]:  # the header promised more samples than came: what there is
        if min(e, end) > s:
            yield s, e, buf[s - buf_start : min(e, end) - buf_start].copy()


def segment_clip(
    path: str | Path,
    start: int,
    end: int,
    params: SliceParams = SliceParams(),
    block_seconds: float = BLOCK_SECONDS,
) -> np.ndarray:
    """The clip `slice_file` would write for the segment `[start, end)` (samples at `params.sample_rate`):
    float32 `(samples,)`, normalised as written (all zeros for digital silence, which is not written).

    Reads blocks up to the segment's end only; memory is a block plus the segment.
    """
    params.validate()
    blocks = open_audio(path, params.sample_rate, block_seconds=block_seconds).blocks()
    for _s, _e, samples in iter_segments(blocks, [(int(start), int(end))], int(end)):
        clip = normalise(samples, params.max_peak, params.alpha)
        return np.zeros_like(samples) if clip is None else clip
    return np.zeros(0, dtype=np.float32)  # the segment starts past the end of the file


def slice_file(
    path: str | Path,
    out_dir: str | Path | None,
    params: SliceParams = SliceParams(),
    dry_run: bool = False,
    block_seconds: float = BLOCK_SECONDS,
) -> SliceResult:
    """Slice one file into `out_dir` (nothing is written when `dry_run` or `out_dir` is None).

    The file is read twice in blocks (cuts, then clips), never whole.
    """
    params.validate()
    path = Path(path)
    scan = scan_file(path, params, block_seconds)
    sr = scan.sample_rate
    result = SliceResult(str(path), scan.segments, sample_rate=sr, duration_s=scan.n / sr, levels=scan.levels)
    if dry_run or out_dir is None:
        return result
    out = check_output_dir([path], out_dir)
    out.mkdir(parents=True, exist_ok=True)
    blocks = open_audio(path, params.sample_rate, block_seconds=block_seconds).blocks()
    for start, end, samples in iter_segments(blocks, scan.segments, scan.n):
        clip = normalise(samples, params.max_peak, params.alpha)
        if clip is None:
            result.silent_skipped += 1
            continue
        written, existed = _write_new(out / clip_name(path, start, end), _wav_bytes(clip, sr))
        result.already_present += int(existed)
        result.outputs.append(str(written))
    return result


def _slice_one(args: tuple[str, str | None, SliceParams, bool]) -> SliceResult:
    return slice_file(*args)


def _crash_message(k: int, files: list[Path]) -> str:
    return f"the slicing process crashed on {files[k].name} (a native crash or a kill, e.g. for memory)"


def _run_pool(
    task: Callable[[tuple[str, str | None, SliceParams, bool]], SliceResult],
    jobs: list[tuple[str, str | None, SliceParams, bool]],
    todo: list[int],
    n_workers: int,
    record,
    should_stop: StopFn,
    report: SliceReport,
) -> list[int]:
    """Run `jobs[k]` for k in `todo` in a process pool; returns the ks lost to a worker that died.

    A dead worker breaks the whole pool (every unfinished future fails with BrokenProcessPool): the
    caller runs those files again one per pool to find the one that crashes.
    """
    from concurrent.futures.process import BrokenProcessPool

    broken: list[int] = []
    # spawn: the parent may hold torch threads, which do not survive fork well
    with ProcessPoolExecutor(n_workers, mp_context=get_context("spawn")) as pool:
        pending: dict[Future, int] = {pool.submit(task, jobs[k]): k for k in todo}
        while pending:
            done, _ = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
            for fut in done:
                k = pending.pop(fut)
                try:
                    record(k, fut.result(), None)
                except BrokenProcessPool:
                    broken.append(k)
                except Exception as e:
                    record(k, None, e)
            if pending and should_stop():
                report.cancelled = True
                for fut in pending:
                    fut.cancel()
                pool.shutdown(wait=True, cancel_futures=True)
                break
    return sorted(broken)


def default_workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def slice_inputs(
    inputs: Sequence[str | Path],
    out_dir: str | Path | None,
    params: SliceParams = SliceParams(),
    workers: int | None = None,
    dry_run: bool = False,
    progress: ProgressFn = log_progress,
    should_stop: StopFn = never_stop,
    isolate: bool = False,
    task: Callable[[tuple[str, str | None, SliceParams, bool]], SliceResult] | None = None,
) -> SliceReport:
    """Slice files and folders (one level) with `workers` processes; a failing file is reported.

    With more than one worker, or `isolate` (the CLI), files run in worker processes: one that
    crashes its process (natively, or killed for memory) is reported as failed and the rest go on.
    `task` replaces the per-file function (tests of that). Raises `SliceParamsError` /
    `SliceOutputError` / `FileNotFoundError` before any work starts.
    """
    task = task or _slice_one
    params.validate()
    files = list_audio_files(list(inputs))
    if out_dir is not None and not dry_run:
        check_output_dir(inputs, out_dir)
    report = SliceReport()
    total = len(files)
    results: dict[int, SliceResult] = {}
    jobs = [(str(f), None if out_dir is None else str(out_dir), params, dry_run) for f in files]
    progress(0, total, "slicing")

    def record(k: int, fut_result: SliceResult | None, error: BaseException | None) -> None:
        if error is not None:
            report.failures.append(FileFailure.of(files[k], error))
            logger.warning("%s: %s", files[k], error)
        else:
            results[k] = fut_result
        done = len(results) + len(report.failures)
        progress(done, total, files[k].name)

    n_workers = max(1, min(workers or default_workers(), total))
    if n_workers == 1 and not isolate:
        for k, job in enumerate(jobs):
            if should_stop():
                report.cancelled = True
                break
            try:
                record(k, task(job), None)
            except Exception as e:  # one bad file must not stop the others
                record(k, None, e)
    else:
        # A worker that dies breaks its pool: the unfinished files run again in a one-process pool,
        # where they go in order, so the first unfinished one is the file that crashed it.
        todo = list(range(len(jobs)))
        while todo and not report.cancelled:
            broken = _run_pool(task, jobs, todo, n_workers, record, should_stop, report)
            if broken and n_workers == 1:
                record(broken[0], None, RuntimeError(_crash_message(broken[0], files)))
                broken = broken[1:]
            todo, n_workers = broken, 1
    report.results = [results[k] for k in sorted(results)]
    report.outputs = [o for r in report.results for o in r.outputs]
    report.failures.sort(key=lambda f: [str(x) for x in files].index(f.path))
    return report


# ---------------------------------------------------------------------------------------------
# CLI


def make_parser() -> argparse.ArgumentParser:
    d = SliceParams()
    p = argparse.ArgumentParser(
        prog="python -m tools.slice",
        description="Cut recordings into clips at silences (GPT-SoVITS slicer). Writes 32 kHz mono int16 "
        "wavs named <source>_<start>_<end>.wav (samples at 32 kHz).",
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="audio files, or folders of them (one level)")
    p.add_argument("--out", metavar="DIR", help="output folder (required unless --dry-run)")
    p.add_argument(
        "--threshold", type=float, default=d.threshold_db, help="silence threshold in dB (%(default)s)"
    )
    p.add_argument(
        "--min-length", type=float, default=d.min_length_ms, help="minimum clip length, ms (%(default)s)"
    )
    p.add_argument(
        "--min-interval",
        type=float,
        default=d.min_interval_ms,
        help="minimum silence to cut, ms (%(default)s)",
    )
    p.add_argument("--hop-size", type=float, default=d.hop_ms, help="RMS hop, ms (%(default)s)")
    p.add_argument(
        "--max-sil-kept",
        type=float,
        default=d.max_sil_kept_ms,
        help="maximum silence kept around a cut, ms (%(default)s)",
    )
    p.add_argument(
        "--max",
        type=float,
        default=d.max_peak,
        dest="max_peak",
        help="peak after normalisation (%(default)s)",
    )
    p.add_argument("--alpha", type=float, default=d.alpha, help="share of the normalised clip (%(default)s)")
    p.add_argument(
        "--max-length",
        type=float,
        default=None,
        metavar="SECONDS",
        help="split clips longer than this at their quietest point (default: no limit)",
    )
    p.add_argument("--workers", type=int, default=default_workers(), help="parallel processes (%(default)s)")
    p.add_argument("--dry-run", action="store_true", help="print the cut points, write nothing")
    p.add_argument("--events", metavar="FILE", help="append JSON-lines progress events to FILE")
    return p


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    events = EventWriter(args.events)
    params = SliceParams(
        threshold_db=args.threshold,
        min_length_ms=args.min_length,
        min_interval_ms=args.min_interval,
        hop_ms=args.hop_size,
        max_sil_kept_ms=args.max_sil_kept,
        max_peak=args.max_peak,
        alpha=args.alpha,
        max_length_s=args.max_length,
    )
    try:
        if not args.out and not args.dry_run:
            raise SliceParamsError("--out DIR is required (or use --dry-run)")
        if args.workers < 1:
            raise SliceParamsError(f"--workers must be at least 1 (got {args.workers})")
        params.validate()
        if not list_audio_files(args.inputs):
            raise SliceParamsError(f"No audio files in {', '.join(Path(i).name or i for i in args.inputs)}")
        report = slice_inputs(
            args.inputs, args.out, params, args.workers, args.dry_run, progress=events.progress, isolate=True
        )
    except (ValueError, FileNotFoundError) as e:
        events.emit("error", message=str(e))
        print(f"error: {e}", file=sys.stderr)
        return 2
    except Exception as e:  # an OSError on the output folder, or a defect: never Python's exit 1
        return stage_failure(e, events, "slicing")
    events.emit("result", **report.to_dict())
    for r in report.results:
        if r.nothing_above and r.levels is not None:
            print(f"{r.source}: 0 clips. {r.levels.sentence()}")
        elif args.dry_run:
            print(f"{r.source}: {len(r.segments)} clips")
            for s, e in r.segments:
                print(f"{s}\t{e}\t{(e - s) / r.sample_rate:.2f}s")
        else:
            extra = f", {r.already_present} already present" if r.already_present else ""
            print(f"{r.source}: {len(r.outputs)} clips{extra}")
    for f in report.failures:
        print(f"failed: {f.path}: {f.error}", file=sys.stderr)
    if not args.dry_run:
        print(f"{len(report.outputs)} clips in {Path(args.out).resolve()}; {len(report.failures)} failed")
    if report.failures and not report.results:
        return EXIT_ALL_FAILED  # every file failed: "Failed.", not "Done, some files failed."
    return EXIT_SOME_FAILED if report.failures or report.cancelled else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
