"""The Voice cloning tab's and the `/synthesize` API's plain helpers: weight discovery, reference checks,
the form (named values -> a `SynthesisRequest`), one synthesis, tables, output files, history.

Nothing here imports gradio or loads a model, so every helper is a plain function a test can call. Both
the tab (`ui/inference_tab.py`) and the API (`ui/inference_api.py`) use them; neither imports the other.

Both run their model work through the app's one `SynthesisService`: the model cache, the turn scheduler
that interleaves concurrent requests sentence by sentence (`gpt_sovits.infer.scheduler`), the worker
threads, and the longest text accepted (`--max-text`). A handler awaits `service.run(work)`; when Gradio
cancels it (the tab's Cancel, a client's `job.cancel()`), the job stops at its next turn and the models
go to the next request at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import logging
import re
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from core.audio import DATASET_RATE
from core.errors import UserError
from core.fsutil import is_hidden_or_temp, resolve_inside, unique_path
from gpt_sovits.infer.request import (
    MAX_TEXT_CHARS,
    SynthesisRequest,
    check_lengths,
    knob_values,
    param,
    request_params,
)
from gpt_sovits.infer.scheduler import Job, SynthesisCancelled, TurnScheduler

logger = logging.getLogger(__name__)

HISTORY_SIZE = 10

# Synthesis from the tab and from the API share one Gradio queue of this many running requests (more
# wait there). Running requests take turns on the models unit by unit (`SynthesisService.scheduler`), so a
# short one is not held up by a long one; the bound keeps memory bounded (each holds its audio).
SYNTH_CONCURRENCY = 8
SYNTH_QUEUE = {"concurrency_id": "synthesis", "concurrency_limit": SYNTH_CONCURRENCY}

T = TypeVar("T")

# Fine-tuned weights as the trainers export them (the reference's folder names: v2 `_v2`, v1 bare).
# The reference's export folders per version (the Training tab writes there too: Layout.gpt_dir/sovits_dir).
GPT_FOLDERS = (
    "GPT_weights_v4", "GPT_weights_v3", "GPT_weights_v2ProPlus", "GPT_weights_v2Pro", "GPT_weights_v2", "GPT_weights",
)  # fmt: skip
SOVITS_FOLDERS = (
    "SoVITS_weights_v4", "SoVITS_weights_v3", "SoVITS_weights_v2ProPlus", "SoVITS_weights_v2Pro",
    "SoVITS_weights_v2", "SoVITS_weights",
)  # fmt: skip

# Stable keys with English labels (translated at the display edge); the order is the reference's.
CUT_METHODS: tuple[tuple[str, str], ...] = (
    ("cut0", "No split"),
    ("cut1", "Every 4 sentences"),
    ("cut2", "Every 50 characters"),
    ("cut3", "At Chinese full stops (。)"),
    ("cut4", "At English full stops (.)"),
    ("cut5", "At every punctuation mark"),
)

# (code, English label); gpt_sovits.text.lang_segment.MODES are the codes the pipeline accepts.
LANGUAGES: tuple[tuple[str, str], ...] = (
    ("all_zh", "Chinese"),
    ("en", "English"),
    ("all_ja", "Japanese"),
    ("all_yue", "Cantonese"),
    ("all_ko", "Korean"),
    ("zh", "Chinese + English"),
    ("ja", "Japanese + English"),
    ("yue", "Cantonese + English"),
    ("ko", "Korean + English"),
    ("auto", "Multilingual (detect)"),
    ("auto_yue", "Multilingual (detect, Chinese as Cantonese)"),
)
LANGUAGE_CODES = tuple(code for code, _label in LANGUAGES)


class InferenceUIError(UserError, ValueError):
    """Something the person can fix in the form (a weight file outside the allowed folders, …)."""


# ------------------------------------------------------------------------------------ weights


@dataclass(frozen=True)
class WeightChoice:
    """One selectable weight file: `label` for the dropdown, `path` its value."""

    label: str
    path: str
    pretrained: bool


def _pretrained(model_dir: Path) -> tuple[list[WeightChoice], list[WeightChoice]]:
    from gpt_sovits.pretrained import V3V4_FILES, pretrained_paths

    gpt, sovits = [], []
    for version in ("v2", "v2ProPlus", "v2Pro", "v1"):  # v2 first: the default when nothing was trained
        paths = pretrained_paths(model_dir, version)
        # s1v3.ckpt serves v2Pro and v2ProPlus: listed once
        if (paths.s1.is_file() or version == "v2") and str(paths.s1) not in {c.path for c in gpt}:
            users = "v2Pro/v2ProPlus" if version.startswith("v2Pro") else version
            gpt.append(WeightChoice(f"pretrained {users}: {paths.s1.name}", str(paths.s1), True))
        if paths.s2g.is_file() or version == "v2":
            sovits.append(WeightChoice(f"pretrained {version}: {paths.s2g.name}", str(paths.s2g), True))
    for version, (s2g, _vocoder) in V3V4_FILES.items():  # v3/v4 generators, listed when present
        if (model_dir / s2g).is_file():
            sovits.append(WeightChoice(f"pretrained {version}: {Path(s2g).name}", str(model_dir / s2g), True))
    return gpt, sovits


def _user_weights(workspace: Path, folders: tuple[str, ...], suffix: str) -> list[WeightChoice]:
    """Files exported by the trainers, newest first (what a person just trained is on top)."""
    found: list[tuple[float, WeightChoice]] = []
    for folder in folders:
        root = workspace / "weights" / folder
        if not root.is_dir():
            continue
        for p in root.iterdir():
            if p.is_file() and p.suffix == suffix and not is_hidden_or_temp(p):
                found.append((p.stat().st_mtime, WeightChoice(f"{folder}/{p.name}", str(p), False)))
    return [c for _t, c in sorted(found, key=lambda x: (-x[0], x[1].label))]


def gpt_choices(workspace: Path, model_dir: Path) -> list[WeightChoice]:
    """Fine-tuned GPT weights of the workspace (newest first), then the pretrained ones."""
    return _user_weights(workspace, GPT_FOLDERS, ".ckpt") + _pretrained(model_dir)[0]


def sovits_choices(workspace: Path, model_dir: Path) -> list[WeightChoice]:
    """Fine-tuned SoVITS weights of the workspace (newest first), then the pretrained ones."""
    return _user_weights(workspace, SOVITS_FOLDERS, ".pth") + _pretrained(model_dir)[1]


def sovits_version(path: str | Path) -> str | None:
    """The version of a SoVITS file (v1, v2, v2Pro, v2ProPlus, ...) as detected from the file, or None
    when it cannot be told (missing, damaged: the load says why). Cached by path, mtime and size."""
    path = Path(path)
    try:
        st = path.stat()
    except OSError:
        return None
    return _sovits_version_cached(str(path.resolve()), st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=256)
def _sovits_version_cached(path: str, _mtime_ns: int, _size: int) -> str | None:
    from gpt_sovits.infer.sovits import sovits_version as detect  # v4 files without a header too

    try:
        return detect(path)
    except (UserError, OSError, ValueError, RuntimeError):
        return None


def weight_problem(choice: WeightChoice) -> str | None:
    """Why a fine-tuned file would not load (a cheap, cached check of its zip and keys), or None."""
    from gpt_sovits.infer.sovits import weight_problem as problem  # every SoVITS version, v3/v4 included

    return problem(choice.path, "gpt" if Path(choice.path).suffix == ".ckpt" else "sovits")


def _default_and_skipped(choices: list[WeightChoice]) -> tuple[str | None, list[tuple[WeightChoice, str]]]:
    skipped = []
    for c in choices:
        if c.pretrained:
            if Path(c.path).is_file():
                return c.path, skipped
            continue
        problem = weight_problem(c)
        if problem is None:
            return c.path, skipped
        skipped.append((c, problem))
    fallback = next((c.path for c in choices if c.pretrained), choices[0].path if choices else None)
    return fallback, skipped


def default_weight(choices: list[WeightChoice]) -> str | None:
    """The newest fine-tuned file that loads when there is one, else the first pretrained file that
    exists (else the first listed one, whose loading then says what is missing)."""
    return _default_and_skipped(choices)[0]


def default_weight_note(choices: list[WeightChoice]) -> str:
    """The newer files the default skipped and why, "label (reason); ...", or "" (shown under the list)."""
    skipped = _default_and_skipped(choices)[1]
    if not skipped:
        return ""
    return "; ".join(f"{c.label} ({why})" for c, why in skipped)


def clvp_choices(workspace: Path) -> list[str]:
    """CLVP checkpoints exported into `<workspace>/weights/clvp/*.pt`, newest first."""
    root = workspace / "weights" / "clvp"
    if not root.is_dir():
        return []
    files = [p for p in root.glob("*.pt") if p.is_file() and not is_hidden_or_temp(p)]
    return [str(p) for p in sorted(files, key=lambda p: (-p.stat().st_mtime, p.name))]


def resolve_weight(value: str | None, choices: list[WeightChoice], roots: list[Path], kind: str) -> Path:
    """A weight given as a dropdown value, a listed file name, or a path inside one of `roots`.

    API callers may name any file, so paths are confined to the workspace and the model folder: the
    server never loads (unpickles) a file from elsewhere on the machine.
    """
    if not value or not str(value).strip():
        default, skipped = _default_and_skipped(choices)
        if skipped:
            logger.info("%s: skipped newer files that would not load: %s", kind, default_weight_note(choices))
        if default is None:
            raise InferenceUIError(f"No {kind} weights found.")
        return Path(default)
    value = str(value).strip()
    for c in choices:
        if value in (c.path, c.label, Path(c.path).name):
            return Path(c.path)
    for root in roots:
        try:
            path = resolve_inside(root, value)
        except ValueError:
            continue
        if path.is_file():
            return path
    raise InferenceUIError(
        f"{kind} weights {value!r} not found: choose a listed file, or a path inside "
        + " or ".join(str(r) for r in roots)
    )


def model_status_lines(model_dir: Path, names: tuple[str, ...] | None = None) -> list[tuple[str, bool, str]]:
    """(name, present, how to get it) for the models synthesis needs (v2 GPT, SoVITS, HuBERT, BERT), or
    for the registry `names` given (e.g. ``("sv-eres2netv2",)``, needed by v2Pro/v2ProPlus weights only)."""
    from gpt_sovits.pretrained import model_status

    wanted = names or ("gpt-v2", "sovits-v2", "chinese-hubert-base", "chinese-roberta-wwm-ext-large")
    rows = {s.name: s for s in model_status(model_dir)}
    return [(n, rows[n].present, rows[n].how_to_get) for n in wanted if n in rows]


def whisper_models(model_dir: Path) -> list[str]:
    """Names `<x>` of the local `faster-whisper-<x>/` folders (the ones transcription can use offline)."""
    from gpt_sovits.infer.blends import local_whisper_models

    return local_whisper_models(model_dir)


def transcribe_reference(cache: LazyCache, path: str | Path, model: str, model_dir: Path) -> tuple[str, str]:
    """(text, prompt language) of a reference clip by the ASR stage's faster-whisper (model cached).

    Raises tools.asr.ModelNotFoundError / ModelLoadError / AudioDecodeError with their messages.
    """
    from tools.asr import AsrOptions, transcribe_clip

    whisper = cache.whisper(model, model_dir)
    clip = transcribe_clip(whisper, Path(path), AsrOptions(model=model, model_dir=model_dir))
    return clip.text, prompt_language(clip.language)


def prompt_language(whisper_language: str) -> str:
    """Whisper's language code as a prompt language (mixed-with-English forms, the reference's default)."""
    code = (whisper_language or "").lower()
    return code if code in ("zh", "en", "ja", "ko", "yue") else "auto"


# ---------------------------------------------------------------------------------- reference


@dataclass(frozen=True)
class ReferenceCheck:
    duration: float
    ok: bool
    too_long: bool  # only a too-long clip can be fixed by trimming


def check_reference(path: str | Path) -> ReferenceCheck:
    """The clip's length against the 3–10 s window. Raises AudioDecodeError for a file that is not audio."""
    from core.audio import audio_info
    from gpt_sovits.infer.reference import REF_MAX_S, REF_MIN_S

    seconds = audio_info(path).duration
    return ReferenceCheck(seconds, REF_MIN_S <= seconds <= REF_MAX_S, seconds > REF_MAX_S)


