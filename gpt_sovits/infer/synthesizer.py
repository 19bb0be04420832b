"""Text to speech with GPT-SoVITS v1/v2: the one synthesiser behind the Inference tab, the API and the CLI.

Pipeline (as the reference's ``TTS_infer_pack/TTS.py`` and ``inference_webui.get_tts_wav``):

1. Reference: 3-10 s. Its 16 kHz audio plus 0.3 s x 32000 = 9600 zero samples goes through HuBERT and
   ``SynthesizerTrn.extract_latent`` -> prompt semantic tokens (Tp,). Its 32 kHz linear spectrogram (and
   those of the auxiliary references) give S2 its timbre; S2 averages their style vectors.
2. Text: ``prepare_segments`` (cut method, short pieces merged, long ones split), then per piece the
   language runs -> phone ids and BERT features (1024, n) (zeros for non-Chinese). The prompt text's
   phones and BERT are prepended to every piece; without prompt text (reference-free mode) S1 gets
   neither the prompt phones nor the prompt tokens.
3. S1 samples N candidates per piece in one batched KV-cache decode; each keeps its tokens and per-token
   log-probabilities. A scorer picks one per piece: highest mean log-probability, blended with CLVP when
   a CLVP checkpoint is given and, when weighted, with ASR agreement and speaker similarity of each
   decoded candidate (gpt_sovits.infer.blends). Every candidate is returned with its scores.
4. S2 decodes the chosen tokens with the target phones (speed, noise scale); pieces are joined with
   ``pause`` seconds of silence. Output: 32 kHz float32 mono.

The same seed and inputs give the same audio: S1 draws from a torch.Generator seeded per batch, S2's noise
from one seeded per piece, so ``reassemble`` can swap one piece's candidate and re-decode only that piece.

CLI: ``python -m gpt_sovits.infer.synthesizer --gpt G.ckpt --sovits S.pth --ref-audio ref.wav --text ... --out out.wav``.
"""

from __future__ import annotations

import argparse
import re
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from core.errors import UserError
from gpt_sovits.device import autocast_for

if TYPE_CHECKING:
    from gpt_sovits.models.s1 import Candidate, S1Config, Text2Semantic
    from gpt_sovits.models.s2 import S2Config, SynthesizerTrn
    from gpt_sovits.models.sampling import SamplingParams

SAMPLE_RATE = 32000
REF_MIN_S = 3.0
REF_MAX_S = 10.0


class TTSInputError(UserError, ValueError):
    """An input a person can fix (reference length, empty text, unknown language, mismatched models...)."""


class ReferenceLengthError(TTSInputError):
    """The reference clip is outside 3-10 s. ``duration`` (seconds) lets a UI offer ``trim_reference``."""

    def __init__(self, message: str, duration: float) -> None:
        super().__init__(message)
        self.duration = duration


# ------------------------------------------------------------------------------------------ data types

RefAudio = str | Path | tuple[int, np.ndarray]  # a file, or (sample_rate, samples) as Gradio gives it


@dataclass
class SynthesisRequest:
    """Everything one synthesis needs besides the model weights. Defaults follow the reference's UI."""

    text: str
    text_lang: str = "zh"  # a gpt_sovits.text.lang_segment.MODES code: zh, all_zh, en, auto, ...
    ref_audio: RefAudio | None = None
    ref_text: str = ""  # empty: reference-free mode (no prompt phones, no prompt tokens)
    ref_lang: str = "zh"
    aux_refs: list[RefAudio] = field(default_factory=list)  # more clips whose timbre is averaged in
    cut: str = "cut1"  # gpt_sovits.text.cut method: cut0 (none) ... cut5 (every punctuation mark)
    top_k: int = 15
    top_p: float = 1.0
    temperature: float = 1.0
    repetition_penalty: float = 1.35
    seed: int = -1  # -1: a random seed, reported in the result
    speed: float = 1.0
    noise_scale: float = 0.5
    pause: float = 0.3  # seconds of silence after each piece
    candidates: int = 1  # S1 samples per piece
    clvp_path: str | None = None  # CLVP checkpoint: rerank candidates with it
    logprob_weight: float = 1.0  # total = logprob_weight * mean_logprob + clvp_weight * clvp + ...
    clvp_weight: float = 1.0
    # Audio blends (gpt_sovits.infer.blends), run only with weight > 0 and >= 2 candidates: each candidate is
    # decoded by S2, then rated by faster-whisper agreement with the text (1 - CER/WER, 0..1) and by the
    # cosine similarity of its S2 style vector to the reference's (-1..1).
    asr_weight: float = 0.0
    asr_model: str | None = None  # a size name or CTranslate2 folder; None: first under model_dir
    speaker_weight: float = 0.0
    max_new_tokens: int = 1500  # S1 cap per piece (60 s at 25 Hz), as the reference
    force_tokens: int = 0  # > 0: exactly this many tokens per piece (EOS banned; for benchmarks)


@dataclass
class CandidateInfo:
    """One S1 sample of a piece: its semantic tokens and how the scorer rated it."""

    tokens: list[int]
    mean_logprob: float
    scores: dict[str, float]  # "logprob" and, when used, "clvp", "asr", "speaker"
    total: float  # what the selection maximises
    eos: bool = True  # False when the piece hit max_new_tokens without ending


@dataclass
class SentenceResult:
    """One piece of the text: its phone ids (target only), all candidates, the chosen one and its audio."""

    text: str
    phones: list[int]
    candidates: list[CandidateInfo]
    chosen: int
    audio: np.ndarray | None = None  # (samples,) float32 32 kHz of the chosen candidate, without the pause
    # Candidates already decoded by the audio blends (index -> audio): playing or swapping one is free.
    decoded: dict[int, np.ndarray] = field(default_factory=dict, repr=False)


