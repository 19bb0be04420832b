"""Reference clips: reading a file or a recording, the 3-10 s window, and trimming a clip into it.

The reference's timbre and (with its text) its prompt tokens condition every synthesis; the window is the
reference implementation's, counted in samples at 16 kHz as its HuBERT input.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from core.audio import HUBERT_RATE
from gpt_sovits.infer.request import ReferenceLengthError, TTSInputError

if TYPE_CHECKING:
    from gpt_sovits.infer.request import RefAudio

REF_MIN_S = 3.0
REF_MAX_S = 10.0
# A file longer than this is refused from its header, before decoding (a reference, an extra reference,
# or a clip to trim): a 3-hour recording would take GBs decoded only to be told it is too long.
READ_MAX_S = 600.0


def to_mono_float(audio: np.ndarray) -> np.ndarray:
    """Gradio's (samples,) or (samples, channels) int16/int32/float array -> mono float32 in [-1, 1]."""
    a = np.asarray(audio)
    if np.issubdtype(a.dtype, np.integer):
        a = a.astype(np.float32) / float(np.iinfo(a.dtype).max + 1)
    a = a.astype(np.float32, copy=False)
    if a.ndim == 2:
        a = a.mean(axis=1) if a.shape[1] <= 8 else a.mean(axis=0)
    return a.reshape(-1)


def describe(ref: RefAudio) -> str:
    return Path(ref).name if isinstance(ref, (str, Path)) else "the recorded reference"


def read_reference(ref: RefAudio, max_seconds: float = READ_MAX_S) -> tuple[np.ndarray, int]:
    """A reference as (mono float32 samples, sample rate); unreadable input -> TTSInputError.

    A file whose header says it is longer than `max_seconds` raises ReferenceLengthError (with its
    duration) without being decoded.
    """
    from core.audio import AudioDecodeError, audio_info, format_duration, load_audio

    if isinstance(ref, tuple):
        if len(ref) != 2:
            raise TTSInputError("a recorded reference must be (sample_rate, samples)")
        sr, samples = int(ref[0]), to_mono_float(ref[1])
        if sr <= 0 or samples.size == 0:
            raise TTSInputError("the recorded reference holds no audio")
        if not np.all(np.isfinite(samples)):
            raise TTSInputError("the recorded reference contains NaN or infinite samples")
        return samples, sr
    try:
        duration = audio_info(ref).duration
        if duration > max_seconds:
            raise ReferenceLengthError(
                f"{describe(ref)} is {format_duration(duration)} long; a reference must be between "
                f"{REF_MIN_S:g} and {REF_MAX_S:g} s, and a file over {format_duration(max_seconds)} is not "
                "read at all. Cut a short part of it first (the Slicing tab cuts a recording into clips).",
                duration,
            )
        return load_audio(ref)
    except AudioDecodeError as e:
        raise TTSInputError(f"The reference audio could not be read: {e}") from None


def check_reference(samples: np.ndarray, sr: int, name: str = "The reference clip") -> float:
    """Raise for a reference outside 3-10 s or silent; return its duration in seconds."""
    duration = samples.shape[-1] / sr
    # The reference counts samples at 16 kHz: 48000..160000.
    n16 = int(round(duration * HUBERT_RATE))
    if n16 < REF_MIN_S * HUBERT_RATE or n16 > REF_MAX_S * HUBERT_RATE:
        hint = (
            "Trim it to under 10 s (trim_reference / the tab's trim button / --trim-reference)."
            if duration > REF_MAX_S
            else "Use a longer clip of the same voice."
        )
        raise ReferenceLengthError(
            f"{name} is {duration:.1f} s long; it must be between {REF_MIN_S:g} and {REF_MAX_S:g} s. {hint}",
            duration,
        )
    if samples.size == 0 or float(np.max(np.abs(samples))) < 1e-3:
        raise TTSInputError(f"{name} is silent; use a clip in which the voice is clearly audible.")
    return duration


def trim_reference(
    ref: RefAudio,
    dest: str | Path,
    max_seconds: float = REF_MAX_S - 0.3,
    min_seconds: float = REF_MIN_S,
) -> Path:
    """Write a copy of ``ref`` that fits the 3-10 s window, cut at a quiet moment; return its path.

    Leading and trailing silence goes first; if the clip is still too long it ends at the quietest 20 ms
    in the last two seconds before ``max_seconds``. ``dest`` is never overwritten (a free name beside it
    is used). A clip too short even untrimmed raises ReferenceLengthError.
    """
    from core.audio import save_wav
    from core.fsutil import unique_path

    samples, sr = read_reference(ref)
    frame = max(1, int(0.02 * sr))
    n_frames = samples.size // frame
    if n_frames == 0:
        raise ReferenceLengthError("The reference clip is empty.", 0.0)
    rms = np.sqrt(np.mean(samples[: n_frames * frame].reshape(n_frames, frame) ** 2, axis=1))
    loud = np.nonzero(rms > max(1e-4, 0.02 * float(rms.max())))[0]
    if loud.size == 0:
        raise TTSInputError(f"{describe(ref)} is silent; nothing to trim.")
    start, end = int(loud[0]) * frame, min(samples.size, (int(loud[-1]) + 1) * frame)
    start = max(0, start - frame * 5)  # keep 0.1 s of lead-in
    end = min(samples.size, end + frame * 5)
    if (end - start) / sr > max_seconds:
        lo = start + int(max(min_seconds, max_seconds - 2.0) * sr) // frame * frame
        hi = start + int(max_seconds * sr) // frame * frame
        window = rms[lo // frame : hi // frame]
        end = (lo // frame + int(np.argmin(window))) * frame + frame if window.size else hi
        end = min(end, start + int(max_seconds * sr))
    duration = (end - start) / sr
    if duration < min_seconds:
        raise ReferenceLengthError(
            f"{describe(ref)} holds only {duration:.1f} s of sound; a reference needs at least "
            f"{min_seconds:g} s. Use a longer clip.",
            duration,
        )
    return save_wav(unique_path(Path(dest)), samples[start:end], sr)