def write_trimmed_reference(path: str | Path, out_dir: Path) -> Path:
    """A copy of the clip at `path` trimmed into the 3–10 s window (cut at a quiet moment), saved in
    `out_dir` under a new name; the original is left untouched. Raises TTSInputError when it cannot fit."""
    from gpt_sovits.infer.reference import trim_reference

    out_dir.mkdir(parents=True, exist_ok=True)
    return trim_reference(str(path), out_dir / f"{safe_stem(Path(path).stem, 40) or 'reference'}_trimmed.wav")


# ---------------------------------------------------------------------------- sampling inputs


def resolve_seed(seed: float | int | None, randomise: bool) -> int:
    """The seed to use: a fresh random one when asked (or when the box says -1), else the given one.
    Raises InferenceUIError for a seed outside -1 .. 2**32-1."""
    if not randomise and seed is not None:
        message = param("seed").out_of_range(seed)
        if message:
            raise InferenceUIError(message)
    if randomise or seed is None or int(seed) < 0:
        return int(np.random.default_rng().integers(0, 2**31 - 1))
    return int(seed)


# ------------------------------------------------------------------------------ result tables


def _score(scores: dict[str, float], key: str) -> float | None:
    value = scores.get(key)
    return None if value is None else round(float(value), 4)


def candidate_rows(result: Any, choices: list[int] | None = None) -> list[list[Any]]:
    """One row per (sentence, candidate): sentence #, text, candidate #, mean log-prob, CLVP, ASR agreement,
    speaker similarity, total, chosen (a score the run did not compute is None).

    `result` is a `gpt_sovits.infer.result.SynthesisResult`; `choices` (one index per sentence) overrides its
    chosen candidates. Numbers are 1-based for people.
    """
    rows: list[list[Any]] = []
    for i, sentence in enumerate(result.sentences):
        chosen = choices[i] if choices is not None else sentence.chosen
        for j, cand in enumerate(sentence.candidates):
            rows.append(
                [
                    i + 1,
                    sentence.text,
                    j + 1,
                    round(float(cand.mean_logprob), 4),
                    _score(cand.scores, "clvp"),
                    _score(cand.scores, "asr"),
                    _score(cand.scores, "speaker"),
                    round(float(cand.total), 4),
                    "✓" if j == chosen else "",
                ]
            )
    return rows