@dataclass
class SynthesisResult:
    sample_rate: int
    audio: np.ndarray  # (samples,) float32 in [-1, 1]
    sentences: list[SentenceResult]
    seed: int
    request: SynthesisRequest | None = None
    timings: dict[str, float] = field(default_factory=dict)
    # What reassemble() needs to re-decode a piece: the reference spectrograms (1, 1025, T) on CPU.
    refer_specs: list[Any] = field(default_factory=list, repr=False)

    @property
    def duration(self) -> float:
        return self.audio.shape[-1] / self.sample_rate


@dataclass
class StreamChunk:
    """What ``Synthesizer.stream`` yields per piece: its result and its audio with the pause appended."""

    index: int
    total: int
    sentence: SentenceResult
    audio: np.ndarray
    seed: int
    sample_rate: int = SAMPLE_RATE


ProgressFn = Callable[[int, int, str], None]  # (done, total, message)
# A pluggable candidate scorer: (the piece's phone ids, each candidate's tokens) -> one score each, higher
# is better. Synthesizer(scorers={"name": (scorer, weight)}) adds weight * score to every candidate's total.
Scorer = Callable[[list[int], list[list[int]]], list[float]]


def _no_progress(done: int, total: int, message: str) -> None:
    """The default progress callback: the library reports nothing unless asked."""


# ------------------------------------------------------------------------------------------ the cache


class ModelCache:
    """Models loaded on first use and kept, one lock per key so concurrent users never load one twice.

    Keys are tuples starting with the kind ("gpt", "sovits", "hubert", "bert", "clvp", "ref" for prepared
    references) and naming what was loaded (resolved path, file mtime, device), so switching GPT weights
    loads only the new GPT: SoVITS, HuBERT and BERT stay. At most ``max_per_kind`` entries of one kind
    are kept (``limits`` per kind; least recently used leaves first). Owned by the app (one per process), never a module global.
    """

    def __init__(self, max_per_kind: int = 2, limits: Mapping[str, int] | None = None) -> None:
        self.max_per_kind = max(1, max_per_kind)
        # Prepared references are small (tokens and spectrograms): keep more of them.
        self.limits = {"ref": 16, **(limits or {})}
        self._lock = threading.Lock()
        self._key_locks: dict[tuple, threading.Lock] = {}
        self._items: OrderedDict[tuple, Any] = OrderedDict()
        self.loads: dict[tuple, int] = {}  # how often each key was loaded (tests, diagnostics)

    def get(self, key: tuple, loader: Callable[[], Any]) -> Any:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:  # a second caller for the same key waits here and then finds it loaded
            with self._lock:
                if key in self._items:
                    self._items.move_to_end(key)
                    return self._items[key]
            try:
                value = loader()
            finally:
                with self._lock:  # waiters already hold this lock object; new callers find the value
                    self._key_locks.pop(key, None)
            with self._lock:
                same_kind = [k for k in self._items if k[0] == key[0]]
                limit = max(1, self.limits.get(key[0], self.max_per_kind))
                for old in same_kind[: max(0, len(same_kind) - limit + 1)]:
                    del self._items[old]
                self._items[key] = value
                self.loads[key] = self.loads.get(key, 0) + 1
            return value

    def keys(self) -> list[tuple]:
        with self._lock:
            return list(self._items)

    def evict(self, kind: str) -> None:
        """Drop every cached model of one kind."""
        with self._lock:
            for key in [k for k in self._items if k[0] == kind]:
                del self._items[key]


def _clip_identity(path: Path) -> tuple:
    st = path.stat()
    return (str(path.resolve()), st.st_mtime_ns, st.st_size)


def _file_key(kind: str, path: Path, device: torch.device) -> tuple:
    """Cache key of a weight file: a re-exported file (new mtime) is loaded again."""
    st = path.stat()
    return (kind, str(path.resolve()), st.st_mtime_ns, st.st_size, str(device))


# ------------------------------------------------------------------------------------------ reference


def _to_mono_float(audio: np.ndarray) -> np.ndarray:
    """Gradio's (samples,) or (samples, channels) int16/int32/float array -> mono float32 in [-1, 1]."""
    a = np.asarray(audio)
    if np.issubdtype(a.dtype, np.integer):
        a = a.astype(np.float32) / float(np.iinfo(a.dtype).max + 1)
    a = a.astype(np.float32, copy=False)
    if a.ndim == 2:
        a = a.mean(axis=1) if a.shape[1] <= 8 else a.mean(axis=0)
    return a.reshape(-1)


def _describe(ref: RefAudio) -> str:
    return Path(ref).name if isinstance(ref, (str, Path)) else "the recorded reference"


def read_reference(ref: RefAudio) -> tuple[np.ndarray, int]:
    """A reference as (mono float32 samples, sample rate); unreadable input -> TTSInputError."""
    from core.audio import AudioDecodeError, load_audio

    if isinstance(ref, tuple):
        if len(ref) != 2:
            raise TTSInputError("a recorded reference must be (sample_rate, samples)")
        sr, samples = int(ref[0]), _to_mono_float(ref[1])
        if sr <= 0 or samples.size == 0:
            raise TTSInputError("the recorded reference holds no audio")
        if not np.all(np.isfinite(samples)):
            raise TTSInputError("the recorded reference contains NaN or infinite samples")
        return samples, sr
    try:
        return load_audio(ref)
    except AudioDecodeError as e:
        raise TTSInputError(f"The reference audio could not be read: {e}") from None


def check_reference(samples: np.ndarray, sr: int, name: str = "The reference clip") -> float:
    """Raise for a reference outside 3-10 s or silent; return its duration in seconds."""
    duration = samples.shape[-1] / sr
    # The reference counts samples at 16 kHz: 48000..160000.
    n16 = int(round(duration * 16000))
    if n16 < REF_MIN_S * 16000 or n16 > REF_MAX_S * 16000:
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
        raise TTSInputError(f"{_describe(ref)} is silent; nothing to trim.")
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
            f"{_describe(ref)} holds only {duration:.1f} s of sound; a reference needs at least "
            f"{min_seconds:g} s. Use a longer clip.",
            duration,
        )
    return save_wav(unique_path(Path(dest)), samples[start:end], sr)