def candidate_options(result: Any) -> list[tuple[str, str]]:
    """(label, "i:j") for the candidate picker, e.g. ("1.2 · 你好世界", "0:1")."""
    out = []
    for i, sentence in enumerate(result.sentences):
        short = sentence.text if len(sentence.text) <= 30 else sentence.text[:29] + "…"
        for j in range(len(sentence.candidates)):
            out.append((f"{i + 1}.{j + 1} · {short}", f"{i}:{j}"))
    return out


def parse_candidate(value: str | None, result: Any) -> tuple[int, int]:
    """ "i:j" from the picker, checked against `result` (raises InferenceUIError)."""
    with contextlib.suppress(TypeError, ValueError):  # a malformed value is the same error as a stale one
        i, j = (int(x) for x in str(value).split(":"))
        if 0 <= i < len(result.sentences) and 0 <= j < len(result.sentences[i].candidates):
            return i, j
    raise InferenceUIError("Choose a candidate from the list.")


def result_summary(result: Any, choices: list[int] | None = None) -> dict[str, Any]:
    """The JSON the API returns beside the audio: seed, length, and every candidate with its scores."""
    sentences = []
    for i, s in enumerate(result.sentences):
        sentences.append(
            {
                "text": s.text,
                "chosen": choices[i] if choices is not None else s.chosen,
                "candidates": [
                    {
                        "index": j,
                        "tokens": len(c.tokens),
                        "mean_logprob": float(c.mean_logprob),
                        "scores": {k: float(v) for k, v in c.scores.items()},
                        "total": float(c.total),
                    }
                    for j, c in enumerate(s.candidates)
                ],
            }
        )
    audio = np.asarray(result.audio)
    return {
        "sample_rate": int(result.sample_rate),
        "seed": int(result.seed),
        "duration": round(audio.shape[-1] / result.sample_rate, 3),
        "sentences": sentences,
    }