@dataclass
class _Reference:
    """A prepared reference: prompt tokens (Tp,) (None in reference-free mode) and spectrograms."""

    prompt: torch.Tensor | None
    specs: list[torch.Tensor]  # each (1, 1025, T) on the model device


# ------------------------------------------------------------------------------------------------ text


@dataclass
class _Piece:
    text: str
    phones: list[int]
    segments: list[Any]  # gpt_sovits.text.lang_segment.TextSegment
    bert: torch.Tensor | None = None  # (1024, n_phones)


def _split_text(text: str, lang: str, cut: str) -> list[str]:
    """The pieces as the reference cuts them; empty or punctuation-only text and unknown cut methods or
    language modes raise TTSInputError. Needs no model, so it runs before any model loads."""
    from gpt_sovits.text.cut import UnknownCutMethodError, prepare_segments
    from gpt_sovits.text.errors import TextFrontendError
    from gpt_sovits.text.lang_segment import split_languages

    if not isinstance(text, str) or not text.strip():
        raise TTSInputError("The text to speak is empty.")
    try:
        pieces = prepare_segments(text, cut, "en" if lang == "en" else "zh")
        split_languages(pieces[0] if pieces else text, lang)  # validates the language mode
    except (UnknownCutMethodError, TextFrontendError) as e:
        raise TTSInputError(str(e)) from None
    if not pieces:
        raise TTSInputError(
            f"Nothing to say in {text[:40]!r}: the text has no words (only punctuation or spaces)."
        )
    return pieces


def _phones(text: str, lang: str, version: str, g2pw: Any = None) -> _Piece:
    """One piece -> phone ids and its language segments (frontend errors become TTSInputError).

    `g2pw`: the G2PW polyphone model for Chinese v2 pinyin, or None for pypinyin.
    """
    from gpt_sovits.text.errors import TextFrontendError
    from gpt_sovits.text.lang_segment import get_phones

    try:
        ids, segments = get_phones(text, lang, version, g2pw=g2pw)
    except TextFrontendError as e:
        raise TTSInputError(str(e)) from None
    return _Piece(text, ids, segments)


def _has_words(piece: _Piece) -> bool:
    return any(re.sub(r"[\W_]+", "", s.norm_text) for s in piece.segments)


def _text_pieces(text: str, lang: str, cut: str, version: str, g2pw: Any = None) -> list[_Piece]:
    """Cut ``text`` as the reference does and turn each piece into phone ids (no neural model needed
    unless `g2pw` is given)."""
    pieces = [_phones(raw, lang, version, g2pw) for raw in _split_text(text, lang, cut)]
    # As the reference, a piece whose text normalises to nothing is left out.
    pieces = [p for p in pieces if p.phones and _has_words(p)]
    if not pieces:
        raise TTSInputError(
            f"Nothing to say in {text[:40]!r}: the text has no words (only punctuation or spaces)."
        )
    return pieces


def _prompt_text(text: str, lang: str) -> str:
    from gpt_sovits.text.cut import SPLITS

    text = text.strip("\n").strip()
    if text and text[-1] not in SPLITS:
        text += "." if lang == "en" else "。"
    return text


# -------------------------------------------------------------------------------------------- scoring


def _mean_logprob(c: Candidate) -> float:
    return float(c.logprobs.mean()) if c.logprobs.numel() else float("-inf")


def select_candidates(
    phones: list[int],
    candidates: list[Candidate],
    scorers: Mapping[str, tuple[Scorer, float]],
    lp_weight: float,
) -> tuple[list[CandidateInfo], int]:
    """Score every candidate (mean log-prob + weighted extra scorers) and pick the highest total."""
    infos = [
        CandidateInfo(
            tokens=c.tokens.tolist(),
            mean_logprob=_mean_logprob(c),
            scores={"logprob": _mean_logprob(c)},
            total=lp_weight * _mean_logprob(c),
            eos=c.eos,
        )
        for c in candidates
    ]
    usable = [i for i, c in enumerate(infos) if c.tokens]
    for name, (scorer, weight) in scorers.items():
        if not usable:
            break
        values = scorer(phones, [infos[i].tokens for i in usable])
        if len(values) != len(usable):
            raise RuntimeError(f"scorer {name!r} returned {len(values)} scores for {len(usable)} candidates")
        for i, v in zip(usable, values, strict=True):
            infos[i].scores[name] = float(v)
            infos[i].total += weight * float(v)
    for i, c in enumerate(infos):
        if i not in usable:
            c.total = float("-inf")
    return infos, best_candidate(infos)


def best_candidate(infos: Sequence[CandidateInfo]) -> int:
    """The index of the highest total (the first one on a tie)."""
    return max(range(len(infos)), key=lambda i: (infos[i].total, -i))


# ----------------------------------------------------------------------------------------- synthesiser


def _noise_generator(seed: int, index: int) -> torch.Generator:
    """S2's noise for piece ``index``: independent of batching, so re-decoding a piece repeats it."""
    return torch.Generator().manual_seed((seed * 1_000_003 + index) % (2**63 - 1))