def candidate_audio(synth: Any, result: Any, i: int, j: int) -> np.ndarray:
    """Piece i spoken with candidate j, decoded as `Synthesizer.reassemble` would (same noise), without
    changing `result`: the re-assembly runs on a copy whose pieces are copies.

    Returns (samples,) float32 at result.sample_rate, without the pause.
    """
    from dataclasses import replace

    sentences = [replace(s) for s in result.sentences]
    if j == sentences[i].chosen and sentences[i].audio is not None:
        return np.asarray(sentences[i].audio, dtype=np.float32)
    copy = replace(result, sentences=sentences)
    choices = [s.chosen for s in sentences]
    choices[i] = j
    synth.reassemble(copy, choices)
    return np.asarray(sentences[i].audio, dtype=np.float32)


# ----------------------------------------------------------------------------------- outputs

_UNSAFE = re.compile(r"[^\w\-]+", re.UNICODE)


def safe_stem(text: str, limit: int = 24) -> str:
    """A file-name-safe piece of `text` (letters of any script, digits, _ and -)."""
    return _UNSAFE.sub("_", text.strip())[:limit].strip("_")


def output_path(outputs_dir: Path, text: str, seed: int, now: float | None = None) -> Path:
    """`<outputs>/<YYYYmmdd-HHMMSS>_<text>_s<seed>_<id>.wav`: sortable by time, never an existing file.

    The random id keeps two sessions writing the same text in the same second apart.
    """
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
    stem = "_".join(x for x in (stamp, safe_stem(text) or "tts", f"s{seed}", uuid.uuid4().hex[:6]))
    return unique_path(outputs_dir / f"{stem}.wav")


def save_output(
    outputs_dir: Path, audio: np.ndarray, text: str, seed: int, sr: int = DATASET_RATE, fmt: str = "wav"
) -> Path:
    """Write one generation (atomically) as a 16-bit wav, or in export format ``fmt``; return its path."""
    from core.audio import save_wav
    from core.fsutil import atomic_write_bytes

    outputs_dir.mkdir(parents=True, exist_ok=True)
    path = output_path(outputs_dir, text, seed)
    if fmt == "wav":
        return save_wav(path, np.asarray(audio, dtype=np.float32), sr)
    target = unique_path(path.with_suffix(audio_format(fmt).suffix))
    atomic_write_bytes(target, encode_audio(audio, sr, fmt))
    return target


# ------------------------------------------------------------------------------ audio formats


@dataclass(frozen=True)
class AudioFormat:
    """How one output format is written by soundfile (libsndfile >= 1.1 writes MP3 and Ogg Opus)."""

    container: str  # soundfile format
    subtype: str
    media_type: str
    suffix: str
    rate: int | None = None  # resampled to this rate first (Opus takes 8/12/16/24/48 kHz only); None: as is
    streamable: bool = True  # chunks encoded one by one can be sent one after another


AUDIO_FORMATS: dict[str, AudioFormat] = {
    "wav": AudioFormat("WAV", "PCM_16", "audio/wav", ".wav"),
    "flac": AudioFormat("FLAC", "PCM_16", "audio/flac", ".flac", streamable=False),
    "mp3": AudioFormat("MP3", "MPEG_LAYER_III", "audio/mpeg", ".mp3"),  # MPEG frames: chunks concatenate
    "ogg": AudioFormat("OGG", "VORBIS", "audio/ogg", ".ogg"),  # chained Ogg streams
    "opus": AudioFormat("OGG", "OPUS", "audio/ogg", ".opus", rate=48000),
    # Raw 16-bit little-endian mono at 24 kHz, as OpenAI's speech API defines "pcm".
    "pcm": AudioFormat("RAW", "PCM_16", "audio/pcm", ".pcm", rate=24000),
}
EXPORT_FORMATS = ("wav", "flac", "mp3", "ogg")  # the tab's choices for the saved result


class AudioFormatError(UserError, ValueError):
    """An output format that is not offered."""


def audio_format(fmt: str) -> AudioFormat:
    try:
        return AUDIO_FORMATS[fmt]
    except KeyError:
        raise AudioFormatError(
            f"Unknown audio format {fmt!r}: use one of {', '.join(AUDIO_FORMATS)}."
        ) from None


def encoded_rate(fmt: str, sr: int = DATASET_RATE) -> int:
    """The sample rate audio in ``fmt`` is written at (``sr`` unless the format needs its own)."""
    return audio_format(fmt).rate or sr


def encode_audio(audio: np.ndarray, sr: int, fmt: str) -> bytes:
    """(samples,) float32 mono -> the bytes of a whole file in ``fmt`` (libsndfile through soundfile)."""
    import io

    import soundfile as sf

    from core.audio import resample

    spec = audio_format(fmt)
    samples = np.clip(np.asarray(audio, dtype=np.float32), -1.0, 1.0)
    rate = encoded_rate(fmt, sr)
    if rate != sr:
        samples = resample(samples, sr, rate).astype(np.float32, copy=False)
    buffer = io.BytesIO()
    sf.write(buffer, samples, rate, format=spec.container, subtype=spec.subtype)
    return buffer.getvalue()


# RIFF and data sizes of a WAV whose length is not known yet (a stream): the largest value, as ffmpeg
# writes to a pipe; players read on to the end of the stream.
_UNKNOWN_SIZE = b"\xff\xff\xff\xff"


def stream_header(fmt: str, sr: int = DATASET_RATE) -> bytes:
    """What a stream of ``fmt`` starts with before the first chunk: a WAV header (soundfile's, of an empty
    file, with the sizes marked unknown) for "wav"; nothing for the others."""
    if fmt != "wav":
        return b""
    header = bytearray(encode_audio(np.zeros(0, dtype=np.float32), sr, "wav"))
    assert header[:4] == b"RIFF" and header[36:40] == b"data", "soundfile's WAV header changed"
    header[4:8] = header[40:44] = _UNKNOWN_SIZE
    return bytes(header)


def encode_chunk(audio: np.ndarray, sr: int, fmt: str) -> bytes:
    """One chunk of a stream in ``fmt``: raw 16-bit samples after ``stream_header`` for wav and pcm, a
    self-contained MP3 / Ogg piece for the others (MPEG frames and chained Ogg streams play on)."""
    if not audio_format(fmt).streamable:
        raise AudioFormatError(f"{fmt} cannot be streamed: use wav, pcm, mp3, ogg or opus.")
    if fmt == "wav":
        return _pcm16(audio)
    return encode_audio(audio, sr, fmt)


def _pcm16(audio: np.ndarray) -> bytes:
    from core.audio import to_int16

    return to_int16(np.clip(np.asarray(audio, dtype=np.float32), -1.0, 1.0)).astype("<i2").tobytes()


# ------------------------------------------------------------------------------ text files


class TextFileError(UserError, ValueError):
    """A text file that cannot be read as text."""