def _batches(n: int, rows_per_batch: int, candidates: int) -> list[list[int]]:
    """Piece indices per S1 batch: the first piece alone (first audio soon), then full batches."""
    per = max(1, rows_per_batch // max(1, candidates))
    out = [[0]] if n else []
    i = 1
    while i < n:
        out.append(list(range(i, min(n, i + per))))
        i += per
    return out


@dataclass
class _RunState:
    """What one run collects besides the chunks it yields."""

    timings: dict[str, float] = field(default_factory=dict)
    specs: list[torch.Tensor] = field(default_factory=list)


class Synthesizer:
    """GPT + SoVITS weights plus the HuBERT/BERT folders under ``model_dir``, loaded lazily via ``cache``.

    Cheap to build: the UI makes one per request around the app's shared ModelCache. ``scorers`` adds
    named candidate scorers with weights (see ``Scorer``); CLVP is added per request from ``clvp_path``.
    """

    rows_per_batch = 16  # S1 rows (pieces x candidates) decoded together

    def __init__(
        self,
        gpt_path: str | Path,
        sovits_path: str | Path,
        model_dir: str | Path,
        device: str = "auto",
        cache: ModelCache | None = None,
        scorers: Mapping[str, tuple[Scorer, float]] | None = None,
    ) -> None:
        self.gpt_path = Path(gpt_path)
        self.sovits_path = Path(sovits_path)
        self.model_dir = Path(model_dir)
        self.device_pref = device
        self.cache = cache or ModelCache()
        self.scorers = dict(scorers or {})
        self._device: torch.device | None = None

    # -- models ----------------------------------------------------------------------------------

    @property
    def device(self) -> torch.device:
        if self._device is None:
            from gpt_sovits.device import DeviceError, pick_device

            try:
                self._device = pick_device(self.device_pref)
            except DeviceError as e:
                raise TTSInputError(str(e)) from None
        return self._device

    def _weights(self, path: Path, what: str) -> Path:
        if not path.is_file():
            from gpt_sovits import pretrained as models

            for version in models.PRETRAINED_FILES:
                paths = models.pretrained_paths(self.model_dir, version)
                if path in (paths.s1, paths.s2g):
                    name = f"{'gpt' if path == paths.s1 else 'sovits'}-{version}"
                    raise TTSInputError(models.missing_message(name, self.model_dir))
            raise TTSInputError(f"{what} weights not found: {path}")
        return path

    def _load(self, kind: str, path: Path, loader: Callable[[], Any]) -> Any:
        from gpt_sovits.models.weights import CheckpointError

        try:
            return self.cache.get(_file_key(kind, path, self.device), loader)
        except CheckpointError as e:
            raise TTSInputError(f"Cannot use {path.name}: {e}") from None

    def gpt(self) -> tuple[Text2Semantic, S1Config]:
        from gpt_sovits.models.weights import load_gpt

        path = self._weights(self.gpt_path, "GPT")
        return self._load("gpt", path, lambda: load_gpt(path, self.device))

    def sovits(self) -> tuple[SynthesizerTrn, S2Config]:
        from gpt_sovits.models.weights import load_sovits

        path = self._weights(self.sovits_path, "SoVITS")
        return self._load("sovits", path, lambda: load_sovits(path, self.device))

    def g2pw(self, version: str) -> Any:
        """The G2PW polyphone model of model_dir for Chinese v2 pinyin (as the reference), else None.

        Loaded once per folder into the cache; None (pypinyin) when it is not installed, with a logged reason.
        """
        if version != "v2":
            return None
        from gpt_sovits.text import load_g2pw

        return self.cache.get(("g2pw", str(self.model_dir.resolve())), lambda: load_g2pw(self.model_dir))

    def feature_folder(self, kind: str) -> Path:
        """The HuBERT ("hubert") or BERT ("bert") folder under model_dir, in the official names."""
        from gpt_sovits.models.features import BERT_FOLDER, HUBERT_FOLDER

        return self.model_dir / (HUBERT_FOLDER if kind == "hubert" else BERT_FOLDER)

    def feature_key(self, kind: str) -> tuple:
        """The cache key of a feature model (lets a benchmark place an in-memory model in the cache)."""
        return (kind, str(self.feature_folder(kind).resolve()), str(self.device))

    def _feature_model(self, kind: str) -> Any:
        from gpt_sovits.models.features import FeatureModelNotFoundError, load_bert, load_hubert

        folder = self.feature_folder(kind)
        load = load_hubert if kind == "hubert" else load_bert
        try:
            return self.cache.get(self.feature_key(kind), lambda: load(folder, self.device))
        except FeatureModelNotFoundError as e:
            raise TTSInputError(str(e)) from None

    def version(self) -> str:
        """The text-frontend version (the SoVITS model's), after checking the GPT model agrees."""
        _, gcfg = self.gpt()
        _, scfg = self.sovits()
        gpt_version = "v2" if gcfg.phoneme_vocab_size >= 732 else "v1"
        if gpt_version != scfg.version:
            raise TTSInputError(
                f"The GPT weights {self.gpt_path.name} are {gpt_version} (phone vocabulary "
                f"{gcfg.phoneme_vocab_size}) but the SoVITS weights {self.sovits_path.name} are "
                f"{scfg.version}; choose GPT and SoVITS weights of the same version."
            )
        return scfg.version

    # -- steps -----------------------------------------------------------------------------------

    def _spec(self, samples: np.ndarray, sr: int) -> torch.Tensor:
        from core.audio import resample
        from gpt_sovits.models.features import spectrogram

        wav32 = torch.from_numpy(resample(samples, sr, SAMPLE_RATE).copy())
        peak = float(wav32.abs().max())
        if peak > 1:
            wav32 = wav32 / min(2.0, peak)
        return spectrogram(wav32.unsqueeze(0)).to(self.device)  # (1, 1025, T)

    def prepare_reference(self, request: SynthesisRequest) -> _Reference:
        """Check the reference(s); prompt tokens via HuBERT + extract_latent unless reference-free.

        Prepared references of files are cached (keyed by path, size and mtime of every clip, the mode
        and the SoVITS weights), as the reference's prompt cache: synthesising several texts with one
        reference runs HuBERT once.
        """
        if request.ref_audio is None or (isinstance(request.ref_audio, str) and not request.ref_audio):
            raise TTSInputError("A reference clip (3-10 s of the voice to clone) is needed.")
        clips = [request.ref_audio, *request.aux_refs]
        with_prompt = bool(request.ref_text.strip())
        if all(isinstance(c, (str, Path)) and Path(c).is_file() for c in clips):
            ids = tuple(_clip_identity(Path(c)) for c in clips)  # type: ignore[arg-type]
            sovits_key = _file_key("sovits", self._weights(self.sovits_path, "SoVITS"), self.device)
            key = ("ref", ids, with_prompt, sovits_key, self.feature_key("hubert"))
            return self.cache.get(key, lambda: self._prepare_reference(request, with_prompt))
        return self._prepare_reference(request, with_prompt)

    def _prepare_reference(self, request: SynthesisRequest, with_prompt: bool) -> _Reference:
        from core.audio import resample
        from gpt_sovits.models.features import hubert_features

        samples, sr = read_reference(request.ref_audio)  # type: ignore[arg-type]
        check_reference(samples, sr)
        specs = [self._spec(samples, sr)]
        for aux in request.aux_refs:
            a, asr = read_reference(aux)
            if a.size < 0.5 * asr or float(np.max(np.abs(a))) < 1e-3:
                raise TTSInputError(f"The extra reference {_describe(aux)} is silent or shorter than 0.5 s.")
            specs.append(self._spec(a, asr))
        prompt = None
        if with_prompt:
            sovits, _ = self.sovits()
            hubert = self._feature_model("hubert")
            wav16 = torch.from_numpy(resample(samples, sr, 16000).copy())
            # As the reference: 0.3 s x 32000 zeros appended to the 16 kHz clip before HuBERT.
            wav16 = torch.cat([wav16, torch.zeros(int(SAMPLE_RATE * 0.3))])
            with torch.inference_mode(), autocast_for(self.device):
                ssl = hubert_features(hubert, wav16.unsqueeze(0)).float()  # (1, 768, T50)
                codes = sovits.extract_latent(ssl.to(next(sovits.parameters()).dtype))  # (1, 1, T25)
            prompt = codes[0, 0].long()
        return _Reference(prompt, specs)

    def _bert(self, segments: list[Any]) -> torch.Tensor:
        from gpt_sovits.models.features import FeatureInputError, phone_bert_features

        feats = []
        for s in segments:
            bert = self._feature_model("bert") if s.language == "zh" else None
            try:
                feats.append(phone_bert_features(bert, s.language, s.norm_text, s.word2ph, len(s.phones)))
            except FeatureInputError as e:
                raise TTSInputError(f"Cannot read {s.text!r}: {e}") from None
        return torch.cat(feats, dim=1)  # (1024, n_phones)

    def _scorers(self, request: SynthesisRequest) -> dict[str, tuple[Scorer, float]]:
        scorers = dict(self.scorers)
        if request.clvp_path:
            try:
                import clvp
            except ImportError:
                raise TTSInputError("CLVP reranking is not available in this installation.") from None
            path = Path(request.clvp_path)
            if not path.is_file():
                raise TTSInputError(f"CLVP checkpoint not found: {path}")
            try:
                model = self.cache.get(
                    _file_key("clvp", path, self.device), lambda: clvp.load_clvp(str(path), self.device)
                )
            except ValueError as e:
                raise TTSInputError(f"Cannot use the CLVP checkpoint {path.name}: {e}") from None

            def clvp_scorer(phones: list[int], cands: list[list[int]]) -> list[float]:
                try:
                    return clvp.rerank(model, phones, cands)
                except ValueError as e:
                    raise TTSInputError(f"CLVP could not score the candidates: {e}") from None

            scorers["clvp"] = (clvp_scorer, request.clvp_weight)
        return scorers

    # -- audio blends (gpt_sovits.infer.blends) ------------------------------------------------------------

    def whisper(self, model: str | None = None) -> Any:
        """The faster-whisper model for ASR agreement, loaded once into the cache; never downloads.

        ``model``: a size name (looked up as ``<model_dir>/faster-whisper-<size>`` then the Hugging Face
        cache) or a CTranslate2 folder; None: the first local ``faster-whisper-*`` folder of model_dir.
        A missing model raises TTSInputError with the ASR stage's message (where to put it, how to get it).
        """
        from gpt_sovits.infer.blends import resolve_whisper
        from tools.asr import ModelLoadError, ModelNotFoundError, load_whisper

        device = "cuda" if self.device.type == "cuda" else "cpu"
        try:
            name = resolve_whisper(model, self.model_dir)
            key = ("whisper", name, str(self.model_dir.resolve()), device)
            return self.cache.get(key, lambda: load_whisper(name, device=device, model_dir=self.model_dir))
        except (ModelNotFoundError, ModelLoadError) as e:
            raise TTSInputError(f"ASR agreement needs a local faster-whisper model: {e}") from None

    def reference_embedding(self, specs: Sequence[torch.Tensor]) -> np.ndarray:
        """S2's style vector ``ge`` (gin,) of the reference(s), averaged over clips as ``decode`` does."""
        sovits, _ = self.sovits()
        dtype = next(sovits.parameters()).dtype
        with torch.inference_mode(), autocast_for(self.device):
            ge = torch.stack([sovits.style(s.to(self.device, dtype)) for s in specs], 0).mean(0)
        return ge.float().reshape(-1).cpu().numpy()

    def speaker_embedding(self, audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
        """S2's style vector ``ge`` (gin,) of a clip (float32 mono): the timbre vector S2 conditions on."""
        return self.reference_embedding([self._spec(audio, sample_rate)])

    def _audio_blends(
        self,
        piece: _Piece,
        infos: list[CandidateInfo],
        specs: list[torch.Tensor],
        request: SynthesisRequest,
        seed: int,
        index: int,
        whisper: Any,
        ref_embedding: np.ndarray | None,
        timings: dict[str, float],
    ) -> tuple[int, dict[int, np.ndarray]]:
        """Decode every usable candidate, add the weighted "asr"/"speaker" scores to its total, re-pick.

        Returns (chosen index, {candidate index: its audio}). The audio uses the piece's seeded S2 noise,
        so it is exactly what the final decode (or ``candidate_audio``) would give and can be reused.
        """
        from gpt_sovits.infer.blends import (
            agreement_score,
            cosine,
            model_languages,
            transcribe,
            whisper_language,
        )

        usable = [j for j, c in enumerate(infos) if c.tokens]
        if len(usable) < 2:
            return best_candidate(infos), {}
        t0 = time.perf_counter()
        audios = {j: self._decode(infos[j].tokens, piece.phones, specs, request, seed, index) for j in usable}
        timings["s2"] = timings.get("s2", 0.0) + time.perf_counter() - t0
        if whisper is not None and request.asr_weight > 0:
            t1 = time.perf_counter()
            language = whisper_language(request.text_lang, model_languages(whisper))
            for j in usable:
                heard = transcribe(whisper, audios[j], SAMPLE_RATE, language)
                score = agreement_score(piece.text, heard, request.text_lang)
                infos[j].scores["asr"] = score
                infos[j].total += request.asr_weight * score
            timings["asr"] = timings.get("asr", 0.0) + time.perf_counter() - t1
        if ref_embedding is not None and request.speaker_weight > 0:
            t2 = time.perf_counter()
            for j in usable:
                score = cosine(self.speaker_embedding(audios[j]), ref_embedding)
                infos[j].scores["speaker"] = score
                infos[j].total += request.speaker_weight * score
            timings["speaker"] = timings.get("speaker", 0.0) + time.perf_counter() - t2
        return best_candidate(infos), audios

    def _decode(
        self,
        tokens: list[int],
        phones: list[int],
        specs: list[torch.Tensor],
        request: SynthesisRequest,
        seed: int,
        index: int,
    ) -> np.ndarray:
        """S2: one piece's tokens + target phones -> (samples,) float32, peak-normalised when above 1."""
        sovits, _ = self.sovits()
        dev = self.device
        codes = torch.tensor(tokens, dtype=torch.long, device=dev).view(1, 1, -1)
        text = torch.tensor(phones, dtype=torch.long, device=dev).unsqueeze(0)
        with torch.inference_mode(), autocast_for(dev):
            wav = sovits.decode(
                codes,
                text,
                [s.to(dev) for s in specs],
                noise_scale=request.noise_scale,
                speed=request.speed,
                generator=_noise_generator(seed, index),
            )
        audio = wav[0, 0].float().cpu().numpy()
        peak = float(np.max(np.abs(audio))) if audio.size else 0.0
        if peak > 1:
            audio = audio / peak
        return audio.astype(np.float32, copy=False)

    # -- public ----------------------------------------------------------------------------------

    def _validate(self, request: SynthesisRequest) -> SamplingParams:
        from gpt_sovits.models.sampling import SamplingError, SamplingParams

        if not 1 <= int(request.candidates) <= 32:
            raise TTSInputError(f"candidates must be between 1 and 32, got {request.candidates}")
        if not 0.25 <= request.speed <= 4:
            raise TTSInputError(f"speed must be between 0.25 and 4, got {request.speed}")
        if not 0 <= request.noise_scale <= 2:
            raise TTSInputError(f"noise_scale must be between 0 and 2, got {request.noise_scale}")
        if not 0 <= request.pause <= 10:
            raise TTSInputError(f"pause must be between 0 and 10 s, got {request.pause}")
        for name in ("asr_weight", "speaker_weight"):
            value = float(getattr(request, name))
            if not (np.isfinite(value) and value >= 0):
                raise TTSInputError(f"{name} must be 0 (off) or more, got {value}")
        force = int(request.force_tokens)
        params = SamplingParams(
            top_k=int(request.top_k),
            top_p=float(request.top_p),
            temperature=float(request.temperature),
            repetition_penalty=float(request.repetition_penalty),
            eos_ban_steps=force if force > 0 else 11,
            max_new_tokens=force if force > 0 else int(request.max_new_tokens),
        )
        try:
            params.validate()
        except SamplingError as e:
            raise TTSInputError(str(e)) from None
        return params

    def _run(
        self, request: SynthesisRequest, progress: ProgressFn, state: _RunState
    ) -> Iterator[StreamChunk]:
        timings = state.timings
        params = self._validate(request)
        seed = int(request.seed)
        if seed < 0:
            seed = int(np.random.default_rng().integers(0, 2**31 - 1))
        t0 = time.perf_counter()
        text_lang = request.text_lang.strip().lower()
        ref_lang = request.ref_lang.strip().lower()
        # Cheap checks of the text before any model loads; phones need the SoVITS model's version.
        _split_text(request.text, text_lang, request.cut)
        version = self.version()
        g2pw = self.g2pw(version)
        pieces = _text_pieces(request.text, text_lang, request.cut, version, g2pw)
        ref = self.prepare_reference(request)
        state.specs = [s.cpu() for s in ref.specs]  # kept for reassemble()
        prompt_phones: list[int] = []
        prompt_bert = torch.zeros(1024, 0)
        if ref.prompt is not None:
            # As the reference: the whole prompt text, ended with a stop, without cutting.
            prompt = _phones(_prompt_text(request.ref_text, ref_lang), ref_lang, version, g2pw)
            if not _has_words(prompt):
                raise TTSInputError(
                    "The reference text has no words; give what the reference says, or leave it empty "
                    "for the reference-free mode."
                )
            prompt_phones = prompt.phones
            prompt_bert = self._bert(prompt.segments)
        timings["reference"] = time.perf_counter() - t0
        scorers = self._scorers(request)
        # Audio blends need at least two candidates; the Whisper model is checked before S1 runs.
        blend = int(request.candidates) >= 2 and (request.asr_weight > 0 or request.speaker_weight > 0)
        whisper = self.whisper(request.asr_model) if blend and request.asr_weight > 0 else None
        ref_embedding = self.reference_embedding(ref.specs) if blend and request.speaker_weight > 0 else None
        gpt, _ = self.gpt()
        n = len(pieces)
        progress(0, n, f"{n} piece(s) to synthesise")
        done = 0
        for b, batch in enumerate(_batches(n, self.rows_per_batch, request.candidates)):
            t1 = time.perf_counter()
            for i in batch:
                pieces[i].bert = self._bert(pieces[i].segments)
            phones = [torch.tensor(prompt_phones + pieces[i].phones, dtype=torch.long) for i in batch]
            berts = [torch.cat([prompt_bert, pieces[i].bert], dim=1) for i in batch]
            gen = torch.Generator(device=self.device).manual_seed(seed + b)
            with autocast_for(self.device):
                out = gpt.generate(
                    phones, berts, ref.prompt, params, num_candidates=int(request.candidates), generator=gen
                )
            timings["s1"] = timings.get("s1", 0.0) + time.perf_counter() - t1
            for i, cands in zip(batch, out.candidates, strict=True):
                infos, chosen = select_candidates(pieces[i].phones, cands, scorers, request.logprob_weight)
                decoded: dict[int, np.ndarray] = {}
                if blend:
                    chosen, decoded = self._audio_blends(
                        pieces[i], infos, ref.specs, request, seed, i, whisper, ref_embedding, timings
                    )
                audio = decoded.get(chosen)
                if audio is None:
                    t3 = time.perf_counter()
                    audio = self._decode(infos[chosen].tokens, pieces[i].phones, ref.specs, request, seed, i)
                    timings["s2"] = timings.get("s2", 0.0) + time.perf_counter() - t3
                sentence = SentenceResult(pieces[i].text, pieces[i].phones, infos, chosen, audio, decoded)
                done += 1
                progress(done, n, f"piece {done}/{n} done")
                if "first_audio" not in timings:
                    timings["first_audio"] = time.perf_counter() - t0
                yield StreamChunk(i, n, sentence, np.concatenate([audio, self._pause(request)]), seed)

    @staticmethod
    def _pause(request: SynthesisRequest) -> np.ndarray:
        return np.zeros(int(SAMPLE_RATE * request.pause), dtype=np.float32)

    def stream(self, request: SynthesisRequest, progress: ProgressFn = _no_progress) -> Iterator[StreamChunk]:
        """Yield each piece (its result and audio with the pause) as soon as it is decoded.

        The pieces and their audio are exactly those of ``synthesize`` for the same request and seed.
        """
        yield from self._run(request, progress, _RunState())

    def synthesize(self, request: SynthesisRequest, progress: ProgressFn = _no_progress) -> SynthesisResult:
        """The whole text: every piece's candidates with their scores, and the joined 32 kHz audio."""
        state = _RunState()
        t0 = time.perf_counter()
        chunks = list(self._run(request, progress, state))
        timings = state.timings
        timings["total"] = time.perf_counter() - t0
        return SynthesisResult(
            sample_rate=SAMPLE_RATE,
            audio=np.concatenate([c.audio for c in chunks]).astype(np.float32, copy=False),
            sentences=[c.sentence for c in chunks],
            seed=chunks[0].seed,
            request=request,
            timings=timings,
            refer_specs=state.specs,
        )

    def candidate_audio(self, result: SynthesisResult, piece: int, candidate: int) -> np.ndarray:
        """Piece ``piece`` spoken with candidate ``candidate`` (same S2 noise as ``reassemble`` uses),
        without changing ``result``. Returns (samples,) float32 at 32 kHz, without the pause."""
        if result.request is None or not result.refer_specs:
            raise TTSInputError("This result cannot be re-decoded (it carries no request/reference).")
        if not 0 <= piece < len(result.sentences):
            raise TTSInputError(f"there are {len(result.sentences)} pieces; piece {piece + 1} does not exist")
        sentence = result.sentences[piece]
        if not 0 <= candidate < len(sentence.candidates):
            raise TTSInputError(
                f"piece {piece + 1} has {len(sentence.candidates)} candidates; "
                f"choice {candidate + 1} does not exist"
            )
        if candidate == sentence.chosen and sentence.audio is not None:
            return sentence.audio
        if candidate in sentence.decoded:  # same tokens, phones, references and seeded noise
            return sentence.decoded[candidate]
        tokens = sentence.candidates[candidate].tokens
        if not tokens:
            raise TTSInputError(f"candidate {candidate + 1} of piece {piece + 1} has no tokens to decode")
        return self._decode(tokens, sentence.phones, result.refer_specs, result.request, result.seed, piece)

    def reassemble(self, result: SynthesisResult, choices: Sequence[int]) -> np.ndarray:
        """Audio with candidate ``choices[i]`` for piece i; only pieces whose choice changed are re-decoded.

        Updates ``result`` (chosen, per-piece audio, audio) in place and returns the new audio.
        """
        if result.request is None or not result.refer_specs:
            raise TTSInputError("This result cannot be re-assembled (it carries no request/reference).")
        if len(choices) != len(result.sentences):
            raise TTSInputError(f"{len(result.sentences)} pieces but {len(choices)} choices were given")
        new_audio = [
            self.candidate_audio(result, i, int(choice)) for i, choice in enumerate(choices)
        ]  # all checked and decoded before anything in result changes
        for sentence, choice, audio in zip(result.sentences, choices, new_audio, strict=True):
            sentence.chosen, sentence.audio = int(choice), audio
        pause = self._pause(result.request)
        result.audio = np.concatenate([np.concatenate([s.audio, pause]) for s in result.sentences]).astype(
            np.float32
        )
        return result.audio


# ------------------------------------------------------------------------------------------------ CLI


def make_parser() -> argparse.ArgumentParser:
    d = SynthesisRequest(text="")
    p = argparse.ArgumentParser(
        prog="python -m gpt_sovits.infer.synthesizer",
        description="Speak a text in the voice of a 3-10 s reference clip (GPT-SoVITS v1/v2 weights).",
    )
    p.add_argument("--gpt", required=True, help="GPT (S1) weights .ckpt")
    p.add_argument("--sovits", required=True, help="SoVITS (S2) weights .pth")
    p.add_argument("--ref-audio", required=True, help="reference clip, 3-10 s")
    p.add_argument("--ref-text", default="", help="what the reference says (empty: reference-free mode)")
    p.add_argument("--ref-lang", default=d.ref_lang, help="language of --ref-text (zh, en, auto, ...)")
    p.add_argument("--aux-ref", action="append", default=[], help="extra clip whose timbre is averaged in")
    p.add_argument("--trim-reference", action="store_true", help="trim a reference longer than 10 s first")
    text = p.add_mutually_exclusive_group(required=True)
    text.add_argument("--text", help="text to speak")
    text.add_argument("--text-file", help="UTF-8 file with the text to speak (long texts)")
    p.add_argument("--lang", default=d.text_lang, help="language of the text: zh, all_zh, en, auto, ...")
    p.add_argument("--out", required=True, help="output .wav (32 kHz, 16-bit)")
    p.add_argument("--cut", default=d.cut, help="text splitting: cut0 (none) ... cut5 (every punctuation)")
    p.add_argument("--top-k", type=int, default=d.top_k)
    p.add_argument("--top-p", type=float, default=d.top_p)
    p.add_argument("--temperature", type=float, default=d.temperature)
    p.add_argument("--repetition-penalty", type=float, default=d.repetition_penalty)
    p.add_argument("--seed", type=int, default=d.seed, help="-1: random (printed)")
    p.add_argument("--speed", type=float, default=d.speed)
    p.add_argument("--noise-scale", type=float, default=d.noise_scale)
    p.add_argument("--pause", type=float, default=d.pause, help="seconds of silence after each piece")
    p.add_argument("--candidates", type=int, default=d.candidates, help="S1 samples per piece")
    p.add_argument("--clvp", default=None, help="CLVP checkpoint to rerank the candidates")
    p.add_argument("--clvp-weight", type=float, default=d.clvp_weight)
    p.add_argument(
        "--asr-weight", type=float, default=d.asr_weight,
        help="weight of ASR agreement (1 - CER of faster-whisper on each decoded candidate); 0: off",
    )  # fmt: skip
    p.add_argument(
        "--asr-model", default=None,
        help="faster-whisper size name or CTranslate2 folder (default: first faster-whisper-* under --model-dir)",
    )  # fmt: skip
    p.add_argument(
        "--speaker-weight", type=float, default=d.speaker_weight,
        help="weight of speaker similarity (cosine of S2 style vectors, candidate vs reference); 0: off",
    )  # fmt: skip
    p.add_argument("--max-new-tokens", type=int, default=d.max_new_tokens)
    p.add_argument("--force-tokens", type=int, default=0, help="exactly N tokens per piece (benchmarks)")
    p.add_argument("--model-dir", default=None, help="folder with chinese-hubert-base/ etc.")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    return p


def _print_scores(result: SynthesisResult) -> None:
    for i, s in enumerate(result.sentences):
        print(f"[{i + 1}/{len(result.sentences)}] {s.text}")
        for j, c in enumerate(s.candidates):
            mark = "*" if j == s.chosen else " "
            scores = " ".join(f"{k}={v:.3f}" for k, v in c.scores.items())
            print(f"  {mark} candidate {j + 1}: {len(c.tokens)} tokens, {scores}, total={c.total:.3f}")


def main(argv: list[str] | None = None) -> int:
    import tempfile

    from core.audio import save_wav
    from gpt_sovits.pretrained import DEFAULT_MODEL_DIR

    args = make_parser().parse_args(argv)
    try:
        text = args.text if args.text is not None else Path(args.text_file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        print(f"error: cannot read --text-file: {e}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="tts-ref-") as tmp:
        ref: RefAudio = args.ref_audio
        try:
            if args.trim_reference:
                samples, sr = read_reference(ref)
                if samples.size / sr > REF_MAX_S:
                    ref = trim_reference(ref, Path(tmp) / "reference.wav")
                    print(f"reference trimmed to {read_reference(ref)[0].size / sr:.1f} s")
            request = SynthesisRequest(
                text=text,
                text_lang=args.lang,
                ref_audio=ref,
                ref_text=args.ref_text,
                ref_lang=args.ref_lang,
                aux_refs=list(args.aux_ref),
                cut=args.cut,
                top_k=args.top_k,
                top_p=args.top_p,
                temperature=args.temperature,
                repetition_penalty=args.repetition_penalty,
                seed=args.seed,
                speed=args.speed,
                noise_scale=args.noise_scale,
                pause=args.pause,
                candidates=args.candidates,
                clvp_path=args.clvp,
                clvp_weight=args.clvp_weight,
                asr_weight=args.asr_weight,
                asr_model=args.asr_model,
                speaker_weight=args.speaker_weight,
                max_new_tokens=args.max_new_tokens,
                force_tokens=args.force_tokens,
            )
            synth = Synthesizer(
                args.gpt, args.sovits, args.model_dir or DEFAULT_MODEL_DIR, device=args.device
            )
            result = synth.synthesize(
                request, progress=lambda done, total, msg: print(f"{done}/{total} {msg}", file=sys.stderr)
            )
        except TTSInputError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
    _print_scores(result)
    out = save_wav(args.out, result.audio, result.sample_rate)
    t = result.timings
    print(
        f"wrote {out} ({result.duration:.2f} s, seed {result.seed}); "
        f"time {t.get('total', 0):.2f} s, RTF {t.get('total', 0) / max(result.duration, 1e-9):.3f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