def read_text_file(path: str | Path, max_text: int | None = MAX_TEXT_CHARS) -> str:
    """The text of an uploaded .txt file: UTF-8 (with or without BOM) or UTF-16 with its BOM; refuses
    binary files and texts over ``max_text`` characters with messages naming the file."""
    from gpt_sovits.infer.request import check_text_length

    path = Path(path)
    data = path.read_bytes()
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        encoding = "utf-16"
    elif b"\x00" in data[:4096]:
        raise TextFileError(f"{path.name} is not a text file (it holds binary data): upload a .txt file.")
    else:
        encoding = "utf-8-sig"
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError:
        raise TextFileError(
            f"{path.name} is not UTF-8 or UTF-16 text: save it as UTF-8 in your editor and upload it again."
        ) from None
    text = text.replace("\r\n", "\n").replace("\r", "\n").strip()
    if not text:
        raise TextFileError(f"{path.name} holds no text.")
    check_text_length(text, max_text)
    return text


# ----------------------------------------------------------------------------------- history


@dataclass(frozen=True)
class HistoryEntry:
    path: str
    text: str
    seed: int
    created: float
    gpt: str
    sovits: str

    @property
    def label(self) -> str:
        short = self.text if len(self.text) <= 40 else self.text[:39] + "…"
        return f"{time.strftime('%H:%M:%S', time.localtime(self.created))} · seed {self.seed} · {short}"


def push_history(history: list[HistoryEntry] | None, entry: HistoryEntry, keep: int = HISTORY_SIZE) -> list:
    """A new list with `entry` first and at most `keep` entries (the State value is never mutated)."""
    return [entry, *(history or [])][:keep]


# ------------------------------------------------------------------------------- synthesis


def file_path(f: Any) -> str:
    """A gr.File / FileData value (str, dict or object with .path/.name) as a path string."""
    if isinstance(f, str):
        return f
    if isinstance(f, dict):
        return str(f.get("path") or f.get("name"))
    return str(getattr(f, "path", None) or getattr(f, "name", f))


@dataclass
class SynthesisForm:
    """What the tab and the API collect: the request as typed, plus the web app's own choices.

    In ``request`` the reference clips are file paths and ``clvp_path`` is the value chosen (a checkpoint
    inside the workspace, or empty / "none"); ``synthesize`` resolves it, the weights and the seed.
    """

    request: SynthesisRequest
    gpt: str | None = None  # dropdown value, listed name or path; empty: the default
    sovits: str | None = None
    random_seed: bool = False  # a fresh seed whatever the seed box says
    exact_fp32: bool = False  # load the models with exact fp32 weights, not the server's fast path


def form_from_values(values: Mapping[str, Any]) -> SynthesisForm:
    """Named values from the tab or the API -> a form: every schema parameter found (coerced to its type),
    and text, ref_audio, aux_refs (files or paths), clvp, gpt, sovits, random_seed, exact_fp32."""
    ref = values.get("ref_audio")
    request = SynthesisRequest(
        text=values.get("text") or "",
        ref_audio=file_path(ref) if ref else None,
        aux_refs=[file_path(f) for f in (values.get("aux_refs") or [])],
        clvp_path=values.get("clvp") or None,
        **knob_values(values),
    )
    return SynthesisForm(
        request,
        values.get("gpt"),
        values.get("sovits"),
        bool(values.get("random_seed")),
        bool(values.get("exact_fp32")),
    )


@dataclass
class SynthesisOutcome:
    result: Any  # gpt_sovits.infer.result.SynthesisResult
    path: Path  # the wav written into <workspace>/outputs
    gpt: Path
    sovits: Path
    request: Any  # the SynthesisRequest, kept for re-assembly


def check_form(form: SynthesisForm, max_text: int | None = MAX_TEXT_CHARS) -> None:
    """The checks the form can make before any model loads (the pipeline checks the rest)."""
    r = form.request
    if not r.ref_audio:
        raise InferenceUIError("Upload or record a reference clip (3–10 s) first.")
    if not (r.text or "").strip():
        raise InferenceUIError("Type the text to synthesise.")
    check_lengths(r, max_text)
    for lang in (r.text_lang, r.ref_lang):
        if lang not in LANGUAGE_CODES:
            raise InferenceUIError(f"Unknown language {lang!r}: use one of {', '.join(LANGUAGE_CODES)}.")
    if r.cut not in {k for k, _label in CUT_METHODS}:
        raise InferenceUIError(f"Unknown cut method {r.cut!r}: use cut0 … cut5.")
    for p in request_params(r):  # the web app's own limits (schema `web_range`), e.g. 16 candidates
        message = p.web_range and p.outside_web_range(p.type(getattr(r, p.name)))
        if message:
            raise InferenceUIError(message)


def resolve_clvp(value: str | None, workspace: Path) -> Path | None:
    """None for no reranking; otherwise a checkpoint inside the workspace."""
    if not value or str(value).strip().lower() in ("", "none"):
        return None
    try:
        path = resolve_inside(workspace, str(value).strip())
    except ValueError as e:
        raise InferenceUIError(f"CLVP checkpoint must be inside the workspace: {value}") from e
    if not path.is_file():
        raise InferenceUIError(f"CLVP checkpoint not found: {path}")
    return path


def make_synthesizer(
    gpt: str | Path,
    sovits: str | Path,
    model_dir: Path,
    cache: LazyCache,
    job: Job | None = None,
    max_text: int | None = MAX_TEXT_CHARS,
    precision: str = "auto",
) -> Any:
    """A `gpt_sovits.Synthesizer` over the app's model cache, handed the CLVP reranker; with `job`, its
    model work takes the job's turns; `precision` as the loaders' (auto: the CPU fast path, fp32: exact)."""
    import clvp
    from gpt_sovits import Synthesizer

    turn = {"turn": job.turn, "yield_turn": job.pass_turn} if job is not None else {}
    return Synthesizer(
        str(gpt),
        str(sovits),
        str(model_dir),
        cache=cache.tts(),
        reranker_loader=clvp.load_scorer,
        max_text=max_text,
        precision=precision,
        **turn,
    )


def synthesize(
    form: SynthesisForm,
    workspace: Path,
    model_dir: Path,
    cache: LazyCache,
    progress: Any = None,
    job: Job | None = None,
    max_text: int | None = MAX_TEXT_CHARS,
    precision: str = "auto",
    on_chunk: Callable[[Any], None] | None = None,
    fmt: str = "wav",
) -> SynthesisOutcome:
    """Run one synthesis for the tab or the API and write the result, once, into `<workspace>/outputs/`
    (a wav, or export format `fmt`); `on_chunk` gets each sentence's `StreamChunk` as it is decoded.

    `progress(done, total, message)` follows core.jobs.ProgressFn; `job` (of the app's scheduler) gives the
    model work its turns and its cancellation; a text over `max_text` characters is refused; the models
    load with `precision` (the server's), or exact fp32 when the form asks. Errors a
    person can fix are UserErrors (TTSInputError, InferenceUIError, AudioDecodeError, missing models,
    SynthesisCancelled).
    """
    check_form(form, max_text)
    roots = [workspace, model_dir]
    gpt = resolve_weight(form.gpt, gpt_choices(workspace, model_dir), roots, "GPT")
    sovits = resolve_weight(form.sovits, sovits_choices(workspace, model_dir), roots, "SoVITS")
    clvp = resolve_clvp(form.request.clvp_path, workspace)
    request = replace(
        form.request,
        ref_audio=str(form.request.ref_audio),
        ref_text=(form.request.ref_text or "").strip(),
        clvp_path=str(clvp) if clvp else None,
        seed=resolve_seed(form.request.seed, form.random_seed),
        asr_model=form.request.asr_model or None,
    )
    synth = make_synthesizer(
        gpt, sovits, model_dir, cache, job, max_text, "fp32" if form.exact_fp32 else precision
    )
    kwargs = {"progress": progress} if progress is not None else {}
    result = synth.synthesize(request, on_chunk=on_chunk, **kwargs)
    if job is not None and job.cancelled:  # cancelled after its last turn: the person asked for no file
        raise SynthesisCancelled()
    path = save_output(
        workspace / "outputs", result.audio, request.text, int(result.seed), result.sample_rate, fmt
    )
    return SynthesisOutcome(result, path, gpt, sovits, request)


# ------------------------------------------------------------------------------- saved voices


def voice_choices(workspace: Path) -> list[str]:
    """Names of the saved voices (`gpt_sovits.infer.voices`), listed fresh each time."""
    from gpt_sovits.infer.voices import list_voices

    return list_voices(workspace)


def with_voice(values: Mapping[str, Any], workspace: Path) -> dict[str, Any]:
    """Named values with the saved voice `values["voice"]` filled in where a value is left empty or at its
    schema default (an API call cannot tell "not given" from the default); no voice: unchanged.

    Raises VoiceError for an unknown voice or one whose clip or weights are gone."""
    from gpt_sovits.infer.request import SYNTHESIS_PARAMS
    from gpt_sovits.infer.voices import load_voice

    name = str(values.get("voice") or "").strip()
    if not name:
        return dict(values)
    voice = load_voice(workspace, name)
    defaults = {p.name: p.default for p in SYNTHESIS_PARAMS}
    out = dict(values)
    for key, value in voice.values().items():
        given = out.get(key)
        if given in (None, "", []) or (key in defaults and _same(given, defaults[key])):
            out[key] = value
    return out


def _same(a: Any, b: Any) -> bool:
    try:
        return a == b or float(a) == float(b)
    except (TypeError, ValueError):
        return False


# --------------------------------------------------------------------------- model cache holder


class LazyCache:
    """The app's one `gpt_sovits.ModelCache`, created on first use (never at import or build).

    Also keeps the Whisper models used by "Transcribe reference", keyed by model name.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._whisper_lock = threading.Lock()  # a slow Whisper load must not hold up synthesis
        self._tts_cache: Any = None
        self._whisper: dict[str, Any] = {}

    def tts(self) -> Any:
        with self._lock:
            if self._tts_cache is None:
                from gpt_sovits import ModelCache

                self._tts_cache = ModelCache()
            return self._tts_cache

    def whisper(self, name: str, model_dir: Path) -> Any:
        with self._whisper_lock:
            if name not in self._whisper:
                from tools.asr import load_whisper

                self._whisper[name] = load_whisper(name, model_dir=model_dir)
            return self._whisper[name]


# ------------------------------------------------------------------------------ synthesis service


class SynthesisService:
    """What the tab and the API share to run model work: the model cache, the turn scheduler, the
    longest text accepted and the models' precision. One per app, made when the tab is built; its state lives here (no globals).
    """

    def __init__(self, max_text: int | None = MAX_TEXT_CHARS, precision: str = "auto") -> None:
        self.cache = LazyCache()
        self.scheduler = TurnScheduler()
        self.max_text = max_text
        self.precision = precision
        # The streamed job running for each caller key (a browser session): Cancel reaches it by the key,
        # since Gradio does not close a streaming handler's inner iterators when it cancels the event.
        self._streaming: dict[str, Job] = {}
        self._streaming_lock = threading.Lock()

    def cancel_streaming(self, key: str | None) -> bool:
        """Cancel the streamed job running under ``key``; whether there was one."""
        with self._streaming_lock:
            job = self._streaming.get(key) if key else None
        if job is not None:
            job.cancel()
        return job is not None

    async def run(self, work: Callable[[Job], T], name: str = "") -> T:
        """`work(job)` in a thread of its own, awaited by an async Gradio handler.

        Cancelling the awaiting task (Gradio does on the tab's Cancel and on a client's `job.cancel()`)
        cancels the job: the work stops at its next turn, and a turn still waited for is given up at
        once. Not Gradio's worker threads: Gradio waits for a cancelled synchronous handler to end. The
        thread is a daemon, so stopping the server never waits for a synthesis.
        """
        job = self.scheduler.job(name)
        loop = asyncio.get_running_loop()
        outcome: asyncio.Future[T] = loop.create_future()
        # gr.Progress finds its event through context variables: the thread runs in a copy of them.
        context = contextvars.copy_context()

        def target() -> None:
            try:
                value, error = context.run(work, job), None
            except BaseException as e:  # handed to the awaiting handler, which shows it
                value, error = None, e
            with contextlib.suppress(RuntimeError):  # the loop has closed: nobody is waiting
                loop.call_soon_threadsafe(_settle, outcome, value, error)

        threading.Thread(target=target, name=f"synthesis {name}".strip(), daemon=True).start()
        try:
            return await outcome
        except asyncio.CancelledError:
            job.cancel()
            logger.info("%s cancelled after %d unit(s) of model work", name or "synthesis", job.units)
            raise

    async def run_streaming(
        self, work: Callable[[Job, Callable[[Any], None]], T], name: str = "", key: str | None = None
    ) -> AsyncIterator[tuple[str, Any]]:
        """`work(job, emit)` in a thread of its own; yields ("chunk", x) for each `emit(x)` as it comes, then
        ("done", what work returned). Its errors are raised here after the chunks emitted before them.

        When the consumer stops early (a client hangs up, Gradio cancels the event) the job is cancelled:
        the work stops at its next turn and the models go to the next request. With ``key`` (a session),
        ``cancel_streaming(key)`` cancels it too while it runs.
        """
        job = self.scheduler.job(name)
        if key:
            with self._streaming_lock:
                self._streaming[key] = job
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        context = contextvars.copy_context()

        def put(kind: str, value: Any) -> None:
            with contextlib.suppress(RuntimeError):  # the loop has closed: nobody is listening
                loop.call_soon_threadsafe(queue.put_nowait, (kind, value))

        def target() -> None:
            try:
                put("done", context.run(work, job, lambda x: put("chunk", x)))
            except BaseException as e:  # handed to the consumer, which shows it
                put("error", e)
            finally:
                with self._streaming_lock:
                    if key and self._streaming.get(key) is job:
                        del self._streaming[key]

        threading.Thread(target=target, name=f"synthesis {name}".strip(), daemon=True).start()
        finished = False
        try:
            while True:
                kind, value = await queue.get()
                if kind == "error":
                    finished = True
                    raise value
                finished = kind == "done"  # before the yield: a consumer may stop once it has the outcome
                yield kind, value
                if finished:
                    return
        finally:
            if not finished:
                job.cancel()
                logger.info("%s stopped after %d unit(s) of model work", name or "synthesis", job.units)


def _settle(future: asyncio.Future, value: Any, error: BaseException | None) -> None:
    if future.done():  # cancelled meanwhile
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(value)
